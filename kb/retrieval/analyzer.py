"""BM25 tokeniser for English, Chinese and mixed text.

Text is first folded: NFKC (full-width letters, digits and punctuation become their usual forms)
and Traditional Chinese characters to Simplified (OpenCC ``t2s``), on both the indexed text and the
query, so a question typed in either script finds either.

Chinese runs become their characters and overlapping character bigrams (single-character stop
words dropped) — the standard indexing for Chinese full-text search, which needs no dictionary and
so never splits a product name or a base's own term wrongly. Measured on debian-zh's 32 in-base
questions (``chat/data/eval/debian-zh.jsonl``, session 7; the expected section ranked first): BM25
0.53 with jieba words, 0.53 with jieba's search mode, 0.56 with jieba words plus bigrams, **0.66**
with characters plus bigrams (hybrid 0.59 → 0.69).
Other runs are lower-cased ``\\w+`` words, English stop-words dropped and Snowball-stemmed
(PyStemmer). Numbers are kept; a word that mixes letters and digits ("EI60", "AB04") also yields its
letter and digit runs, so a code written with a space ("EI 60") finds it.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"\w+", re.U)
LETTERS_OR_DIGITS = re.compile(r"[^\W\d_]+|\d+")
ENGLISH_STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was
we were what when where which while who whom why will with would you your yours yourself yourselves
""".split())
CHINESE_STOP_WORDS = frozenset("的 了 和 是 在 也 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 吗 呢 吧 啊 之 被 把 让 给".split())

_jieba_lock = threading.Lock()
_opencc_lock = threading.Lock()


def analyze(text: str) -> list[str]:
    """Index/query terms of ``text``; duplicates kept (BM25 counts them)."""
    text = folded(text)
    terms: list[str] = []
    position = 0
    for match in CJK_RUN.finditer(text):
        terms.extend(english_terms(text[position:match.start()]))
        terms.extend(chinese_terms(match.group()))
        position = match.end()
    terms.extend(english_terms(text[position:]))
    return terms


def english_terms(text: str) -> list[str]:
    words = [w for w in WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS and w != "_"]
    words += [part for word in words for part in code_parts(word)]
    return stemmer().stemWords(words) if words else []


def code_parts(word: str) -> list[str]:
    """The letter and digit runs of a word that mixes them ("ei60" → "ei", "60"; "abs18"), so a code written
    with or without its space ("EI 60", "EI60") finds the other; none for a plain word or number."""
    parts = LETTERS_OR_DIGITS.findall(word)
    return parts if len(parts) > 1 else []


def chinese_terms(text: str) -> list[str]:
    """The characters of a run of Chinese (stop words dropped) and its overlapping bigrams."""
    characters = [ch for ch in text if ch not in CHINESE_STOP_WORDS]
    bigrams = [text[i:i + 2] for i in range(len(text) - 1)]
    return characters + [gram for gram in bigrams if gram not in CHINESE_STOP_WORDS]


def folded(text: str) -> str:
    """NFKC, and Traditional Chinese folded to Simplified when the text has Chinese characters."""
    text = unicodedata.normalize("NFKC", text)
    return traditional_to_simplified(text) if CJK_RUN.search(text) else text


@functools.cache
def _t2s():
    import opencc  # OpenCC's character tables: loaded once, only by processes that meet Chinese text

    return opencc.OpenCC("t2s")


def traditional_to_simplified(text: str) -> str:
    with _opencc_lock:  # one converter per process; its C++ core is not documented as thread-safe
        return _t2s().convert(text)


@functools.cache
def stemmer():
    import Stemmer  # PyStemmer, a C extension: cheap, but only search and ingestion need it

    return Stemmer.Stemmer("english")


@functools.cache
def jieba_tokenizer():
    # jieba builds its prefix dictionary on first use (~1 s); do it once per process, quietly.
    import jieba  # lazy: only processes that meet Chinese text load jieba

    with _jieba_lock:
        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
    return tokenizer
