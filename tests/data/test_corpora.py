"""Every corpus reader on the real files, built from its data config: counts as in SOURCE.md, mappings, errors."""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
from collections import Counter

import pandas as pd
import pytest
from hydra.utils import get_method, instantiate

from stance.data.corpora.clef import clef2019_checkthat_task1
from stance.data.corpora.fnc import fnc1
from stance.data.corpora.ibm import ibm_argkp2021, ibm_argq_30k, ibm_claim_stance
from stance.data.corpora.newsmtsc import newsmtsc
from stance.data.corpora.pstance import pstance
from stance.data.corpora.semeval import tweeteval_stance
from stance.data.corpora.vast import vast_devtest
from stance.data.registry import CORPUS_KEY, corpora
from stance.data.schema import DataError, reader_report, to_frame, validate
from stance.evaluation.official import fnc_score
from tests.conftest import compose
from tests.helpers import CONF


@functools.cache
def load(name: str, *overrides: str) -> dict[str, pd.DataFrame]:
    """A corpus as training builds it (its conf/data config), as one frame per split; cached across tests."""
    cfg = compose(f"data={name}", *overrides)
    return {split: to_frame(ds) for split, ds in instantiate(cfg.data).items()}


def counts(frame: pd.DataFrame, column: str = "label") -> dict[str, int]:
    return dict(Counter(frame[column]))


def train_and_validation(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([frames["train"], frames["validation"]], ignore_index=True)


def normalized(frame: pd.DataFrame) -> set[str]:
    """Texts lowercased with whitespace collapsed, as SOURCE.md compares them."""
    return set(frame["text"].str.lower().str.split().str.join(" "))


def sizes(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    return {split: len(frame) for split, frame in frames.items()}


# The data configs that are not one corpus under the data root: own files, a Hub dataset, a mix of corpora.
NOT_CORPORA = {"files", "hub", "stance_mix"}


def test_every_corpus_config_declares_a_reader_that_takes_its_keys():
    assert set(corpora()) == {p.stem for p in (CONF / "data").glob("*.yaml")} - NOT_CORPORA
    assert {c.task for c in corpora().values()} == {"stance", "topic", "claim", "sentiment", "nli"}
    for name, corpus in corpora().items():
        node = compose(f"data={name}").data
        assert corpus.target in (None, node._target_)  # None: the reader of the config it extends (e.g. files)
        read = get_method(node._target_)
        # `instantiate` passes every key, the `corpus` node too: the reader must take them all (none left to a
        # default by mistake), without reading anything here.
        keys = {key: node[key] for key in node if key != "_target_"}
        inspect.signature(read).bind(**{k: v for k, v in keys.items() if k != CORPUS_KEY})
        assert CORPUS_KEY in keys and hasattr(read, "__wrapped__")  # @reader: takes the `corpus` node, ignores it


def test_tweeteval_per_target_counts_and_mapping(data_root):
    frames = load("tweeteval_stance")
    # SOURCE.md, rows (against/favor/none) per target; here two of the five targets and the totals.
    assert {split: len(f) for split, f in frames.items()} == {"train": 2620, "validation": 294, "test": 1249}
    hillary = {split: counts(f[f["target"] == "Hillary Clinton"]) for split, f in frames.items()}
    assert hillary["train"] == {"AGAINST": 354, "FAVOR": 106, "NONE": 160}
    assert hillary["test"] == {"AGAINST": 172, "FAVOR": 45, "NONE": 78}
    climate = frames["validation"][frames["validation"]["target"] == "Climate Change is a Real Concern"]
    assert counts(climate) == {"AGAINST": 2, "FAVOR": 21, "NONE": 17}
    assert counts(frames["test"]) == {"AGAINST": 715, "FAVOR": 304, "NONE": 230}  # = SemEval test A
    test = frames["test"]
    assert set(zip(test["original_label"], test["label"], strict=True)) == {
        ("against", "AGAINST"),
        ("favor", "FAVOR"),
        ("none", "NONE"),
    }
    assert not test["text"].str.contains("#SemST").any()


def test_perspectrum_pairs_topics_and_mapping(data_root):
    frames = load("perspectrum")
    # SOURCE.md pairs: train 3,599 S / 3,379 U; dev 1,047 / 1,024; test 1,471 / 1,302.
    assert counts(frames["train"]) == {"FAVOR": 3599, "AGAINST": 3379}
    assert counts(frames["validation"]) == {"FAVOR": 1047, "AGAINST": 1024}
    assert counts(frames["test"]) == {"FAVOR": 1471, "AGAINST": 1302}
    assert [f["group"].nunique() for f in frames.values()] == [541, 139, 227]
    claims = pd.concat(frames.values()).drop_duplicates("group")
    assert len(claims) == 907 and (claims["topic"] == "").sum() == 121
    per_topic = Counter(t for topics in claims["topic"] for t in topics.split("|") if t)
    assert per_topic["politics"] == 285 and per_topic["digital_freedom"] == 27 and len(per_topic) == 18
    assert set(zip(claims["original_label"], claims["label"], strict=True)) <= {
        ("SUPPORT", "FAVOR"),
        ("UNDERMINE", "AGAINST"),
    }


def test_ibm_counts_and_topic_disjoint_validation(data_root):
    frames = load("ibm_claim_stance")
    # SOURCE.md: train 1,039 (625 PRO / 414 CON, 25 topics), test 1,355 (700 / 655, 30 topics).
    assert counts(train_and_validation(frames)) == {"FAVOR": 625, "AGAINST": 414}
    assert counts(frames["test"]) == {"FAVOR": 700, "AGAINST": 655}
    assert counts(frames["test"], "original_label") == {"PRO": 700, "CON": 655}
    topics = {split: set(f["group"]) for split, f in frames.items()}
    assert len(topics["train"] | topics["validation"]) == 25 and len(topics["test"]) == 30
    assert len(topics["validation"]) == 5  # 20% of the train topics
    assert not topics["train"] & topics["validation"] and not topics["test"] & (topics["train"] | topics["validation"])
    assert frames["test"]["target"].str.startswith("This house").all()


def test_emergent_counts_mapping_and_claim_disjoint_validation(data_root):
    frames = load("emergent")
    # SOURCE.md: train 2,071 = 992 for / 775 observing / 304 against (240 claims); test 524 = 246 / 187 / 91 (60).
    assert counts(train_and_validation(frames), "original_label") == {"for": 992, "observing": 775, "against": 304}
    assert counts(frames["test"]) == {"FAVOR": 246, "NONE": 187, "AGAINST": 91}
    assert train_and_validation(frames)["group"].nunique() == 240 and frames["test"]["group"].nunique() == 60
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])


