"""Natural language inference pairs, for training an NLI cross-encoder before it labels stance as entailment.

How NLI fits the schema: `text` is the premise, `target` the hypothesis, `label` entailment / neutral /
contradiction (or entailed / not-entailed with `binary`), so a cross-encoder reads (text, target) exactly as it reads
(statement, target) for stance. `task=nli` (conf/task/nli.yaml) trains one joint model on them. `source` names each
pair's file (e.g. snli_dev, taxinli, cad_train) or Curriculum task, and `group` the unit kept whole when carving
validation and test: pairs that share a premise or a hypothesis (natural), or a premise within a task (curriculum).

Two subsets (`subset`): `natural` (default), 48,567 three-way pairs of human-written text: SNLI dev + test (e-SNLI's
copy), TaxiNLI's MultiNLI pairs, XNLI dev + test (English columns), counterfactually revised SNLI (`all_combined`);
and `curriculum`, the 644,937 diagnostic pairs of the Curriculum benchmark, mostly binary and partly synthetic, read
from its zip files only when asked. Pairs without a gold label (SNLI's "-") are dropped and counted in the report.
"""

from __future__ import annotations

import csv
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from datasets import DatasetDict

from stance.data.registry import reader
from stance.data.schema import (
    DataError,
    Report,
    carve_groups,
    check_labels,
    check_texts,
    corpus_files,
    decoding_error,
    finish_corpus,
    parse_json,
    read_lines,
    read_table,
)

log = logging.getLogger(__name__)

NLI_LABELS = ("entailment", "neutral", "contradiction")
BINARY_LABELS = ("entailed", "not-entailed")
# binary=true: entailment against the rest. Curriculum's binary tasks already use these two names.
TO_BINARY = {
    "entailment": "entailed",
    "neutral": "not-entailed",
    "contradiction": "not-entailed",
    "entailed": "entailed",
    "not-entailed": "not-entailed",
}
NO_GOLD = ("-", "")  # SNLI marks a pair without an annotator majority with "-"
SUBSETS = ("natural", "curriculum")

# The natural subset: source -> (file(s) under nli/, premise, hypothesis and label columns); SNLI has line files.
_SNLI = {"snli_dev": "dev", "snli_test": "test"}
_TSVS = {
    "taxinli": ("taxinli_mnli/taxinli10k.tsv", "prem", "hyp", "label"),
    "xnli_dev": ("xnli_en_from_myXNLI/my.genre.dev.tsv", "sentence1_en", "sentence2_en", "label"),
    "xnli_test": ("xnli_en_from_myXNLI/my.genre.test.tsv", "sentence1_en", "sentence2_en", "label"),
    "cad_train": ("cad_nli/all_combined/train.tsv", "sentence1", "sentence2", "gold_label"),
    "cad_dev": ("cad_nli/all_combined/dev.tsv", "sentence1", "sentence2", "gold_label"),
    "cad_test": ("cad_nli/all_combined/test.tsv", "sentence1", "sentence2", "gold_label"),
}
# The 36 Curriculum tasks, one zip each holding <task>/train.jsonl and <task>/val.jsonl.
CURRICULUM_TASKS = (
    "analytic", "boolean", "comparative", "conditional", "context_align", "control", "coreference", "cosmoqa",
    "counterfactual", "counting", "defeasible", "drop", "entailment_tree", "ester", "hellaswag", "hypernymy",
    "hyponymy", "kg_relations", "lexical", "logiqa", "monotonicity_infer", "negation", "ner", "physicalqa", "puns",
    "quantifier", "sentiment", "socialqa", "spatial", "sprl", "syntactic_alternation", "syntactic_variation",
    "temporal", "transitive", "verbcorner", "verbnet",
)  # fmt: skip
_CURRICULUM_SPLITS = {"train": "train", "test": "val"}  # its val files are the benchmark's evaluation sets


