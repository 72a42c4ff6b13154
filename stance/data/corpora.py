"""One small reader per corpus under the data root, each returning a DatasetDict in the shared schema.

Besides `text`, `target` and `label`, readers add the optional string columns their corpus has: `id`, `topic`,
`speaker`, and `group`, the unit to keep together when carving validation sets or computing grouped metrics (a claim,
a debate, an article body). Label names come from each reader's Hydra config (`labels`, `label_map`); called without
them, a reader keeps the corpus's own label names.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.schema import (
    STANCE_LABELS,
    DataError,
    Report,
    carve_validation,
    check_labels,
    check_texts,
    corpus_files,
    data_root,
    decoding_error,
    finish,
    read_table,
)
from stance.evaluation.official import FNC_LABELS

log = logging.getLogger(__name__)


def semeval2016_task6(
    root: str | None = None,
    task: str = "A",
    validation_size: float = 0.1,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """SemEval-2016 Task 6 stance: train = trial + training (minus validation), test = test A; task B is test only."""
    names = {
        "A": [
            "trialdata-all-annotations.txt",
            "trainingdata-all-annotations.txt",
            "testdata-taskA-all-annotations.txt",
        ],
        "B": ["testdata-taskB-all-annotations.txt"],
    }
    if task not in names:
        raise DataError(f"semeval2016_task6: unknown task {task!r}; choose 'A' or 'B'.")
    paths = corpus_files(root, "semeval2016_task6", names[task])
    frames = [_read_semeval(p) for p in paths]
    if task == "B":
        return finish({"test": frames[0]}, STANCE_LABELS, limit=limit, seed=seed)
    fit, val = carve_validation(pd.concat(frames[:2], ignore_index=True), validation_size, seed)
    splits = {"train": fit, "validation": val, "test": frames[2]}
    return finish(splits, STANCE_LABELS, limit=limit, seed=seed)


def _read_semeval(path: Path) -> pd.DataFrame:
    # The training file is cp1252 (curly quotes), the others ASCII, which cp1252 also decodes.
    raw = read_table(path, ["ID", "Target", "Tweet", "Stance"], encoding="cp1252", sep="\t", quoting=csv.QUOTE_NONE)
    check_labels(raw, "Stance", STANCE_LABELS, path)
    text = raw["Tweet"].str.replace("#SemST", "", regex=False).str.strip()
    frame = pd.DataFrame({"id": raw["ID"], "text": text, "target": raw["Target"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame


# --- helpers shared by the readers below ---------------------------------------------------------------------------


def _done(
    splits: dict[str, pd.DataFrame],
    raw: Sequence[str],
    labels: Sequence[str] | None,
    label_map: Mapping | None,
    limit: int | None,
    seed: int,
    report: Report | None = None,
) -> DatasetDict:
    """`finish` with the config's labels and map; without them a corpus keeps its own label names.

    `report` (rows the reader dropped) becomes the DatasetDict's `report`, which training adds to its data report.
    """
    # Hydra passes DictConfig/ListConfig, and YAML keys such as 0 arrive as ints: make both plain strings.
    mapping = {str(key): str(value) for key, value in (label_map or {}).items()}
    names = [str(x) for x in labels] if labels is not None else list(dict.fromkeys(mapping.get(x, x) for x in raw))
    data = finish(splits, names, mapping, limit, seed)
    if report is not None:
        data.report = report
    return data


def _carve_groups(train: pd.DataFrame, size: float, seed: int, by: str = "group") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off a validation set of whole groups (column `by`); `size` is the fraction of groups."""
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    fit, val = next(splitter.split(train, groups=train[by]))
    return train.iloc[fit], train.iloc[val]


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole file as text, with the same clear error as `read_table` on a wrong encoding."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise decoding_error(path, err, encoding) from None


def _lines(path: Path) -> list[str]:
    """A UTF-8 file's lines, split on \\n only (str.splitlines would also split on rare Unicode breaks in tweets)."""
    return _read_text(path).removesuffix("\n").split("\n")


def _parse_json(text: str, path: Path, line: int | None = None) -> object:
    """Parse JSON text from `path` (one JSONL line if `line` is given), naming file, line and column on error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {line or err.lineno}, column {err.colno}: invalid JSON ({err.msg}).") from None


def _require(records: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Raise if JSON records lack a field, naming the file and the fields present."""
    missing = [c for c in columns if c not in records.columns]
    if missing:
        raise DataError(f"{path}: missing field(s) {missing}; the records have {list(records.columns)}.")


def _check_constant(frame: pd.DataFrame, column: str, expected: str, path: Path) -> None:
    """Raise if a column that names the file's split or target holds anything else, naming file, line and value."""
    bad = frame[column] != expected
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{path}, line {index + 2}, column '{column}': {frame[column].iloc[index]!r}, but every row of this file "
            f"must be {expected!r}. The file is misnamed or its rows are mixed up; restore it from its source."
        )


def _normalized(text: pd.Series) -> pd.Series:
    """Lowercased text with whitespace runs collapsed: how SOURCE.md counts repeats and overlaps."""
    return text.str.lower().str.split().str.join(" ")


