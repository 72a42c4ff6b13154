"""The readers of issue 28 on the real files: UKP sentential argument mining (in-topic and cross-topic folds), ARC
stance (unrelated pairs dropped or NONE) and NLI pairs (natural and Curriculum): counts as in SOURCE.md, errors."""

from __future__ import annotations

import functools
import json
import shutil
import zipfile
from collections import Counter

import pandas as pd
import pytest
from hydra.utils import instantiate
from typer.testing import CliRunner

from stance.cli import app
from stance.config import build
from stance.data.corpora import nli as nli_module
from stance.data.corpora.arc import arc_stance
from stance.data.corpora.nli import nli
from stance.data.corpora.ukp import UKP_TOPICS, ukp_sentential_argmin
from stance.data.schema import DataError, reader_report, to_frame, validate
from tests.conftest import compose


@functools.cache
def load_data(name: str, *overrides: str):
    """A corpus's DatasetDict as training builds it (its conf/data config); cached across tests."""
    return instantiate(compose(f"data={name}", *overrides).data)


def load(name: str, *overrides: str) -> dict[str, pd.DataFrame]:
    return {split: to_frame(ds) for split, ds in load_data(name, *overrides).items()}


def counts(frame: pd.DataFrame, column: str = "label") -> dict[str, int]:
    return dict(Counter(frame[column]))


