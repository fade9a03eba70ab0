"""Citations for a generated answer that did not cite: each of its sentences is matched to the passages.

The prompt asks the model to cite ``[n]``; small models often do not (the bundled SmolLM2-135M cited in 1
of 10 answers on the demo base). An uncited answer leaves the customer unable to check it, so when the
model's own marks name no passage, every sentence of the answer is compared (embedding cosine) with the
sentences of the passages it was given, and a sentence that one of them states — cosine ≥
``MIN_SIMILARITY`` — gets that passage's ``[n]``. Sentences that match nothing stay uncited: attribution
never invents a source. The model's own marks, when valid, are kept as they are.
"""

from __future__ import annotations

import re

import numpy as np
import regex

from chat.pipeline.extractive import MIN_SENTENCE_CHARS, embed_sentences, sentences_of, weight
from chat.pipeline.passages import CITATION_MARK, Citation, Passage, citations_for

MIN_SIMILARITY = 0.6  # answer sentence vs passage sentence: a restatement, not a topic overlap
ANSWER_SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+|$)", re.M)


def cite_answer(text: str, passages: list[Passage], *, embed=embed_sentences) -> tuple[str, list[Citation]]:
    """(the answer with ``[n]`` marks, its citations): the model's own when valid, else attributed."""
    own = citations_for(text, passages)
    if own or not passages:
        return text, own
    spans = [m for m in ANSWER_SENTENCE.finditer(text) if weight(m.group().strip()) >= MIN_SENTENCE_CHARS]
    sources = [(p.n, s) for p in passages for s in sentences_of(passage_body(p))]
    if not spans or not sources:
        return text, []
    vectors = embed([m.group().strip() for m in spans] + [s for _, s in sources])  # (A + S, D)
    scores = vectors[: len(spans)] @ vectors[len(spans):].T  # (A, S)
    marks = {span.end(): sources[int(best)][0] for span, row in zip(spans, scores, strict=True)
             if row[(best := int(np.argmax(row)))] >= MIN_SIMILARITY}
    cited = insert_marks(text, marks)
    return cited, citations_for(cited, passages)


HEADER_LINE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:passage:?\s*)?(?:\[(\d+)\]\s*)?\((.+)\)\s*:?\s*$", re.I)
LABEL_LINE = re.compile(r"^\s*(?:passages?|the passage is|the answer is):?\s*$", re.I)


def without_echoed_headers(text: str, passages: list[Passage]) -> str:
    """The answer without lines that only repeat a passage's header from the prompt ("[2] (Title · p. 3)",
    "1. (Title)", "Passage:"); the passage's ``[n]`` moves to the end of the next line that has no mark.

    Small models copy the prompt's layout; the header is already shown as the citation's source. The whole
    text through :class:`EchoedHeaderFilter`, so what is stored is exactly what a stream showed."""
    headers = EchoedHeaderFilter(passages)
    return (headers.feed(text) + headers.flush()).strip()


# What a line may still become while it streams: an echoed header or a label line. A line that can no longer
# become one is shown as it arrives; one that still can is held until its end decides.
HEADER_PREFIX = regex.compile(HEADER_LINE.pattern, regex.I)
LABEL_PREFIX = regex.compile(LABEL_LINE.pattern, regex.I)


class EchoedHeaderFilter:
    """:func:`without_echoed_headers` for text that arrives in pieces (the SSE relay's tokens).

    Each line is held only while it could still be an echoed header or a label line (``regex`` partial
    matching on its prefix): "1. The permit…" is let through at "T", "[2] (Doc 2)" waits for its newline and
    is dropped with it. The dropped header's ``[n]`` is written at the end of the next non-blank line that
    carries no mark of its own. Deterministic in its input, however it is split into pieces.
    """

    def __init__(self, passages: list[Passage]):
        self.by_source = {name.strip(): p.n for p in passages for name in (p.source, p.document_title) if name}
        self.line = ""  # the current line so far (held, or already shown when ``open``)
        self.open = False  # the current line is known to be content: shown as it comes
        self.pending: int | None = None  # the [n] of a dropped header, for the next content line

    def feed(self, piece: str) -> str:
        out = []
        while piece:
            head, newline, piece = piece.partition("\n")
            out.append(self.take(head))
            if newline:
                out.append(self.line_end())
        return "".join(out)

    def flush(self) -> str:
        out = self.line_end(final=True)
        self.pending = None
        return out

    def take(self, text: str) -> str:
        """More of the current line: shown now when the line is content, else held."""
        self.line += text
        if self.open:
            return text
        if self.could_be_header(self.line):
            return ""
        self.open = True
        return self.line

    def could_be_header(self, line: str) -> bool:
        return bool(HEADER_PREFIX.match(line, partial=True) or LABEL_PREFIX.match(line, partial=True))

    def line_end(self, *, final: bool = False) -> str:
        """The current line is complete: drop it as a header or a label, or show the rest of it and its end."""
        line, was_open = self.line, self.open
        self.line, self.open = "", False
        newline = "" if final else "\n"
        if not was_open:
            header = HEADER_LINE.match(line)
            if header and header.group(2).strip() in self.by_source:
                self.pending = int(header.group(1)) if header.group(1) else self.by_source[header.group(2).strip()]
                return ""
            if LABEL_LINE.match(line):
                return ""
        shown = "" if was_open else line
        if self.pending is not None and line.strip():
            if not CITATION_MARK.search(line):
                shown += f" [{self.pending}]"
            self.pending = None
        return shown + newline


def passage_body(passage: Passage) -> str:
    """The passage's text without a FAQ entry's question line."""
    if passage.faq_entry_id and "\n" in passage.text:
        return passage.text.split("\n", 1)[1]
    return passage.text


def insert_marks(text: str, marks: dict[int, int]) -> str:
    """`` [n]`` inserted at each end offset (offsets into the original text)."""
    out, last = [], 0
    for end in sorted(marks):
        out += [text[last:end], f" [{marks[end]}]"]
        last = end
    out.append(text[last:])
    return "".join(out)