def _drop_held_out(
    splits: dict[str, pd.DataFrame], held_out: set[str], corpus: str, reason: str, where: str, report: Report
) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose normalized text is in `held_out`, logging and counting each drop."""
    out = dict(splits)
    for split in [s for s in ("train", "validation") if s in out]:
        hit = _normalized(out[split]["text"]).isin(held_out)
        if hit.any():
            message = (
                f"{corpus} {split}: dropped {int(hit.sum())} row(s) whose text (lowercased, whitespace collapsed) "
                f"also occurs in {where}, e.g. {out[split]['text'][hit].iloc[0][:60]!r}."
            )
            log.warning(message)
            report.warnings.append(message)
            report.dropped[f"{reason}/{split}"] = int(hit.sum())
            out[split] = out[split][~hit]
    return out


def _drop_test_leaks(splits: dict[str, pd.DataFrame], corpus: str, report: Report) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose text is also a test text of the same corpus (test itself is kept whole)."""
    return _drop_held_out(splits, set(_normalized(splits["test"]["text"])), corpus, "test_leak", "test", report)


def _drop_overlap_with(
    splits: dict[str, pd.DataFrame], others: Sequence[str], root: str | None, corpus: str, report: Report
) -> dict[str, pd.DataFrame]:
    """Drop train/validation rows whose text is in the test split of each corpus named in `others`."""
    for other in others:
        if other not in CORPORA or other == corpus:
            choices = [name for name in CORPORA if name != corpus]
            raise DataError(f"{corpus}: exclude_overlap_with names {other!r}; choose corpora from {choices}.")
        held_out = CORPORA[other]["reader"](root=root)
        if "test" not in held_out:
            raise DataError(f"{corpus}: exclude_overlap_with names {other!r}, which has no test split.")
        texts = set(_normalized(pd.Series(held_out["test"]["text"], dtype=str)))
        splits = _drop_held_out(splits, texts, corpus, f"overlap/{other}", f"{other} test", report)
    return splits


# --- stance ----------------------------------------------------------------------------------------------------------