def test_fnc1_counts_and_body_disjoint_validation(data_root):
    frames = load("fnc1")
    # SOURCE.md: train 49,972 and competition test 25,413 pairs, duplicates kept.
    train = train_and_validation(frames)
    assert counts(train) == {"unrelated": 36545, "discuss": 8909, "agree": 3678, "disagree": 840}
    assert counts(frames["test"]) == {"unrelated": 18349, "discuss": 4464, "agree": 1903, "disagree": 697}
    assert train["group"].nunique() == 1683 and train["target"].nunique() == 1648
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])
    assert (frames["test"]["original_label"] == frames["test"]["label"]).all()


def test_fnc1_body_sentences(data_root):
    whole = load("fnc1")["test"]
    short = to_frame(fnc1(root=str(data_root), body_sentences=1)["test"])
    assert len(short) == len(whole) and (short["text"].str.len() < whole["text"].str.len()).mean() > 0.9
    first = short.loc[short["group"] == "2", "text"].iloc[0]
    assert (
        first == "A bereaved Afghan mother took revenge on the Taliban after watching them kill her son in an ambush."
    )
    with pytest.raises(DataError, match="body_sentences"):
        fnc1(root=str(data_root), body_sentences=0)


def test_vast_dev_test_and_train_request(data_root):
    frames = load("vast_devtest")
    # SOURCE.md: dev 684 con / 681 pro / 697 neutral; test 1,018 / 944 / 1,044; test zero-shot 1,460 rows.
    assert list(frames) == ["validation", "test"]
    assert counts(frames["validation"]) == {"AGAINST": 684, "FAVOR": 681, "NONE": 697}
    assert counts(frames["test"]) == {"AGAINST": 1018, "FAVOR": 944, "NONE": 1044}
    assert counts(frames["test"], "seen") == {"1": 1546, "0": 1460}
    assert counts(frames["test"], "original_label") == {"0": 1018, "1": 944, "2": 1044}
    with pytest.raises(DataError, match="no train split"):
        vast_devtest(root=str(data_root), splits=["train", "validation", "test"])
    with pytest.raises(DataError, match="unknown split"):
        vast_devtest(root=str(data_root), splits=["dev"])


