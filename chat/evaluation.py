"""What ``answer_eval`` measures: labelled questions and dialogues, the replies they got, and issue 13's goals.

A labelled question names how it should be answered: ``in_base`` with its expected source
(an FAQ entry's or document's external id, ``faq_id``, and/or a section heading, ``section`` —
either may be a list where the base holds the same answer twice)
or ``out_of_base``. A two-turn dialogue labels its follow-up the same way, and says whether
the follow-up continues the first topic or switches to another. Each reply is reduced to a
:class:`Result` (outcome, text, the sources it cites in order), and every figure is a pure
function of labels and results, so the tests check them on hand-built results.

The figures (goals from issue 13):

1. in-base: the reply is right (its first citation is the expected source — for a direct
   answer that is the FAQ entry it answered with) ≥ 0.85; refused or handed off ≤ 0.05;
2. out-of-base: refused or handed off ≥ 0.95;
3. follow-ups: right ≥ 0.85, also split into continuations and switches;
4. counts that must be 0: replies that repeat a sentence, answered replies without a
   citation, replies that reach the generator while the base answers extractively.

A generative reply that was not really generated (``pending``) has no citations yet: its first
retrieved passage stands in for the first citation it would have.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chat.pipeline.answerability import reliability_table
from chat.pipeline.passages import CITATION_MARK

EXPECTS = ("in_base", "out_of_base")
KINDS = ("continuation", "switch")
PLURAL = {"continuation": "continuations", "switch": "switches"}
REFUSALS = frozenset({"refused", "handed_off"})
ANSWERS = frozenset({"direct", "answered", "cached"})
SMALL_TALK = frozenset({"smalltalk", "chitchat"})  # reasons of replies to greetings and thanks, not knowledge
GENERATIVE, EXTRACTIVE = "generative", "extractive"
NUMBERING = re.compile(r"^\s*(chapter\s+)?[\d.]+\s*", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


class LabelError(ValueError):
    """A line of an evaluation file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class Source:
    """Where a citation (or retrieved passage) points: the external id, the document title, the heading path."""

    external_id: str = ""
    document_title: str = ""
    section: str = ""  # "Chapter > Section > Subsection"

    @property
    def last_heading(self) -> str:
        return self.section.split(" > ")[-1] if self.section else ""


def heading_key(text: str) -> str:
    """A heading compared without its numbering ("1.2. ", "Chapter 3."), case or spacing."""
    return " ".join(NUMBERING.sub("", text).split()).casefold()


@dataclass(frozen=True)
class Expected:
    """The source that answers an in-base question: external ids and/or section headings, any one of them.

    Several are for a base that holds the same answer twice (the demo FAQ answers "ROT on a
    holiday home" in two entries; Debian's FAQ tells "which release am I running" in two
    sections): citing either is right.
    """

    faq_ids: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.faq_ids or self.sections)

    def matches(self, source: Source | None) -> bool:
        if source is None:
            return False
        if source.external_id and source.external_id in self.faq_ids:
            return True
        cited = {heading_key(source.last_heading), heading_key(source.document_title)} - {""}
        return any(heading_key(section) in cited for section in self.sections)


@dataclass(frozen=True)
class Row:
    question: str
    expect: str
    expected: Expected = Expected()


@dataclass(frozen=True)
class Dialogue:
    turns: tuple[str, str]
    expect: str  # of the follow-up
    expected: Expected  # the source of the follow-up's answer
    kind: str  # continuation | switch


@dataclass(frozen=True)
class Result:
    """One reply, reduced to what the figures need."""

    outcome: str
    reason: str = ""
    text: str = ""
    citations: tuple[Source, ...] = ()
    passages: tuple[Source, ...] = ()  # retrieved for a generation that has not run
    answerability: float | None = None
    standalone: str = ""  # the rewritten follow-up, when it leaned on history
    suggested: tuple[Source, ...] = ()  # the FAQ entries an "I don't know" offered instead

    @property
    def first_source(self) -> Source | None:
        if self.citations:
            return self.citations[0]
        if self.outcome == "pending" and self.passages:
            return self.passages[0]
        return None


@dataclass(frozen=True)
class Evaluation:
    """One base in one answer mode: the labels and the replies, question by question."""

    mode: str
    rows: tuple[Row, ...] = ()
    results: tuple[Result, ...] = ()
    dialogues: tuple[Dialogue, ...] = ()
    follow_ups: tuple[tuple[Result, Result], ...] = ()  # (first reply, follow-up reply) per dialogue

    def replies(self) -> list[Result]:
        """Every reply a customer would read: each question's and both turns of each dialogue."""
        return [*self.results, *(reply for pair in self.follow_ups for reply in pair)]


