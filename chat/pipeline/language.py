"""The language a customer wrote in: one detector for the whole app (stored on the message, and the
language of every reply Kefu writes itself).

Script decides first, so short Chinese is never misdetected: any kana → Japanese, any Hangul → Korean,
any Han character → Chinese. Other text goes to lingua, built once per process, lazily, for a handful of
languages in its low-accuracy (trigram) mode: about 25 MB and 45 ms to load, under a millisecond a
question. Its high-accuracy mode holds ~190 MB of n-gram models in every web process for little gain
on questions of several words. A text too short to tell (fewer than ``MIN_LETTERS`` letters: "ok",
"hi") or one lingua is unsure of is English, the default of the replies.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

# ISO 639-1 codes lingua is built for (Latin and Cyrillic script; CJK is told by its script).
DETECTED = ("en", "fr", "de", "es", "pt", "it", "nl", "sv", "ru")
DEFAULT = "en"
# Letters below which a Latin/Cyrillic text is not worth asking lingua about ("ok thanks" came out Swedish).
MIN_LETTERS = 12
# The languages Kefu's own replies are written in; any other detected language is answered in DEFAULT.
REPLY_LANGUAGES = ("zh", "en")

KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")
LETTER = re.compile(r"[^\W\d_]")


@cache
def detector():
    """lingua's detector, built on first use (its import and models stay out of processes that never ask)."""
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in DETECTED]
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


def script_language(text: str) -> str | None:
    """The language a CJK script names outright, or None for any other script."""
    if KANA.search(text):
        return "ja"
    if HANGUL.search(text):
        return "ko"
    if HAN.search(text):
        return "zh"
    return None


@lru_cache(maxsize=4096)
def detect_language(text: str) -> str:
    """ISO 639-1 code of the language ``text`` is written in ("zh", "en", "de", ...)."""
    by_script = script_language(text)
    if by_script:
        return by_script
    if len(LETTER.findall(text)) < MIN_LETTERS:
        return DEFAULT
    found = detector().detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found else DEFAULT


def reply_language(text: str) -> str:
    """The language of Kefu's own reply to ``text``: its language when Kefu has one, else English."""
    language = detect_language(text)
    return language if language in REPLY_LANGUAGES else DEFAULT