def test_multitarget_one_row_per_tweet_target_pair(data_root):
    frames = load("multitarget_stance_election2016")
    # SOURCE.md: 3,119 / 446 / 890 tweets, two targets each; stance counts are target 1 + target 2.
    assert {split: len(f) for split, f in frames.items()} == {"train": 6238, "validation": 892, "test": 1780}
    assert counts(frames["train"]) == {"FAVOR": 1328 + 959, "AGAINST": 1122 + 1449, "NONE": 669 + 711}
    assert counts(frames["test"]) == {"AGAINST": 328 + 417, "FAVOR": 317 + 237, "NONE": 245 + 236}
    assert counts(frames["train"], "topic")["Donald Trump|Hillary Clinton"] == 2 * 1240
    assert frames["train"].groupby("group")["target"].nunique().eq(2).all()
    assert "Hilary Clinton" not in set(frames["test"]["target"])


def test_ibm_argkp2021_counts_and_topic_disjoint_splits(data_root):
    frames = load("ibm_argkp2021")
    # SOURCE.md: train 5,583 = 2,883 pro / 2,700 con (24 topics); dev 932 = 472 / 460 (4); test 723 = 446 / 277 (3).
    assert counts(frames["train"]) == {"FAVOR": 2883, "AGAINST": 2700}
    assert counts(frames["validation"]) == {"FAVOR": 472, "AGAINST": 460}
    assert counts(frames["test"]) == {"FAVOR": 446, "AGAINST": 277}
    assert counts(frames["test"], "original_label") == {"1": 446, "-1": 277}
    topics = {split: set(f["group"]) for split, f in frames.items()}
    assert [len(t) for t in topics.values()] == [24, 4, 3]
    assert not topics["train"] & topics["validation"] and not topics["test"] & (topics["train"] | topics["validation"])
    assert not normalized(train_and_validation(frames)) & normalized(frames["test"])
    # The two test arguments that differ only in spacing are both kept: the official test set.
    assert len(normalized(frames["test"])) == 722


def test_ibm_argq_30k_counts_and_topic_disjoint_splits(data_root):
    frames = load("ibm_argq_30k")
    # SOURCE.md: train 20,974 = 10,648 FAVOR / 10,326 AGAINST (49 topics); dev 3,208 = 1,622 / 1,586 (7);
    # test 6,315 = 3,178 / 3,137 (15).
    assert counts(frames["train"]) == {"FAVOR": 10648, "AGAINST": 10326}
    assert counts(frames["validation"]) == {"FAVOR": 1622, "AGAINST": 1586}
    assert counts(frames["test"]) == {"FAVOR": 3178, "AGAINST": 3137}
    assert [f["target"].nunique() for f in frames.values()] == [49, 7, 15]
    assert not set(train_and_validation(frames)["target"]) & set(frames["test"]["target"])
    assert not normalized(train_and_validation(frames)) & normalized(frames["test"])


