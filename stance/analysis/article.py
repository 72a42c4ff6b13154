"""From article text to statements: sentences (pysbd), quotations kept whole, and who says each one.

Attribution is rule-based, in reading order:
- a quotation is credited by its tail (`…," X said`, `…" said X`, `…" according to X`), else to the last speaker;
- reported speech: `X said (that) …`, `According to X, …`, `As X noted, …`;
- `This was stated by X` credits the narration sentence before it to X;
- pronouns go to the most recent named speaker, descriptions ("the head of the foreign policy department") to the
  most recent person whose title, learned from the text ("Russian Foreign Minister Sergei Lavrov"), fits;
- everything else is narration (speaker None).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

OPEN_QUOTES, CLOSE_QUOTES, STRAIGHT_QUOTE = "“«„", "”»", '"'
# A quotation open for more paragraphs than this has a stray quote mark, not a very long quotation.
MAX_QUOTE_PARAGRAPHS = 5

_VERBS = (
    r"(?:said|says|stated|states|added|adds|stressed|noted|notes|explained|emphasi[sz]ed|recalled|told|announced"
    r"|declared|warned|indicated|claimed|argued|insisted|pointed out|drew attention to|remarked|replied|commented"
    r"|continued|concluded|believes|wrote|asserted|acknowledged|admitted|confirmed|denied|urged|suggested|asked)"
)
# Up to eight words, no punctuation but apostrophes and hyphens: "he", "Lavrov", "the head of the … department".
_PHRASE = r"(?:[\w’'-]+ ){0,7}?[\w’'-]+"
_TAIL = re.compile(
    rf"^[\s,.;:—–-]*(?:(?P<a>{_PHRASE})\s+{_VERBS}\b|{_VERBS}\s+(?P<b>{_PHRASE})\s*(?:[,.;:]|$)"
    rf"|according to (?P<c>{_PHRASE})\s*(?:[,.;:]|$))"
)
_BACKREF = re.compile(
    r"^Th(?:is|ese|at)\b[^,.]{0,30}?\bw(?:as|ere)\s+(?:also\s+)?"
    r"(?:stated|said|announced|made|reported|declared|noted)\s+by\s+(?P<a>[^,;:.]+)"
)
_REPORTED = [
    re.compile(rf"^As (?P<a>{_PHRASE})\s+{_VERBS}\b"),
    re.compile(rf"^(?:[A-Z][\w’' -]{{0,40}}?,\s+)?(?P<a>{_PHRASE})\s+{_VERBS}\b(?P<rest>[:,]?\s*[“\"])?"),
    re.compile(rf"\b[Aa]ccording to (?P<a>{_PHRASE})\s*(?:[,.;:”\"]|$)"),
]
_HEADS = (
    r"(?:[Pp]rime [Mm]inister|[Mm]inister|[Pp]resident|[Aa]mbassador|[Ss]ecretary[- ][Gg]eneral|[Pp]ress [Ss]ecretary"
    r"|[Ss]ecretary|[Ss]pokes(?:man|woman|person)|[Cc]hancellor|[Cc]hairman|[Dd]irector|[Gg]overnor|[Ss]enator"
    r"|[Ee]nvoy|[Cc]ommander|[Mm]ayor)"
)
# "Russian Foreign Minister Sergei Lavrov", "US Ambassador to Moscow John Sullivan", "President Vladimir Putin".
_TITLED = re.compile(
    rf"(?P<title>(?:[A-Z][\w-]*\s+)*{_HEADS}(?:\s+(?:of|to|in)\s+(?:the\s+)?[A-Z][\w-]*)?)"
    r"\s+(?P<name>[A-Z][a-z][\w-]*(?:\s+[A-Z][a-z][\w-]*)?)\b"
)
_PRONOUNS = {"he", "she", "him", "her"}
# Descriptions that name a title in other words.
_SYNONYMS = [
    (r"head of (?:the )?foreign (?:policy|affairs) \w+|minister of foreign affairs|top diplomat", "foreign minister"),
    (r"spokes(?:man|woman|person)", "press secretary"),
]
# A title with one of these is a different post from the same title without it (deputy foreign minister).
_MODIFIERS = {"deputy", "vice", "former", "acting", "assistant"}
_STOP = {"the", "a", "an"}


@dataclass
class Statement:
    """A sentence or a whole quotation, the paragraph it starts in, who says it and how (quote/reported/narration)."""

    text: str
    paragraph: int
    speaker: str | None = None
    kind: str = "narration"


def segment(text: str) -> list[Statement]:
    """Split text into sentences, keeping multi-sentence (and multi-paragraph) quotations as one statement."""
    blocks = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text) else text.split("\n")
    paragraphs = [re.sub(r"\s+", " ", re.sub(r"^\s*[•·▪*]\s*", "", p)).strip() for p in blocks]
    sentences = [[s.strip() for s in _segmenter().segment(p) if re.search(r"\w", s)] for p in paragraphs]
    sentences = [s for s in sentences if s]
    return _join_quotations(sentences, 0)


def _join_quotations(sentences: list[list[str]], first: int) -> list[Statement]:
    """Statements from paragraph `first` on: its sentences, joined while a quotation is open."""
    statements: list[Statement] = []
    quote_open, opening = False, 0
    for number in range(first, len(sentences)):
        for index, sentence in enumerate(sentences[number]):
            if quote_open and number - statements[-1].paragraph >= MAX_QUOTE_PARAGRAPHS:
                return _cut_stray(statements, sentences, opening)
            if quote_open:
                statements[-1].text += " " + sentence
            else:
                statements.append(Statement(sentence, number))
                opening = index
            quote_open = _quote_open_after(sentence, quote_open)
    return _cut_stray(statements, sentences, opening) if quote_open else statements


def _cut_stray(statements: list[Statement], sentences: list[list[str]], opening: int) -> list[Statement]:
    """A quotation that never closes ends with its paragraph; what follows is segmented afresh."""
    paragraph = statements[-1].paragraph
    head = Statement(" ".join(sentences[paragraph][opening:]), paragraph)
    return [*statements[:-1], head, *_join_quotations(sentences, paragraph + 1)]


@functools.cache
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _quote_open_after(text: str, is_open: bool) -> bool:
    """Whether a quotation is open after `text`; a second opening mark inside a quotation is a nested quote."""
    for char in text:
        if char in OPEN_QUOTES:
            is_open = True
        elif char in CLOSE_QUOTES:
            is_open = False
        elif char == STRAIGHT_QUOTE:
            is_open = not is_open
    return is_open


def _after_quotation(text: str) -> str:
    """The text after the quotation a statement opens with (its attribution tail)."""
    is_open = False
    for i, char in enumerate(text):
        was_open, is_open = is_open, _quote_open_after(char, is_open)
        if was_open and not is_open:
            return text[i + 1 :]
    return ""


@dataclass(eq=False)
class _Person:
    name: str
    roles: list[frozenset[str]] = field(default_factory=list)


def _role(title: str) -> frozenset[str]:
    """The words of a post, synonyms normalised: "head of the foreign policy department" -> foreign minister."""
    title = title.lower()
    for pattern, canonical in _SYNONYMS:
        title = re.sub(pattern, canonical, title)
    post = re.split(r"\b(?:of|to|in|at|for)\b", title)[0]
    return frozenset(post.split()) - _STOP


class _People:
    """The people an article names, their titles, and whom it mentioned or credited last."""

    def __init__(self) -> None:
        self.by_surname: dict[str, _Person] = {}
        self.recent: list[_Person] = []  # most recently mentioned last
        self.last_speaker: _Person | None = None

    def notice(self, text: str) -> None:
        """Learn titled names in `text` and mark the people it mentions as recent."""
        for match in _TITLED.finditer(text):
            self._person(match["name"]).roles.append(_role(re.sub(r"^[Tt]he\s+", "", match["title"])))
        for word in re.findall(r"\b[A-Z][\w-]+", text):
            if word in self.by_surname:
                self._touch(self.by_surname[word])

    def resolve(self, phrase: str, strict: bool = False) -> _Person | str | None:
        """The person (or, failing that, the phrase) a speaker phrase refers to; None if `strict` and none fits."""
        words = phrase.split()
        if phrase.lower() in _PRONOUNS:
            return self.last_speaker or (None if strict else phrase)
        known = [self.by_surname[w] for w in words if w in self.by_surname]
        if known:
            return known[-1]
        name = re.search(r"(?:[A-Z][\w’'-]*\s?){1,3}$", phrase)
        if words[0].lower() not in _STOP and name and not re.search(rf"{_HEADS}$", phrase):
            return self._person(name[0].strip())
        fitting = [p for p in self.recent if any(_fits(_role(phrase), role) for role in p.roles)]
        if fitting:
            return fitting[-1]
        named = any(w[0].isupper() for w in words[1:])
        return None if strict and not named else phrase  # "according to the rules" names no speaker

    def credit(self, speaker: _Person | str) -> None:
        """Record that `speaker` says the current statement."""
        if isinstance(speaker, _Person):
            self.last_speaker = speaker
            self._touch(speaker)

    def _person(self, name: str) -> _Person:
        surname = name.split()[-1]
        person = self.by_surname.setdefault(surname, _Person(name))
        if len(name) > len(person.name):
            person.name = name
        self._touch(person)
        return person

    def _touch(self, person: _Person) -> None:
        if person in self.recent:
            self.recent.remove(person)
        self.recent.append(person)


def _fits(description: frozenset[str], title: frozenset[str]) -> bool:
    return bool(description) and description <= title and title & _MODIFIERS <= description


def attribute(statements: list[Statement]) -> list[Statement]:
    """Fill in each statement's speaker and kind, in reading order (see the module docstring)."""
    people = _People()
    speakers: list[_Person | str | None] = []
    for i, statement in enumerate(statements):
        people.notice(statement.text)
        kind, phrase, back = _speech(statement.text)
        speaker = people.resolve(phrase, strict=kind == "reported") if phrase else None
        if back and speaker is not None and i and statements[i - 1].kind == "narration":
            statements[i - 1].kind, speakers[i - 1] = "reported", speaker
        elif kind == "quote" and speaker is None:
            speaker = people.last_speaker  # an unattributed quotation goes on with the last speaker
        elif kind == "reported" and speaker is None:
            kind = "narration"
        if speaker is not None:
            people.credit(speaker)
        statement.kind = kind
        speakers.append(None if back else speaker)
    for statement, speaker in zip(statements, speakers, strict=True):
        statement.speaker = speaker.name if isinstance(speaker, _Person) else speaker
    return statements


def _speech(text: str) -> tuple[str, str | None, bool]:
    """(kind, speaker phrase or None, whether it credits the previous statement) from the wording alone."""
    if text[0] in OPEN_QUOTES + STRAIGHT_QUOTE:
        match = _TAIL.match(_after_quotation(text))
        return "quote", (next(g for g in match.group("a", "b", "c") if g) if match else None), False
    match = _BACKREF.match(text)
    if match:
        return "narration", match["a"].strip(), True
    for pattern in _REPORTED:
        match = pattern.search(text)
        if match:
            return ("quote" if match.groupdict().get("rest") else "reported"), match["a"], False
    return "narration", None, False


def statements(text: str) -> list[Statement]:
    """The statements of an article with their speakers."""
    return attribute(segment(text))