# Folder -> the SemEval-2016 target name (TweetEval has no target column).
TWEETEVAL_TARGETS = {
    "abortion": "Legalization of Abortion",
    "atheism": "Atheism",
    "climate": "Climate Change is a Real Concern",
    "feminist": "Feminist Movement",
    "hillary": "Hillary Clinton",
}
_TWEETEVAL_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def tweeteval_stance(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """TweetEval stance: its own train/val/test, one folder per target, label codes named by `mapping.txt`.

    These are the SAME tweets as `semeval2016_task6` (train + val = the SemEval training data, test = test A): never
    train on one and evaluate on the other. `#SemST` is removed as in the SemEval reader.
    """
    files = [
        f"{d}/{s}_{kind}.txt"
        for d in TWEETEVAL_TARGETS
        for s in _TWEETEVAL_SPLITS.values()
        for kind in ("text", "labels")
    ]
    mapping_path = corpus_files(root, "tweeteval_stance", ["mapping.txt", *files])[0]
    codes = read_table(mapping_path, ["code", "name"], sep="\t", header=None, names=["code", "name"])
    names = dict(zip(codes["code"], codes["name"], strict=True))
    splits = {
        split: pd.concat(
            [
                _read_tweeteval(mapping_path.parent / d, target, prefix, names)
                for d, target in TWEETEVAL_TARGETS.items()
            ],
            ignore_index=True,
        )
        for split, prefix in _TWEETEVAL_SPLITS.items()
    }
    return _done(splits, list(names.values()), labels, label_map, limit, seed)


def _read_tweeteval(folder: Path, target: str, prefix: str, names: Mapping[str, str]) -> pd.DataFrame:
    text_path, label_path = folder / f"{prefix}_text.txt", folder / f"{prefix}_labels.txt"
    texts, codes = _lines(text_path), _lines(label_path)
    if len(texts) != len(codes):
        raise DataError(f"{text_path} has {len(texts)} lines but {label_path} has {len(codes)}; they must pair up.")
    frame = pd.DataFrame({"text": texts, "target": target, "label": [c.strip() for c in codes]})
    check_labels(frame, "label", list(names), label_path, first_row=1)
    frame["label"] = frame["label"].map(names)
    frame["text"] = frame["text"].str.replace("#SemST", "", regex=False).str.strip()
    check_texts(frame, text_path, first_row=1)
    return frame


_PERSPECTRUM_FILES = [
    "perspectrum_with_answers_v1.0.json",
    "perspective_pool_v1.0.json",
    "dataset_split_v1.0.json",
    "topic.json",
]
_PERSPECTRUM_LABELS = ["SUPPORT", "UNDERMINE"]
_PERSPECTRUM_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


def perspectrum(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """PERSPECTRUM claim-perspective pairs: text = perspective, target = claim, official train/dev/test by claim.

    One row per perspective id in each gold cluster (`stance_label_3`). `topic` holds the claim's crowd topics joined
    with "|" (multi-label; "" for the 121 claims without one). `group` is the claim id; `id` is claim/cluster/pid.
    17 pairs repeat a perspective in two clusters of the same claim; they are kept, as in SOURCE.md's counts.
    """
    claims_path, pool_path, split_path, topic_path = corpus_files(root, "perspectrum", _PERSPECTRUM_FILES)
    pairs = _perspectrum_pairs(claims_path)
    pool = pd.DataFrame(_parse_json(_read_text(pool_path), pool_path))
    _require(pool, ["pId", "text"], pool_path)
    perspectives = pd.Series(pool["text"].to_numpy(), index=pool["pId"])
    unresolved = ~pairs["pid"].isin(perspectives.index)
    if unresolved.any():
        raise DataError(f"{claims_path}: perspective id {pairs['pid'][unresolved].iloc[0]} is not in {pool_path}.")
    topics = pd.DataFrame(_parse_json(_read_text(topic_path), topic_path))
    _require(topics, ["claim_id", "topics"], topic_path)
    topic_of = dict(zip(topics["claim_id"], topics["topics"].map("|".join), strict=True))
    split_of = {int(k): v for k, v in _parse_json(_read_text(split_path), split_path).items()}
    frame = pd.DataFrame(
        {
            "id": pairs["claim"].astype(str) + "/" + pairs["cluster"].astype(str) + "/" + pairs["pid"].astype(str),
            "text": perspectives[pairs["pid"]].to_numpy(),
            "target": pairs["claim_text"],
            "topic": pairs["claim"].map(lambda c: topic_of.get(c, "")),
            "group": pairs["claim"].astype(str),
            "label": pairs["label"],
            "split": pairs["claim"].map(split_of),
        }
    )
    check_labels(frame, "label", _PERSPECTRUM_LABELS, claims_path, key="group", field="stance_label_3")
    check_texts(frame, pool_path, key="id")
    unsplit = ~frame["split"].isin(_PERSPECTRUM_SPLITS.values())
    if unsplit.any():
        raise DataError(f"{split_path}: claim {frame['group'][unsplit].iloc[0]} has no train/dev/test assignment.")
    splits = {name: frame[frame["split"] == raw].drop(columns="split") for name, raw in _PERSPECTRUM_SPLITS.items()}
    return _done(splits, _PERSPECTRUM_LABELS, labels, label_map, limit, seed)


def _perspectrum_pairs(path: Path) -> pd.DataFrame:
    """One row per (claim, cluster, perspective id) with the cluster's 3-way stance."""
    claims = pd.DataFrame(_parse_json(_read_text(path), path))
    _require(claims, ["cId", "text", "perspectives"], path)
    # A claim with an empty cluster list would explode to one empty row; it has no pairs, so none is lost here.
    clusters = claims.explode("perspectives", ignore_index=True).dropna(subset=["perspectives"])
    details = pd.json_normalize(clusters["perspectives"].tolist())
    _require(details, ["pids", "stance_label_3"], path)
    pairs = pd.DataFrame(
        {
            "claim": clusters["cId"].to_numpy(),
            "claim_text": clusters["text"].to_numpy(),
            "cluster": clusters.groupby("cId").cumcount().to_numpy(),
            "label": details["stance_label_3"].to_numpy(),
            "pid": details["pids"].to_numpy(),
        }
    )
    return pairs.explode("pid", ignore_index=True)


_IBM_COLUMNS = ["topicId", "split", "topicText", "topicTarget", "claims.claimId", "claims.stance"]
_IBM_LABELS = ["PRO", "CON"]


def ibm_claim_stance(
    root: str | None = None,
    validation_size: float = 0.2,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM Debater claim stance: text = claim (corrected text), target = the debate motion; official topic split.

    The official train/test split is topic-disjoint (25/30 topics). Validation is carved from train as whole topics
    (GroupShuffleSplit on `topicId`; `validation_size` is the fraction of the 25 train topics), so it is topic-disjoint
    too. `topic` is the motion's target phrase (`topicTarget`), `group` the topic id, `id` the claim id.
    """
    (path,) = corpus_files(root, "ibm_claim_stance", ["claim_stance_dataset_v1.csv"])
    raw = read_table(path, [*_IBM_COLUMNS, "claims.claimCorrectedText"], encoding="utf-8")
    check_labels(raw, "claims.stance", _IBM_LABELS, path)
    check_labels(raw, "split", ["train", "test"], path)
    frame = pd.DataFrame(
        {
            "id": raw["claims.claimId"],
            "text": raw["claims.claimCorrectedText"],
            "target": raw["topicText"],
            "topic": raw["topicTarget"],
            "group": raw["topicId"],
            "label": raw["claims.stance"],
        }
    )
    check_texts(frame, path)
    fit, val = _carve_groups(frame[raw["split"] == "train"], validation_size, seed)
    splits = {"train": fit, "validation": val, "test": frame[raw["split"] == "test"]}
    return _done(splits, _IBM_LABELS, labels, label_map, limit, seed)


_EMERGENT_FILES = ["url-versions-2015-06-14-clean-train.csv", "url-versions-2015-06-14-clean-test.csv"]
_EMERGENT_LABELS = ["for", "against", "observing"]


def emergent(
    root: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Emergent: text = article headline, target = claim; the authors' claim-disjoint train/test split.

    Validation is carved from train as whole claims (`validation_size` = fraction of the 240 train claims), matching
    the claim-disjoint test split. The 40 repeated (claim, headline) pairs have distinct article ids and are kept.
    `id` is the article id, `group` the claim id. FNC-1 is built from these headlines: do not mix the two.
    """
    train_path, test_path = corpus_files(root, "emergent", _EMERGENT_FILES)
    fit, val = _carve_groups(_read_emergent(train_path), validation_size, seed)
    splits = {"train": fit, "validation": val, "test": _read_emergent(test_path)}
    return _done(splits, _EMERGENT_LABELS, labels, label_map, limit, seed)


def _read_emergent(path: Path) -> pd.DataFrame:
    columns = ["claimHeadline", "articleHeadline", "articleHeadlineStance", "articleId", "claimId"]
    raw = read_table(path, columns, encoding="utf-8")
    check_labels(raw, "articleHeadlineStance", _EMERGENT_LABELS, path)
    frame = pd.DataFrame(
        {
            "id": raw["articleId"],
            "text": raw["articleHeadline"],
            "target": raw["claimHeadline"],
            "group": raw["claimId"],
            "label": raw["articleHeadlineStance"],
        }
    )
    check_texts(frame, path)
    return frame


_FNC_FILES = ["train_stances.csv", "train_bodies.csv", "competition_test_stances.csv", "competition_test_bodies.csv"]
# Sentence ends for `body_sentences`: end punctuation plus space, or a line break (bodies are paragraph-broken).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def fnc1(
    root: str | None = None,
    body_sentences: int | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """FNC-1: target = headline, text = article body (or its first `body_sentences` sentences); official test set.

    Validation is carved from train by whole bodies (`validation_size` = fraction of bodies), as the official
    baseline's hold-out split does, so no body is seen in both. The exact duplicate rows (402 train, 242 test) are
    kept: the official test score counts them, and grouping by body keeps train duplicates out of validation.
    `group` is the Body ID. Score with `stance.evaluation.official.fnc_score`. Built from Emergent: do not mix the two.
    """
    if body_sentences is not None and body_sentences < 1:
        raise DataError(f"fnc1: body_sentences must be a positive number or null (whole body), got {body_sentences}.")
    paths = corpus_files(root, "fnc1", _FNC_FILES)
    train = _read_fnc(paths[0], paths[1], body_sentences)
    fit, val = _carve_groups(train, validation_size, seed)
    splits = {"train": fit, "validation": val, "test": _read_fnc(paths[2], paths[3], body_sentences)}
    return _done(splits, FNC_LABELS, labels, label_map, limit, seed)


def _read_fnc(stances_path: Path, bodies_path: Path, body_sentences: int | None) -> pd.DataFrame:
    stances = read_table(stances_path, ["Headline", "Body ID", "Stance"], encoding="utf-8")
    check_labels(stances, "Stance", FNC_LABELS, stances_path)
    bodies = read_table(bodies_path, ["Body ID", "articleBody"], encoding="utf-8")
    bodies = bodies.rename(columns={"articleBody": "text"})
    check_texts(bodies, bodies_path)
    if body_sentences is not None:
        bodies["text"] = bodies["text"].map(lambda body: _first_sentences(body, body_sentences))
    repeated = bodies["Body ID"][bodies["Body ID"].duplicated()]
    if len(repeated):
        raise DataError(f"{bodies_path}: Body ID {repeated.iloc[0]} occurs more than once; each body needs one ID.")
    text = stances["Body ID"].map(bodies.set_index("Body ID")["text"])
    if text.isna().any():
        line = int(text.isna().to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"{stances_path}, line {line}: Body ID {stances['Body ID'][line - 2]} is not in {bodies_path}.")
    return pd.DataFrame(
        {"text": text, "target": stances["Headline"], "group": stances["Body ID"], "label": stances["Stance"]}
    )


def _first_sentences(text: str, n: int) -> str:
    """The first `n` sentences (a punctuation heuristic, no tokenizer model), joined by single spaces."""
    return " ".join([s for s in _SENTENCE_BREAK.split(text.strip()) if s.strip()][:n])


_VAST_FILES = {"validation": "vast_dev.csv", "test": "vast_test.csv"}
_VAST_LABELS = ["0", "1", "2"]


def vast_devtest(
    root: str | None = None,
    splits: Sequence[str] = ("validation", "test"),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """VAST dev (as `validation`) and test for zero-shot evaluation; there is no training data, asking for it fails.

    Labels 0/1/2 = con/pro/neutral. `seen` is "1" for topics in VAST's (absent) training set, "0" for zero-shot.
    The exact duplicate rows (35 dev, 78 test) are kept, matching the official row counts.
    """
    if "train" in splits:
        raise DataError(
            "vast_devtest has no train split: the VAST training file could not be obtained (see SOURCE.md). "
            "Use it for evaluation only (data.splits=[validation,test]) and train on another corpus."
        )
    unknown = [s for s in splits if s not in _VAST_FILES]
    if unknown:
        raise DataError(f"vast_devtest: unknown split(s) {unknown}; choose from {list(_VAST_FILES)}.")
    paths = corpus_files(root, "vast_devtest", [_VAST_FILES[s] for s in splits])
    frames = {split: _read_vast(path) for split, path in zip(splits, paths, strict=True)}
    return _done(frames, _VAST_LABELS, labels, label_map, limit, seed)


def _read_vast(path: Path) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance", "seen?"], encoding="utf-8")
    check_labels(raw, "Stance", _VAST_LABELS, path)
    frame = pd.DataFrame({"text": raw["Tweet"], "target": raw["Target"], "seen": raw["seen?"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame


_MULTITARGET_SPLITS = {"train": "Train", "validation": "Dev", "test": "Test"}
# The file spells Hillary Clinton "Hilary"; use the SemEval spelling so the targets line up across corpora.
_MULTITARGET_SPELLING = {"Hilary Clinton": "Hillary Clinton"}


def multitarget_stance_election2016(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Multi-target election stance: one row per tweet-target pair (two per tweet), the official train/dev/test.

    `topic` is the tweet's target pair ("Donald Trump|Hillary Clinton"); `group` is the tweet's data row, shared by
    its two pairs. "Hilary Clinton" is respelled "Hillary Clinton" as in SemEval. The file's CR-only line
    endings are handled by pandas' line-terminator detection.
    """
    (path,) = corpus_files(root, "multitarget_stance_election2016", ["multi_target_stance.csv"])
    columns = ["Tweet", "Target 1", "Stance 1", "Target 2", "Stance 2", "Test/Train/Dev"]
    raw = read_table(path, columns, encoding="utf-8").replace(
        {"Target 1": _MULTITARGET_SPELLING, "Target 2": _MULTITARGET_SPELLING}
    )
    for column in ("Stance 1", "Stance 2"):
        check_labels(raw, column, STANCE_LABELS, path)
    check_labels(raw, "Test/Train/Dev", list(_MULTITARGET_SPLITS.values()), path)
    pairs = pd.concat(
        [
            pd.DataFrame(
                {
                    "text": raw["Tweet"],
                    "target": raw[f"Target {k}"],
                    "topic": raw["Target 1"] + "|" + raw["Target 2"],
                    "group": (raw.index + 2).astype(str),
                    "label": raw[f"Stance {k}"],
                    "split": raw["Test/Train/Dev"],
                }
            )
            for k in (1, 2)
        ]
    ).sort_index(kind="stable")
    check_texts(pairs, path)
    splits = {
        name: pairs[pairs["split"] == raw_name].drop(columns="split") for name, raw_name in _MULTITARGET_SPLITS.items()
    }
    return _done(splits, STANCE_LABELS, labels, label_map, limit, seed)


_ARGKP_FILES = {
    "train": "kpm_data/arguments_train.csv",
    "validation": "kpm_data/arguments_dev.csv",
    "test": "test_data/arguments_test.csv",
}
_ARGKP_LABELS = ["1", "-1"]


def ibm_argkp2021(
    root: str | None = None,
    exclude_overlap_with: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM ArgKP-2021 argument stance: text = argument, target = debate motion; official topic-disjoint splits.

    Stance 1/-1 = pro/con (no NONE). `id` is `arg_id` (unique within a split only), `group` the motion. The two
    test arguments that differ only in spacing are both kept (the official test set). `exclude_overlap_with`
    (e.g. [ibm_argq_30k]) drops train/validation arguments that occur in those corpora's test splits: 1,168 ArgKP
    train arguments are ArgQ test arguments. Key points and match labels are not read.
    """
    paths = corpus_files(root, "ibm_argkp2021", list(_ARGKP_FILES.values()))
    splits = {split: _read_argkp(path) for split, path in zip(_ARGKP_FILES, paths, strict=True)}
    report = Report()
    splits = _drop_test_leaks(splits, "ibm_argkp2021", report)
    splits = _drop_overlap_with(splits, exclude_overlap_with, root, "ibm_argkp2021", report)
    return _done(splits, _ARGKP_LABELS, labels, label_map, limit, seed, report)


def _read_argkp(path: Path) -> pd.DataFrame:
    raw = read_table(path, ["arg_id", "argument", "topic", "stance"], encoding="utf-8")
    check_labels(raw, "stance", _ARGKP_LABELS, path)
    frame = pd.DataFrame(
        {
            "id": raw["arg_id"],
            "text": raw["argument"],
            "target": raw["topic"],
            "group": raw["topic"],
            "label": raw["stance"],
        }
    )
    check_texts(frame, path)
    return frame


# Split -> (file, its `set` value).
_ARGQ_FILES = {
    "train": ("raw_train_all_onecol.csv", "train"),
    "validation": ("raw_val_all_onecol.csv", "dev"),
    "test": ("raw_test_all_onecol.csv", "test"),
}


def ibm_argq_30k(
    root: str | None = None,
    exclude_overlap_with: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """IBM-ArgQ-Rank-30kArgs argument stance (ZeroStance copy): text = argument, target = motion; official splits.

    FAVOR/AGAINST only; quality scores are not in this copy. `group` is the motion. The 2 train texts that repeat
    up to case and spacing are kept. `exclude_overlap_with` (e.g. [ibm_argkp2021]) drops train/validation arguments
    that occur in those corpora's test splits (none for ArgKP, whose test topics are new; the leak runs the other way,
    see `ibm_argkp2021`).
    """
    paths = corpus_files(root, "ibm_argq_30k", [name for name, _ in _ARGQ_FILES.values()])
    splits = {
        split: _read_argq(path, set_value)
        for (split, (_, set_value)), path in zip(_ARGQ_FILES.items(), paths, strict=True)
    }
    report = Report()
    splits = _drop_test_leaks(splits, "ibm_argq_30k", report)
    splits = _drop_overlap_with(splits, exclude_overlap_with, root, "ibm_argq_30k", report)
    return _done(splits, ["FAVOR", "AGAINST"], labels, label_map, limit, seed, report)


def _read_argq(path: Path, set_value: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target 1", "Stance 1", "set"], encoding="utf-8")
    check_labels(raw, "Stance 1", ["FAVOR", "AGAINST"], path)
    _check_constant(raw, "set", set_value, path)
    frame = pd.DataFrame(
        {"text": raw["Tweet"], "target": raw["Target 1"], "group": raw["Target 1"], "label": raw["Stance 1"]}
    )
    check_texts(frame, path)
    return frame


# File name part -> the target each file holds.
_PSTANCE_TARGETS = {"trump": "Donald Trump", "biden": "Joe Biden", "bernie": "Bernie Sanders"}
_PSTANCE_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def pstance(
    root: str | None = None,
    keep_none: bool = False,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """P-Stance political tweets on three targets; official train/val/test, FAVOR/AGAINST unless `keep_none`.

    The paper's benchmark (21,574 tweets) has no NONE rows; these files add 2,490, which `keep_none=true` keeps
    (labels then AGAINST/FAVOR/NONE). Dropped NONE rows are counted in the report. One train and one validation
    tweet that are also test tweets are dropped; the train tweet repeated with conflicting labels is kept.
    """
    names = [f"raw_{prefix}_{key}.csv" for prefix in _PSTANCE_SPLITS.values() for key in _PSTANCE_TARGETS]
    paths = iter(corpus_files(root, "pstance", names))
    splits = {
        split: pd.concat(
            [_read_pstance(next(paths), target) for target in _PSTANCE_TARGETS.values()], ignore_index=True
        )
        for split in _PSTANCE_SPLITS
    }
    report = Report()
    if not keep_none:
        for split, frame in splits.items():
            none = frame["label"] == "NONE"
            report.dropped[f"none_label/{split}"] = int(none.sum())
            splits[split] = frame[~none]
        # The documented default (the official benchmark), so info rather than a warning.
        log.info("pstance: keep_none=false dropped the extra NONE rows: %s", report.dropped)
    splits = _drop_test_leaks(splits, "pstance", report)
    raw = [*STANCE_LABELS] if keep_none else ["AGAINST", "FAVOR"]
    return _done(splits, raw, labels, label_map, limit, seed, report)


def _read_pstance(path: Path, target: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance"], encoding="utf-8")
    check_labels(raw, "Stance", STANCE_LABELS, path)
    _check_constant(raw, "Target", target, path)
    frame = pd.DataFrame({"text": raw["Tweet"], "target": raw["Target"], "label": raw["Stance"]})
    check_texts(frame, path)
    return frame


# File name part -> the target as the paper words it (the files say e.g. "fauci").
COVID19_TARGETS = {
    "face_masks": "Wearing a Face Mask",
    "fauci": "Anthony S. Fauci, M.D.",
    "school_closures": "Keeping Schools Closed",
    "stay_at_home_orders": "Stay at Home Orders",
}


def covid19_stance(
    root: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """COVID-19-Stance tweets on four targets (hydrated copy); official train/val/test, FAVOR/AGAINST/NONE.

    target is the paper's wording ("Wearing a Face Mask"), `topic` the file's short name ("face_masks"), `id` the
    tweet id. Opinion-towards and sentiment annotations are not read.
    """
    names = [f"{key}_{split}.csv" for split in ("train", "val", "test") for key in COVID19_TARGETS]
    paths = iter(corpus_files(root, "covid19_stance", names))
    splits = {
        split: pd.concat([_read_covid19(next(paths), key) for key in COVID19_TARGETS], ignore_index=True)
        for split in ("train", "validation", "test")
    }
    report = Report()
    splits = _drop_test_leaks(splits, "covid19_stance", report)
    return _done(splits, STANCE_LABELS, labels, label_map, limit, seed, report)


def _read_covid19(path: Path, key: str) -> pd.DataFrame:
    raw = read_table(path, ["Tweet", "Target", "Stance", "Tweet Id"], encoding="utf-8")
    check_labels(raw, "Stance", STANCE_LABELS, path)
    _check_constant(raw, "Target", key, path)
    frame = pd.DataFrame(
        {
            "id": raw["Tweet Id"],
            "text": raw["Tweet"],
            "target": COVID19_TARGETS[key],
            "topic": raw["Target"],
            "label": raw["Stance"],
        }
    )
    check_texts(frame, path)
    return frame


# --- sentiment ------------------------------------------------------------------------------------------------------

_NEWSMTSC_FILES = ("train", "devtest_mt", "devtest_rw")
_NEWSMTSC_LABELS = ["2.0", "4.0", "6.0"]


def newsmtsc(
    root: str | None = None,
    test_split: str = "devtest_rw",
    validation_split: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """NewsMTSC: sentiment of a news sentence towards a person mention (target); one row per target mention.

    test = `test_split` (devtest_rw by default). Validation = the file `validation_split` (e.g. devtest_mt) or, if
    null, whole sentences carved from train (`validation_size`; grouped by sentence text, so the 19 duplicated train
    sentences and multi-target sentences stay on one side). Raw polarity 2.0/4.0/6.0 = negative/neutral/positive.
    `id` is the target's `Input.gid`, `group` the sentence's `primary_gid`.
    """
    if (
        test_split not in _NEWSMTSC_FILES[1:]
        or validation_split not in (None, *_NEWSMTSC_FILES[1:])
        or (test_split == validation_split)
    ):
        raise DataError(
            f"newsmtsc: test_split={test_split!r}, validation_split={validation_split!r}; each must be one of "
            f"{list(_NEWSMTSC_FILES[1:])} (validation_split may be null: carve from train), and they must differ."
        )
    paths = dict(
        zip(_NEWSMTSC_FILES, corpus_files(root, "newsmtsc", [f"{n}.jsonl" for n in _NEWSMTSC_FILES]), strict=True)
    )
    train = _read_newsmtsc(paths["train"])
    if validation_split is None:
        train, validation = _carve_groups(train, validation_size, seed, by="text")
    else:
        validation = _read_newsmtsc(paths[validation_split])
    splits = {"train": train, "validation": validation, "test": _read_newsmtsc(paths[test_split])}
    return _done(splits, _NEWSMTSC_LABELS, labels, label_map, limit, seed)


def _read_newsmtsc(path: Path) -> pd.DataFrame:
    records = [
        {**_parse_json(line, path, number), "line": number}
        for number, line in enumerate(_lines(path), start=1)
        if line.strip()
    ]
    sentences = pd.DataFrame(records)
    _require(sentences, ["sentence_normalized", "primary_gid", "targets"], path)
    untargeted = sentences["targets"].map(lambda targets: not targets)
    if untargeted.any():
        raise DataError(f"{path}, line {sentences['line'][untargeted].iloc[0]}: a sentence without targets.")
    mentions = sentences.explode("targets", ignore_index=True)
    details = pd.json_normalize(mentions["targets"].tolist())
    _require(details, ["Input.gid", "mention", "polarity"], path)
    frame = pd.DataFrame(
        {
            "id": details["Input.gid"].astype(str),
            "text": mentions["sentence_normalized"],
            "target": details["mention"],
            "group": mentions["primary_gid"].astype(str),
            "label": details["polarity"].astype(str),
            "line": mentions["line"].astype(str),
        }
    )
    check_labels(frame, "label", _NEWSMTSC_LABELS, path, key="line", field="polarity")
    check_texts(frame, path, key="line")
    return frame.drop(columns="line")


# --- claims ---------------------------------------------------------------------------------------------------------

# Folder -> number of debate files SOURCE.md lists, so a missing file cannot silently shrink a split.
_CLEF_FOLDERS = {"training": 19, "test_annotated": 7}
_CLEF_LABELS = ["0", "1"]


def clef2019_checkthat_task1(
    root: str | None = None,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
    validation_by: str = "sentence",
) -> DatasetDict:
    """CLEF-2019 CheckThat! task 1: is a debate sentence check-worthy (1) or not (0); test = test_annotated.

    target is "" (the task has no target). `speaker` is kept; `group` is the debate (file name without .tsv), needed
    for the official per-debate MAP; `line` is the sentence's line number in its debate (its order); `id` is
    debate/line. validation_by="sentence" carves `validation_size` of the training sentences, stratified by label;
    "debate" carves that fraction of whole training debates, so that every split holds complete debates and a
    sentence's neighbours are in its own split (needed by context features). validation_size=0 trains on all 19
    training debates, without a validation split (the final fit of a configuration chosen on validation).
    """
    train, test = (_read_clef_folder(root, folder, count) for folder, count in _CLEF_FOLDERS.items())
    if validation_by not in ("sentence", "debate"):
        raise DataError(f"data.validation_by must be 'sentence' or 'debate', got {validation_by!r}.")
    if not validation_size:
        return _done({"train": train, "test": test}, _CLEF_LABELS, labels, label_map, limit, seed)
    carve = carve_validation if validation_by == "sentence" else _carve_groups
    fit, val = carve(train, validation_size, seed)
    return _done({"train": fit, "validation": val, "test": test}, _CLEF_LABELS, labels, label_map, limit, seed)


def _read_clef_folder(root: str | None, folder: str, count: int) -> pd.DataFrame:
    path = data_root(root) / "clef2019_checkthat_task1" / folder
    files = sorted(path.glob("*.tsv"))
    if len(files) != count:
        raise DataError(f"{path}: expected {count} .tsv files (one per debate, see SOURCE.md), found {len(files)}.")
    return pd.concat([_read_clef(file) for file in files], ignore_index=True)


def _read_clef(path: Path) -> pd.DataFrame:
    columns = ["line_number", "speaker", "text", "label"]
    raw = read_table(path, columns, encoding="utf-8", sep="\t", header=None, names=columns, quoting=csv.QUOTE_NONE)
    check_labels(raw, "label", _CLEF_LABELS, path, first_row=1)
    check_texts(raw, path, first_row=1)
    line = pd.to_numeric(raw["line_number"], errors="coerce")
    if line.isna().any():
        row = int(line.isna().to_numpy().argmax())
        raise DataError(
            f"{path}, row {row + 1}: line_number {raw['line_number'][row]!r} is not a whole number; the first column "
            "of a CLEF-2019 task 1 file numbers the debate's sentences in order."
        )
    return pd.DataFrame(
        {
            "id": path.stem + "/" + raw["line_number"],
            "text": raw["text"],
            "target": "",
            "speaker": raw["speaker"],
            "group": path.stem,
            "line": line.astype(int),
            "label": raw["label"],
        }
    )


# --- topic ----------------------------------------------------------------------------------------------------------

_AG_NEWS_LABELS = ["1", "2", "3", "4"]


def ag_news_test(
    root: str | None = None,
    make_split: bool = False,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """AG News test set (topic, labels 1-4 = World/Sports/Business/Sci/Tech); `make_split` splits it three ways.

    Without `make_split` only `test` (7,600 rows) is returned. With it, `test_size` of the rows become test and
    `validation_size` of the rest validation, stratified by label and seeded. text = title + " " + description, with
    the crawl's `\\` line breaks and entities (`#36;` = "$", `&lt;`) decoded. target is "" (no target).
    """
    (path,) = corpus_files(root, "ag_news_test", ["test.csv"])
    raw = read_table(path, ["label", "title", "description"], encoding="utf-8")
    check_labels(raw, "label", _AG_NEWS_LABELS, path)
    frame = pd.DataFrame(
        {"text": _clean_ag_news(raw["title"] + " " + raw["description"]), "target": "", "label": raw["label"]}
    )
    check_texts(frame, path)
    if not make_split:
        return _done({"test": frame}, _AG_NEWS_LABELS, labels, label_map, limit, seed)
    rest, test = carve_validation(frame, test_size, seed)
    train, validation = carve_validation(rest, validation_size, seed)
    splits = {"train": train, "validation": validation, "test": test}
    return _done(splits, _AG_NEWS_LABELS, labels, label_map, limit, seed)


def _clean_ag_news(text: pd.Series) -> pd.Series:
    # The crawl lost the "&" of numeric entities (" #39;s") and writes "\" where the source had a line break.
    text = text.str.replace(r"(?<!&)#(\d+);", r"&#\1;", regex=True).str.replace("\\", " ", regex=False)
    return text.map(html.unescape).str.replace(r"\s+", " ", regex=True).str.strip()


# --- registry -------------------------------------------------------------------------------------------------------

# Every corpus by its config name (conf/data/<name>.yaml), with its task, for `stance data list`.
CORPORA: dict[str, dict] = {
    "semeval2016_task6": {"reader": semeval2016_task6, "task": "stance"},
    "tweeteval_stance": {"reader": tweeteval_stance, "task": "stance"},
    "perspectrum": {"reader": perspectrum, "task": "stance"},
    "ibm_claim_stance": {"reader": ibm_claim_stance, "task": "stance"},
    "emergent": {"reader": emergent, "task": "stance"},
    "fnc1": {"reader": fnc1, "task": "stance"},
    "vast_devtest": {"reader": vast_devtest, "task": "stance"},
    "multitarget_stance_election2016": {"reader": multitarget_stance_election2016, "task": "stance"},
    "ibm_argkp2021": {"reader": ibm_argkp2021, "task": "stance"},
    "ibm_argq_30k": {"reader": ibm_argq_30k, "task": "stance"},
    "pstance": {"reader": pstance, "task": "stance"},
    "covid19_stance": {"reader": covid19_stance, "task": "stance"},
    "newsmtsc": {"reader": newsmtsc, "task": "sentiment"},
    "clef2019_checkthat_task1": {"reader": clef2019_checkthat_task1, "task": "claim"},
    "ag_news_test": {"reader": ag_news_test, "task": "topic"},
}