def test_argkp_argq_overlap_removal(data_root, caplog):
    root = str(data_root)
    argq_test = normalized(load("ibm_argq_30k")["test"])
    plain = {split: to_frame(ds) for split, ds in ibm_argkp2021(root=root).items()}
    # SOURCE.md: 1,168 ArgKP train arguments are ArgQ test arguments (1,089 of them only up to case and spacing);
    # no ArgKP dev or test argument is.
    assert [len(normalized(f) & argq_test) for f in plain.values()] == [1168, 0, 0]
    with caplog.at_level(logging.WARNING, logger="stance.data.corpora"):
        data = ibm_argkp2021(root=root, exclude_overlap_with=["ibm_argq_30k"])
    frames = {split: to_frame(ds) for split, ds in data.items()}
    assert sizes(frames) == {"train": 5583 - 1168, "validation": 932, "test": 723}
    assert counts(frames["train"]) == {"1": 2883 - 595, "-1": 2700 - 573}  # called without a label_map
    assert not normalized(train_and_validation(frames)) & argq_test
    assert data.report.dropped == {"overlap/ibm_argq_30k/train": 1168}
    assert "ibm_argkp2021 train: dropped 1168 row(s)" in caplog.text and "ibm_argq_30k test" in caplog.text
    # Training adds the reader's drops to its own data report (logged to MLflow as data/dropped/...).
    _, report = validate(frames, report=reader_report(data))
    assert report.dropped == {"overlap/ibm_argq_30k/train": 1168}
    # The other way round nothing leaks: ArgKP's test topics are not ArgQ topics.
    reverse = ibm_argq_30k(root=root, exclude_overlap_with=["ibm_argkp2021"])
    assert {split: ds.num_rows for split, ds in reverse.items()} == {"train": 20974, "validation": 3208, "test": 6315}
    assert reverse.report.dropped == {}
    with pytest.raises(DataError, match="exclude_overlap_with names 'argq'; choose corpora from"):
        ibm_argkp2021(root=root, exclude_overlap_with=["argq"])


def test_pstance_official_benchmark_and_keep_none(data_root, caplog):
    frames = load("pstance")
    # SOURCE.md without NONE (the paper's 21,574): train 17,224 = 8,877 AGAINST / 8,347 FAVOR; val 2,193 = 1,141 /
    # 1,052; test 2,157 = 1,125 / 1,032. Here one train and one val AGAINST tweet fewer: they are also test tweets.
    assert counts(frames["train"]) == {"AGAINST": 8877 - 1, "FAVOR": 8347}
    assert counts(frames["validation"]) == {"AGAINST": 1141 - 1, "FAVOR": 1052}
    assert counts(frames["test"]) == {"AGAINST": 1125, "FAVOR": 1032}
    assert counts(frames["test"], "target") == {"Donald Trump": 777, "Joe Biden": 745, "Bernie Sanders": 635}
    assert not normalized(train_and_validation(frames)) & normalized(frames["test"])
    with caplog.at_level(logging.WARNING, logger="stance.data.corpora"):
        data = pstance(root=str(data_root), keep_none=True, label_map={"NONE": "NONE"})
    assert data["train"].features["label"].names == ["AGAINST", "FAVOR", "NONE"]
    full = {split: to_frame(ds) for split, ds in data.items()}
    # SOURCE.md with NONE: 19,228 / 2,462 / 2,374 rows, NONE 2,004 / 269 / 217.
    assert sizes(full) == {"train": 19228 - 1, "validation": 2462 - 1, "test": 2374}
    assert [counts(f)["NONE"] for f in full.values()] == [2004, 269, 217]
    assert data.report.dropped == {"test_leak/train": 1, "test_leak/validation": 1}
    assert "pstance validation: dropped 1 row(s)" in caplog.text
    official = pstance(root=str(data_root))
    assert official.report.dropped["none_label/train"] == 2004 and official["test"].features["label"].names == [
        "AGAINST",
        "FAVOR",
    ]


