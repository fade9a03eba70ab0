"""Collects blocks of text under a moving heading path; shared by the structured parsers."""

from __future__ import annotations

from kb.parsing.sections import Section


class Outline:
    """Feed headings and text blocks in reading order; get one Section per heading."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.blocks: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self.flush()
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, text))

    def text(self, block: str) -> None:
        block = block.strip()
        if block:
            self.blocks.append(block)

    def flush(self) -> None:
        if self.blocks:
            heading_path = tuple(title for _, title in self.path)
            self.sections.append(Section(text="\n\n".join(self.blocks), heading_path=heading_path))
            self.blocks = []

    def finish(self) -> tuple[Section, ...]:
        self.flush()
        return tuple(self.sections)