@dataclass(frozen=True)
class Goal:
    op: str  # ">=", "<=" or "=="
    target: float

    def met(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.target
        if self.op == "<=":
            return value <= self.target
        return value == self.target

    def __str__(self) -> str:
        symbol = {">=": "≥", "<=": "≤", "==": "="}[self.op]
        target = f"{self.target:g}" if self.op == "==" else f"{self.target:.2f}"
        return f"{symbol} {target}"


@dataclass(frozen=True)
class Figure:
    """One printed measure: a rate (numerator / denominator) or a count (numerator, of denominator replies)."""

    key: str
    name: str
    numerator: int
    denominator: int
    goal: Goal | None = None
    is_count: bool = False
    applies: bool = True  # False: the figure means nothing in this mode ("-")
    note: str = ""  # free text instead of a number (e.g. the direct/other split)

    @property
    def value(self) -> float | None:
        if not self.applies or self.note:
            return None
        if self.is_count:
            return float(self.numerator)
        return self.numerator / self.denominator if self.denominator else None

    @property
    def met(self) -> bool | None:
        value = self.value
        return None if self.goal is None or value is None else self.goal.met(value)

    def cell(self) -> str:
        if not self.applies:
            return "-"
        if self.note:
            return self.note
        value = self.value
        if value is None:
            return "n/a (0)"
        mark = "" if self.met is None else (" ✓" if self.met else " ✗")
        if self.is_count:
            return f"{self.numerator} of {self.denominator}{mark}"
        return f"{value:.3f} ({self.numerator}/{self.denominator}){mark}"

    def as_dict(self) -> dict:
        return {"name": self.name, "goal": str(self.goal) if self.goal else None, "value": self.value,
                "numerator": self.numerator, "denominator": self.denominator, "met": self.met,
                "applies": self.applies, **({"note": self.note} if self.note else {})}


# --- labelled files -------------------------------------------------------------------------------------

def strings(data: dict, name: str, path: Path, number: int) -> tuple[str, ...]:
    """A field holding one string or a list of strings (absent or empty: none)."""
    value = data.get(name) or ()
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not all(isinstance(one, str) for one in values):
        raise LabelError(f"{path}:{number}: {name} must be a string or a list of strings")
    return tuple(one for one in values if one.strip())


def load_rows(path: Path) -> list[Row]:
    """Questions: ``{"question", "expect", "faq_id"?, "section"?}`` per line (in_base rows name a source)."""
    rows = []
    for number, data in json_lines(path):
        question = data.get("question")
        if not isinstance(question, str) or not question.strip():
            raise LabelError(f"{path}:{number}: a non-empty string 'question' is required")
        expect, expected = label_of(data, path, number)
        rows.append(Row(question, expect, expected))
    return rows


def load_dialogues(path: Path) -> list[Dialogue]:
    """Dialogues: ``{"turns": [first, follow-up], "expect", "faq_id"?, "section"?, "kind"}`` per line."""
    dialogues = []
    for number, data in json_lines(path):
        turns = data.get("turns")
        if (not isinstance(turns, list) or len(turns) != 2
                or not all(isinstance(turn, str) and turn.strip() for turn in turns)):
            raise LabelError(f"{path}:{number}: 'turns' must be two non-empty strings [question, follow-up]")
        if data.get("kind") not in KINDS:
            raise LabelError(f"{path}:{number}: kind must be continuation or switch")
        expect, expected = label_of(data, path, number)
        dialogues.append(Dialogue((turns[0], turns[1]), expect, expected, data["kind"]))
    return dialogues


def json_lines(path: Path):
    if not path.is_file():
        raise LabelError(f"{path} does not exist")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise LabelError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise LabelError(f"{path}:{number}: each line must be a JSON object")
        yield number, data


def label_of(data: dict, path: Path, number: int) -> tuple[str, Expected]:
    expect = data.get("expect")
    if expect not in EXPECTS:
        raise LabelError(f"{path}:{number}: expect must be in_base or out_of_base")
    expected = Expected(strings(data, "faq_id", path, number), strings(data, "section", path, number))
    if expect == "in_base" and not expected:
        raise LabelError(f"{path}:{number}: an in_base line names its expected source (faq_id or section)")
    return expect, expected


# --- scoring one reply ----------------------------------------------------------------------------------

def is_right(expect: str, expected: Expected, result: Result) -> bool:
    """In-base: answered, and the first citation is the expected source. Out-of-base: refused or handed off."""
    if expect == "out_of_base":
        return result.outcome in REFUSALS
    return result.outcome not in REFUSALS and expected.matches(result.first_source)


def sentences(text: str) -> list[str]:
    """The reply's sentences, without [n] marks, with whitespace collapsed and case folded."""
    out = []
    for part in SENTENCE_END.split(CITATION_MARK.sub(" ", text)):
        sentence = " ".join(part.split()).casefold()
        if any(ch.isalnum() for ch in sentence):
            out.append(sentence)
    return out


def repeats_a_sentence(text: str) -> bool:
    found = sentences(text)
    return len(found) != len(set(found))


def reaches_generator(result: Result) -> bool:
    """A reply handed to the generator (chit-chat or a knowledge answer): pending, or finished as generated."""
    return result.outcome == "pending" or result.reason == "generated"


# --- figures ----------------------------------------------------------------------------------------------

def rate(key: str, name: str, hits: list[bool], goal: Goal | None = None) -> Figure:
    return Figure(key, name, sum(hits), len(hits), goal)


def in_base_right(ev: Evaluation) -> Figure:
    hits = [is_right(r.expect, r.expected, res) for r, res in zip(ev.rows, ev.results, strict=True)
            if r.expect == "in_base"]
    return rate("in_base_right", "in-base: reply is right", hits, Goal(">=", 0.85))


def in_base_refused(ev: Evaluation) -> Figure:
    hits = [res.outcome in REFUSALS for r, res in zip(ev.rows, ev.results, strict=True) if r.expect == "in_base"]
    return rate("in_base_refused", "in-base: refused or handed off", hits, Goal("<=", 0.05))


def out_of_base_refused(ev: Evaluation) -> Figure:
    hits = [res.outcome in REFUSALS for r, res in zip(ev.rows, ev.results, strict=True)
            if r.expect == "out_of_base"]
    return rate("out_of_base_refused", "out-of-base: refused or handed off", hits, Goal(">=", 0.95))


def follow_up_right(ev: Evaluation, kind: str = "") -> Figure:
    hits = [is_right(d.expect, d.expected, second) for d, (_, second) in zip(ev.dialogues, ev.follow_ups, strict=True)
            if not kind or d.kind == kind]
    key = f"follow_up_right_{kind}" if kind else "follow_up_right"
    name = f"follow-ups: reply is right, {PLURAL[kind]}" if kind else "follow-ups: reply is right"
    return rate(key, name, hits, Goal(">=", 0.85))


def repeated_sentences(ev: Evaluation) -> Figure:
    replies = ev.replies()
    count = sum(repeats_a_sentence(r.text) for r in replies)
    return Figure("repeated_sentence", "replies repeating a sentence", count, len(replies), Goal("==", 0), True)


def uncited_answers(ev: Evaluation) -> Figure:
    """Knowledge answers (direct, extracted, generated, cached) with no citation; small talk cites nothing."""
    answered = [r for r in ev.replies() if r.outcome in ANSWERS and r.reason not in SMALL_TALK]
    count = sum(not r.citations for r in answered)
    return Figure("answered_without_citation", "answered replies without a citation", count, len(answered),
                  Goal("==", 0), True)


def generator_in_extractive(ev: Evaluation) -> Figure:
    replies = ev.replies()
    count = sum(reaches_generator(r) for r in replies)
    return Figure("generator_in_extractive", "replies reaching the generator (extractive)", count, len(replies),
                  Goal("==", 0), True, applies=ev.mode == EXTRACTIVE)


def direct_precision(ev: Evaluation) -> Figure:
    """Of the direct answers, those to an in-base question with the expected entry (a wrong one is the worst)."""
    pairs = [(r, res) for r, res in zip(ev.rows, ev.results, strict=True) if res.outcome == "direct"]
    hits = [r.expect == "in_base" and r.expected.matches(res.first_source) for r, res in pairs]
    return rate("direct_precision", "direct-answer precision", hits, Goal(">=", 0.98))


def in_base_outcomes(ev: Evaluation) -> Figure:
    inside = [res for r, res in zip(ev.rows, ev.results, strict=True) if r.expect == "in_base"]
    direct = sum(res.outcome == "direct" for res in inside)
    other = sum(res.outcome in ("pending", "answered") for res in inside)
    return Figure("in_base_outcomes", "in-base: direct / generated-or-extracted", direct, len(inside),
                  note=f"{direct}d/{other}g|e")


def refusal_reasons(ev: Evaluation) -> Figure:
    """Why in-base questions were refused or handed off (the stage to look at first), most frequent first."""
    reasons = Counter(res.reason or res.outcome for r, res in zip(ev.rows, ev.results, strict=True)
                      if r.expect == "in_base" and res.outcome in REFUSALS)
    note = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "none"
    return Figure("in_base_refusal_reasons", "in-base refusals by reason", sum(reasons.values()),
                  len(ev.rows), note=note)


def expected_source_found(ev: Evaluation) -> Figure:
    """Non-direct in-base replies whose citations (or, for a pending generation, passages) include the source."""
    pairs = [(r, res) for r, res in zip(ev.rows, ev.results, strict=True)
             if r.expect == "in_base" and res.outcome in ("pending", "answered")]
    hits = [any(r.expected.matches(s) for s in (res.citations or res.passages)) for r, res in pairs]
    return rate("expected_source_found", "in-base: expected source among citations/passages", hits)


def refusals_offering_the_answer(ev: Evaluation) -> Figure:
    """In-base questions refused that offered the entry answering them among their suggested questions: a
    customer one click from the answer rather than at a dead end."""
    hits = [any(r.expected.matches(s) for s in res.suggested) for r, res in zip(ev.rows, ev.results, strict=True)
            if r.expect == "in_base" and res.outcome == "refused"]
    return rate("refusals_offering_answer", "in-base refusals offering the right question", hits)


def out_of_base_offers(ev: Evaluation) -> Figure:
    """Out-of-base questions refused with questions offered anyway (they are no answer, but noise if many)."""
    offers = [bool(res.suggested) for r, res in zip(ev.rows, ev.results, strict=True)
              if r.expect == "out_of_base" and res.outcome == "refused"]
    return rate("out_of_base_offers", "out-of-base refusals offering questions", offers)


def figures(ev: Evaluation) -> list[Figure]:
    """Every figure of one mode, the goals first."""
    return [
        in_base_right(ev), in_base_refused(ev), out_of_base_refused(ev),
        follow_up_right(ev), follow_up_right(ev, "continuation"), follow_up_right(ev, "switch"),
        repeated_sentences(ev), uncited_answers(ev), generator_in_extractive(ev),
        direct_precision(ev), in_base_outcomes(ev), refusal_reasons(ev), expected_source_found(ev),
        refusals_offering_the_answer(ev), out_of_base_offers(ev),
    ]


# --- reliability of the answerability probability ---------------------------------------------------------

@dataclass(frozen=True)
class Reliability:
    """Predicted probability that the base answers a question against whether it is in-base, per bin.

    The observation is the label (in-base or not), not the reply: the probability claims that the base
    holds the answer, which is what a reliability table of a calibrated model should confirm.
    """

    rows: tuple[tuple, ...] = field(default_factory=tuple)  # (bin, count, mean predicted, observed rate)
    reason: str = ""  # why there is no table ("n/a: ...")


def answerability_pairs(ev: Evaluation) -> list[tuple[float, bool]]:
    pairs = [(res.answerability, r.expect == "in_base") for r, res in zip(ev.rows, ev.results, strict=True)]
    pairs += [(second.answerability, d.expect == "in_base")
              for d, (_, second) in zip(ev.dialogues, ev.follow_ups, strict=True)]
    return [(float(p), observed) for p, observed in pairs if p is not None]


def reliability(ev: Evaluation) -> Reliability:
    """The pipeline's reliability table of this mode's probabilities, or why there is none."""
    pairs = answerability_pairs(ev)
    if not pairs:
        return Reliability(reason="n/a (no reply carries an answerability probability)")
    rows = (table_row(row) for row in reliability_table(pairs))
    return Reliability(rows=tuple(row for row in rows if row[1]))  # empty bins say nothing


def table_row(row) -> tuple:
    """(bin, count, mean predicted, observed rate) from the pipeline's row: a (bin, count, mean, observed) tuple,
    or a record with ``count``, ``mean_predicted``, ``observed_rate`` and a ``bin`` or ``low``/``high`` bounds."""
    if isinstance(row, tuple) and not hasattr(row, "_fields"):
        return tuple(row)[:4]
    fields = dict(row) if isinstance(row, dict) else (row._asdict() if hasattr(row, "_asdict") else
                                                       {name: getattr(row, name) for name in dir(row)
                                                        if not name.startswith("_")})
    bounds = fields.get("bin")
    if bounds is None and "low" in fields:
        bounds = f"{fields['low']:.2f}–{fields['high']:.2f}"
    observed = fields.get("observed_rate", fields.get("observed"))
    return bounds, fields.get("count", 0), fields.get("mean_predicted"), observed
