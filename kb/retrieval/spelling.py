"""Misspelled question words corrected to the knowledge base's own words, before anything else reads them.

Customers type fast: "how thick shoud attic insulaton be", "our bulder stoped answering". BM25 finds
nothing for a misspelled term and the embedder reads it as other word pieces, so the question looks
like one the base cannot answer (demo base: 0.455 → 0.991 answerable once corrected). Each Latin word of
at least ``MIN_LENGTH`` letters that is neither a word of the base nor an English word (pyspellchecker's
list) is replaced by the base's most frequent word one edit away (an insertion, deletion, substitution
or transposition) — two edits for words of ``TWO_EDITS_FROM`` letters or more. A word the base does
not hold at that distance is left as it is. Acronyms (all capitals) and Chinese are never touched.

Only edits a hand makes are offered (:func:`plausible_typo`): the first letter is kept (people rarely mistype
it, and a name is not a typo: "Öland" is not "Land", "Gmail" not "Mail"), and a letter typed for another is a
key beside it or a vowel for a vowel ("wifi" is not "wiki", "stoped" not "stored"). British spellings count
as English words ("realised", "colour", "centre" have American twins in the word list), so they are never
"corrected" into a base word two edits away ("realised" into "raised").

Only the base's own words are offered: "insulaton" becomes "insulation" in a base about building, never
a guess from a general dictionary, so an out-of-base question stays out of base ("bake" is an English
word and is kept, not "corrected" to a base's "make").

The vocabulary of a base is built from its FAQ entries and indexed chunks on first use per index
version and kept per process (a few MB for a 10k-chunk base); the English word list takes ~20 MB per process,
loaded with the first question that has a Latin word to check.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from spellchecker import SpellChecker

from kb.retrieval.per_version import PerVersion

LATIN_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.U)  # "isn't" is one word, never "isn" + "t"
APOSTROPHES = ("'", "’")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")  # a question without one has nothing to correct
MIN_LENGTH = 4  # shorter words have too many neighbours one edit away
TWO_EDITS_FROM = 8  # words this long may be two edits off
MIN_VOCABULARY_LENGTH = 3
VERSIONS_KEPT = 8  # (kb, index version) vocabularies a process keeps
MEMO_LIMIT = 20_000  # unknown words remembered per base (a public widget may be sent any number of them)



@dataclass(frozen=True)
class Correction:
    """A question as typed and as searched; ``changes`` lists each (typed, corrected) word."""

    text: str
    changes: tuple[tuple[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@functools.cache
def english_words() -> frozenset[str]:
    """pyspellchecker's English word list (~160k words), loaded once per process."""
    return frozenset(SpellChecker(language="en").word_frequency.keys())


# British endings and their American twins, which the word list holds: colour/color, realise/realize,
# analyse/analyze, centre/center, defence/defense, catalogue/catalog, programme/program, travelled/traveled.
BRITISH_ENDINGS = (
    (re.compile(r"our(s|ed|ing|ful|ite|ites|able)?$"), r"or\1"),
    (re.compile(r"is(e|es|ed|ing|ation|ations|er|ers)$"), r"iz\1"),
    (re.compile(r"ys(e|es|ed|ing)$"), r"yz\1"),
    (re.compile(r"tre(s|d)?$"), r"ter\1"),
    (re.compile(r"ence(s)?$"), r"ense\1"),
    (re.compile(r"ogue(s)?$"), r"og\1"),
    (re.compile(r"amme(s)?$"), r"am\1"),
    (re.compile(r"ll(ed|ing|er|ers)$"), r"l\1"),
)


def is_english(word: str) -> bool:
    """An English word of the list, or the British spelling of one."""
    words = english_words()
    return word in words or any(pattern.search(word) and pattern.sub(american, word) in words
                                for pattern, american in BRITISH_ENDINGS)


KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
VOWELS = frozenset("aeiouyåäöéü")


# Column offsets of the keys touching a key, by the row they are on (-1: the row above). Each row sits a little
# to the right of the one above it: "f" touches "r" and "t" above it, and "c" and "v" below.
TOUCHING_COLUMNS = {-1: (0, 1), 0: (-1, 1), 1: (-1, 0)}


