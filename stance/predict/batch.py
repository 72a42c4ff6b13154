"""`stance predict`: label the statements in CSV/TSV/JSONL/Parquet files with a logged model, chunk by chunk.

Memory stays flat in the input size: inputs are read in chunks of `chunk_size` rows, each chunk's predictions go to a
part file, and the output is assembled from the parts at the end. The part files and a manifest (the model, the
inputs, the options) live in `<output>.parts/`, so rerunning an interrupted command skips the chunks it finished.
A validation pass reads every input once before anything is encoded: a missing column, an empty text or bytes that
do not decode stop the run at once with one message naming the file, row and line; no row is ever dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
MANIFEST = "manifest.json"
# A stance model embeds `text` and `target`; the others were trained with target "" (stance.data.tasks.Task).
TARGET_TASKS = ("stance",)
log = logging.getLogger(__name__)

# The csv module accepts fields up to 128 KiB by default; a long article in one cell is still one statement.
csv.field_size_limit(2**31 - 1)


class PredictError(ValueError):
    """A bad input, output or option; the message names the file (and row and line) and says how to fix it."""


@dataclass(frozen=True)
class Options:
    """How inputs are read: which columns, a fixed target, the id column, chunk size and text encoding."""

    text_column: str = "text"
    target_column: str = "target"
    target: str | None = None
    id_column: str = "id"
    chunk_size: int = 5000
    encoding: str = "utf-8"
    # Texts per encoder call (None: the model's, 64 by default). Fewer lower the encoder's peak memory (32: about
    # 100-200 MB less); whether they are faster depended on the input (experiments/BENCHMARKS.md, part (e)).
    batch_size: int | None = None


@dataclass
class Chunk:
    """Rows `first_row` .. of one input (1-based data rows), with each row's line in the file (text formats)."""

    first_row: int
    columns: dict[str, list[Any]]
    lines: list[int] | None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def where(self, i: int) -> str:
        """`row N (line L)` of the i-th row of this chunk."""
        line = f" (line {self.lines[i]})" if self.lines else ""
        return f"row {self.first_row + i}{line}"


def input_format(path: Path) -> str:
    """csv, tsv, jsonl or parquet, by the file's extension."""
    suffix = path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise PredictError(f"{path}: unknown input format {suffix!r}; use one of {', '.join(INPUT_FORMATS)}.")
    return INPUT_FORMATS[suffix]


def output_format(path: Path) -> str:
    """parquet, csv or jsonl, by the output's extension."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise PredictError(f"--output {path}: unknown output format {suffix!r}; use one of {known}.")
    return OUTPUT_FORMATS[suffix]


# --- reading ------------------------------------------------------------------------------------------------------


class _Undecodable(Exception):
    def __init__(self, line: int, detail: str):
        super().__init__(detail)
        self.line, self.detail = line, detail


def _decoded_lines(path: Path, encoding: str, position: list[int]) -> Iterator[str]:
    """The file's lines, decoded one by one so that a bad byte is reported on its own line (`position[0]`)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            position[0] = number
            if number == 1 and raw.startswith(b"\xef\xbb\xbf") and encoding.replace("_", "-").lower() == "utf-8":
                raw = raw[3:]  # a UTF-8 byte-order mark is not part of the first column's name
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError as err:
                detail = f"byte {err.start + 1} ({raw[err.start : err.end]!r}) is not {encoding}"
                raise _Undecodable(number, detail) from None
            except LookupError:
                raise PredictError(f"{path}: unknown encoding {encoding!r} (--encoding).") from None


def _undecodable(path: Path, row: int, err: _Undecodable, encoding: str) -> PredictError:
    where = f"row {row} (line {err.line})" if row else f"header (line {err.line})"
    return PredictError(
        f"{path}, {where}: {err.detail}. Re-save the file as UTF-8, or give its encoding with "
        f"--encoding (e.g. --encoding cp1252)."
    )


def _check_columns(path: Path, found: list[str], wanted: dict[str, str]) -> None:
    """Every wanted column is in the file; else name the column, the option that sets it, and the columns found."""
    for column, option in wanted.items():
        if column not in found:
            raise PredictError(
                f"{path} has no column {column!r} (its columns: {', '.join(map(str, found)) or 'none'}). Name the "
                f"right one with {option}."
            )


