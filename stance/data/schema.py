"""Corpora as `datasets.DatasetDict`s with one schema: `text`, `target`, `label` (+ optional columns)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

# The shared stance vocabulary; corpora map their own labels onto it in their data config.
STANCE_LABELS = ["AGAINST", "FAVOR", "NONE"]
DATA_ENV = "STANCE_DATA"
log = logging.getLogger(__name__)


class DataError(ValueError):
    """A corpus or a user's file cannot be read as asked; the message says where and how to fix it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: the given `root`, else `$STANCE_DATA`."""
    chosen = root if root not in (None, "") else os.environ.get(DATA_ENV)
    if not chosen:
        raise DataError(
            f"No data root given. Set the environment variable {DATA_ENV} to the folder that holds the corpora "
            f"(e.g. export {DATA_ENV}=../shared/data) or pass data.root=/path/to/data."
        )
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataError(
            f"Data root {path} does not exist. Set {DATA_ENV} or data.root to the folder holding the corpora."
        )
    return path


def corpus_files(root: str | os.PathLike | None, corpus: str, names: Sequence[str]) -> list[Path]:
    """Paths of a corpus's files under the data root; one error lists every missing file."""
    folder = data_root(root) / corpus
    paths = [folder / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"Corpus '{corpus}' is incomplete: missing {', '.join(str(p) for p in missing)}. "
            f"Expected these files in {folder}: {', '.join(names)}."
        )
    return paths


def read_table(path: Path, columns: Sequence[str], encoding: str = "utf-8", **read_csv_kwargs) -> pd.DataFrame:
    """Read a delimited file as strings, with a clear error for bad encoding or missing columns."""
    try:
        frame = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False, **read_csv_kwargs)
    except UnicodeDecodeError as err:
        raise decoding_error(
            path, err, encoding, "Give the file's encoding (e.g. encoding=cp1252 or gb18030)."
        ) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the file has {list(frame.columns)}.")
    return frame


def decoding_error(path: Path, err: UnicodeDecodeError, encoding: str, fix: str = "") -> DataError:
    """The error for a file that is not in `encoding`: the first bad byte and its offset, and how to fix it."""
    where = f"{path}: byte {err.object[err.start : err.start + 1]!r} at offset {err.start} is not valid {encoding}."
    return DataError(f"{where} {fix}".rstrip())


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole file as text, with the same clear error as `read_table` on a wrong encoding."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise decoding_error(path, err, encoding) from None


def read_lines(path: Path) -> list[str]:
    """A UTF-8 file's lines, split on \\n only (str.splitlines would also split on rare Unicode breaks in tweets)."""
    return read_text(path).removesuffix("\n").split("\n")


def parse_json(text: str, path: Path, line: int | None = None) -> object:
    """Parse JSON text from `path` (one JSONL line if `line` is given), naming file, line and column on error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {line or err.lineno}, column {err.colno}: invalid JSON ({err.msg}).") from None


def require_fields(records: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Raise if JSON records lack a field, naming the file and the fields present."""
    missing = [c for c in columns if c not in records.columns]
    if missing:
        raise DataError(f"{path}: missing field(s) {missing}; the records have {list(records.columns)}.")


def _location(frame: pd.DataFrame, index: int, path: Path, first_row: int, key: str | None) -> str:
    """Row `index` of a file: its line, or (JSON records have no useful line number) the value of column `key`."""
    return f"{path}, {key} {frame[key].iloc[index]}" if key else f"{path}, line {index + first_row}"


def check_labels(
    frame: pd.DataFrame,
    column: str,
    allowed: Sequence[str],
    path: Path,
    first_row: int = 2,
    key: str | None = None,
    field: str | None = None,
) -> None:
    """Raise on the first label outside `allowed`, naming file, line (or record `key`) and column (or JSON `field`)."""
    bad = ~frame[column].isin(allowed)
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        where = f"{_location(frame, index, path, first_row, key)}, {'field' if key else 'column'} '{field or column}'"
        raise DataError(
            f"{where}: unknown label {frame[column].iloc[index]!r}; expected one of {list(allowed)}. Fix the file or "
            "map the label in the data config."
        )


def check_texts(frame: pd.DataFrame, path: Path, first_row: int = 2, key: str | None = None) -> None:
    """Raise on the first empty or whitespace-only text, naming file and line (or record `key`)."""
    empty = frame["text"].str.strip() == ""
    if empty.any():
        index = int(empty.to_numpy().nonzero()[0][0])
        row = "record" if key else "row"
        raise DataError(
            f"{_location(frame, index, path, first_row, key)}: empty text. Remove the {row} or fill in its text."
        )