def sizes(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    return {split: len(frame) for split, frame in frames.items()}


def normalized(texts: pd.Series) -> set[str]:
    return set(texts.str.lower().str.split().str.join(" "))


def writable_copy(source, destination, **kwargs):
    shutil.copytree(source, destination, **kwargs)
    for path in [destination, *destination.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination


# --- UKP sentential argument mining ---------------------------------------------------------------------------------

# SOURCE.md per topic: rows and its official train / val / test rows.
UKP_SPLITS = {
    "abortion": (2827, 315, 787),
    "cloning": (2187, 243, 609),
    "death penalty": (2627, 293, 731),
    "gun control": (2404, 268, 669),
    "marijuana legalization": (1780, 198, 497),
    "minimum wage": (1776, 198, 497),
    "nuclear energy": (2572, 286, 717),
    "school uniforms": (2163, 241, 602),
}


def test_ukp_in_topic_split_counts_and_mapping(data_root):
    frames = load("ukp_sentential_argmin")
    # SOURCE.md: 25,487 = train 18,336 / val 2,042 / test 5,109; AGAINST 6,192, FAVOR 4,943, NONE 14,352.
    assert sizes(frames) == {"train": 18336, "validation": 2042, "test": 5109}
    everything = pd.concat(frames.values(), ignore_index=True)
    assert counts(everything) == {"AGAINST": 6192, "FAVOR": 4943, "NONE": 14352}
    assert counts(everything[everything["target"] == "death penalty"]) == {"AGAINST": 1111, "FAVOR": 457, "NONE": 2083}
    for split, frame in frames.items():
        index = ["train", "validation", "test"].index(split)
        assert counts(frame, "target") == {topic: rows[index] for topic, rows in UKP_SPLITS.items()}
    assert set(zip(everything["original_label"], everything["label"], strict=True)) == {
        ("Argument_against", "AGAINST"),
        ("Argument_for", "FAVOR"),
        ("NoArgument", "NONE"),
    }
    assert everything["id"].str.fullmatch(r"[0-9a-f]{32}").all() and (everything["group"] == everything["target"]).all()
    assert everything["text"].str.contains('"', regex=False).any()  # read with QUOTE_NONE: quotes kept as text


@pytest.mark.parametrize("topic", list(UKP_TOPICS))
def test_ukp_cross_topic_fold(data_root, topic):
    name = UKP_TOPICS[topic]
    data = ukp_sentential_argmin(root=str(data_root), held_out=topic, label_map={})  # file stem, e.g. death_penalty
    frames = {split: to_frame(ds) for split, ds in data.items()}
    others = set(UKP_TOPICS.values()) - {name}
    assert set(frames["train"]["target"]) == set(frames["validation"]["target"]) == others
    assert set(frames["test"]["target"]) == {name}
    train, val, test = UKP_SPLITS[name]
    assert sizes(frames) == {"train": 18336 - train, "validation": 2042 - val, "test": test}


def test_ukp_held_out_rows_all_and_topic_spelling(data_root):
    frames = load("ukp_sentential_argmin", "data.held_out=death penalty", "data.held_out_rows=all")
    assert sizes(frames) == {"train": 18336 - 2627, "validation": 2042 - 293, "test": 3651}
    assert counts(frames["test"]) == {"AGAINST": 1111, "FAVOR": 457, "NONE": 2083}
    assert counts(frames["test"], "target") == {"death penalty": 3651}


def test_ukp_validation_topic_is_unseen_in_training_and_test(data_root):
    frames = load("ukp_sentential_argmin", "data.held_out=abortion", "data.validation_topic=cloning")
    six = set(UKP_TOPICS.values()) - {"abortion", "cloning"}
    assert set(frames["train"]["target"]) == six
    assert counts(frames["validation"], "target") == {"cloning": 3039}  # all its rows: train, val and test
    assert counts(frames["validation"]) == {"AGAINST": 839, "FAVOR": 706, "NONE": 1494}
    assert counts(frames["test"], "target") == {"abortion": 787}
    assert sizes(frames) == {"train": 18336 - 2827 - 2187, "validation": 3039, "test": 787}
    # `next`: the topic after the held-out one, the last wrapping to the first
    frames = load("ukp_sentential_argmin", "data.held_out=school_uniforms", "data.validation_topic=next")
    assert (counts(frames["validation"], "target"), counts(frames["test"], "target")) == (
        {"abortion": 3929},
        {"school uniforms": 602},
    )


def test_ukp_validation_topic_needs_another_held_out_topic(data_root):
    with pytest.raises(DataError, match="validation_topic='cloning' needs a different data.held_out topic"):
        ukp_sentential_argmin(root=str(data_root), validation_topic="cloning")
    with pytest.raises(DataError, match="validation_topic='next' needs a different data.held_out topic"):
        ukp_sentential_argmin(root=str(data_root), validation_topic="next")
    with pytest.raises(DataError, match=r"validation_topic='Cloning' needs a different .*held_out='cloning'"):
        ukp_sentential_argmin(root=str(data_root), held_out="cloning", validation_topic="Cloning")
    with pytest.raises(DataError, match=r"validation_topic='euthanasia' is not one of .*data.validation_topic="):
        ukp_sentential_argmin(root=str(data_root), held_out="cloning", validation_topic="euthanasia")


def test_ukp_unknown_topic_and_option(data_root):
    with pytest.raises(DataError, match="held_out='euthanasia' is not one of its eight topics") as err:
        ukp_sentential_argmin(root=str(data_root), held_out="euthanasia")
    assert all(topic in str(err.value) for topic in UKP_TOPICS.values())
    with pytest.raises(DataError, match=r"held_out_rows must be one of \['test', 'all'\]"):
        ukp_sentential_argmin(root=str(data_root), held_out="abortion", held_out_rows="val")


def test_ukp_bad_rows_name_file_line_and_column(tmp_path, data_root):
    folder = writable_copy(data_root / "ukp_sentential_argmin", tmp_path / "ukp_sentential_argmin")
    path = folder / "cloning.tsv"
    original = path.read_text(encoding="utf-8")
    lines = original.split("\n")
    lines[3] = (
        lines[3].replace("\tNoArgument\t", "\tArgument_maybe\t").replace("\tArgument_for\t", "\tArgument_maybe\t")
    )
    lines[3] = lines[3].replace("\tArgument_against\t", "\tArgument_maybe\t")
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"cloning.tsv, line 4, column 'annotation': unknown label 'Argument_maybe'"):
        ukp_sentential_argmin(root=str(tmp_path))
    lines = original.split("\n")
    fields = lines[5].split("\t")
    fields[4] = fields[4] + " edited"
    lines[5] = "\t".join(fields)
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"cloning.tsv, line 6, column 'sentence': its MD5 .* is not the row's"):
        ukp_sentential_argmin(root=str(tmp_path))
    lines[5] = "\t".join([*fields[:4], "a\ttab", *fields[5:]])
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"cloning.tsv: .*Expected 7 fields in line 6, saw 8.* 7 tab-separated columns"):
        ukp_sentential_argmin(root=str(tmp_path))


# --- ARC stance -----------------------------------------------------------------------------------------------------


