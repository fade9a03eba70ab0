"""PDF: one section per page (page numbers kept), text by pypdf; encrypted files refused."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from kb.parsing.errors import ParseError
from kb.parsing.sections import ParsedDocument, Section

logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes) -> ParsedDocument:
    reader = open_reader(data)
    sections = []
    try:
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(text=text, page=number))
        page_count = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ParseError("The PDF is damaged and its text could not be read.") from exc
    if not sections:
        raise ParseError("The PDF has no extractable text (it may be a scanned image; OCR it first).")
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:  # metadata is optional and often malformed; the text is what matters
        title = ""
    return ParsedDocument(file_type="pdf", sections=tuple(sections), page_count=page_count, title=title)


def open_reader(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError("The PDF is damaged and could not be opened.") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise ParseError("The PDF is password-protected; remove the password and upload it again.") from exc
        if not opened:
            raise ParseError("The PDF is password-protected; remove the password and upload it again.")
    return reader
