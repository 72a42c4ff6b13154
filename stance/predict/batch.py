"""`stance predict`: label the statements in CSV/TSV/JSONL/Parquet files with a logged model, chunk by chunk.

Memory stays flat in the input size: inputs are read in chunks of `chunk_size` rows, each chunk's predictions go to a
part file, and the output is assembled from the parts at the end. The part files and a manifest (the model, the
inputs, the options) live in `<output>.parts/`, so rerunning an interrupted command skips the chunks it finished.
A validation pass reads every input once before anything is encoded: a missing column, an empty text or bytes that
do not decode stop the run at once with one message naming the file, row and line; no row is ever dropped.
A full disk stops the run with one message (the folder, its free space, the chunks kept); no half-written file is left.
The output keeps the text and target columns (`--keep-columns`), and `<output>.summary.json` says how many rows went to
a per-target model's joint fallback because their target has no model of its own.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stance.artifact.load import fetch_model, load_model
from stance.artifact.pyfunc import predict_frame
from stance.features.cache import free_space
from stance.features.encoders import encoding_progress, forget_vectors
from stance.models.per_target import PerTarget
from stance.models.walk import estimators
from stance.predict.inputs import Chunk, Options, PredictError, check_chunk, read_chunks

OUTPUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
MANIFEST = "manifest.json"
# Columns the predictions take; a kept input column of the same name is written as input_<name>.
OUTPUT_COLUMNS = ("file", "id", "row", "label", "labels", "score")
# A stance model embeds `text` and `target`; the others were trained with target "" (stance.data.tasks.Task).
TARGET_TASKS = ("stance",)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
log = logging.getLogger(__name__)


def output_format(path: Path) -> str:
    """parquet, csv or jsonl, by the output's extension."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise PredictError(f"--output {path}: unknown output format {suffix!r}; use one of {known}.")
    return OUTPUT_FORMATS[suffix]


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

    def fallback_targets(self, targets: list[str]) -> Counter[str]:
        """Rows per target that has no model of its own in a per-target model (its joint fallback labels them)."""
        router = next((part for part in estimators(self.pipeline) if isinstance(part, PerTarget)), None)
        if router is None:
            return Counter()
        return Counter(t for t in targets if t not in router.estimators_)


@dataclass
class Summary:
    """What `stance predict` did: rows labelled, columns kept, and rows whose target went to the joint fallback."""

    model_uri: str
    inputs: list[str]
    output: str
    rows: int
    kept_columns: list[str]
    fallback_rows: int = 0
    fallback_targets: dict[str, int] = field(default_factory=dict)  # target -> rows, most rows first

    def fallback_line(self) -> str | None:
        """One console line on the fallback rows, or None when there were none."""
        if not self.fallback_rows:
            return None
        named = ", ".join(f"{t!r} ({n})" for t, n in list(self.fallback_targets.items())[:5])
        more = f" and {len(self.fallback_targets) - 5} more" if len(self.fallback_targets) > 5 else ""
        return (
            f"{self.fallback_rows} of {self.rows} rows have a target without a model of its own (unseen in training, "
            f"or too few training rows) and were labelled by the joint fallback model: {named}{more}."
        )


def load(uri: str, batch_size: int | None = None) -> LoadedModel:
    """Download a logged model once and load its pipeline (quietly: no per-chunk progress bars of the encoder)."""
    from mlflow.models import Model

    local = fetch_model(uri)
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
    manifest = json.loads(json.dumps(manifest))  # as it reads back: tuples are lists
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
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(manifest, indent=1))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)  # a manifest cut short by a full disk would make every rerun refuse the folder


def _part_path(parts: Path, file_index: int, chunk_index: int) -> Path:
    return parts / f"part-{file_index:04d}-{chunk_index:07d}.parquet"


def _predict_chunk(
    model: LoadedModel, chunk: Chunk, opts: Options, file_label: str | None, with_id: bool
) -> pd.DataFrame:
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
    for column in opts.kept(model.needs_target):  # as text, for the same reason as ids
        name = f"input_{column}" if column in OUTPUT_COLUMNS or column.startswith("proba_") else column
        keys[name] = pd.array([None if v is None else str(v) for v in chunk.columns[column]], dtype="string")
    return pd.concat([pd.DataFrame(keys), out], axis=1)


def _write_part(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        frame.to_parquet(tmp, index=False)
    except BaseException:
        tmp.unlink(missing_ok=True)  # half a chunk is useless, and on a full disk it holds space a rerun needs
        raise
    os.replace(tmp, path)  # a part exists whole or not at all, so an interrupt never leaves half a chunk


def _assemble(parts: list[Path], output: Path, fmt: str) -> None:
    """Concatenate the part files into `output`, one part in memory at a time; written under a temporary name."""
    tmp = output.with_name(output.name + ".tmp")
    try:
        _write_output(parts, tmp, fmt)
    except BaseException:
        tmp.unlink(missing_ok=True)  # as for a part: a half output only holds the space the rerun needs
        raise
    os.replace(tmp, output)


def _write_output(parts: list[Path], path: Path, fmt: str) -> None:
    """Write the parts one after another into `path`, in `fmt`."""
    import pyarrow.parquet as pq

    if fmt == "parquet":
        schema = pq.read_schema(parts[0])
        with _closing(pq.ParquetWriter(path, schema)) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).cast(schema))
        return
    with _closing(path.open("w", encoding="utf-8", newline="")) as handle:
        for i, part in enumerate(parts):
            frame = pd.read_parquet(part)
            if fmt == "csv":
                frame.to_csv(handle, index=False, header=i == 0)
            else:
                frame.to_json(handle, orient="records", lines=True, force_ascii=False)


