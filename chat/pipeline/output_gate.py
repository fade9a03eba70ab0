"""The output gate: generated text reaches a customer only when it reads like an answer.

A small model fed a translation request or a chat in another language can stream a line of
garbage kana, answer a Chinese question in English, loop on one sentence, or emit nothing but
citation marks. Three checks, each a small pure function over text, catch those:

- :func:`script_check` — the answer is written in the question's script (letters counted per
  word for alphabetic scripts and per character for Han, kana, Hangul and Thai, so product names
  and code in a Chinese answer do not outweigh it; code spans and URLs are not counted);
- :func:`repetition_check` — no run of one character, no sentence said again, no token loop;
- :func:`content_check` — something is left once citation marks, tags and punctuation are gone.

Two places apply them. :class:`StreamGate` sits in the SSE relay after the sensitive-word
masker: it holds back the head of the answer (``hold_chars`` characters, CJK counted double,
all of it for a shorter answer) until the head passes, then lets text through, stopping again
if a repetition shows up later. :func:`gate_verdict` decides when the answer is finalised, on the
same head and on the whole text, so the stream and the stored reply agree: a rejected answer
becomes Kefu's refusal, which the ``done`` event carries and the widget shows in place of
whatever was streamed.

Cost (2-core Xeon, pure Python, no model): a verdict on a 2,000-character answer takes about 3 ms;
the stream gate about 70 µs a piece, its re-checks bounded to the last ~800 characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

CHECKS = ("empty", "script", "repetition")

# A share of letters (see script_units) below this in the question's script fails: a Chinese answer
# naming products and commands stays well above it, an English answer to a Chinese question is at 0.
MIN_SCRIPT_SHARE = 0.3
# Nor may one other script hold more than this share — Latin aside, the script of names and code everywhere
# (a Japanese answer to a Chinese question shares its Han characters but is mostly kana).
MAX_FOREIGN_SHARE = 0.5
# Fewer script units than this ("OK", "8:00 [1]") say nothing about the language.
MIN_SCRIPT_UNITS = 3
# One letter (or CJK character) this many times in a row, or one punctuation mark or symbol
# (masked words' asterisks aside) this many times.
LETTER_RUN = 8
SYMBOL_RUN = 16
# A sentence said again: any sentence three times, or a sentence of this many tokens twice.
SENTENCE_TOKENS_TWICE = 3
# A token loop: the same span of up to LOOP_SPAN tokens back to back, LOOP_REPEATS times
# (a single token LOOP_REPEATS_ONE times: "very, very, very" is still English).
LOOP_SPAN = 12
LOOP_REPEATS = 3
LOOP_REPEATS_ONE = 4
# A whole answer of at least VARIETY_TOKENS tokens whose distinct trigrams are below this share is a
# loop with variations (a week of opening hours, one line per day, stays above 0.4).
VARIETY_TOKENS = 60
MIN_TRIGRAM_VARIETY = 0.2
# Scripts written without spaces between words: each character is a unit and a token.
WIDE_SCRIPTS = frozenset({"han", "kana", "hangul", "thai"})

CITATION_MARK = re.compile(r"\[\s*\d+(?:\s*[,，\-–]\s*\d+)*\s*\]")
TAG = re.compile(r"</?[A-Za-z][^<>]*>")
CODE_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)  # an unclosed fence runs to the end (mid-stream)
INLINE_CODE = re.compile(r"`[^`\n]*`")
URL = re.compile(r"(?:https?://|www\.)\S+")
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+")
WORD = re.compile(r"\w+")
SPACE = re.compile(r"\s")
MASK_CHAR = "*"  # chat.pipeline.guard's mask: a masked word is a run of it


@dataclass(frozen=True)
class GateVerdict:
    """Whether generated text may be shown; when not, which check failed and why."""

    passed: bool
    check: str = ""  # one of CHECKS when failed
    detail: str = ""


PASS = GateVerdict(True)


def failed(check: str, detail: str) -> GateVerdict:
    return GateVerdict(False, check, detail)


# --- the text the checks read -----------------------------------------------------------

def without_code(text: str) -> str:
    """Code blocks, inline code and URLs removed: they are in no customer's language and may repeat."""
    return URL.sub(" ", INLINE_CODE.sub(" ", CODE_FENCE.sub(" ", text)))


def without_marks(text: str) -> str:
    """Citation marks and HTML-like tags removed."""
    return TAG.sub(" ", CITATION_MARK.sub(" ", text))


