"""Segmentation and speaker attribution on crafted paragraphs and on the hand-annotated example article."""

from __future__ import annotations

import json

import pytest

from stance.analysis.article import MAX_QUOTE_PARAGRAPHS, segment, statements
from tests.helpers import FIXTURES

FIXTURE = FIXTURES / "news_security_guarantees.json"


def said(text: str) -> list[tuple[str | None, str]]:
    return [(s.speaker, s.kind) for s in statements(text)]


def test_sentences_split_with_abbreviations():
    texts = [s.text for s in segment("Dr. Smith arrived at 5 p.m. on Monday. He left early.\n\nThe end.")]
    assert texts == ["Dr. Smith arrived at 5 p.m. on Monday.", "He left early.", "The end."]


def test_multi_sentence_and_multi_paragraph_quotations_stay_together():
    text = '“We came. We saw.\n\nWe left,” she said.\n\nRain fell. "It is wet. Very," he said.\n\nThe end.'
    assert [s.text for s in segment(text)] == [
        "“We came. We saw. We left,” she said.",
        "Rain fell.",
        '"It is wet. Very," he said.',
        "The end.",
    ]
    assert [s.paragraph for s in segment(text)] == [0, 2, 2, 3]


@pytest.mark.parametrize("after", [2, MAX_QUOTE_PARAGRAPHS + 2])
def test_a_quote_mark_that_never_closes_ends_with_its_paragraph(after):
    text = "Intro. “Unclosed opening. Still open.\n\n" + "\n\n".join(f"Sentence {i}." for i in range(after))
    assert [s.text for s in segment(text)] == ["Intro.", "“Unclosed opening. Still open."] + [
        f"Sentence {i}." for i in range(after)
    ]


def test_direct_quotes_with_name_title_and_pronoun():
    text = (
        "German Chancellor Olaf Scholz met reporters on Monday.\n\n"
        "“We will not send troops,” Scholz said.\n\n"
        '"Prices will fall," according to economist Jane Smith.\n\n'
        "“Our position is clear. We stand with our allies,” he added.\n\n"
        "“The talks failed,” said the German Chancellor."
    )
    assert said(text) == [
        (None, "narration"),
        ("Olaf Scholz", "quote"),
        ("Jane Smith", "quote"),
        ("Jane Smith", "quote"),  # "he" is the most recent speaker
        ("Olaf Scholz", "quote"),  # the title learned from the first sentence
    ]


def test_reported_speech_and_back_references():
    text = (
        "The deal is dead.\n\n"
        "This was stated by Foreign Minister Anna Berg on Tuesday.\n\n"
        "Tom Lind said that taxes would rise.\n\n"
        "According to her, the border stays open.\n\n"
        "As Lind noted, the budget is tight.\n\n"
        "Meanwhile, Anna Berg warned against haste.\n\n"
        "The treaty was signed according to the rules."
    )
    assert said(text) == [
        ("Anna Berg", "reported"),
        (None, "narration"),
        ("Tom Lind", "reported"),
        ("Tom Lind", "reported"),  # pronouns go to the last speaker; gender is not modelled
        ("Tom Lind", "reported"),
        ("Anna Berg", "reported"),
        (None, "narration"),  # "according to the rules" names no speaker
    ]


def test_descriptions_resolve_to_the_most_recent_fitting_title():
    text = (
        "Foreign Minister Anna Berg met Deputy Foreign Minister Tom Lind and US Ambassador Joe Hart.\n\n"
        "“We agree,” the head of the foreign policy department added.\n\n"
        "“Fine,” the deputy minister replied.\n\n"
        "“Good,” the ambassador said.\n\n"
        "“No,” the Kremlin press office said."
    )
    assert [speaker for speaker, _ in said(text)] == [
        None,
        "Anna Berg",
        "Tom Lind",
        "Joe Hart",
        "the Kremlin press office",  # fits nobody: the description itself
    ]


def test_unattributed_quotation_continues_the_last_speaker():
    assert said("“Yes,” Berg said.\n\n“And no.”") == [("Berg", "quote"), ("Berg", "quote")]


def annotated() -> tuple[dict, list]:
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return fixture, fixture["statements"]


def test_example_article_matches_the_hand_annotation(data_root):
    text = (data_root.parent / "examples" / "news_security_guarantees.txt").read_text(encoding="utf-8")
    found = statements(text)
    _, gold = annotated()
    assert [s.text[: len(g["start"])] for s, g in zip(found, gold, strict=False)] == [g["start"] for g in gold]
    assert len(found) == len(gold)
    speakers = sum(s.speaker == g["speaker"] for s, g in zip(found, gold, strict=True)) / len(gold)
    kinds = sum(s.kind == g["kind"] for s, g in zip(found, gold, strict=True)) / len(gold)
    assert speakers >= 0.9 and kinds >= 0.9, (speakers, kinds)


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_no_sentences_gives_no_statements(text):
    assert statements(text) == []
