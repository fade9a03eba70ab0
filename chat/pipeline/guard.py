"""Stage 1, the guard: what a question must be before anything else looks at it.

- :func:`question_check` — Unicode NFKC, control characters stripped, whitespace tidied,
  empty and over-long questions refused (the view turns those into 400s; nothing is stored).
- :class:`SensitiveMatcher` — a per-base list of words (any language) in one
  Aho–Corasick automaton (pyahocorasick): a question containing one is refused politely;
  :class:`StreamMasker` masks them in generated output as it streams, also when a word
  spans two tokens, by holding back the last ``longest word - 1`` characters.
- :func:`output_matcher` — what generated text is masked for: the sensitive words plus every
  run of six words of the base's own (custom) system prompt, so an answer that recites its
  instructions after a prompt injection streams asterisks instead.
- :func:`rate_limit_hit` — a sliding-window counter in the Django cache (Redis in service
  mode) per widget key, client IP and conversation; over the limit → 429 with Retry-After.
  A client is its IPv4 address or its IPv6 /64 (:func:`rate_limit_client`): one host owns a
  whole /64, so rotating addresses inside it is still one client. Each refusal is counted in
  ``kefu_chat_rate_limited_total{scope}``; ``scope="key"`` means a widget key's shared bucket is full.
"""

from __future__ import annotations

import ipaddress
import math
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

from chat import metrics as chat_metrics

KEEP_CONTROLS = {"\n", "\t"}
MASK_CHAR = "*"


@dataclass(frozen=True)
class GuardResult:
    """A question after the guard: ``ok`` with its clean text, or a refusal code and message."""

    ok: bool
    text: str = ""
    code: str = ""
    message: str = ""


def normalize_question(raw: str) -> str:
    """NFKC, control and format characters removed, runs of spaces collapsed, ends trimmed."""
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if ch in KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def question_check(raw, *, max_chars: int | None = None) -> GuardResult:
    """Validate and normalise a question; the result says why when it is refused."""
    max_chars = max_chars or settings.KEFU_CHAT_MAX_QUESTION_CHARS
    if not isinstance(raw, str):
        return GuardResult(False, code="invalid_text", message="text must be a string")
    text = normalize_question(raw)
    if not text:
        return GuardResult(False, code="empty_text", message="the question is empty")
    if len(text) > max_chars:
        return GuardResult(False, code="text_too_long",
                           message=f"the question is {len(text)} characters long; the limit is {max_chars}")
    return GuardResult(True, text=text)


# --- sensitive words --------------------------------------------------------------------

def fold(text: str) -> str:
    """Lower-case character by character, keeping the length so spans map back to the original."""
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


SEPARATOR_CATEGORIES = ("Z", "P", "Sm", "Sk")  # spaces, punctuation (dashes, dots, quotes…), math and modifier marks


def is_separator(ch: str) -> bool:
    """Whitespace or punctuation: what a reader skips between two words."""
    return ch.isspace() or unicodedata.category(ch).startswith(SEPARATOR_CATEGORIES)


def separated(text: str) -> tuple[str, list[int]]:
    """``text`` with each run of separators as one space, and the index in ``text`` of each character of it.

    Streaming-stable: more text appended never changes the characters or indices already produced.
    """
    out: list[str] = []
    starts: list[int] = []
    previous_was_separator = False
    for index, ch in enumerate(text):
        separator = is_separator(ch)
        if not (separator and previous_was_separator):
            out.append(" " if separator else ch)
            starts.append(index)
        previous_was_separator = separator
    return "".join(out), starts


def separated_pattern(word: str) -> str:
    """A multi-word pattern as :func:`separated` text shows it: words joined by one space ('' for one word)."""
    pattern = separated(word)[0].strip()
    return pattern if " " in pattern else ""


def automaton_of(words) -> object | None:
    import ahocorasick  # a C extension, light; imported here so modules that never match stay lean

    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, len(word))
    automaton.make_automaton()
    return automaton


