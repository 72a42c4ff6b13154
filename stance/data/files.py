"""A researcher's own annotated files (CSV / TSV / JSONL / Parquet) or a Hub dataset, in the shared schema."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import STANCE_LABELS, DataError, Report, carve_validation, decoding_error, finish

log = logging.getLogger(__name__)
SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
TEXT = ("csv", "tsv", "jsonl")


# Detected encodings this much messier (charset-normalizer's mess ratio) than the best are not candidates.
_MESS_MARGIN = 0.02


def decode(path: Path, encoding: str | None = None) -> str:
    """File contents as text: in the given encoding, else UTF-8, else the one detected for it (with a warning)."""
    raw = path.read_bytes()
    encoding = encoding or detect_encoding([path])
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        fix = "Set data.encoding to the file's encoding (e.g. cp1252 or gb18030)."
        raise decoding_error(path, err, encoding, fix) from None


def detect_encoding(paths: Sequence[Path]) -> str:
    """One encoding for all `paths`: UTF-8 if they all are, else the one detection is sure of, else a DataError.

    Sure means every candidate charset-normalizer finds about as plausible reads the files to the same text; when
    they differ, the error names them with what each makes of the first line they disagree on.
    """
    raws = {path: path.read_bytes() for path in paths}
    utf8 = [path for path, raw in raws.items() if _decodes(raw, "utf-8-sig")]
    if len(utf8) == len(raws):
        return "utf-8-sig"
    foreign = [path for path in raws if path not in utf8]
    if any(not raws[path].isascii() for path in utf8):
        raise DataError(
            f"The data files are in different encodings: {', '.join(str(p) for p in utf8 if not raws[p].isascii())} "
            f"UTF-8, {', '.join(map(str, foreign))} not. Save them all in one encoding (UTF-8 is best)."
        )
    from charset_normalizer import from_bytes

    matches = list(from_bytes(b"\n".join(raws[path] for path in foreign)))
    best = min((m.chaos for m in matches), default=0.0)
    readings: dict[tuple[str, ...], list[str]] = {}  # the files as read -> the encodings that read them so
    for match in matches:
        if match.chaos <= best + _MESS_MARGIN and all(_decodes(raws[p], match.encoding) for p in foreign):
            names = readings.setdefault(tuple(raws[p].decode(match.encoding) for p in foreign), [])
            names += [name for name in match.could_be_from_charset if name not in names]
    if len(readings) == 1:
        [names] = readings.values()
        log.warning("The data files are not UTF-8; reading them all as %s (detected; data.encoding sets it).", names[0])
        return names[0]
    first = foreign[0]
    offset = next((i for i, byte in enumerate(raws[first]) if byte >= 0x80), 0)
    if not readings:
        raise DataError(
            f"{first}: byte {raws[first][offset : offset + 1]!r} at offset {offset} is not valid UTF-8, and no other "
            "encoding reads the data files. Set data.encoding to their encoding (e.g. cp1252 or gb18030)."
        )
    where, lines = _first_disagreement(foreign, list(readings))
    candidates = "; ".join(
        f"{_names(names)} reads {line!r}" for names, line in zip(readings.values(), lines, strict=True)
    )
    raise DataError(
        f"The data files are not UTF-8 and their encoding is ambiguous: at {where}, {candidates}. Set data.encoding "
        "to the one that reads your text right."
    )


def _names(names: list[str]) -> str:
    """`cp1252 (or cp1254, cp1258)`: an encoding and those that read the files the same."""
    return names[0] + (f" (or {', '.join(names[1:4])})" if len(names) > 1 else "")


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _first_disagreement(paths: Sequence[Path], readings: list[tuple[str, ...]]) -> tuple[str, list[str]]:
    """`file:line` of the first line the readings differ on, and that line (about 60 characters) in each."""
    for index, path in enumerate(paths):
        splits = [reading[index].splitlines() for reading in readings]
        for number, lines in enumerate(zip(*splits, strict=False), start=1):
            if len(set(lines)) > 1:
                column = next(i for i, chars in enumerate(zip(*lines, strict=False)) if len(set(chars)) > 1)
                start = max(0, column - 30)
                return f"{path.name}:{number}", [line[start : start + 60] for line in lines]
    return paths[0].name, [reading[0][:60] for reading in readings]


def read_file(path: str | Path, fmt: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read one file as a frame of strings; every row is kept, blank cells become ''."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist. Check the path in data.paths.")
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (no header, no rows). Put the data in it, or leave it out of data.paths.")
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
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has no header and no rows (only blank lines). Put the data in it.") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: cannot parse as {fmt.upper()} ({err}). Check the separator and quoting.") from None


@reader
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
    test_size: float = 0.2,
    seed: int = 13,
    limit: int | None = None,
    task: str | None = None,
) -> DatasetDict:
    """Load one file per split (`paths={split: path}`), one file with a `split_column`, or one file to split in three.

    `columns` maps schema names to file columns, e.g. {text: Tweet, label: Stance, target: Target}.
    `split_map` renames split values, e.g. {Train: train, Dev: validation, Test: test}.
    `targets` turns a multi-target row into one row per pair: {target column: label column}.
    One file without a split column: `test_size` of it is held out as test, then `validation_size` of the rest as
    validation. Without a validation split, one is carved from train; both carves are stratified (`carve_validation`)
    and say how in the DatasetDict's `report.notes`.
    `task="stance"`: labels must be AGAINST/FAVOR/NONE after `label_map`, unless `labels` lists others.
    """
    if isinstance(paths, str):
        paths = {"all" if split_column else "train": paths}
    else:
        test_size = 0  # the test split is the user's own file, or none
    texts = [Path(p).expanduser() for p in paths.values() if (format or FORMATS.get(Path(p).suffix.lower())) in TEXT]
    if encoding is None and texts and all(p.is_file() for p in texts):
        encoding = detect_encoding(texts)  # one encoding for the whole dataset, not a guess per file
    splits: dict[str, pd.DataFrame] = {}
    for split, path in paths.items():
        frame = _to_schema(read_file(path, format, encoding), Path(path), columns or {}, targets or {}, split_column)
        if frame.empty:
            raise DataError(f"{path} has a header but no rows. Add the data rows, or leave the file out of data.paths.")
        if split_column:
            names = frame["split"].map(lambda v: (split_map or {}).get(v, v))
            splits.update({str(name): group.drop(columns="split") for name, group in frame.groupby(names)})
        else:
            splits[split] = frame
    label_column = (columns or {}).get("label", "label")
    return assemble(
        splits, labels, label_map, task, label_column, {"test": test_size, "validation": validation_size}, seed, limit
    )


def assemble(
    splits: dict[str, pd.DataFrame],
    labels: Sequence[str] | None,
    label_map: Mapping[str, str] | None,
    task: str | None,
    label_column: str,
    sizes: Mapping[str, float],
    seed: int,
    limit: int | None,
) -> DatasetDict:
    """Frames per split (with `row`) as a DatasetDict: labels checked and mapped, each split of `sizes` (test, then
    validation) the data lacks carved from train, sliced."""
    mapping = dict(label_map or {})
    allowed = list(labels) if labels else sorted({*STANCE_LABELS, *mapping.values()}) if task == "stance" else None
    for split in splits.values() if allowed is not None else ():
        unknown = ~split["label"].map(lambda v: mapping.get(v, v)).isin(allowed)
        if unknown.any():
            row, value = split["row"][unknown].iloc[0], split["label"][unknown].iloc[0]
            raise DataError(_unknown_label(row, label_column, value, allowed, bool(labels)))
    report = Report()
    for split, size in sizes.items():
        if "train" in splits and split not in splits and size:
            splits["train"], splits[split] = carve_validation(splits["train"], size, seed, split, report.notes)
    splits = dict(sorted(splits.items(), key=lambda item: SPLIT_ORDER.get(item[0], len(SPLIT_ORDER))))
    found = sorted({mapping.get(v, v) for split in splits.values() for v in split["label"]})
    data = finish(splits, list(labels) if labels else found, mapping, limit, seed)
    data.report = report
    return data


def _unknown_label(row: str, column: str, value: str, allowed: list[str], listed: bool) -> str:
    """The error for a label outside `allowed`, with the closest allowed label suggested."""
    import difflib

    by_upper = {label.upper(): label for label in allowed}
    close = difflib.get_close_matches(str(value).upper(), list(by_upper), n=1, cutoff=0.6)
    suggestion = by_upper[close[0]] if close else allowed[0]
    expected = "data.labels" if listed else "the stance task (or data.label_map's values)"
    return (
        f"{row}, column '{column}': unknown label {value!r}{f' (did you mean {suggestion!r}?)' if close else ''}; "
        f"{expected} allows {allowed}. Fix the file, map it with data.label_map (e.g. {{{value}: {suggestion}}}), "
        "or list your own labels in data.labels."
    )


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


@reader
def hub(
    path: str,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    split_map: Mapping[str, str] | None = None,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    validation_size: float = 0.1,
    seed: int = 13,
    limit: int | None = None,
    task: str | None = None,
    **kwargs,
) -> DatasetDict:
    """A Hugging Face dataset in the shared schema: a Hub id (needs the network) or a local loader and files.

    `path` and `kwargs` go to `datasets.load_dataset` (e.g. path=json, data_files={train: a.jsonl}); the rest as in
    `files`: `columns` maps schema names to dataset columns, labels (class indices or strings) are read as names,
    mapped, checked, and a validation split is carved from train when there is none.
    """
    from datasets import ClassLabel, load_dataset

    try:
        data = load_dataset(path, name, **kwargs)
    except Exception as err:  # the Hub client raises many types; to the user they all mean "not reachable/found"
        raise DataError(
            f"Cannot load Hub dataset {path!r}: {type(err).__name__}: {str(err).splitlines()[0][:200]}. "
            "Offline, export it to CSV/JSONL/Parquet and use data=files."
        ) from None
    wanted = {"text": "text", "target": "target", "label": "label", **(columns or {})}
    splits: dict[str, pd.DataFrame] = {}
    for split, dataset in data.items():
        missing = [c for key, c in wanted.items() if c not in dataset.column_names and key in ("text", "label")]
        if missing:
            raise DataError(
                f"Dataset {path!r} split '{split}': missing column(s) {missing}; it has {dataset.column_names}. "
                "Map your column names with data.columns (e.g. {text: sentence, label: stance})."
            )
        present = {key: column for key, column in wanted.items() if column in dataset.column_names}
        table = dataset.select_columns(list(dict.fromkeys(present.values()))).to_pandas()
        frame = pd.DataFrame({key: table[column] for key, column in present.items()})
        feature = dataset.features[wanted["label"]]
        if isinstance(feature, ClassLabel):  # class indices: their names are the labels
            frame["label"] = [feature.int2str(int(i)) for i in frame["label"]]
        frame = frame.astype("string").fillna("").astype(object)
        if "target" not in frame:
            frame["target"] = ""
        frame["row"] = [f"{path} {split} row {i}" for i in range(len(frame))]
        for column in ("text", "label"):
            blank = frame[column].str.strip() == ""
            if blank.any():
                raise DataError(
                    f"{frame['row'][blank].iloc[0]}, column '{wanted[column]}': empty {column} ({int(blank.sum())} "
                    "such rows). Fill it in or drop those rows."
                )
        splits[(split_map or {}).get(split, split)] = frame
    return assemble(splits, labels, label_map, task, wanted["label"], {"validation": validation_size}, seed, limit)