def _delimited_chunks(path: Path, delimiter: str, wanted: dict[str, str], opts: Options) -> Iterator[Chunk]:
    # The csv module over lines decoded one at a time, rather than pandas' chunked reader: a decode error or a
    # malformed record is then known by its row and line, and every field stays a string (ids keep leading zeros).
    position = [0]
    reader = csv.reader(_decoded_lines(path, opts.encoding, position), delimiter=delimiter)
    try:
        header = next(reader, None)
    except _Undecodable as err:
        raise _undecodable(path, 0, err, opts.encoding) from None
    if header is None:
        raise PredictError(f"{path} is empty: it needs a header row naming its columns.")
    _check_columns(path, header, wanted)
    index = {name: header.index(name) for name in [*wanted, *_id(header, opts)]}
    row = 0
    while True:
        columns: dict[str, list[Any]] = {name: [] for name in index}
        lines: list[int] = []
        first = row + 1
        while len(lines) < opts.chunk_size:
            start = position[0] + 1
            try:
                record = next(reader, None)
            except _Undecodable as err:
                raise _undecodable(path, row + 1, err, opts.encoding) from None
            except csv.Error as err:
                raise PredictError(f"{path}, row {row + 1} (line {position[0]}): malformed record ({err}).") from None
            if record is None:
                break
            if not record:  # csv yields [] for a blank line: no row there
                continue
            row += 1
            if len(record) != len(header):
                raise PredictError(
                    f"{path}, row {row} (line {start}): {len(record)} fields, the header has {len(header)}. "
                    "Quote fields that contain the delimiter or line breaks."
                )
            for name, i in index.items():
                columns[name].append(record[i])
            lines.append(start)
        if lines:
            yield Chunk(first, columns, lines)
        if len(lines) < opts.chunk_size:
            return


def _jsonl_chunks(path: Path, wanted: dict[str, str], opts: Options) -> Iterator[Chunk]:
    position = [0]
    lines_iter = _decoded_lines(path, opts.encoding, position)
    row, names = 0, None
    while True:
        records: list[dict] = []
        lines: list[int] = []
        first = row + 1
        while len(records) < opts.chunk_size:
            try:
                text = next(lines_iter, None)
            except _Undecodable as err:
                raise _undecodable(path, row + 1, err, opts.encoding) from None
            if text is None:
                break
            if not text.strip():  # a blank line holds no record
                continue
            row += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise PredictError(f"{path}, row {row} (line {position[0]}): not valid JSON ({err.msg}).") from None
            if not isinstance(record, dict):
                raise PredictError(f"{path}, row {row} (line {position[0]}): expected a JSON object, one per line.")
            if names is None:  # the first record fixes the columns, as a header would
                _check_columns(path, list(record), wanted)
                names = [*wanted, *_id(list(record), opts)]
            for column, option in wanted.items():
                if column not in record:
                    raise PredictError(
                        f"{path}, row {row} (line {position[0]}): no {column!r} key (its keys: {', '.join(record)}). "
                        f"Every line needs it; name the right key with {option}."
                    )
            records.append(record)
            lines.append(position[0])
        if records and names is not None:
            yield Chunk(first, {name: [r.get(name) for r in records] for name in names}, lines)
        if len(records) < opts.chunk_size:
            return


def _parquet_chunks(path: Path, wanted: dict[str, str], opts: Options) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise PredictError(f"{path} is not a readable Parquet file ({err}).") from None
    found = handle.schema_arrow.names
    _check_columns(path, found, wanted)
    names = [*wanted, *_id(found, opts)]
    row = 0
    for batch in handle.iter_batches(batch_size=opts.chunk_size, columns=names):
        try:
            columns = {name: batch.column(name).to_pylist() for name in names}
        except Exception as err:  # e.g. a string column holding bytes that are not UTF-8
            raise PredictError(f"{path}, rows {row + 1}-{row + batch.num_rows}: cannot read ({err}).") from None
        yield Chunk(row + 1, columns, None)
        row += batch.num_rows


def _id(found: list[str], opts: Options) -> list[str]:
    return [opts.id_column] if opts.id_column in found else []