class SensitiveMatcher:
    """Every occurrence of any listed word, case-insensitive, in one pass (Aho–Corasick).

    Words are matched as written; a word of several words (a system prompt's run, "secret code") is also
    matched with any whitespace or punctuation between its words — line breaks, dashes, dots — so breaking
    it up does not get it past the mask.
    """

    def __init__(self, words: tuple[str, ...]):
        self.words = tuple(sorted({fold(unicodedata.normalize("NFKC", w).strip()) for w in words if w.strip()}))
        self.phrases = tuple(sorted({p for w in self.words if (p := separated_pattern(w))}))
        self.longest = max((len(w) for w in self.words), default=0)
        self.longest_phrase = max((len(p) for p in self.phrases), default=0)
        self.automaton = automaton_of(self.words)
        self.phrase_automaton = automaton_of(self.phrases)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every match, end exclusive, in order of start."""
        if self.automaton is None or not text:
            return []
        folded = fold(text)
        found = [(end + 1 - length, end + 1) for end, length in self.automaton.iter(folded)]
        if self.phrase_automaton is not None:
            squeezed, starts = separated(folded)
            found += [(starts[end + 1 - length], starts[end] + 1)
                      for end, length in self.phrase_automaton.iter(squeezed)]
        return sorted(set(found))

    def safe_cut(self, text: str) -> int:
        """How much of ``text`` no later text can add a match to: every match starting before it ends in ``text``."""
        cut = max(0, len(text) - (self.longest - 1))
        if self.phrase_automaton is not None:
            squeezed, starts = separated(text)
            at = len(squeezed) - (self.longest_phrase - 1)
            cut = min(cut, starts[at] if 0 <= at < len(starts) else (0 if at < 0 else len(text)))
        return cut

    def contains(self, text: str) -> bool:
        return bool(self.spans(text))

    def mask(self, text: str) -> str:
        return apply_mask(text, self.flags(text))

    def flags(self, text: str, flags: list[bool] | None = None) -> list[bool]:
        """Per character: is it inside a match? (ORed into ``flags`` when given)."""
        flags = flags if flags is not None else [False] * len(text)
        for start, end in self.spans(text):
            flags[start:end] = [True] * (end - start)
        return flags


def apply_mask(text: str, flags: list[bool]) -> str:
    return "".join(MASK_CHAR if flag and not ch.isspace() else ch for ch, flag in zip(text, flags, strict=True))


@lru_cache(maxsize=256)
def sensitive_matcher(words: tuple[str, ...]) -> SensitiveMatcher:
    """One automaton per distinct word list, built once per process."""
    return SensitiveMatcher(words)


PROMPT_SHINGLE_WORDS = 6


def prompt_shingles(system_prompt: str, *, words: int = PROMPT_SHINGLE_WORDS) -> tuple[str, ...]:
    """Every run of ``words`` consecutive words of a system prompt (the whole prompt when shorter).

    A generated answer holding one is repeating its instructions. Masking costs a hold-back of
    one run's length in the stream, so only a base's custom prompt is protected: the default
    prompt is public (it is in the source).
    """
    tokens = system_prompt.split()
    if len(tokens) <= words:
        return (" ".join(tokens),) if tokens else ()
    return tuple(dict.fromkeys(" ".join(tokens[i:i + words]) for i in range(len(tokens) - words + 1)))


def output_matcher(profile) -> SensitiveMatcher:
    """The matcher generated text of a base is masked with: its sensitive words and its custom prompt's runs."""
    return sensitive_matcher(tuple(profile.sensitive_word_list) + prompt_shingles(profile.system_prompt or ""))


