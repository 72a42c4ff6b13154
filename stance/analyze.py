"""An article's statements with speaker, check-worthiness, topic and stance toward any targets; the default models.

This module is imported by `import stance`, so numpy, pandas, scikit-learn and the encoder are imported on use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stance.article import statements as find_statements

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMATS = ("table", "csv", "jsonl")
# Bump a default model's version when its recipe changes, so a model cached by an older recipe is retrained.
RECIPE_VERSIONS = {"claim": 2, "stance": 2}
CLAIM_CORPUS = "clef2019_checkthat_task1"
# Share of extra (text, another target) pairs labelled NONE in the stance training data; chosen on VAST dev.
UNRELATED_SHARE = 0.3
# Training corpora of the default stance model, mapped to AGAINST/FAVOR/NONE by their data configs; train and
# validation splits only, so that their test splits and VAST stay unseen. Not FNC-1 (built from Emergent's
# headlines) and not TweetEval (SemEval's tweets again).
STANCE_CORPORA = ("semeval2016_task6", "multitarget_stance_election2016", "perspectrum", "ibm_claim_stance", "emergent")
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
    models_dir: str | os.PathLike | None = None,
) -> Analysis:
    """Statements of `text` with speaker, claim score, topic, and stance (with probability) toward each target.

    A model is an MLflow URI or local path (see `stance.load_model`), a fitted pipeline, or None for the default,
    which is trained once and kept in `models_dir` (default: `<stance cache>/analyze`).
    """
    import pandas as pd

    from stance.data import DataError

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
    frame["claim"] = claim_scores(_model(claim_model, "claim", models_dir), texts)
    topic = None if topic_model is None else _model(topic_model, "topic", models_dir)
    frame["topic"] = topics(texts) if topic is None else topic.predict(pd.DataFrame({"text": texts, "target": ""}))
    stance = _model(stance_model, "stance", models_dir)
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
    from stance.data import DataError

    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "no such file"
        raise DataError(f"{path}: {problem}. Give the path of a UTF-8 text file.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: byte {err.object[err.start : err.start + 1]!r} at offset {err.start} is not valid UTF-8. "
            "Save the article as UTF-8 (e.g. iconv -f cp1252 -t utf-8 in.txt > out.txt)."
        ) from None


def claim_scores(model: Any, texts: list[str]) -> Any:
    """Probability that each text is a check-worthy claim (the class "1", else the last class)."""
    import pandas as pd

    classes = [str(c) for c in model.classes_]
    positive = classes.index("1") if "1" in classes else len(classes) - 1
    return model.predict_proba(pd.DataFrame({"text": texts, "target": ""}))[:, positive].astype(float).round(3)


def topics(texts: list[str], labels: Sequence[str] = TOPICS) -> list[str]:
    """The default topic: the label whose embedding is nearest to each text's."""
    import numpy as np

    from stance.features import SentenceEmbedder

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


def _model(model: Any, kind: str, models_dir: str | os.PathLike | None) -> Any:
    """A fitted model from a URI or path, the object itself, or the default of its kind."""
    if model is None:
        return default_model(kind, models_dir)
    if not isinstance(model, str | os.PathLike):
        return model
    import stance

    try:
        return stance.load_model(str(model))
    except Exception as err:  # MLflow raises many types for a bad URI; all mean the same to the user
        raise ValueError(f"Cannot load the {kind} model {str(model)!r}: {str(err).splitlines()[0][:300]}") from None


def default_model(kind: str, models_dir: str | os.PathLike | None = None, limit: int | None = None) -> Any:
    """The default claim or stance model: loaded from `models_dir`, else trained (on `limit` rows) and saved there.

    Stored with skops like every model stance writes, so loading one runs no code from the file.
    """
    import tempfile

    from stance.cache import cache_dir
    from stance.tracking import dump_pipeline, load_pipeline

    trainers = {"claim": train_claim_model, "stance": train_stance_model}
    if kind not in trainers:
        raise ValueError(f"No default {kind} model; give one as a URI.")
    path = Path(models_dir) if models_dir else cache_dir() / "analyze"
    path = path / f"{kind}-v{RECIPE_VERSIONS[kind]}.skops"
    if path.is_file():
        return load_pipeline(path)
    log.warning("Training the default %s model once; it is kept in %s.", kind, path)
    model = trainers[kind](limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{kind}-") as tmp:
        os.replace(dump_pipeline(model, Path(tmp)), path)  # atomic: a parallel call sees no model or a whole one
    return model


def corpus(name: str, limit: int | None = None) -> dict[str, pd.DataFrame]:
    """A corpus's splits as frames, labels mapped as its data config (`conf/data/<name>.yaml`) says."""
    from stance.data import to_frame
    from stance.train import load_data

    data = load_data(name, *([f"data.limit={limit}"] if limit else []))
    return {split: to_frame(split_data) for split, split_data in data.items()}


def train_claim_model(limit: int | None = None) -> Any:
    """MiniLM embeddings of the text + balanced logistic regression, fitted on CLEF-2019 CheckThat! task 1 train.

    C=0.1 as `experiment=clef_claims` chose on validation MAP (experiments/RESULTS.md).
    """
    from sklearn.linear_model import LogisticRegression

    from stance.features import SentenceEmbedder
    from stance.model import build_model

    train = corpus(CLAIM_CORPUS, limit)["train"]
    model = build_model(
        SentenceEmbedder(target_mode="none", show_progress=False),
        LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000),
    )
    return model.fit(train, train["label"])


def stance_training_data(
    limit: int | None = None, exclude: Sequence[str] = (), unrelated: float = UNRELATED_SHARE, seed: int = 13
) -> pd.DataFrame:
    """Train + validation rows of the stance corpora without the targets in `exclude`, plus unrelated pairs.

    Unrelated pairs: a share `unrelated` of the texts again, each with another row's target and the label NONE, so
    that the model learns that a text about something else takes no stance (most sentences of an article).
    """
    import numpy as np
    import pandas as pd

    frames = [
        frame[["text", "target", "label"]].assign(corpus=name)
        for name in STANCE_CORPORA
        for split, frame in corpus(name, limit).items()
        if split != "test"
    ]
    data = pd.concat(frames, ignore_index=True)
    data = data[~data["target"].isin(exclude)]
    pairs = data.sample(frac=unrelated, random_state=seed)
    pairs = pairs.assign(target=np.random.default_rng(seed).choice(data["target"].unique(), len(pairs)), label="NONE")
    pairs = pairs[pairs["target"].to_numpy() != data.loc[pairs.index, "target"].to_numpy()]
    return pd.concat([data, pairs.assign(corpus="unrelated")], ignore_index=True)


def stance_pipeline(classifier: Any = None) -> Any:
    """The default stance recipe, unfitted: MiniLM [text, target, text x target], scaled, into `classifier`.

    The default classifier, a 256-unit MLP, beat logistic regression on VAST dev and on leave-one-target-out SemEval
    (experiments/zero_shot.py, RESULTS.md).
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stance.features import SentenceEmbedder
    from stance.model import build_model

    classifier = classifier or MLPClassifier((256,), early_stopping=True, max_iter=50, random_state=0)
    return build_model(
        SentenceEmbedder(target_mode="interact", show_progress=False), make_pipeline(StandardScaler(), classifier)
    )


def train_stance_model(limit: int | None = None, exclude: Sequence[str] = ()) -> Any:
    """The default stance model fitted on `stance_training_data` (see experiments/zero_shot.py for its evaluation)."""
    train = stance_training_data(limit, exclude)
    return stance_pipeline().fit(train, train["label"])