@contextmanager
def _closing(handle: Any) -> Iterator[Any]:
    """`handle`, closed after the block; after a failure quietly: on a full disk its last flush fails again."""
    try:
        yield handle
    except BaseException:
        with suppress(OSError):  # the first error is the one to report, not the flush that repeats it
            handle.close()
        raise
    handle.close()


def _disk_full(err: OSError) -> bool:
    """Whether `err` means the disk is full (pyarrow words it its own way but keeps the errno)."""
    return err.errno in _FULL_ERRNOS or "No space left" in str(err)


def _full_disk_error(err: OSError, output: Path, parts: Path, chunks: int, assembling: bool) -> PredictError:
    """One line for a full disk under `output`: the folder, its free space, the chunks kept and how to resume."""
    reason = os.strerror(err.errno) if err.errno else str(err).splitlines()[0]
    kept = sum(1 for _ in parts.glob("part-*.parquet"))
    if assembling:
        step, done = f"writing {output.name}", f"All {kept} chunk(s) are labelled and kept in {parts}"
        resume = "it skips the labelling and only writes the output"
    else:
        step, done = "labelling", f"{kept} of {chunks} chunk(s) are finished and kept in {parts}"
        resume = "it skips the finished chunks and labels only the rest"
    return PredictError(
        f"{reason} in {output.parent} while {step}. {free_space(output.parent)} {done}; free some space there and run "
        f"the same command again: {resume}."
    )


def predict_files(
    model_uri: str,
    inputs: list[str | Path],
    output: str | Path,
    opts: Options | None = None,
    restart: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Summary:
    """Label every row of `inputs` into `output` (and `<output>.summary.json`); resumes an interrupted run."""
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
    counts, chunks, with_id, fallback = [], 0, False, Counter[str]()
    for path in paths:
        rows = 0
        for chunk in read_chunks(path, opts, needs_target):
            check_chunk(path, chunk, checked)
            rows, chunks = rows + len(chunk), chunks + 1
            with_id = with_id or opts.id_column in chunk.columns
            if needs_target:
                targets = chunk.columns[opts.target_column] if opts.target is None else [opts.target] * len(chunk)
                fallback += model.fallback_targets(targets)
        if rows == 0:
            raise PredictError(f"{path} holds no rows to label.")
        counts.append(rows)
    parts, assembling = _parts_dir(output), False
    try:
        _prepare_parts(parts, _manifest(model, model_uri, paths, opts, fmt), restart)
        if done := sum(1 for _ in parts.glob("part-*.parquet")):
            log.warning("Resuming %s: %d chunk(s) already labelled in %s are kept.", output, done, parts)  # shown
        written = _label(model, paths, sum(counts), parts, opts, with_id, progress, on_chunk)
        assembling = True
        _assemble(written, output, fmt)
        summary = Summary(
            model_uri, [str(p) for p in paths], str(output), sum(counts), list(opts.kept(needs_target)),
            fallback.total(), dict(fallback.most_common()),
        )  # fmt: skip
        _write_summary(summary, summary_path(output))
    except OSError as err:
        if not _disk_full(err):
            raise
        raise _full_disk_error(err, output, parts, chunks, assembling) from None
    shutil.rmtree(parts)
    return summary


def summary_path(output: Path) -> Path:
    """Where the run's summary goes: `<output>.summary.json` beside the output."""
    return output.with_name(output.name + ".summary.json")


def _write_summary(summary: Summary, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(asdict(summary), indent=1, ensure_ascii=False), encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _label(
    model: LoadedModel,
    paths: list[Path],
    rows: int,
    parts: Path,
    opts: Options,
    with_id: bool,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> list[Path]:
    """Label each chunk not yet in `parts` into its part file; returns every chunk's part file, in order.

    The bar moves with each encoded batch inside a chunk (a share of the chunk's rows), not only when a chunk ends.
    """
    from tqdm.auto import tqdm

    labels: list[str | None] = [str(p) for p in paths] if len(paths) > 1 else [None]
    written: list[Path] = []
    with tqdm(total=rows, unit="row", desc="Predicting", disable=not progress) as bar:
        for f, path in enumerate(paths):
            for c, chunk in enumerate(read_chunks(path, opts, model.needs_target)):
                part, end = _part_path(parts, f, c), bar.n + len(chunk)

                def advance(done: int, total: int, start: int = bar.n, size: int = len(chunk)) -> None:
                    bar.update(max(0, start + size * done // total - bar.n))

                if not part.exists():
                    with encoding_progress(advance):
                        _write_part(_predict_chunk(model, chunk, opts, labels[f], with_id), part)
                    if on_chunk is not None:
                        on_chunk(c)
                written.append(part)
                bar.update(end - bar.n)
    return written