class StreamMasker:
    """Masks sensitive words in text that arrives in pieces.

    Any word starting before the last ``longest - 1`` characters seen so far (counted with runs of
    separators as one, for words of several words: :meth:`SensitiveMatcher.safe_cut`) lies wholly
    inside what has been seen, so everything before that point can be masked and let go;
    the tail waits, unmasked but with the marks of words that began earlier, for the next
    piece (or :meth:`flush`). Matching always runs on the raw text, so overlapping words
    ("cod" inside "secret code") are all found.
    """

    def __init__(self, matcher: SensitiveMatcher):
        self.matcher = matcher
        self.pending = ""
        self.pending_flags: list[bool] = []

    def feed(self, piece: str) -> str:
        if self.matcher.longest == 0:
            return piece
        self.pending += piece
        flags = self.matcher.flags(self.pending, self.pending_flags + [False] * len(piece))
        cut = self.matcher.safe_cut(self.pending)
        out = apply_mask(self.pending[:cut], flags[:cut])
        self.pending, self.pending_flags = self.pending[cut:], flags[cut:]
        return out

    def flush(self) -> str:
        flags = self.matcher.flags(self.pending, self.pending_flags) if self.pending else []
        out = apply_mask(self.pending, flags)
        self.pending, self.pending_flags = "", []
        return out


# --- rate limits ------------------------------------------------------------------------

@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0
    scope: str = ""


IPV6_CLIENT_PREFIX = 64


def rate_limit_client(ip: str) -> str:
    """Who a client address is for rate limits: an IPv4 address itself, an IPv6 address its /64.

    An IPv4-mapped IPv6 address is its IPv4 address; anything that is not an address (``unknown``, an
    already grouped ``…/64``) is returned unchanged, so grouping twice changes nothing.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def rate_limit_hit(scope: str, ident: str, *, limit: int, window_s: int, now: float | None = None) -> RateDecision:
    """Count one request against ``scope:ident``; refuse it when the sliding window is full.

    The sliding window is estimated from two fixed windows (the current count plus the
    previous one weighted by how much of it still overlaps), which needs two cache keys
    and no per-request log. Refused requests are not counted.
    """
    now = time.time() if now is None else now
    window_index = int(now // window_s)
    elapsed = now - window_index * window_s
    current_key = f"chat:rl:{scope}:{ident}:{window_index}"
    previous_key = f"chat:rl:{scope}:{ident}:{window_index - 1}"
    counts = cache.get_many([current_key, previous_key])
    current, previous = counts.get(current_key, 0), counts.get(previous_key, 0)
    weight = 1.0 - elapsed / window_s
    if previous * weight + current + 1 > limit:
        chat_metrics.rate_limited_count(scope=scope)
        return RateDecision(False, retry_after(current, previous, limit=limit, window_s=window_s, elapsed=elapsed),
                            scope)
    if cache.add(current_key, 1, timeout=2 * window_s + 1):
        return RateDecision(True, scope=scope)
    try:
        cache.incr(current_key)
    except ValueError:  # expired between add and incr
        cache.add(current_key, 1, timeout=2 * window_s + 1)
    return RateDecision(True, scope=scope)


def retry_after(current: int, previous: int, *, limit: int, window_s: int, elapsed: float) -> int:
    """Whole seconds until one more request fits in the window."""
    if current + 1 > limit or previous == 0:
        # Only the next window frees room: then current becomes the (decaying) previous count.
        wait = window_s - elapsed
        if current + 1 > limit:
            wait += window_s * (1 - (limit - 1) / current)
        return max(1, math.ceil(wait))
    # The previous window's weight must fall until previous * weight + current + 1 <= limit.
    needed_weight = (limit - current - 1) / previous
    wait = (1 - needed_weight) * window_s - elapsed
    return max(1, math.ceil(wait))


def request_rate_check(*, widget_key: str, ip: str, conversation: str | None) -> RateDecision:
    """All three limits for one question; the first one that is full decides. IPv6 clients count per /64."""
    limits = settings.KEFU_CHAT_RATE_LIMITS
    checks = [("key", widget_key), ("ip", rate_limit_client(ip))]
    if conversation:
        checks.append(("conversation", conversation))
    for scope, ident in checks:
        limit, window_s = limits[scope]
        decision = rate_limit_hit(scope, ident, limit=limit, window_s=window_s)
        if not decision.allowed:
            return decision
    return RateDecision(True)
