"""Passages: the retrieved hits an answer is built from, numbered, and the citations back to them.

A :class:`Passage` is what the prompt numbers ``[n]`` and what is stored on the
assistant message so the finaliser can map the ``[n]`` in a finished answer to the
document, page/section and a snippet (:class:`Citation`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

SNIPPET_CHARS = 240
CITATION_MARK = re.compile(r"\[(\d+(?:\s*[,，]\s*\d+)*)\]")


@dataclass(frozen=True)
class Passage:
    n: int
    text: str
    document_id: int | None
    document_title: str
    page: int | None
    section: str
    chunk_id: int | None
    faq_entry_id: int | None
    relevance: float

    @property
    def source(self) -> str:
        parts = [self.document_title or "FAQ"]
        if self.page:
            parts.append(f"p. {self.page}")
        if self.section:
            parts.append(self.section)
        return " · ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    n: int
    document_id: int | None
    document_title: str
    page: int | None
    section: str
    snippet: str
    chunk_id: int | None = None
    faq_entry_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def hit_relevance(hit) -> float:
    """How close a hit is to the question on an absolute scale: the dense cosine (or FAQ similarity).

    The fused RRF score only orders hits; it says nothing about whether any is relevant.
    A hit the dense retriever did not return at all counts as 0.
    """
    dense = hit.found_by.get("dense") if hit.found_by else None
    scores = [value for value in (dense.score if dense else None, hit.similarity) if value is not None]
    return float(max(scores)) if scores else 0.0


def passage_of(hit, n: int) -> Passage:
    text = f"{hit.faq_question}\n{hit.faq_answer}" if hit.is_faq else hit.text
    return Passage(n=n, text=text, document_id=hit.document_id, document_title=hit.document_title,
                   page=hit.page, section=hit.heading_path, chunk_id=hit.chunk_id,
                   faq_entry_id=hit.faq_entry_id, relevance=hit_relevance(hit))


def passage_from_dict(row: dict) -> Passage:
    return Passage(**row)


def snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def citation_of(passage: Passage) -> Citation:
    return Citation(n=passage.n, document_id=passage.document_id, document_title=passage.document_title or "FAQ",
                    page=passage.page, section=passage.section, snippet=snippet(passage.text),
                    chunk_id=passage.chunk_id, faq_entry_id=passage.faq_entry_id)


def cited_numbers(answer: str) -> list[int]:
    """The [n] marks of an answer in order of first appearance ("[1]", "[1, 3]", "[2][4]")."""
    seen: list[int] = []
    for match in CITATION_MARK.finditer(answer):
        for part in re.split(r"[,，]", match.group(1)):
            number = int(part.strip())
            if number not in seen:
                seen.append(number)
    return seen


def citations_for(answer: str, passages: list[Passage]) -> list[Citation]:
    """The passages an answer cites, as citations; marks that name no passage are ignored."""
    by_number = {p.n: p for p in passages}
    return [citation_of(by_number[n]) for n in cited_numbers(answer) if n in by_number]
