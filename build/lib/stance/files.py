"""A researcher's own annotated files (CSV / TSV / JSONL / Parquet) or a Hub dataset, in the shared schema."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data import DataError, carve_validation, finish

log = logging.getLogger(__name__)
SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def decode(path: Path, encoding: str | None = None) -> str:
    """File contents as text: in the given encoding, else UTF-8, else a detected one (with a warning)."""
    raw = path.read_bytes()
    try:
        return raw.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as err:
        first_error = err
    from charset_normalizer import from_bytes

    guess = from_bytes(raw).best()
    suggestion = f"; it looks like {guess.encoding}" if guess else ""
    if encoding is None and guess is not None:
        log.warning("%s is not UTF-8 (byte offset %d); decoding it as %s", path, first_error.start, guess.encoding)
        return str(guess)
    raise DataError(
        f"{path}: byte {raw[first_error.start : first_error.start + 1]!r} at offset {first_error.start} is not valid "
        f"{encoding or 'UTF-8'}{suggestion}. Set data.encoding (e.g. cp1252 or gb18030)."
    )


def read_file(path: str | Path, fmt: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read one file as a frame of strings; every row is kept, blank cells become ''."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist. Check the path in data.paths.")
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt == "parquet":
        return pd.read_parquet(path).astype("string").fillna("").astype(object)
    if fmt not in ("csv", "tsv", "jsonl"):
        raise DataError(f"{path}: unknown format {path.suffix!r}; set data.format to one of csv, tsv, jsonl, parquet.")
    text = decode(path, encoding)
    if "\r" in text and "\n" not in text:  # old-Mac line endings (CR only), as in the multi-target corpus
        text = text.replace("\r", "\n")
    if fmt == "jsonl":
        try:
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
        except ValueError as err:
            raise DataError(f"{path}: not valid JSON lines ({err}).") from None
        return frame.astype("string").fillna("").astype(object)
    try:
        return pd.read_csv(io.StringIO(text), sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: cannot parse as {fmt.upper()} ({err}). Check the separator and quoting.") from None


def files(
    paths: Mapping[str, str] | str,
    columns: Mapping[str, str] | None = None,
    targets: Mapping[str, str] | None = None,
    split_column: str | None = None,
    split_map: Mapping[str, str] | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    format: str | None = None,
    encoding: str | None = None,
    validation_size: float = 0.1,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """Load one file per split (`paths={split: path}`) or one file with a `split_column`, renaming via `columns`.

    `columns` maps schema names to file columns, e.g. {text: Tweet, label: Stance, target: Target}.
    `split_map` renames split values, e.g. {Train: train, Dev: validation, Test: test}.
    `targets` turns a multi-target row into one row per pair: {target column: label column}.
    Without a validation split, one is carved from train (stratified by target x label).
    """
    if isinstance(paths, str):
        if not split_column:
            raise DataError("data.paths is one file: set data.split_column, or give paths as {train: ..., test: ...}.")
        paths = {"all": paths}
    splits: dict[str, pd.DataFrame] = {}
    for split, path in paths.items():
        frame = _to_schema(read_file(path, format, encoding), Path(path), columns or {}, targets or {}, split_column)
        if split_column:
            names = frame["split"].map(lambda v: (split_map or {}).get(v, v))
            splits.update({str(name): group.drop(columns="split") for name, group in frame.groupby(names)})
        else:
            splits[split] = frame
    splits = dict(sorted(splits.items(), key=lambda item: SPLIT_ORDER.get(item[0], len(SPLIT_ORDER))))
    if "train" in splits and "validation" not in splits and validation_size:
        splits["train"], splits["validation"] = carve_validation(splits["train"], validation_size, seed)
    mapping = dict(label_map or {})
    found = sorted({mapping.get(v, v) for split in splits.values() for v in split["label"]})
    for split in splits.values():
        unknown = ~split["label"].map(lambda v: mapping.get(v, v)).isin(labels or found)
        if unknown.any():
            raise DataError(
                f"{split['row'][unknown].iloc[0]}, column '{(columns or {}).get('label', 'label')}': unknown label "
                f"{split['label'][unknown].iloc[0]!r}; expected one of {list(labels)}. Fix it or use data.label_map."
            )
    return finish(splits, list(labels) if labels else found, mapping, limit, seed)


def _to_schema(
    raw: pd.DataFrame, path: Path, columns: Mapping[str, str], targets: Mapping[str, str], split_column: str | None
) -> pd.DataFrame:
    wanted = {"text": "text", **({} if targets else {"label": "label"}), **columns}
    if not targets and "target" not in wanted and "target" in raw.columns:
        wanted["target"] = "target"
    needed = [*wanted.values(), *targets.keys(), *targets.values(), *([split_column] if split_column else [])]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; the file has {list(raw.columns)}. "
            "Map your column names with data.columns (e.g. {text: Tweet, label: Stance})."
        )
    frame = pd.DataFrame({name: raw[column] for name, column in wanted.items()})
    if "target" not in frame and not targets:
        frame["target"] = ""  # topic and claim files have no target
    frame["row"] = [f"{path.name}:{i + 2}" for i in range(len(raw))]  # header is line 1
    if split_column:
        frame["split"] = raw[split_column]
    if targets:
        frame = pd.concat(
            [frame.assign(target=raw[t_col], label=raw[l_col]) for t_col, l_col in targets.items()], ignore_index=True
        )
        no_target = frame["target"].str.strip() == ""
        if no_target.any():  # a statement with fewer targets than columns leaves those pairs blank: not data
            log.warning("%s: %d blank target cells give no pair and are skipped", path, int(no_target.sum()))
        frame = frame[~no_target]
    for column in ("text", "label"):
        blank = frame[column].str.strip() == ""
        if blank.any():
            raise DataError(
                f"{frame['row'][blank].iloc[0]}, column '{columns.get(column, column)}': empty {column} "
                f"({int(blank.sum())} such rows in {path}). Fill it in or remove the row."
            )
    return frame.reset_index(drop=True)


def hub(path: str, name: str | None = None, columns: Mapping[str, str] | None = None, **kwargs) -> DatasetDict:
    """A Hugging Face Hub dataset id, passed to `datasets.load_dataset` unchanged (needs the network)."""
    from datasets import load_dataset

    try:
        data = load_dataset(path, name, **kwargs)
    except Exception as err:  # the Hub client raises many types; to the user they all mean "not reachable/found"
        raise DataError(
            f"Cannot load Hub dataset {path!r}: {type(err).__name__}: {str(err).splitlines()[0][:200]}. "
            "Offline, export it to CSV/JSONL/Parquet and use data=files."
        ) from None
    renames = {source: ours for ours, source in (columns or {}).items() if source != ours}
    return data.rename_columns(renames) if renames else data