def test_covid19_counts_targets_and_ids(data_root):
    frames = load("covid19_stance")
    # SOURCE.md: train 4,533 = 1,442 AGAINST / 1,464 FAVOR / 1,627 NONE; val and test 800 = 243 / 263 / 294 each.
    assert counts(frames["train"]) == {"AGAINST": 1442, "FAVOR": 1464, "NONE": 1627}
    assert counts(frames["validation"]) == counts(frames["test"]) == {"AGAINST": 243, "FAVOR": 263, "NONE": 294}
    assert counts(frames["train"], "target") == {
        "Wearing a Face Mask": 1307,
        "Anthony S. Fauci, M.D.": 1464,
        "Keeping Schools Closed": 790,
        "Stay at Home Orders": 972,
    }
    assert counts(frames["test"], "topic") == {
        key: 200 for key in ["face_masks", "fauci", "school_closures", "stay_at_home_orders"]
    }
    school = frames["test"][frames["test"]["topic"] == "school_closures"]
    assert counts(school) == {"AGAINST": 42, "FAVOR": 103, "NONE": 55}
    assert frames["test"]["id"].str.fullmatch(r"\d{19}").all()
    assert not normalized(train_and_validation(frames)) & normalized(frames["test"])


def test_pstance_cross_target_trains_on_two_candidates_and_tests_on_the_third(data_root):
    data = pstance(root=str(data_root), held_out="biden")
    counts = {split: to_frame(ds)["target"].value_counts().to_dict() for split, ds in data.items()}
    assert counts == {
        "train": {"Donald Trump": 6362, "Bernie Sanders": 5055},
        "validation": {"Donald Trump": 814, "Bernie Sanders": 634},
        "test": {"Joe Biden": 745},
    }
    with pytest.raises(DataError, match="data.held_out='obama' is not a P-Stance target; choose from Donald Trump"):
        pstance(root=str(data_root), held_out="obama")


def test_pstance_file_with_another_target_names_line(tmp_path, data_root):
    shutil.copytree(data_root / "pstance", tmp_path / "pstance")
    path = tmp_path / "pstance" / "raw_val_biden.csv"
    path.chmod(0o644)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].replace(",Joe Biden,", ",Donald Trump,")
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"raw_val_biden.csv, line 4, column 'Target': 'Donald Trump', but every row"):
        pstance(root=str(tmp_path))


def test_newsmtsc_counts_and_validation_choices(data_root):
    frames = load("newsmtsc")
    # SOURCE.md target instances: train 3,316 neg / 3,028 neu / 2,395 pos; devtest_rw 429 / 455 / 262.
    assert counts(train_and_validation(frames)) == {"negative": 3316, "neutral": 3028, "positive": 2395}
    assert counts(frames["test"]) == {"negative": 429, "neutral": 455, "positive": 262}
    assert counts(frames["test"], "original_label") == {"2.0": 429, "4.0": 455, "6.0": 262}
    assert not set(frames["train"]["text"]) & set(frames["validation"]["text"])
    assert frames["test"]["group"].nunique() == 1067
    mt = load("newsmtsc", "data.validation_split=devtest_mt")
    assert counts(mt["validation"]) == {"negative": 482, "neutral": 748, "positive": 246} and len(mt["train"]) == 8739
    with pytest.raises(DataError, match="must differ"):
        newsmtsc(root=str(data_root), test_split="devtest_mt", validation_split="devtest_mt")


def test_clef_counts_debates_and_speakers(data_root):
    frames = load("clef2019_checkthat_task1")
    # SOURCE.md: training 19 files, 15,981 / 440; test_annotated 7 files, 6,944 / 136.
    assert counts(train_and_validation(frames)) == {"0": 15981, "1": 440}
    assert counts(frames["test"]) == {"0": 6944, "1": 136}
    assert train_and_validation(frames)["group"].nunique() == 19 and frames["test"]["group"].nunique() == 7
    # validation_by=debate: 4 whole debates (20% of 19), none of them also in train.
    assert frames["validation"]["group"].nunique() == 4 and counts(frames["validation"]) == {"0": 3525, "1": 78}
    assert not set(frames["train"]["group"]) & set(frames["validation"]["group"])
    assert (frames["test"]["target"] == "").all() and "TRUMP" in set(frames["train"]["speaker"])
    assert frames["test"]["id"].is_unique
    first = frames["test"][frames["test"]["group"] == "20151219_3_dem"]
    assert first["line"].tolist() == [str(i) for i in range(1, len(first) + 1)]  # in file order (strings, as all)
    by_sentence = load("clef2019_checkthat_task1", "data.validation_by=sentence", "data.validation_size=0.1")
    assert counts(by_sentence["validation"])["1"] == 44  # stratified: 10% of the positives
    everything = load("clef2019_checkthat_task1", "data.validation_size=0")  # the final fit: all 19 debates
    assert set(everything) == {"train", "test"} and everything["train"]["group"].nunique() == 19
    assert counts(everything["train"]) == {"0": 15981, "1": 440}
    with pytest.raises(DataError, match="validation_by must be"):
        clef2019_checkthat_task1(root=str(data_root), validation_by="speaker")