def test_arc_drops_unrelated_and_counts_them(data_root):
    data = load_data("arc_stance")
    frames = {split: to_frame(ds) for split, ds in data.items()}
    # SOURCE.md: stance rows train agree 1,257 / disagree 1,402 / discuss 904; test 334 / 372 / 179.
    train = pd.concat([frames["train"], frames["validation"]], ignore_index=True)
    assert counts(train, "original_label") == {"agree": 1257, "disagree": 1402, "discuss": 904}
    assert counts(frames["test"]) == {"FAVOR": 334, "AGAINST": 372, "NONE": 179}
    assert data["test"].features["label"].names == ["AGAINST", "FAVOR", "NONE"]
    # Unrelated pairs: train 10,670 (train + validation), test 2,674, counted in the report.
    dropped = data.report.dropped
    assert dropped["unrelated/train"] + dropped["unrelated/validation"] == 10670 and dropped["unrelated/test"] == 2674
    _, report = validate(frames, report=reader_report(data))
    assert report.dropped == dropped  # training logs them as data/dropped/...
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])  # whole comments
    assert not set(train["group"]) & set(frames["test"]["group"])  # no comment with related pairs in both
    # The 168 claims of the test stance rows all have train pairs, but one only unrelated ones.
    assert frames["test"]["target"].nunique() == 168 and len(set(frames["test"]["target"]) - set(train["target"])) == 1
    everything = load("arc_stance", "data.unrelated=none")
    assert set(frames["test"]["target"]) <= set(everything["train"]["target"]) | set(everything["validation"]["target"])


def test_arc_unrelated_as_none_keeps_every_pair(data_root):
    frames = load("arc_stance", "data.unrelated=none")
    # SOURCE.md: train 14,233 pairs, test 3,559.
    assert len(frames["train"]) + len(frames["validation"]) == 14233 and len(frames["test"]) == 3559
    assert counts(frames["test"]) == {"FAVOR": 334, "AGAINST": 372, "NONE": 179 + 2674}
    assert counts(frames["test"], "original_label")["unrelated"] == 2674
    # Validation is carved before `unrelated` applies: the same comments either way.
    dropped = load("arc_stance")
    assert set(dropped["validation"]["group"]) <= set(frames["validation"]["group"])
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])


def test_arc_bad_options_and_labels(tmp_path, data_root):
    with pytest.raises(DataError, match=r"unrelated must be one of \['drop', 'none'\], got 'keep'"):
        arc_stance(root=str(data_root), unrelated="keep")
    with pytest.raises(DataError, match="body_sentences must be a positive number"):
        arc_stance(root=str(data_root), body_sentences=0)
    folder = writable_copy(data_root / "arc_stance", tmp_path / "arc_stance")
    path = folder / "arc_stances_test.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].rsplit(",", 1)[0] + ",refutes"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"arc_stances_test.csv, line 3, column 'Stance': unknown label 'refutes'"):
        arc_stance(root=str(tmp_path))


# --- NLI ------------------------------------------------------------------------------------------------------------

# SOURCE.md, entailment / neutral / contradiction per file: 48,567 pairs.
NLI_SOURCES = {
    "snli_dev": (3329, 3235, 3278),
    "snli_test": (3368, 3219, 3237),
    "taxinli": (3495, 3201, 3375),
    "xnli_dev": (830, 830, 830),
    "xnli_test": (1670, 1670, 1670),
    "cad_train": (2770, 2778, 2782),
    "cad_dev": (326, 325, 349),
    "cad_test": (654, 677, 669),
}
NLI_LABELS = ["entailment", "neutral", "contradiction"]


def test_nli_natural_counts_and_group_disjoint_splits(data_root):
    data = load_data("nli")
    frames = {split: to_frame(ds) for split, ds in data.items()}
    everything = pd.concat(frames.values(), ignore_index=True)
    assert len(everything) == 48567 and data["train"].features["label"].names == NLI_LABELS
    for source, expected in NLI_SOURCES.items():
        assert counts(everything[everything["source"] == source]) == dict(zip(NLI_LABELS, expected, strict=True))
    # 5% of the linked groups as test, 5% of the rest as validation.
    assert 0.04 < len(frames["test"]) / 48567 < 0.06 and 0.04 < len(frames["validation"]) / 48567 < 0.06
    assert data.report.dropped == {f"no_gold_label/{split}": 0 for split in ("train", "validation", "test")}
    for side in ("text", "target"):  # no premise and no hypothesis in two splits
        seen = [normalized(frame[side]) for frame in frames.values()]
        assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]


