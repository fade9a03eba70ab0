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

    Small models copy the prompt's layout; the header is already shown as the citation's source. An answer that
    is nothing but headers is returned unchanged (better a list of sources than an empty answer)."""
    by_source = {name.strip(): p.n for p in passages for name in (p.source, p.document_title) if name}
    lines, pending = [], None
    for line in text.split("\n"):
        header = HEADER_LINE.match(line)
        if header and header.group(2).strip() in by_source:
            pending = int(header.group(1)) if header.group(1) else by_source[header.group(2).strip()]
            continue
        if LABEL_LINE.match(line):
            continue
        if pending is not None and line.strip():
            if not CITATION_MARK.search(line):
                line = f"{line.rstrip()} [{pending}]"
            pending = None
        lines.append(line)
    return "\n".join(lines).strip() or text  # an answer made only of headers stays as the model wrote it


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