def test_ag_news_test_only_and_made_split(data_root):
    test = load("ag_news_test")["test"]
    assert counts(test) == {name: 1900 for name in ["World", "Sports", "Business", "Sci/Tech"]}
    assert not test["text"].str.contains(r"#\d+;|\\|&lt;", regex=True).any() and test["text"].str.contains("$").any()
    made = load("ag_news_test", "data.make_split=true")
    assert {split: len(f) for split, f in made.items()} == {"train": 5472, "validation": 608, "test": 1520}
    assert set(counts(made["test"]).values()) == {380}


def test_fnc_score_hand_example():
    gold = ["agree", "disagree", "discuss", "unrelated", "unrelated", "agree"]
    pred = ["agree", "discuss", "unrelated", "unrelated", "agree", "disagree"]
    # Earned: 1 (exact related) + .25 (related, wrong class) + 0 + .25 (unrelated right) + 0 + .25 = 1.75.
    # Best: four related pairs at 1 and two unrelated at .25 = 4.5.
    assert fnc_score(gold, pred) == pytest.approx(1.75 / 4.5)
    assert fnc_score(gold, gold) == 1.0
    with pytest.raises(ValueError, match="unknown"):
        fnc_score(["agree"], ["maybe"])


@pytest.fixture
def tweeteval_copy(tmp_path, data_root):
    shutil.copytree(data_root / "tweeteval_stance", tmp_path / "tweeteval_stance")
    (tmp_path / "tweeteval_stance").chmod(0o755)
    return tmp_path / "tweeteval_stance"


def test_tweeteval_unpaired_lines_and_unknown_code(tweeteval_copy):
    labels = tweeteval_copy / "atheism" / "val_labels.txt"
    labels.chmod(0o644)
    labels.write_text(labels.read_text() + "1\n")
    with pytest.raises(DataError, match="val_text.txt has 52 lines but .*val_labels.txt has 53"):
        tweeteval_stance(root=str(tweeteval_copy.parent))
    labels.write_text("7\n" + labels.read_text().split("\n", 2)[2])
    with pytest.raises(DataError, match="val_labels.txt, line 1, column 'label': unknown label '7'"):
        tweeteval_stance(root=str(tweeteval_copy.parent))


def test_ibm_unknown_stance_names_line(tmp_path, data_root):
    folder = tmp_path / "ibm_claim_stance"
    folder.mkdir()
    source = (data_root / "ibm_claim_stance" / "claim_stance_dataset_v1.csv").read_text(encoding="utf-8")
    (folder / "claim_stance_dataset_v1.csv").write_text(source.replace('"PRO"', '"NEUTRAL"', 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2, column 'claims.stance': unknown label 'NEUTRAL'"):
        ibm_claim_stance(root=str(tmp_path))


def test_newsmtsc_unknown_polarity_names_line(tmp_path, data_root):
    shutil.copytree(data_root / "newsmtsc", tmp_path / "newsmtsc")
    path = tmp_path / "newsmtsc" / "devtest_rw.jsonl"
    path.chmod(0o644)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].replace('"polarity": 2.0', '"polarity": 3.0').replace('"polarity": 4.0', '"polarity": 3.0')
    lines[2] = lines[2].replace('"polarity": 6.0', '"polarity": 3.0')
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"devtest_rw.jsonl, line 3, field 'polarity': unknown label '3.0'"):
        newsmtsc(root=str(tmp_path))