def test_nli_binary_and_task(data_root):
    data = load_data("nli", "data.binary=true")
    frames = {split: to_frame(ds) for split, ds in data.items()}
    assert data["train"].features["label"].names == ["entailed", "not-entailed"]
    everything = pd.concat(frames.values(), ignore_index=True)
    entailment = sum(labels[0] for labels in NLI_SOURCES.values())
    assert counts(everything) == {"entailed": entailment, "not-entailed": 48567 - entailment}
    assert set(zip(everything["original_label"], everything["label"], strict=True)) == {
        ("entailment", "entailed"),
        ("neutral", "not-entailed"),
        ("contradiction", "not-entailed"),
    }
    cfg = compose("data=nli", "task=nli")
    assert cfg.task.name == "nli" and cfg.per_target is False and cfg.data.subset == "natural"
    prepared = build(cfg.task).prepare(frames["test"].head(3))
    assert prepared["text"].tolist() == frames["test"]["text"].head(3).tolist()  # premise
    assert prepared["target"].tolist() == frames["test"]["target"].head(3).tolist()  # hypothesis


def test_nli_natural_never_opens_the_curriculum(data_root, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the natural subset read a Curriculum zip")

    monkeypatch.setattr(nli_module.zipfile, "ZipFile", refuse)
    assert nli(root=str(data_root), limit=5)["train"].num_rows == 5


@pytest.fixture
def natural_copy(tmp_path, data_root):
    """The natural NLI files only, writable."""
    ignore = shutil.ignore_patterns("curriculum_benchmark", "preproc1_*", "original", "revised_*")
    return writable_copy(data_root / "nli", tmp_path / "nli", ignore=ignore)


def test_nli_rows_without_gold_label_are_dropped_and_counted(natural_copy):
    labels = natural_copy / "esnli_snli_dev_test" / "labels.dev"
    lines = labels.read_text(encoding="utf-8").split("\n")
    lines[:5] = ["-"] * 5
    labels.write_text("\n".join(lines), encoding="utf-8")
    cad = natural_copy / "cad_nli" / "all_combined" / "dev.tsv"
    rows = cad.read_text(encoding="utf-8").split("\n")
    rows[1] = rows[1].rsplit("\t", 1)[0] + "\t-"
    cad.write_text("\n".join(rows), encoding="utf-8")
    data = nli(root=str(natural_copy.parent))
    dropped = data.report.dropped
    assert set(dropped) == {f"no_gold_label/{split}" for split in ("train", "validation", "test")}
    assert sum(dropped.values()) == 6 and sum(ds.num_rows for ds in data.values()) == 48567 - 6


def test_nli_unknown_label_and_unpaired_lines_name_the_file(natural_copy):
    xnli = natural_copy / "xnli_en_from_myXNLI" / "my.genre.dev.tsv"
    rows = xnli.read_text(encoding="utf-8").split("\n")
    rows[4] = rows[4].replace("\tneutral\t", "\tmaybe\t", 1).replace("\tentailment\t", "\tmaybe\t", 1)
    rows[4] = rows[4].replace("\tcontradiction\t", "\tmaybe\t", 1)
    xnli.write_text("\n".join(rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"my.genre.dev.tsv, line 5, column 'label': unknown label 'maybe'"):
        nli(root=str(natural_copy.parent))
    hypotheses = natural_copy / "esnli_snli_dev_test" / "s2.test"
    hypotheses.write_text(hypotheses.read_text(encoding="utf-8") + "One more .\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"'s2.test': 9825.* must pair up line by line"):
        nli(root=str(natural_copy.parent))


def test_nli_curriculum_tasks_binary_or_three_way(data_root):
    tasks = "data.curriculum_tasks=[analytic,boolean,logiqa]"
    # analytic 3,260 train / 922 val and logiqa 14,752 / 2,604 are binary, boolean 3,000 / 1,000 three-way;
    # one logiqa val pair has an empty hypothesis.
    three = load_data("nli", "data.subset=curriculum", tasks)
    frames = {split: to_frame(ds) for split, ds in three.items()}
    assert three["train"].features["label"].names == NLI_LABELS
    assert len(frames["train"]) + len(frames["validation"]) == 3000 and len(frames["test"]) == 1000
    assert counts(frames["test"]) == {"entailment": 274, "neutral": 317, "contradiction": 409}
    dropped = three.report.dropped
    assert dropped["binary_label/train"] + dropped["binary_label/validation"] == 3260 + 14752
    assert dropped["binary_label/test"] == 922 + 2604 - 1 and dropped["empty_text/test"] == 1
    assert "logiqa.zip:logiqa/val.jsonl, line 1312" in three.report.warnings[0]
    binary = load_data("nli", "data.subset=curriculum", tasks, "data.binary=true")
    frames = {split: to_frame(ds) for split, ds in binary.items()}
    assert binary["train"].features["label"].names == ["entailed", "not-entailed"]
    assert len(frames["train"]) + len(frames["validation"]) == 3260 + 3000 + 14752
    assert counts(frames["test"], "source") == {"analytic": 922, "boolean": 1000, "logiqa": 2603}
    assert counts(frames["test"][frames["test"]["source"] == "boolean"]) == {"entailed": 274, "not-entailed": 726}
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])  # whole premises
    with pytest.raises(DataError, match="unknown curriculum task.*'nope'.*'verbcorner'"):
        nli(root=str(data_root), subset="curriculum", curriculum_tasks=["nope"])
    with pytest.raises(DataError, match="curriculum_tasks applies to subset=curriculum only"):
        nli(root=str(data_root), curriculum_tasks=["boolean"])
    with pytest.raises(DataError, match=r"subset must be one of \['natural', 'curriculum'\]"):
        nli(root=str(data_root), subset="all")


@pytest.mark.slow
def test_nli_whole_curriculum(data_root):
    data = nli(root=str(data_root), subset="curriculum", binary=True)
    # SOURCE.md: 644,937 pairs (entailed 284,051 + not-entailed 292,672 in the binary tasks, about 68k three-way);
    # 496,790 in the train files, 148,147 in the val files; 4 val pairs have an empty premise or hypothesis.
    assert data["train"].num_rows + data["validation"].num_rows == 496790 and data["test"].num_rows == 148147 - 4
    original = Counter(label for ds in data.values() for label in ds["original_label"])
    assert original["entailed"] + original["not-entailed"] == 284051 + 292672 - 4
    assert original["entailment"] + original["neutral"] + original["contradiction"] == 68214
    dropped = data.report.dropped
    assert dropped == {
        "empty_text/train": 0,
        "empty_text/test": 4,
        "no_gold_label/train": 0,
        "no_gold_label/validation": 0,
        "no_gold_label/test": 0,
    }


def test_nli_curriculum_bad_records_name_member_and_line(tmp_path):
    folder = tmp_path / "nli" / "curriculum_benchmark"
    folder.mkdir(parents=True)
    good = {"premise": "A man sleeps.", "hypothesis": "A man is asleep.", "gold_label": "entailed"}

    def archive(*train_lines: str) -> None:
        with zipfile.ZipFile(folder / "verbnet.zip", "w") as zipped:
            zipped.writestr("verbnet/train.jsonl", "\n".join(train_lines))
            zipped.writestr("verbnet/val.jsonl", json.dumps(good))

    archive(json.dumps(good), json.dumps(good | {"gold_label": "yes"}))
    with pytest.raises(DataError, match=r"verbnet.zip:verbnet/train.jsonl, line 2, field 'gold_label': unknown label"):
        nli(root=str(tmp_path), subset="curriculum", curriculum_tasks=["verbnet"], validation_size=0)
    archive(json.dumps(good), "{not json")
    with pytest.raises(DataError, match=r"verbnet.zip:verbnet/train.jsonl, line 2, column 2: invalid JSON"):
        nli(root=str(tmp_path), subset="curriculum", curriculum_tasks=["verbnet"], validation_size=0)
    archive(json.dumps(good), json.dumps(good | {"gold_label": "-"}), json.dumps(good | {"gold_label": None}))
    data = nli(root=str(tmp_path), subset="curriculum", curriculum_tasks=["verbnet"], binary=True, validation_size=0)
    assert data["train"].num_rows == 1 and data.report.dropped["no_gold_label/train"] == 2


@pytest.mark.parametrize("name", ["ukp_sentential_argmin", "arc_stance", "nli"])
def test_describe_new_corpora(data_root, name):
    result = CliRunner().invoke(app, ["data", "describe", name, "--top", "3"])
    assert result.exit_code == 0, result.output
    assert f"{name} (" in result.stdout and "split x label" in result.stdout and "text length" in result.stdout
