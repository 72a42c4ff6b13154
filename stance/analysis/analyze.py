"""An article's statements with speaker, check-worthiness, topic and stance toward any targets; the default models.

This module is imported by `import stance`, so numpy, pandas, scikit-learn and the encoder are imported on use.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stance.analysis.article import statements as find_statements

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMATS = ("table", "csv", "jsonl")


@dataclass(frozen=True)
class DefaultModel:
    """A default model of `stance analyze`: its registered name, the named experiment training it, what it is."""

    name: str
    experiment: str
    about: str
    minutes: int  # training it from an empty cache on 2 shared CPU cores (docs/models.md): the estimate shown
    after: tuple[str, ...] = ()  # named experiments run first into the same store: the models `experiment` starts from


# kind -> its default, trained once and registered as NAME@default; in the order `stance analyze` needs them.
DEFAULT_MODELS = {
    "claim": DefaultModel("claim-checkworthy", "clef_claims_context", "check-worthy claims; MiniLM, CLEF-2019", 1),
    "stance": DefaultModel("stance-zero-shot", "zero_shot_stance", "stance toward any target; MiniLM, 9 corpora", 2),
}
# Opt-in (`stance models prepare --large`): the mpnet claim model, better on CLEF validation, ~14 min to encode CLEF;
# stance as entailment (NLI stage, then the stance stage), ahead on UKP's unseen topics, ~90 min on this class of CPU.
LARGE_MODELS = {
    "claim": DefaultModel("claim-checkworthy", "clef_claims", "check-worthy claims; mpnet, CLEF-2019", 17),
    "stance": DefaultModel(
        "stance-zero-shot", "stance_stage", "stance as entailment; MiniLM, NLI then 11 corpora", 90, ("nli_stage",)
    ),
}
DEFAULT_ALIAS = "default"
# Trains the default model of a kind into a store, registering it: (kind, tracking_uri, limit) -> run id.
Trainer = Callable[[str, str, "int | None"], Any]
# The default topic is the nearest of these by embedding similarity: no topic corpus fits diplomatic news.
TOPICS = (
    "diplomacy and international relations",
    "military, defence and security",
    "economy, trade and finance",
    "energy",
    "elections and domestic politics",
    "law, courts and crime",
    "health and medicine",
    "science and technology",
    "environment and climate",
    "society, religion and culture",
    "sports",
)


@dataclass
class Analysis:
    """One row per statement (`statements`) and the speaker x target summary (`summary`)."""

    statements: pd.DataFrame
    summary: pd.DataFrame


def analyze(
    text: str,
    targets: Sequence[str],
    stance_model: Any = None,
    claim_model: Any = None,
    topic_model: Any = None,
    tracking_uri: str | None = None,
    train: Trainer | None = None,
) -> Analysis:
    """Statements of `text` with speaker, claim score, topic, and stance (with probability) toward each target.

    A model is an MLflow URI or local path (see `stance.load_model`), a fitted pipeline, or None for the default:
    the registered `models:/<name>@default` in `tracking_uri` (see `default_model`), trained with `train` when the
    store has none (`stance.analyze` trains it with `stance.experiment.train_default`).
    """
    import pandas as pd

    from stance.data.schema import DataError

    targets = _check_targets(targets)
    found = find_statements(text)
    if not found:
        raise DataError("The text has no sentences to analyse: it is empty or has no words.")
    frame = pd.DataFrame(
        {
            "paragraph": [s.paragraph + 1 for s in found],
            "speaker": [s.speaker for s in found],
            "kind": [s.kind for s in found],
            "statement": [s.text for s in found],
        }
    )
    texts = frame["statement"].tolist()
    claim = _model(claim_model, "claim", tracking_uri, train)
    frame["claim"] = claim_scores(claim, texts, frame["speaker"].tolist())
    topic = None if topic_model is None else _model(topic_model, "topic", tracking_uri, train)
    frame["topic"] = topics(texts) if topic is None else topic.predict(pd.DataFrame({"text": texts, "target": ""}))
    stance = _model(stance_model, "stance", tracking_uri, train)
    for target in targets:
        proba = stance.predict_proba(pd.DataFrame({"text": texts, "target": target}))
        frame[f"stance: {target}"] = stance.classes_[proba.argmax(axis=1)]
        frame[f"p: {target}"] = proba.max(axis=1).astype(float).round(3)
    return Analysis(frame, summarize(frame, targets))


def _check_targets(targets: Sequence[str]) -> list[str]:
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ValueError("Give at least one target, e.g. --target 'NATO expansion to the east'.")
    for number, target in enumerate(targets, start=1):
        if not isinstance(target, str) or not target.strip():
            raise ValueError(
                f"Target {number} is {target!r}; a target must be words, e.g. --target 'NATO expansion to the east'."
            )
    return list(dict.fromkeys(t.strip() for t in targets))


def read_article(path: str | os.PathLike) -> str:
    """A UTF-8 text file's contents, with a clear error for a missing file or another encoding."""
    from stance.data.schema import DataError, decoding_error

    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "no such file"
        raise DataError(f"{path}: {problem}. Give the path of a UTF-8 text file.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        fix = "Save the article as UTF-8 (e.g. iconv -f cp1252 -t utf-8 in.txt > out.txt)."
        raise decoding_error(path, err, "UTF-8", fix) from None


def claim_scores(model: Any, texts: list[str], speakers: Sequence[str | None] | None = None) -> Any:
    """Probability that each text is a check-worthy claim (the class "1", else the last class).

    The texts are one document in order (`group` "article", `line` 1..n) with their `speakers` ("" for narration),
    so context features see an article as a debate: neighbours by statement order, speakers unseen ("other").
    """
    import pandas as pd

    classes = [str(c) for c in model.classes_]
    positive = classes.index("1") if "1" in classes else len(classes) - 1
    frame = pd.DataFrame(
        {
            "text": texts,
            "target": "",
            "group": "article",
            "line": [str(i) for i in range(1, len(texts) + 1)],
            "speaker": [s or "" for s in (speakers if speakers is not None else [None] * len(texts))],
        }
    )
    return model.predict_proba(frame)[:, positive].astype(float).round(3)


def topics(texts: list[str], labels: Sequence[str] = TOPICS) -> list[str]:
    """The default topic: the label whose embedding is nearest to each text's."""
    import numpy as np

    from stance.features.encoders import SentenceEmbedder

    encoder = SentenceEmbedder(show_progress=False)
    similarity = encoder.encode(list(texts)) @ encoder.encode([f"news about {t}" for t in labels]).T
    return [labels[i] for i in np.argmax(similarity, axis=1)]


def summarize(frame: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """Speaker x target: the prevailing stance of each speaker's statements, with the counts behind it."""
    import pandas as pd

    speakers = frame["speaker"].fillna("(narration)")
    rows = []
    for speaker, group in frame.groupby(speakers, sort=False):
        row = {"speaker": speaker, "statements": len(group)}
        for target in targets:
            counts = group[f"stance: {target}"].value_counts()
            against, favor = int(counts.get("AGAINST", 0)), int(counts.get("FAVOR", 0))
            row[target] = f"{_leaning(against, favor)} ({against} against, {favor} favor)"
        rows.append(row)
    return pd.DataFrame(rows)


def _leaning(against: int, favor: int) -> str:
    if against == favor:
        return "MIXED" if against else "NONE"
    return "AGAINST" if against > favor else "FAVOR"


def render(analysis: Analysis, output_format: str = "table", summary: bool = False, width: int = 70) -> str:
    """The analysis as a readable table (statements, then summary), or the statements (or summary) as CSV/JSONL."""
    if output_format not in FORMATS:
        raise ValueError(f"Unknown format {output_format!r}; choose one of {', '.join(FORMATS)}.")
    chosen = analysis.summary if summary else analysis.statements
    if output_format == "csv":
        return chosen.to_csv(index=False).rstrip("\n")
    if output_format == "jsonl":
        return chosen.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n")
    shown = analysis.statements.assign(
        speaker=analysis.statements["speaker"].fillna("(narration)"),
        statement=analysis.statements["statement"].map(lambda s: s if len(s) <= width else s[: width - 1] + "…"),
    )
    shown.index += 1
    return f"{shown.to_string()}\n\n{analysis.summary.to_string(index=False)}"


# --- models ----------------------------------------------------------------------------------------------------------


def _model(model: Any, kind: str, tracking_uri: str | None, train: Trainer | None = None) -> Any:
    """A fitted model from a URI or path, the object itself, or the default of its kind."""
    if model is None:
        return default_model(kind, tracking_uri, train=train)
    if not isinstance(model, str | os.PathLike):
        return model
    from stance.artifact.load import load_model  # imports MLflow: on use, not with `import stance`

    try:
        return load_model(str(model), tracking_uri=tracking_uri)
    except Exception as err:  # MLflow raises many types for a bad URI; all mean the same to the user
        raise ValueError(f"Cannot load the {kind} model {str(model)!r}: {str(err).splitlines()[0][:300]}") from None


def default_registry() -> str:
    """The tracking store holding the default models: `<stance cache>/analyze/mlflow.db`, shared by every directory."""
    from stance.features.cache import cache_dir

    folder = cache_dir() / "analyze"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def default_model(
    kind: str, tracking_uri: str | None = None, limit: int | None = None, train: Trainer | None = None
) -> Any:
    """The registered default model of `kind` (`models:/<name>@default` in `tracking_uri`), trained on first use.

    Training is `train(kind, tracking_uri, limit)`, which runs the named experiment into the same store, registering
    the model: `stance.experiment.train_default`, which `stance.analyze` passes and which shows its progress. Without
    `train`, a missing model is a `LookupError` naming `stance models prepare`; `limit` rows per split make a quick
    one (tests).
    """
    from stance.artifact.load import load_model  # imports MLflow: on use, not with `import stance`

    if kind not in DEFAULT_MODELS:
        raise ValueError(f"No default {kind} model; give one as a URI.")
    name = DEFAULT_MODELS[kind].name
    uri = tracking_uri or default_registry()
    if registered_experiment(kind, uri) is None:
        if train is None:
            raise LookupError(
                f"No model {name}@{DEFAULT_ALIAS} in {uri}. Train the defaults once with `stance models prepare "
                f"--tracking-uri {uri}`, or call stance.analyze, which trains them on first use."
            )
        with _tracking(uri):  # training points MLflow at the store: the caller's tracking URI is put back after
            train(kind, uri, limit)
    return load_model(f"models:/{name}@{DEFAULT_ALIAS}", tracking_uri=uri)


def registered_experiment(kind: str, tracking_uri: str) -> str | None:
    """The named experiment that trained the registered default of `kind` in `tracking_uri`; None if it has none."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from stance.tracking.server import sqlite_path

    file = sqlite_path(tracking_uri)
    if file is not None and not file.exists():  # MLflow would create an empty store just to look
        return None
    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(DEFAULT_MODELS[kind].name, DEFAULT_ALIAS)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None
    overrides = client.get_run(version.run_id).data.tags.get("overrides", "").split()
    return next((o.removeprefix("experiment=") for o in overrides if o.startswith("experiment=")), "")


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """MLflow's tracking URI set to `uri` within, and the caller's put back after."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
