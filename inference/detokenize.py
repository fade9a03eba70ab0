"""Turning generated token ids into the text a user sees, one step at a time.

Per request, :class:`TextAssembler` is fed the decoded text of all tokens so far and
returns the new *visible* text, so that:

- a token that ends inside a multi-byte character is held back until it is whole;
- ``<think>…</think>`` (reasoning models) is kept out of the visible text and stored
  in ``reasoning``; a prompt that already opened ``<think>`` starts inside it;
- a stop sequence ends the generation, and its text (and anything after) is never
  shown — text that could still become a stop sequence is held back until it cannot.
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
REPLACEMENT = "\ufffd"
CONTEXT_TOKENS = 4  # tokens decoded again before the new one, so merges and spacing come out as in a full decode


class IncrementalDecoder:
    """The decoded text of a growing list of token ids, decoding only the last few ids per token.

    Decoding all generated ids after every token costs O(n²) over an answer; this decodes a short
    window (the previous ``CONTEXT_TOKENS`` ids + the new ones) and appends what the new ids added,
    as vLLM and TGI do. Ids that end inside a multi-byte character add nothing until it is whole.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # window start
        self._read = 0  # ids before this one are already in ``text``

    def add(self, token: int) -> str:
        """Append one id; returns the full text decoded so far."""
        self.ids.append(token)
        before = self.decode(self.ids[self._prefix:self._read])
        after = self.decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self.text += after[len(before):]
            self._read = len(self.ids)
            self._prefix = max(0, self._read - CONTEXT_TOKENS)
        return self.text

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""


class TextAssembler:
    """Visible text, reasoning text and stop detection for one generation."""

    def __init__(self, stop: tuple[str, ...] = (), *, starts_in_reasoning: bool = False):
        self.stop = tuple(stop)
        self.raw = ""  # everything decoded so far
        self.visible = ""  # answer text confirmed so far (emitted or about to be)
        self.emitted = 0  # characters of ``visible`` already returned
        self.reasoning = ""
        self.in_reasoning = starts_in_reasoning
        self.stopped = False
        self.after_reasoning = False
        self._consumed = 0  # characters of ``raw`` already routed to visible/reasoning

    def feed(self, decoded: str) -> str:
        """Give the decoded text of all generated tokens; returns visible text that is now safe to show."""
        if self.stopped:
            return ""
        if decoded.endswith(REPLACEMENT):
            return ""  # an incomplete UTF-8 sequence: wait for the next token
        self.raw = decoded
        self.route()
        return self.release(final=False)

    def flush(self) -> str:
        """At the end of generation: release what was held back (there is no next token to wait for)."""
        if not self.stopped:
            self.route(final=True)
        return self.release(final=True)

    def route(self, final: bool = False) -> None:
        """Move new raw text into reasoning or visible text, following <think> tags."""
        pending = self.raw[self._consumed:]
        while pending:
            if self.in_reasoning:
                end = pending.find(THINK_CLOSE)
                if end < 0:
                    keep = 0 if final else partial_suffix(pending, (THINK_CLOSE,))
                    self.reasoning += pending[: len(pending) - keep]
                    self._consumed += len(pending) - keep
                    return
                self.reasoning += pending[:end]
                self._consumed += end + len(THINK_CLOSE)
                self.in_reasoning = False
                self.after_reasoning = True
                pending = pending[end + len(THINK_CLOSE):]
                continue
            if not self.visible:
                head = pending.lstrip()
                if head.startswith(THINK_OPEN):
                    self._consumed += len(pending) - len(head) + len(THINK_OPEN)
                    self.in_reasoning = True
                    pending = head[len(THINK_OPEN):]
                    continue
                if THINK_OPEN.startswith(head) and not final:
                    return  # may still become "<think>": wait for the next token
                if self.after_reasoning:
                    # the blank line between "</think>" and the answer is not part of the answer
                    self._consumed += len(pending) - len(head)
                    pending = head
                    if not pending:
                        return
            self.visible += pending
            self._consumed += len(pending)
            return

    def release(self, *, final: bool) -> str:
        """The not-yet-emitted visible text, cut at a stop sequence, holding back a possible one."""
        text = self.visible
        if self.stop:
            cut = first_stop(text, self.stop, start=max(0, self.emitted - max(map(len, self.stop))))
            if cut is not None:
                self.visible = text = text[:cut]
                self.stopped = True
                final = True
        limit = len(text) if final else len(text) - partial_suffix(text, self.stop)
        if limit <= self.emitted:
            return ""
        delta = text[self.emitted:limit]
        self.emitted = limit
        return delta

    @property
    def text(self) -> str:
        """The visible answer (what was or will be emitted)."""
        return self.visible


def first_stop(text: str, stops: tuple[str, ...], *, start: int = 0) -> int | None:
    """Index of the earliest stop sequence in ``text`` (searching from ``start``), or None."""
    found = [index for index in (text.find(stop, start) for stop in stops) if index >= 0]
    return min(found) if found else None


def partial_suffix(text: str, needles: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``needles``."""
    best = 0
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), best, -1):
            if text.endswith(needle[:size]):
                best = size
                break
    return best