@reader
def nli(
    root: str | None = None,
    subset: str = "natural",
    binary: bool = False,
    curriculum_tasks: Sequence[str] | None = None,
    validation_size: float = 0.05,
    test_size: float = 0.05,
    labels: Sequence[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    seed: int = 13,
    limit: int | None = None,
) -> DatasetDict:
    """NLI pairs: text = premise, target = hypothesis; `subset` natural (default) or curriculum.

    natural: the 48,567 pairs pooled (none of them is a test set of this project), then `test_size` and
    `validation_size` (of the rest) carved as whole groups of pairs linked by a shared premise or hypothesis, so no
    premise or hypothesis is in two splits (a counterfactual revision shares one with its original). curriculum: train
    = its train files minus `validation_size` of their premises (per task), test = its val files (the benchmark's
    evaluation sets); `curriculum_tasks` reads only those tasks (null: all 36). Labels entailment / neutral /
    contradiction; `binary=true` maps them to entailed / not-entailed (entailment vs. the rest), as Curriculum's 29
    binary tasks are labelled; with `binary=false` the curriculum keeps only its three-way rows (about 68k, its 7
    three-way tasks and monotonicity_infer's train file) and counts the others as `binary_label/<split>`. Dropped and
    counted too: pairs without a gold label (`no_gold_label/<split>`, none in these copies) and Curriculum pairs with
    an empty premise or hypothesis (`empty_text/<split>`: 4 in hyponymy's and logiqa's val files). `label_map`
    renames the labels after `binary`.
    """
    if subset not in SUBSETS:
        raise DataError(f"nli: subset must be one of {list(SUBSETS)}, got {subset!r}.")
    for name, size in {"validation_size": validation_size, "test_size": test_size}.items():
        if not 0 <= size < 1:
            raise DataError(f"nli: {name} must be a fraction in [0, 1), got {size}.")
    report = Report()
    if subset == "natural":
        if curriculum_tasks:
            raise DataError("nli: curriculum_tasks applies to subset=curriculum only; set data.subset=curriculum.")
        pool = _natural(root)
        splits = _carve({"train": pool}, "test", test_size, seed)
    else:
        splits = _curriculum(root, curriculum_tasks, report)
    splits = _carve(splits, "validation", validation_size, seed)
    splits = {split: splits[split] for split in ("train", "validation", "test") if split in splits}
    for split, frame in splits.items():
        missing = frame["label"].isin(NO_GOLD)
        report.dropped[f"no_gold_label/{split}"] = int(missing.sum())
        splits[split] = frame[~missing]
    if subset == "curriculum" and not binary:
        for split, frame in splits.items():
            two_way = frame["label"].isin(BINARY_LABELS)
            report.dropped[f"binary_label/{split}"] = int(two_way.sum())
            splits[split] = frame[~two_way]
        log.info("nli: binary=false kept the curriculum's three-way rows; binary=true keeps the others too.")
    if any(report.dropped.values()):
        log.info("nli: dropped rows: %s", {key: n for key, n in report.dropped.items() if n})
    base = TO_BINARY if binary else {label: label for label in NLI_LABELS}
    rename = {str(key): str(value) for key, value in (label_map or {}).items()}
    mapping = {label: rename.get(name, name) for label, name in base.items()}
    raw = list(BINARY_LABELS if binary else NLI_LABELS)
    return finish_corpus(splits, raw, labels, mapping, limit, seed, report)


def _carve(splits: dict[str, pd.DataFrame], name: str, size: float, seed: int) -> dict[str, pd.DataFrame]:
    """Split `size` of train's groups off as split `name` (nothing for size 0)."""
    if not size:
        return splits
    fit, carved = carve_groups(splits["train"], size, seed)
    return {**splits, "train": fit, name: carved}


# --- natural: SNLI, TaxiNLI (MultiNLI), XNLI, counterfactual SNLI --------------------------------------------------


def _natural(root: str | None) -> pd.DataFrame:
    """The natural pairs pooled, in file order, with `group` = the pairs linked by a shared premise or hypothesis."""
    snli = [f"esnli_snli_dev_test/{kind}.{part}" for part in _SNLI.values() for kind in ("s1", "s2", "labels")]
    paths = iter(corpus_files(root, "nli", [*snli, *(spec[0] for spec in _TSVS.values())]))
    frames = [_read_snli(next(paths), next(paths), next(paths), source) for source in _SNLI]
    frames += [_read_tsv(next(paths), *spec[1:], source) for source, spec in _TSVS.items()]
    pool = pd.concat(frames, ignore_index=True)
    pool["group"] = _linked(pool["text"], pool["target"])
    return pool


def _read_snli(premises: Path, hypotheses: Path, golds: Path, source: str) -> pd.DataFrame:
    """e-SNLI's parallel line files: premise, hypothesis, label on the same line of three files."""
    columns = {"text": read_lines(premises), "target": read_lines(hypotheses), "label": read_lines(golds)}
    lengths = {
        path.name: len(lines) for path, lines in zip((premises, hypotheses, golds), columns.values(), strict=True)
    }
    if len(set(lengths.values())) > 1:
        raise DataError(f"{premises.parent}: {lengths} lines; the three files must pair up line by line.")
    frame = pd.DataFrame(columns).assign(source=source)
    frame["label"] = frame["label"].str.strip()
    check_labels(frame, "label", [*NLI_LABELS, *NO_GOLD], golds, first_row=1)
    return _pair(frame, premises, hypotheses, first_row=1)


def _read_tsv(path: Path, premise: str, hypothesis: str, label: str, source: str) -> pd.DataFrame:
    try:  # no quoting: texts contain `"` as ordinary characters
        raw = read_table(path, [premise, hypothesis, label], encoding="utf-8", sep="\t", quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as err:
        raise DataError(
            f"{path}: {str(err).strip()}. A tab inside a text splits its line: restore the file from its source."
        ) from None
    check_labels(raw, label, [*NLI_LABELS, *NO_GOLD], path)
    frame = pd.DataFrame({"text": raw[premise], "target": raw[hypothesis], "label": raw[label], "source": source})
    return _pair(frame, path, path, first_row=2)


def _pair(frame: pd.DataFrame, premises: Path, hypotheses: Path, first_row: int) -> pd.DataFrame:
    """Strip both sides (SNLI's lines end in a space) and raise on an empty premise or hypothesis."""
    frame["text"], frame["target"] = frame["text"].str.strip(), frame["target"].str.strip()
    check_texts(frame, premises, first_row)
    check_texts(frame.assign(text=frame["target"]), hypotheses, first_row)
    return frame


def _linked(premises: pd.Series, hypotheses: pd.Series) -> list[str]:
    """A group id per pair: pairs sharing a premise or a hypothesis (lowercased, spaces collapsed) are one group."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    keys = [("p:" + p, "h:" + h) for p, h in zip(_normalized(premises), _normalized(hypotheses), strict=True)]
    for p, h in keys:
        a, b = root(p), root(h)
        if a != b:
            parent[a] = b
    ids: dict[str, str] = {}
    return [ids.setdefault(root(p), f"g{len(ids)}") for p, _ in keys]


def _normalized(texts: pd.Series) -> pd.Series:
    return texts.str.lower().str.split().str.join(" ")


# --- curriculum: 36 diagnostic tasks, zipped JSONL -----------------------------------------------------------------


def _curriculum(root: str | None, tasks: Sequence[str] | None, report: Report) -> dict[str, pd.DataFrame]:
    """Train and test (its val files) of the chosen tasks; `group` = task and premise (lowercased), for carving."""
    chosen = list(CURRICULUM_TASKS) if not tasks else [str(task) for task in tasks]
    unknown = [task for task in chosen if task not in CURRICULUM_TASKS]
    if unknown:
        raise DataError(f"nli: unknown curriculum task(s) {unknown}; choose from {list(CURRICULUM_TASKS)}.")
    paths = corpus_files(root, "nli", [f"curriculum_benchmark/{task}.zip" for task in chosen])
    parts: dict[str, list[pd.DataFrame]] = {split: [] for split in _CURRICULUM_SPLITS}
    empty: dict[str, list[str]] = {split: [] for split in _CURRICULUM_SPLITS}
    for task, path in zip(chosen, paths, strict=True):
        with zipfile.ZipFile(path) as archive:
            for split, part in _CURRICULUM_SPLITS.items():
                frame, where = _read_jsonl(archive, path, f"{task}/{part}.jsonl", task)
                parts[split].append(frame)
                empty[split] += where
    for split, where in empty.items():
        report.dropped[f"empty_text/{split}"] = len(where)
        if where:
            message = (
                f"nli curriculum {split}: dropped {len(where)} pair(s) with an empty premise or hypothesis, "
                f"e.g. {where[0]}."
            )
            log.warning(message)
            report.warnings.append(message)
    splits = {split: pd.concat(frames, ignore_index=True) for split, frames in parts.items()}
    train = splits["train"]
    codes, _ = pd.factorize(train["source"] + "|" + train["text"].str.lower())
    splits["train"] = train.assign(group=[f"g{code}" for code in codes])
    return splits


def _read_jsonl(archive: zipfile.ZipFile, path: Path, member: str, task: str) -> tuple[pd.DataFrame, list[str]]:
    """One JSONL member of a task's zip (premise, hypothesis, gold_label per line), checked with file and line.

    Returns the pairs, and where the pairs with an empty premise or hypothesis were (they are left out).
    """
    where = f"{path}:{member}"
    located = Path(where)
    if member not in archive.namelist():
        found = [name for name in archive.namelist() if not name.startswith("__MACOSX") and name.endswith(".jsonl")]
        raise DataError(f"{path}: has no {member} (it has {found}); restore the file from its source.")
    try:
        text = archive.read(member).decode("utf-8")
    except UnicodeDecodeError as err:
        raise decoding_error(located, err, "utf-8") from None
    allowed = {*NLI_LABELS, *BINARY_LABELS, *NO_GOLD}
    rows, empty = [], []
    for line, content in enumerate(text.split("\n"), start=1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError:
            record = parse_json(content, located, line)  # raises, naming file, line and column
        if not isinstance(record, dict) or not {"premise", "hypothesis"} <= set(record):
            raise DataError(f"{where}, line {line}: expected a record with premise, hypothesis and gold_label.")
        gold = "" if record.get("gold_label") is None else record["gold_label"]
        if gold not in allowed:
            raise DataError(
                f"{where}, line {line}, field 'gold_label': unknown label {gold!r}; expected one of "
                f"{[*NLI_LABELS, *BINARY_LABELS]} (or none)."
            )
        premise, hypothesis = record["premise"], record["hypothesis"]
        if not isinstance(premise, str) or not isinstance(hypothesis, str):
            raise DataError(f"{where}, line {line}: premise and hypothesis must be strings.")
        premise, hypothesis = premise.strip(), hypothesis.strip()
        if premise and hypothesis:
            rows.append((premise, hypothesis, gold))
        else:
            empty.append(f"{where}, line {line}")
    frame = pd.DataFrame(rows, columns=["text", "target", "label"])
    return frame.assign(source=task), empty
