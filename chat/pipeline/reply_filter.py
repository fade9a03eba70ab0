"""What generated text passes on its way to the customer, the same in the stream and in what is stored.

Three stages, each deterministic in its input however it is split into pieces:

1. the sensitive-word masker (:class:`chat.pipeline.guard.StreamMasker`);
2. echoed passage headers dropped (:class:`chat.pipeline.attribution.EchoedHeaderFilter`);
3. the output gate, which holds the head back until it passes (:class:`chat.pipeline.output_gate.StreamGate`).

The SSE relay feeds the job's tokens through a :class:`ReplyFilter` as they arrive; when the job ends,
:func:`finished_text` runs the job's whole text through a fresh one — the same stages, so the stored answer
is the streamed text (plus the ``[n]`` marks attribution adds). A reply the gate rejects, or one left empty,
is replaced by Kefu's refusal in the ``done`` event.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat.pipeline import attribution, guard, output_gate
from chat.pipeline.passages import Passage


class ReplyFilter:
    """The masker, then the header filter, then the output gate."""

    def __init__(self, *, matcher: guard.SensitiveMatcher, passages: list[Passage], question: str,
                 hold_chars: int):
        self.masker = guard.StreamMasker(matcher)
        self.headers = attribution.EchoedHeaderFilter(passages)
        self.gate = output_gate.StreamGate(question=question, hold_chars=hold_chars)

    def feed(self, piece: str) -> str:
        return self.gate.feed(self.headers.feed(self.masker.feed(piece)))

    def flush(self) -> str:
        rest = self.headers.feed(self.masker.flush()) + self.headers.flush()
        return self.gate.feed(rest) + self.gate.flush()


@dataclass(frozen=True)
class FinishedText:
    """A finished generation as the customer may read it, and the output gate's verdict on it."""

    text: str
    verdict: output_gate.GateVerdict


def finished_text(raw: str, *, matcher: guard.SensitiveMatcher, passages: list[Passage], question: str,
                  hold_chars: int) -> FinishedText:
    """The whole generated text through the stream's own filter; the gate then judges the finished whole."""
    reply_filter = ReplyFilter(matcher=matcher, passages=passages, question=question, hold_chars=hold_chars)
    shown = (reply_filter.feed(raw) + reply_filter.flush()).strip()
    verdict = reply_filter.gate.verdict
    if verdict.passed:
        verdict = output_gate.gate_verdict(answer=shown, question=question, hold_chars=hold_chars)
    if verdict.passed:
        verdict = output_gate.content_check(shown)
    return FinishedText(shown, verdict)