def read_chunks(path: Path, opts: Options, needs_target: bool) -> Iterator[Chunk]:
    """The input's rows in chunks: the text column, the target column (unless fixed or not needed), and any id."""
    wanted = {opts.text_column: "--text-column"}
    if needs_target and opts.target is None:
        wanted[opts.target_column] = "--target-column (or one target for all rows with --target)"
    if not path.is_file():
        raise PredictError(f"Input {path} does not exist.")
    fmt = input_format(path)
    if fmt == "parquet":
        return _parquet_chunks(path, wanted, opts)
    if fmt == "jsonl":
        return _jsonl_chunks(path, wanted, opts)
    return _delimited_chunks(path, "\t" if fmt == "tsv" else ",", wanted, opts)


def check_chunk(path: Path, chunk: Chunk, columns: list[str]) -> None:
    """Every text (and target) is a non-empty string; else name the first offending row."""
    for column in columns:
        for i, value in enumerate(chunk.columns[column]):
            if not isinstance(value, str) or not value.strip():
                what = "empty" if value is None or (isinstance(value, str) and not value.strip()) else repr(value)
                raise PredictError(
                    f"{path}, {chunk.where(i)}: column {column!r} is {what}; every row needs a non-empty text. "
                    "Fill it in or remove the row (no row is skipped silently)."
                )


# --- the model ----------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A logged model's fitted pipeline, its task (how it shapes its output) and its identity."""

    pipeline: Any
    task: dict[str, Any]
    uuid: str

    @property
    def needs_target(self) -> bool:
        """Stance models embed a target; claim and topic models were trained without one."""
        return self.task.get("task", "stance") in TARGET_TASKS


def load(uri: str, batch_size: int | None = None) -> LoadedModel:
    """Download a logged model once and load its pipeline (quietly: no per-chunk progress bars of the encoder)."""
    import mlflow
    from mlflow.models import Model

    from stance.models.walk import estimators
    from stance.tracking.model_io import load_model

    local = Path(mlflow.artifacts.download_artifacts(uri))
    meta = Model.load(local / "MLmodel")
    pipeline = load_model(str(local))
    for part in estimators(pipeline):
        if hasattr(part, "show_progress"):
            part.show_progress = False
            if batch_size and hasattr(part, "batch_size"):
                part.batch_size = batch_size  # bounds the encoder's activation memory (padded batch x length)
    task = dict(meta.flavors["python_function"].get("config") or {})
    return LoadedModel(pipeline, task, meta.model_uuid or uri)


def map_large_allocations(threshold: int = 8 << 20) -> bool:
    """Serve allocations from `threshold` bytes up by mmap, so freed ones go back to the OS; False off glibc.

    glibc raises its mmap threshold to the largest block freed so far (up to 32 MB), after which the encoder's
    activations (25 MB for 64 texts of 256 tokens) come from the heap and fragment it: peak memory crept up chunk by
    chunk in `stance predict` (experiments/BENCHMARKS.md). A fixed threshold stops that; it is process-wide, so only
    the `stance predict` command sets it, not the library.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(-3, threshold))  # -3 is M_MMAP_THRESHOLD in malloc.h
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): keep the allocator's own policy
        return False


def forget_vectors() -> None:
    """Drop this process's in-memory embeddings (they are in the disk cache), so memory stays flat over many calls."""
    from stance.features import encoders as features

    features._MEMO.clear()


# --- running ------------------------------------------------------------------------------------------------------


def _manifest(model: LoadedModel, uri: str, inputs: list[Path], opts: Options, fmt: str) -> dict[str, Any]:
    files = [{"path": str(p.resolve()), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in inputs]
    return {"model_uri": uri, "model_uuid": model.uuid, "inputs": files, "options": asdict(opts), "output": fmt}


def _parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _prepare_parts(parts: Path, manifest: dict[str, Any], restart: bool) -> None:
    """Start a parts folder, or reuse one left by the same command; refuse one left by a different command."""
    path = parts / MANIFEST
    if restart and parts.exists():
        shutil.rmtree(parts)
    if path.exists():
        old = json.loads(path.read_text())
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise PredictError(
                f"{parts} holds an unfinished run with another {', '.join(changed)}. Rerun that command to finish it, "
                "or pass --restart to discard it."
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1))


def _part_path(parts: Path, file_index: int, chunk_index: int) -> Path:
    return parts / f"part-{file_index:04d}-{chunk_index:07d}.parquet"