def check_constant(frame: pd.DataFrame, column: str, expected: str, path: Path) -> None:
    """Raise if a column that names the file's split or target holds anything else, naming file, line and value."""
    bad = frame[column] != expected
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{path}, line {index + 2}, column '{column}': {frame[column].iloc[index]!r}, but every row of this file "
            f"must be {expected!r}. The file is misnamed or its rows are mixed up; restore it from its source."
        )


def to_dataset_dict(splits: dict[str, pd.DataFrame], labels: Sequence[str]) -> DatasetDict:
    """Turn frames with `text`, `target`, `label` (+ extras) into a DatasetDict with a `ClassLabel`."""
    out = {}
    for name, frame in splits.items():
        schema = {c: Value("string") for c in frame.columns}
        schema["label"] = ClassLabel(names=list(labels))
        out[name] = Dataset.from_pandas(frame.reset_index(drop=True), features=Features(schema), preserve_index=False)
    return DatasetDict(out)


def carve_validation(
    train: pd.DataFrame, size: float, seed: int, split: str = "validation", notes: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `size` (a fraction, or a number of rows) off `train` as `split`, stratified as finely as the rows allow.

    By target x label where every pair has two rows and fits on both sides, else by label, taking at least one row per
    label; `notes`, if given, gets one line saying how (else a fallback to labels is a warning).
    """
    from sklearn.model_selection import train_test_split

    rows = len(train)
    held = int(size) if size >= 1 else math.ceil(size * rows)  # as train_test_split rounds a fraction
    labels = train["label"].astype(str)
    pairs = train["target"].astype(str) + "|" + labels
    per_pair, per_label = pairs.value_counts(), labels.value_counts()
    if train["target"].nunique() > 1 and per_pair.min() >= 2 and len(per_pair) <= min(held, rows - held):
        strata, how = pairs, "stratified by target x label"
    else:
        if per_label.min() < 2:
            label = per_label.idxmin()
            raise DataError(
                f"Label {label!r} has {per_label.min()} row ({_where(train[labels == label])}), too few for both "
                f"training and a {split} split. Add rows with it, merge it into another label (data.label_map), give a "
                f"{split} file, or set data.{split}_size=0."
            )
        strata, how = labels, "stratified by label"
        if train["target"].nunique() > 1:
            few = f"{min(held, rows - held)} rows cannot hold one of each of the {len(per_pair)} (target, label) pairs"
            how += f" only ({'a (target, label) pair has a single row' if per_pair.min() < 2 else few})"
            if notes is None:
                log.warning("%s split off %d rows %s.", split.capitalize(), held, how)
        if held < len(per_label):  # stratifying needs a row of each label on each side
            how += f"; raised from {held} to {len(per_label)} rows, one per label"
            held = size = len(per_label)
        if rows - held < len(per_label):
            most = (rows - len(per_label)) / rows
            raise DataError(
                f"A {split} set of {held} of {rows} rows leaves fewer than one row per label ({len(per_label)}) to "
                f"train on. Set data.{split}_size={math.floor(most * 100) / 100} or less, or add rows."
            )
    fit, val = train_test_split(train, test_size=size, random_state=seed, stratify=strata)
    if notes is not None:
        notes.append(f"{split}: {len(val)} of {rows} rows held out, {how}")
    return fit, val


def carve_groups(train: pd.DataFrame, size: float, seed: int, by: str = "group") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off a validation set of whole groups (column `by`); `size` is the fraction of groups."""
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    fit, val = next(splitter.split(train, groups=train[by]))
    return train.iloc[fit], train.iloc[val]


def subsample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A reproducible random slice of at most `limit` rows (for quick runs and tests)."""
    if limit is None or len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_index()


def finish(
    splits: dict[str, pd.DataFrame],
    labels: Sequence[str],
    label_map: Mapping[str, str] | None = None,
    limit: int | None = None,
    seed: int = 13,
) -> DatasetDict:
    """Map labels to the shared vocabulary (keeping `original_label`), slice to `limit`, build the DatasetDict."""
    out = {}
    for name, split in splits.items():
        split = split.copy()
        if label_map:
            split["original_label"] = split["label"]
            split["label"] = split["label"].map(lambda value: label_map.get(value, value))
        unknown = sorted(set(split["label"]) - set(labels))
        if unknown:
            raise DataError(
                f"Split '{name}': labels {unknown} are not in the label set {list(labels)}; "
                "add them to `labels` or map them with `label_map` in the data config."
            )
        out[name] = subsample(split, limit, seed)
    return to_dataset_dict(out, labels)


def finish_corpus(
    splits: dict[str, pd.DataFrame],
    raw: Sequence[str],
    labels: Sequence[str] | None,
    label_map: Mapping | None,
    limit: int | None,
    seed: int,
    report: Report | None = None,
) -> DatasetDict:
    """`finish` with the config's labels and map; without them a corpus keeps its own label names (`raw`).

    `report` (rows the reader dropped) becomes the DatasetDict's `report`, which training adds to its data report.
    """
    # Hydra passes DictConfig/ListConfig, and YAML keys such as 0 arrive as ints: make both plain strings.
    mapping = {str(key): str(value) for key, value in (label_map or {}).items()}
    names = [str(x) for x in labels] if labels is not None else list(dict.fromkeys(mapping.get(x, x) for x in raw))
    data = finish(splits, names, mapping, limit, seed)
    if report is not None:
        data.report = report
    return data


def to_frame(split: Dataset) -> pd.DataFrame:
    """A split as the pandas frame models consume: `text`, `target` and labels as names."""
    df = split.to_pandas()
    names = split.features["label"].names
    df["label"] = [names[i] for i in df["label"]]
    return df


@dataclass
class Report:
    """What validation found: warnings naming split, rows and counts, the rows dropped per reason, and how the reader
    split the data (`notes`, shown with the rows per split and label)."""

    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _where(rows: pd.DataFrame) -> str:
    column = "row" if "row" in rows else "id" if "id" in rows else None
    examples = rows[column].head(3).tolist() if column else rows.index[:3].tolist()
    return ", ".join(map(str, examples))


def reader_report(data: Mapping) -> Report:
    """A copy of the rows a corpus reader dropped (the DatasetDict's `report` attribute), else an empty report."""
    found = getattr(data, "report", None) or Report()
    return Report(list(found.warnings), dict(found.dropped), list(found.notes))


def split_table(frames: Mapping[str, pd.DataFrame], most_labels: int = 12) -> str:
    """Rows per split and label as a table (rows per split alone for label sets or more than `most_labels` labels)."""
    rows = pd.Series({split: len(frame) for split, frame in frames.items()}, name="rows")
    if any(isinstance(label, list) for frame in frames.values() for label in frame["label"].head(1)):
        return rows.to_frame().to_string()
    table = pd.DataFrame({split: frame["label"].value_counts() for split, frame in frames.items()}).T
    if table.shape[1] > most_labels:
        return rows.to_frame().to_string()
    table = table.reindex(columns=sorted(table.columns)).fillna(0).astype(int).rename_axis(columns=None)
    return table.assign(total=rows).to_string()


def validate(
    frames: dict[str, pd.DataFrame],
    drop_duplicates: bool = False,
    drop_leaked: bool = False,
    report: Report | None = None,
) -> tuple[dict[str, pd.DataFrame], Report]:
    """Warn about duplicate (text, target) rows within a split, conflicting labels, and texts shared with test.

    Rows are dropped only when asked, and every drop is counted in the report, which extends `report` if given
    (e.g. `reader_report(data)`, the rows the corpus reader already dropped).
    """
    report, out = report or Report(), dict(frames)
    for split, data in frames.items():
        repeated = data.duplicated(["text", "target"], keep="first")
        if repeated.any():
            conflicting = data.groupby(["text", "target"])["label"].nunique().gt(1).sum()
            report.warnings.append(
                f"{split}: {int(repeated.sum())} duplicate (text, target) rows ({int(conflicting)} with conflicting "
                f"labels), e.g. {_where(data[repeated])}. data_checks.drop_duplicates=true keeps the first."
            )
            if drop_duplicates:
                out[split] = data[~repeated]
                report.dropped[f"duplicates/{split}"] = int(repeated.sum())
    held_out = set(out["test"]["text"]) if "test" in out else set()
    for split in [s for s in ("train", "validation") if s in out]:
        leaked = out[split]["text"].isin(held_out)
        if leaked.any():
            report.warnings.append(
                f"{split}: {int(leaked.sum())} texts also occur in test (leakage), e.g. {_where(out[split][leaked])}. "
                "data_checks.drop_leaked=true drops them from this split."
            )
            if drop_leaked:
                out[split] = out[split][~leaked]
                report.dropped[f"leaked/{split}"] = int(leaked.sum())
    return out, report
