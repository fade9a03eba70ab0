"""Values parsers produce: sections of text with where they came from, and FAQ sheet rows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class FaqRow:
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedDocument:
    file_type: str
    sections: tuple[Section, ...] = ()
    page_count: int = 0
    faq_rows: tuple[FaqRow, ...] = ()
    title: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