@functools.cache
def neighbour_keys() -> dict[str, frozenset[str]]:
    """Each letter's neighbours on a QWERTY keyboard: left and right on its row, and the keys touching it on the
    rows above and below."""
    position = {key: (row, column) for row, keys in enumerate(KEYBOARD_ROWS) for column, key in enumerate(keys)}
    return {key: frozenset(other for other, (other_row, other_column) in position.items()
                           if other_column - column in TOUCHING_COLUMNS.get(other_row - row, ()))
            for key, (row, column) in position.items()}


def plausible_typo(typed: str, word: str) -> bool:
    """Whether a hand could type ``word`` as ``typed``: the same first letter, and any letter typed in place of
    another a key beside it or a vowel for a vowel (a dropped, doubled or swapped letter always is)."""
    if not typed or not word or typed[0] != word[0]:
        return False
    if len(typed) != len(word):
        return True
    swapped = [(a, b) for a, b in zip(typed, word, strict=True) if a != b]
    if len(swapped) != 1:
        return True  # a transposition (two letters differ), or two edits of a long word
    a, b = swapped[0]
    return (a in VOWELS and b in VOWELS) or b in neighbour_keys().get(a, ())


class Speller:
    """The words of one base, with their counts, and the corrections they offer."""

    def __init__(self, words: Iterable[str]):
        self.counts = Counter(w for w in (word.lower() for word in words) if len(w) >= MIN_VOCABULARY_LENGTH)
        self.checker = SpellChecker(language=None, distance=1, case_sensitive=False)
        self.checker.word_frequency.load_json(dict(self.counts))
        self.memo: dict[str, str | None] = {}

    def suggestion(self, word: str) -> str | None:
        """The base's word for a misspelled ``word`` (lower case), or None when it is fine or nothing is close."""
        if word in self.counts or is_english(word):
            return None
        if word not in self.memo:
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[word] = self.closest(word)
        return self.memo[word]

    def closest(self, word: str) -> str | None:
        found = {w for w in self.checker.known(self.checker.edit_distance_1(word)) if plausible_typo(word, w)}
        if not found and len(word) >= TWO_EDITS_FROM:
            found = {w for w in self.checker.known(self.checker.edit_distance_2(word)) if plausible_typo(word, w)}
        if not found:
            return None
        return max(sorted(found), key=lambda candidate: self.counts[candidate])

    def correct(self, text: str) -> Correction:
        """``text`` with its misspelled words replaced (the first letter's case kept)."""
        changes: list[tuple[str, str]] = []

        def replaced(match: re.Match) -> str:
            typed = match.group()
            if len(typed) < MIN_LENGTH or typed.isupper() or CJK.search(typed) or has_apostrophe(typed):
                return typed
            better = self.suggestion(typed.lower())
            if better is None:
                return typed
            better = better.capitalize() if typed[0].isupper() else better
            changes.append((typed, better))
            return better

        corrected = LATIN_WORD.sub(replaced, text)
        return Correction(corrected, tuple(changes))


_spellers: PerVersion[Speller] = PerVersion(lambda texts: Speller(words_of(texts)), kept=VERSIONS_KEPT)


def has_apostrophe(word: str) -> bool:
    return any(mark in word for mark in APOSTROPHES)


def words_of(texts: Iterable[str]) -> Iterable[str]:
    """The Latin words of ``texts`` a misspelling may be corrected to (contractions are not offered)."""
    for text in texts:
        for word in LATIN_WORD.findall(text):
            if not CJK.search(word) and not has_apostrophe(word):
                yield word


def speller_for(key: tuple[int, int], texts: Callable[[], Iterable[str]]) -> Speller:
    """The speller of ``key`` (kb id, index version id), built from ``texts()`` on first use in this process
    — once, however many requests ask for it at the same moment (a burst right after an index switch)."""
    return _spellers.get(key, texts)


def forget_spellers() -> None:
    """Drop every base's vocabulary (tests; a process whose bases changed under it)."""
    _spellers.clear()
