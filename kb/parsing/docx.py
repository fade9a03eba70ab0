"""DOCX: paragraphs under their headings (Title / Heading N styles), tables as text rows."""

from __future__ import annotations

import io
import re
import zipfile

from kb.parsing.errors import ParseError
from kb.parsing.outline import Outline
from kb.parsing.sections import ParsedDocument

HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)


def parse_docx(data: bytes) -> ParsedDocument:
    import docx  # python-docx; imported here so only the ingest worker pays for it
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError("The DOCX file is damaged and could not be opened.") from exc
    except Exception as exc:  # lxml raises its own XMLSyntaxError for broken parts
        raise ParseError("The DOCX file is damaged and could not be opened.") from exc
    outline = Outline()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.text(table_text(block))
            continue
        level = heading_level(block.style.name if block.style is not None else "")
        if level:
            outline.heading(level, block.text)
        else:
            outline.text(block.text)
    title = document.core_properties.title or ""
    return ParsedDocument(file_type="docx", sections=outline.finish(), title=title)


def heading_level(style_name: str) -> int:
    if style_name.lower() == "title":
        return 1
    match = HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) + 1 if match else 0


def table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)
