"""The base's own glossary: a term its texts explain in brackets, explained the same way in a question.

Support texts define their jargon where they first use it: "an easement (servitut)", "a bygglov (building
permit)", "a residual current device (RCD)". A customer types the term alone — "can servitut be removed?",
"when is an arbetsmiljöplan required?" — and an English embedder reads a Swedish word or an acronym as word
pieces: the shape of the ask ("can X be revoked?") outweighs the topic, and the question lands on a sibling. So
the question is searched with the base's own explanation after the term: "can servitut (easement) be removed?".

A pair is mined from ``words (term)`` and ``term (words)`` in the base's FAQ entries and chunks — a term before its
explanation may be a name of two or three words no English word list holds ("Säker Vatten (Safe Water)", "tekniskt
samråd (technical consultation)") — and kept only
when the term is a word the English word list does not hold (a Swedish or German term, a product name), or an
acronym whose letters begin the explaining words (RCD → residual current device), and every explaining word is
English: "(1:100)", "(storage, carport)" and "dangerous (fall risk)" explain nothing, nor does a phrase cut
short by an abbreviation ("org. number (allabolag)") or a term of the base's own ("F-tax (Skatteverket)"). The explanation of a term
is the one its base gives most often. Only a Latin-script term is mined (a staff member may add a Chinese one); a
question already holding the explanation is left as it is.

Staff correct what the mining got wrong (:class:`GlossEdit`, kept in ``kb.models.GlossaryEdit``): a term explained
their way — one the texts never bracket, or a mined explanation replaced — or a mined term not explained at all
(:func:`corrected`). Their corrections apply on top of every index version's mined glossary.

Measured offline on the tuned demo base (session 13; the expected entry ranked first): 350 in-base questions of
the six older English sets 278 → 282, the follow-ups of their dialogues 143 → 145 of 168.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kb.retrieval import spelling
from kb.retrieval.per_version import PerVersion
from kb.retrieval.spelling import VERSIONS_KEPT, english_words

WORD = r"[A-Za-z\u00c0-\u024f][\w'’-]*"
BRACKET = re.compile(r"[(（]([^()（）]{2,48})[)）]")
LEADING = re.compile(rf"({WORD}(?:\s+{WORD}){{0,5}})\s*$")  # the words right before a bracket
LOOK_BACK = 160  # characters read before a bracket for its leading words
ABBREVIATION_BEFORE = re.compile(r"\b[a-z]{1,4}\.\s*$")  # "org. ", "approx. ", "incl. " right before a phrase
NOT_AN_EXPLANATION = re.compile(r"[\d,;:/=≈~%]|\be\.g\.|\bi\.e\.", re.IGNORECASE)
MAX_EXPLAINING_WORDS = 5
MAX_TERM_WORDS = 3  # "Säker Vatten (Safe Water)": a term of a few words the English word list does not hold
MAX_LEADING_WORDS = 4  # "what is a work environment plan (arbetsmiljöplan)" → "work environment plan"
MIN_SINGLE_WORD = 4  # a one-word explanation shorter than this ("use") explains nothing
MAX_TERMS = 5_000
# Words that end the explaining phrase before a bracketed term when read backwards.
BOUNDARY = frozenset("""
a an the of to for in on at by with and or is are was be this that these those its it their our your my what how
do does which who when where if as from any some no not per called known
""".split())


@dataclass(frozen=True)
class Gloss:
    term: str
    explanation: str


class Glossary:
    """A base's terms and their explanations, and questions read with them."""

    def __init__(self, glosses: Iterable[Gloss]):
        self.glosses = {gloss.term: gloss for gloss in glosses}
        self.by_lower = {term.lower(): gloss for term, gloss in reversed(self.glosses.items())}  # first one wins
        self.pattern = self.compiled(self.glosses)

    @staticmethod
    def compiled(glosses: dict[str, Gloss]) -> re.Pattern | None:
        """One pattern for every term, longest first (so "BAS-P" is matched before "BAS"): a word term as a whole
        word; a Chinese term (staff may add one) wherever it stands — Chinese has no spaces between words."""
        if not glosses:
            return None
        terms = sorted(glosses, key=len, reverse=True)
        words = [re.escape(term) for term in terms if not spelling.CJK.search(term)]
        han = [re.escape(term) for term in terms if spelling.CJK.search(term)]
        parts = ([r"(?<![\w-])(?:" + "|".join(words) + r")(?![\w-])"] if words else []) + han
        return re.compile("(" + "|".join(parts) + ")", re.IGNORECASE)

    def gloss_of(self, typed: str) -> Gloss | None:
        """The gloss a typed word stands for: a term that is also an English word ("ROT" / "rot") only as
        written; any other term in any case ("PPE", "ppe"; "Servitut", "servitut")."""
        gloss = self.by_lower.get(typed.lower())
        if gloss is None or (typed != gloss.term and gloss.term.lower() in english_words()):
            return None
        return gloss

    def explain(self, text: str) -> str:
        """``text`` with each glossed term followed by its explanation in brackets, once per term."""
        if self.pattern is None:
            return text
        seen: set[str] = set()

        def explained(match: re.Match) -> str:
            typed = match.group(1)
            gloss = self.gloss_of(typed)
            if gloss is None or gloss.term in seen or gloss.explanation.lower() in text.lower():
                return typed
            seen.add(gloss.term)
            return f"{typed} ({gloss.explanation})"

        return self.pattern.sub(explained, text)


