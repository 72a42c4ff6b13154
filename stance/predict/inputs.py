"""Reading `stance predict`'s inputs: CSV/TSV/JSONL/Parquet files in chunks of rows, each row known by its line.

Every field stays a string as written (ids keep leading zeros); a missing column, an empty text, a malformed record or
bytes that do not decode are a `PredictError` naming the file, row and line, and the option that fixes it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

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
    # Input columns copied into the output beside the predictions; None: the text column and any target column read.
    keep_columns: tuple[str, ...] | None = None

    def kept(self, needs_target: bool) -> tuple[str, ...]:
        """The input columns the output carries (the id column has its own `id`)."""
        if self.keep_columns is not None:
            return tuple(c for c in self.keep_columns if c != self.id_column)
        reads_target = needs_target and self.target is None
        return (self.text_column, *([self.target_column] if reads_target else []))


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
    for column in opts.kept(needs_target):
        wanted.setdefault(column, "--keep-columns")
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