@lru_cache(maxsize=4096)
def script_of(ch: str) -> str | None:
    """The script of a letter ("latin", "han", "kana", "hangul", "cyrillic", ...); None for anything else."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for width in ("FULLWIDTH ", "HALFWIDTH "):
        name = name.removeprefix(width)
    head = name.split(" ", 1)[0]
    if head == "CJK":
        return "han"
    if head in ("HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"):
        return "kana"
    return head.lower() or "other"


def script_units(text: str) -> Counter:
    """Letters per script: a word of an alphabetic script is one unit, a Han/kana/Hangul/Thai character one."""
    units: Counter = Counter()
    previous = None
    for ch in text:
        script = script_of(ch)
        if script in WIDE_SCRIPTS or (script is not None and script != previous):
            units[script] += 1
        previous = script
    return units


def tokens_of(text: str) -> list[str]:
    """Case-folded words; each Han/kana/Hangul/Thai character is a token of its own."""
    found = []
    for word in WORD.findall(text.casefold()):
        if any(script_of(ch) in WIDE_SCRIPTS for ch in word):
            found += split_wide(word)
        else:
            found.append(word)
    return found


def split_wide(word: str) -> list[str]:
    """"iphone手机" → ["iphone", "手", "机"]."""
    parts, run = [], ""
    for ch in word:
        if script_of(ch) in WIDE_SCRIPTS:
            if run:
                parts.append(run)
                run = ""
            parts.append(ch)
        else:
            run += ch
    return parts + ([run] if run else [])


def sentences_of(text: str, *, complete: bool) -> list[list[str]]:
    """Each sentence (or line) as its tokens; mid-stream (``complete`` off) the unfinished last one is left out."""
    pieces = SENTENCE_END.split(text.strip())
    if not complete and pieces:
        pieces = pieces[:-1]
    return [tokens for tokens in (tokens_of(piece) for piece in pieces) if tokens]


# --- the three checks --------------------------------------------------------------------

def expected_scripts(question: str) -> frozenset[str] | None:
    """The scripts an answer to ``question`` may be written in; None when the question has no letters."""
    units = script_units(without_code(question))
    if not units:
        return None
    if units["kana"]:  # Japanese writes Han and kana together
        return frozenset({"kana", "han"})
    if units["hangul"]:
        return frozenset({"hangul", "han"})
    return frozenset({max(units, key=units.get)})


def script_check(answer: str, *, question: str) -> GateVerdict:
    """The answer is mostly written in the question's script (product names and code are fine)."""
    expected = expected_scripts(question)
    units = script_units(without_code(without_marks(answer)))
    total = sum(units.values())
    if expected is None or total < MIN_SCRIPT_UNITS:
        return PASS
    share = sum(units[script] for script in expected) / total
    foreign_units = max((count for script, count in units.items() if script not in expected and script != "latin"),
                        default=0)
    if share < MIN_SCRIPT_SHARE or foreign_units / total > MAX_FOREIGN_SHARE:
        found = ", ".join(f"{script} {count}" for script, count in units.most_common(3))
        return failed("script", f"{share:.0%} in {'/'.join(sorted(expected))} (the question's); found {found}")
    return PASS


def character_run(text: str) -> str | None:
    """The first run of one character long enough to be degenerate, or None."""
    run_char, run_length = "", 0
    for ch in text:
        run_length = run_length + 1 if ch == run_char else 1
        run_char = ch
        if ch.isspace() or ch == MASK_CHAR:
            continue
        limit = LETTER_RUN if ch.isalpha() else SYMBOL_RUN if not ch.isdigit() else None
        if limit is not None and run_length >= limit:
            return ch * run_length
    return None


def repeated_sentence(sentences: list[list[str]]) -> str | None:
    """A sentence said three times, or a sentence of a few tokens said twice; None when there is none."""
    counts = Counter(tuple(tokens) for tokens in sentences)
    for tokens, count in counts.items():
        if count >= 3 or (count >= 2 and len(tokens) >= SENTENCE_TOKENS_TWICE):
            return " ".join(tokens)
    return None


def token_loop(tokens: list[str]) -> str | None:
    """A span of tokens repeated back to back ("the the the the", "we can help we can help we can help")."""
    for span in range(1, LOOP_SPAN + 1):
        repeats = LOOP_REPEATS_ONE if span == 1 else LOOP_REPEATS
        needed = span * (repeats - 1)  # tokens equal to the one ``span`` before them, in a row
        matched = 0
        for i in range(span, len(tokens)):
            matched = matched + 1 if tokens[i] == tokens[i - span] else 0
            if matched >= needed and not (span == 1 and tokens[i].isdigit()):  # "0 | 0 | 0 | 0": a table
                return " ".join(tokens[i - needed - span + 1:i - needed + 1])
    return None


def trigram_variety(tokens: list[str]) -> float:
    trigrams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    return len(set(trigrams)) / len(trigrams) if trigrams else 1.0