def glossary_of(texts: Iterable[str]) -> Glossary:
    """The glossary a base's texts define: each term (whatever its case) with the explanation given most often
    (first seen on a tie), at most ``MAX_TERMS`` terms."""
    counts: Counter[Gloss] = Counter()
    for text in texts:
        counts.update(bracketed_glosses(text))
    chosen: dict[str, Gloss] = {}  # by the term in lower case: "Servitut" at a sentence's start is "servitut"
    for gloss, _ in counts.most_common():
        if gloss.term.lower() not in chosen and len(chosen) < MAX_TERMS:
            chosen[gloss.term.lower()] = gloss
    return Glossary(chosen.values())


def bracketed_glosses(text: str) -> Iterable[Gloss]:
    """The glosses one text defines: ``words (term)`` and ``term (words)``."""
    for match in BRACKET.finditer(text):
        before = LEADING.search(text, max(0, match.start() - LOOK_BACK), match.start())
        if before is None:
            continue
        leading, inside = before.group(1).split(), match.group(1).strip()
        if NOT_AN_EXPLANATION.search(inside):
            continue
        inner = inside.split()
        if len(inner) > MAX_EXPLAINING_WORDS or not all(re.fullmatch(WORD, word) for word in inner):
            continue
        if len(inner) == 1:  # "an easement (servitut)": the bracket holds the term
            term, explaining = inner[0], explaining_phrase(leading)
            if explaining == leading and ABBREVIATION_BEFORE.search(text, 0, before.start()):
                continue  # "org. number (allabolag)": the phrase is cut after an abbreviation, so it is not whole
        else:  # "a bygglov (building permit)", "Säker Vatten (Safe Water)": the bracket holds the explanation
            term, explaining = trailing_term(leading), inner
        gloss = valid_gloss(term, explaining)
        if gloss is not None:
            yield gloss


def trailing_term(words: list[str]) -> str:
    """The term right before a bracketed explanation: its last word, with the words before it that are no English
    and written alike (a name of two or three words: "Säker Vatten", "dolda fel"), at most ``MAX_TERM_WORDS``."""
    term = [words[-1]]
    for word in reversed(words[-MAX_TERM_WORDS:-1]):
        if (word.lower() in BOUNDARY or is_english(word) or not re.fullmatch(WORD, word)
                or word[0].isupper() != term[0][0].isupper()):
            break
        term.insert(0, word)
    return " ".join(term)


