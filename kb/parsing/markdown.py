"""Markdown: parsed by markdown-it-py; paragraphs, list items, code and tables under their headings."""

from __future__ import annotations

from markdown_it import MarkdownIt

from kb.parsing.outline import Outline
from kb.parsing.sections import ParsedDocument
from kb.parsing.text import decode_text


def parse_markdown(data: bytes) -> ParsedDocument:
    tokens = MarkdownIt("commonmark").enable("table").parse(decode_text(data))
    outline = Outline()
    heading_level = 0
    row: list[str] = []
    in_cell = False
    for token in tokens:
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = 0
        elif token.type == "inline" and heading_level:
            outline.heading(heading_level, plain_inline(token))
        elif token.type in ("th_open", "td_open", "th_close", "td_close"):
            in_cell = token.type.endswith("_open")
        elif token.type == "inline" and in_cell:
            row.append(plain_inline(token))
        elif token.type == "inline":
            outline.text(plain_inline(token))
        elif token.type in ("fence", "code_block"):
            outline.text(token.content)
        elif token.type == "tr_close":
            outline.text(" | ".join(cell for cell in row if cell))
            row = []
    return ParsedDocument(file_type="markdown", sections=outline.finish())


def plain_inline(token) -> str:
    """The visible text of an inline token (links and emphasis reduced to their words)."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts).strip()