def _predict_chunk(
    model: LoadedModel, chunk: Chunk, opts: Options, file_label: str | None, with_id: bool
) -> pd.DataFrame:
    from stance.tracking.pyfunc import predict_frame

    texts = chunk.columns[opts.text_column]
    if not model.needs_target:
        targets: Any = ""
    elif opts.target is not None:
        targets = opts.target
    else:
        targets = chunk.columns[opts.target_column]
    frame = pd.DataFrame({"text": texts, "target": targets})
    out = predict_frame(model.pipeline, frame, model.task)
    forget_vectors()
    keys: dict[str, Any] = {}
    if file_label is not None:
        keys["file"] = file_label
    if with_id:  # as text, so that ids from several files (or mixed JSON types) share one column type
        ids = chunk.columns.get(opts.id_column, [None] * len(chunk))
        keys["id"] = pd.array([None if v is None else str(v) for v in ids], dtype="string")
    keys["row"] = range(chunk.first_row, chunk.first_row + len(chunk))
    return pd.concat([pd.DataFrame(keys), out], axis=1)


def _write_part(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # a part exists whole or not at all, so an interrupt never leaves half a chunk


def _assemble(parts: list[Path], output: Path, fmt: str) -> None:
    """Concatenate the part files into `output`, one part in memory at a time; written under a temporary name."""
    import pyarrow.parquet as pq

    tmp = output.with_name(output.name + ".tmp")
    if fmt == "parquet":
        writer = None
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is not None:
            writer.close()
    else:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            for i, part in enumerate(parts):
                frame = pd.read_parquet(part)
                if fmt == "csv":
                    frame.to_csv(handle, index=False, header=i == 0)
                else:
                    frame.to_json(handle, orient="records", lines=True, force_ascii=False)
    os.replace(tmp, output)


def predict_files(
    model_uri: str,
    inputs: list[str | Path],
    output: str | Path,
    opts: Options | None = None,
    restart: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Label every row of `inputs` into `output`; resumes an interrupted run of the same command. Returns the rows."""
    from tqdm.auto import tqdm

    opts = opts or Options()
    if opts.chunk_size < 1:
        raise PredictError(f"--chunk-size must be at least 1, got {opts.chunk_size}.")
    paths, output = [Path(p) for p in inputs], Path(output)
    if not paths:
        raise PredictError("Give at least one input file.")
    fmt = output_format(output)
    if output.resolve() in {p.resolve() for p in paths}:
        raise PredictError(f"--output {output} is also an input; choose another file.")
    model = load(model_uri, opts.batch_size)
    needs_target = model.needs_target
    if opts.target is not None and not needs_target:
        log.warning("--target ignored: this %s model takes no target.", model.task.get("task"))
    checked = [opts.text_column, *([opts.target_column] if needs_target and opts.target is None else [])]
    # Validation pass: the whole input, before anything is encoded, so a bad row late in a file fails in seconds.
    counts, with_id = [], False
    for path in paths:
        rows = 0
        for chunk in read_chunks(path, opts, needs_target):
            check_chunk(path, chunk, checked)
            rows += len(chunk)
            with_id = with_id or opts.id_column in chunk.columns
        if rows == 0:
            raise PredictError(f"{path} holds no rows to label.")
        counts.append(rows)
    parts = _parts_dir(output)
    _prepare_parts(parts, _manifest(model, model_uri, paths, opts, fmt), restart)
    labels: list[str | None] = [str(p) for p in paths] if len(paths) > 1 else [None]
    done = sum(1 for _ in parts.glob("part-*.parquet"))
    if done:
        log.warning("Resuming %s: %d chunk(s) already labelled in %s are kept.", output, done, parts)  # shown
    written: list[Path] = []
    with tqdm(total=sum(counts), unit="row", desc="Predicting", disable=not progress) as bar:
        for f, path in enumerate(paths):
            for c, chunk in enumerate(read_chunks(path, opts, needs_target)):
                part = _part_path(parts, f, c)
                if not part.exists():
                    _write_part(_predict_chunk(model, chunk, opts, labels[f], with_id), part)
                    if on_chunk is not None:
                        on_chunk(c)
                written.append(part)
                bar.update(len(chunk))
    _assemble(written, output, fmt)
    shutil.rmtree(parts)
    return sum(counts)