def explaining_phrase(words: list[str]) -> list[str]:
    """The words before a bracketed term that it names: read backwards up to a boundary word."""
    phrase: list[str] = []
    for word in reversed(words[-MAX_LEADING_WORDS:]):
        if word.lower() in BOUNDARY:
            break
        phrase.insert(0, word)
    return phrase


def valid_gloss(term: str, explaining: list[str]) -> Gloss | None:
    """A gloss when the term needs explaining and the words explain it (module docstring)."""
    term = term.strip("'’-")
    if not explaining or len(term) < 2:
        return None
    explanation = " ".join(explaining)
    if term.lower() in explanation.lower():
        return None
    if explaining[0].lower() in BOUNDARY or explaining[-1].lower() in BOUNDARY:
        return None
    if len(explaining) == 1 and len(explanation) < MIN_SINGLE_WORD:
        return None
    if not all(is_english(word) and not has_letter_part(word) for word in explaining):
        return None  # "F-tax (Skatteverket)": a term of the base's own is no explanation of another
    if is_acronym(term):
        return Gloss(term, explanation) if initials_match(term, explaining) else None
    return None if is_english(term) else Gloss(term, explanation)


def is_acronym(word: str) -> bool:
    letters = [ch for ch in word if ch.isalpha()]
    return len(letters) >= 2 and sum(ch.isupper() for ch in letters) >= len(letters) - 1 and word[0].isupper()


def initials_match(acronym: str, words: list[str]) -> bool:
    """"RCD" / residual current device, "PPE" / personal protective equipment: the acronym's capitals are the
    initials of the last content words."""
    capitals = [ch.lower() for ch in acronym if ch.isupper()]
    heads = [word[0].lower() for word in words if word.lower() not in BOUNDARY]
    return len(heads) >= len(capitals) and heads[-len(capitals):] == capitals


def has_letter_part(word: str) -> bool:
    """A hyphenated word with a one-letter part, a code rather than an English word ("F-tax", "A-kassa")."""
    return "-" in word and any(len(part) == 1 for part in word.split("-"))


def is_english(word: str) -> bool:
    """Every part of a (hyphenated) word is English, as the speller reads it (British spellings too)."""
    parts = [part for part in re.split(r"[-'’]", word.lower()) if part]
    return bool(parts) and all(spelling.is_english(part) for part in parts)


@dataclass(frozen=True)
class GlossEdit:
    """A staff correction: ``term`` explained as ``explanation``, or — blank — not explained at all."""

    term: str
    explanation: str = ""


def corrected(glossary: Glossary, edits: Iterable[GlossEdit]) -> Glossary:
    """The glossary with the staff's corrections: a term they explain is explained their way (added, or its mined
    explanation replaced, whatever the case it was mined in); a term they left unexplained is not explained."""
    by_key = {term.lower(): gloss for term, gloss in glossary.glosses.items()}
    for edit in edits:
        key = edit.term.lower()
        by_key.pop(key, None)
        if edit.explanation:
            by_key[key] = Gloss(edit.term, edit.explanation)
    return Glossary(by_key.values())


_glossaries: PerVersion[Glossary] = PerVersion(glossary_of, kept=VERSIONS_KEPT)
_corrected: PerVersion[Glossary] = PerVersion(lambda mined_and_edits: corrected(*mined_and_edits), kept=VERSIONS_KEPT)


def glossary_for(key: tuple[int, int], texts: Callable[[], Iterable[str]]) -> Glossary:
    """The glossary of ``key`` (kb id, index version id), built from ``texts()`` on first use in this process."""
    return _glossaries.get(key, texts)


def corrected_for(key: tuple[int, int, int], mined: Glossary, edits: Callable[[], Iterable[GlossEdit]]) -> Glossary:
    """The mined glossary with the staff's corrections of revision ``key[2]``, built once per process and revision
    (a correction bumps the revision, so every process reads it on its next question)."""
    return _corrected.get(key, lambda: (mined, edits()))


def forget_glossaries() -> None:
    """Drop every base's glossary (tests; a process whose bases changed under it)."""
    _glossaries.clear()
    _corrected.clear()
