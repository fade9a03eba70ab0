"""Misspelled question words corrected to the knowledge base's own words, before anything else reads them.

Customers type fast: "how thick shoud attic insulaton be", "our bulder stoped answering". BM25 finds
nothing for a misspelled term and the embedder reads it as other word pieces, so the question looks
like one the base cannot answer (demo base: 0.455 → 0.991 answerable once corrected). Each Latin word of
at least ``MIN_LENGTH`` letters that is neither a word of the base nor an English word (pyspellchecker's
list) is replaced by the base's most frequent word one edit away (an insertion, deletion, substitution
or transposition) — two edits for words of ``TWO_EDITS_FROM`` letters or more. A word the base does
not hold at that distance is left as it is. Acronyms (all capitals) and Chinese are never touched.

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


class Speller:
    """The words of one base, with their counts, and the corrections they offer."""

    def __init__(self, words: Iterable[str]):
        self.counts = Counter(w for w in (word.lower() for word in words) if len(w) >= MIN_VOCABULARY_LENGTH)
        self.checker = SpellChecker(language=None, distance=1, case_sensitive=False)
        self.checker.word_frequency.load_json(dict(self.counts))
        self.memo: dict[str, str | None] = {}

    def suggestion(self, word: str) -> str | None:
        """The base's word for a misspelled ``word`` (lower case), or None when it is fine or nothing is close."""
        if word in self.counts or word in english_words():
            return None
        if word not in self.memo:
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[word] = self.closest(word)
        return self.memo[word]

    def closest(self, word: str) -> str | None:
        found = self.checker.known(self.checker.edit_distance_1(word))
        if not found and len(word) >= TWO_EDITS_FROM:
            found = self.checker.known(self.checker.edit_distance_2(word))
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