def repetition_check(answer: str, *, complete: bool = True) -> GateVerdict:
    """No degenerate repetition. Mid-stream (``complete`` off) only what more text cannot undo is judged."""
    text = without_code(without_marks(answer))
    run = character_run(text)
    if run is not None:
        return failed("repetition", f"character run {run[:20]!r}")
    sentence = repeated_sentence(sentences_of(text, complete=complete))
    if sentence is not None:
        return failed("repetition", f"sentence repeated: {sentence[:80]!r}")
    tokens = tokens_of(text)
    if not complete:
        tokens = tokens[:-1]  # the last token may still grow
    loop = token_loop(tokens)
    if loop is not None:
        return failed("repetition", f"tokens repeated back to back: {loop[:80]!r}")
    if complete and len(tokens) >= VARIETY_TOKENS and trigram_variety(tokens) < MIN_TRIGRAM_VARIETY:
        return failed("repetition", f"{trigram_variety(tokens):.0%} distinct trigrams")
    return PASS


def content_check(answer: str) -> GateVerdict:
    """Something to read is left once citation marks, tags, markup and punctuation are gone (an emoji counts)."""
    if any(ch.isalnum() or unicodedata.category(ch) == "So" for ch in without_marks(answer)):
        return PASS
    return failed("empty", "no words" if not answer.strip() else f"only marks and punctuation: {answer[:40]!r}")


def text_checks(text: str, *, question: str, complete: bool) -> GateVerdict:
    """All three checks, cheapest first; ``complete`` off for a head that the stream may still extend."""
    for verdict in (content_check(text), script_check(text, question=question),
                    repetition_check(text, complete=complete)):
        if not verdict.passed:
            return verdict
    return PASS


# --- where the checks run ----------------------------------------------------------------

def release_point(text: str, hold_chars: int) -> int | None:
    """Where the held-back head ends: after ``hold_chars`` (CJK counted double, leading space not at all).

    0 with no hold (``hold_chars`` ≤ 0): nothing is held and only the finished text is judged.
    """
    if hold_chars <= 0:
        return 0
    weight = 0
    for index, ch in enumerate(text):
        if weight == 0 and ch.isspace():
            continue
        weight += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if weight >= hold_chars:
            return index + 1
    return None


def gate_verdict(*, answer: str, question: str, hold_chars: int) -> GateVerdict:
    """The finished answer's verdict: its head as the stream judged it, then the whole text."""
    answer = answer.strip()
    point = release_point(answer, hold_chars)
    if point:
        head = text_checks(answer[:point], question=question, complete=False)
        if not head.passed:
            return head
    return text_checks(answer, question=question, complete=True)


HOLDING, OPEN, CLOSED = "holding", "open", "closed"
RECHECK_PIECES = 16  # an open stream's repetition check also runs every this many pieces
RECHECK_CHARS = 800  # ... over about this many of its last characters, so a long answer costs linear time


def recent_sentences(text: str, chars: int = RECHECK_CHARS) -> str:
    """The end of ``text`` from the first sentence start (else word start) within its last ``chars`` characters.

    Starting on a boundary keeps the mid-stream check honest: every sentence and token it sees is one
    of the whole text, so what it finds the finished answer's verdict finds too.
    """
    if len(text) <= chars:
        return text
    boundary = SENTENCE_END.search(text, len(text) - chars) or SPACE.search(text, len(text) - chars)
    return text[boundary.end():] if boundary else text[len(text) - chars:]  # no space: CJK, one token a character


class StreamGate:
    """Holds back the head of a streamed answer until it passes; stops the stream when a check fails.

    ``feed`` takes the next piece of (masked) text and returns what may be shown now; ``flush``
    returns the rest at the end. Once the head passes, text flows as it comes, and at each sentence
    end the repetition check runs again over the finished sentences; a failure there (or on the
    head) shows nothing more — the ``done`` event then carries the refusal that replaces the bubble.
    Deterministic in its input, so a resumed stream rebuilds it by feeding the same pieces again.
    """

    def __init__(self, *, question: str, hold_chars: int):
        self.question = question
        self.hold_chars = hold_chars
        self.text = ""
        self.shown = 0
        self.pieces = 0
        self.state = HOLDING
        self.verdict = PASS

    def feed(self, piece: str) -> str:
        start = len(self.text)
        self.text += piece
        self.pieces += 1
        if self.state == HOLDING:
            point = release_point(self.text, self.hold_chars)
            if point is None:
                return ""
            self.judge(text_checks(self.text[:point], question=self.question, complete=False) if point else PASS)
        elif self.state == OPEN and (self.pieces % RECHECK_PIECES == 0
                                     or SENTENCE_END.search(self.text, max(0, start - 1))):
            # Only when a sentence may have ended (or every few pieces, for loops without one), and only over
            # the recent sentences: a loop is local, and the finished text is checked whole anyway.
            self.judge(repetition_check(recent_sentences(self.text), complete=False))
        return self.let_through()

    def flush(self) -> str:
        if self.state == HOLDING:
            self.judge(text_checks(self.text, question=self.question, complete=True))
        return self.let_through()

    def judge(self, verdict: GateVerdict) -> None:
        self.verdict = verdict
        self.state = OPEN if verdict.passed else CLOSED

    def let_through(self) -> str:
        if self.state != OPEN:
            return ""
        out = self.text[self.shown:]
        self.shown = len(self.text)
        return out
