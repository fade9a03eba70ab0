"""PDF: one section per page (page numbers kept), text by pypdf; encrypted files refused.

Before pypdf reads the cross-reference table, the file's declared object count (``/Size``) and
its object headers are counted in the raw bytes: more than :data:`MAX_OBJECTS` is refused (each
object costs pypdf memory however small it is). The page tree's declared ``/Count`` and the pages
actually read are held to :data:`MAX_PAGES`, and text extraction stops as soon as the text passes
``KEFU_KB_MAX_DOCUMENT_CHARS``. pypdf ≥ 6 caps each decompressed stream (75 MB).
"""

from __future__ import annotations

import io
import logging
import re

from django.conf import settings
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from kb.parsing.errors import ParseError
from kb.parsing.sections import ParsedDocument, Section

logging.getLogger("pypdf").setLevel(logging.ERROR)

MAX_PAGES = 10_000
MAX_OBJECTS = 500_000
DECLARED_SIZE = re.compile(rb"/Size\s+(\d{1,12})\b")
SPLIT_IT = "Split it into smaller files and upload those."
# What pypdf raises on a damaged file: its own errors (a reference loop is a LimitReachedError), and the
# Python errors its parsing of untrusted bytes runs into (found by tests/kb/test_parsing.py's fuzzing).
DAMAGED_PDF_ERRORS = (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
                      RecursionError, ZeroDivisionError, AssertionError, UnicodeError)


def parse_pdf(data: bytes) -> ParsedDocument:
    check_object_count(data)
    reader = open_reader(data)
    check_declared_pages(reader)
    try:
        sections = page_sections(reader)
        page_count = len(reader.pages)
    except DAMAGED_PDF_ERRORS as exc:
        raise ParseError("The PDF is damaged and its text could not be read.") from exc
    if not sections:
        raise ParseError("The PDF has no extractable text (it may be a scanned image; OCR it first).")
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:  # metadata is optional and often malformed; the text is what matters
        title = ""
    return ParsedDocument(file_type="pdf", sections=tuple(sections), page_count=page_count, title=title)


def check_object_count(data: bytes) -> None:
    """Refuse a PDF that declares, or holds, more objects than MAX_OBJECTS (counted before pypdf parses)."""
    declared = max((int(size) for size in DECLARED_SIZE.findall(data)), default=0)
    headers = data.count(b" obj")
    objects = max(declared, headers)
    if objects > MAX_OBJECTS:
        raise ParseError(f"The PDF has {objects:,} objects; the limit is {MAX_OBJECTS:,}. {SPLIT_IT}")


def check_declared_pages(reader: PdfReader) -> None:
    try:
        declared = int(reader.trailer["/Root"]["/Pages"].get("/Count", 0))
    except DAMAGED_PDF_ERRORS:
        return  # no usable page tree: reading the pages reports the damage
    if declared > MAX_PAGES:
        raise ParseError(f"The PDF has {declared:,} pages; the limit is {MAX_PAGES:,}. {SPLIT_IT}")


def page_sections(reader: PdfReader) -> list[Section]:
    """One section per page with text, stopping at MAX_PAGES pages or KEFU_KB_MAX_DOCUMENT_CHARS characters."""
    limit, chars, sections = settings.KEFU_KB_MAX_DOCUMENT_CHARS, 0, []
    for number, page in enumerate(reader.pages, start=1):
        if number > MAX_PAGES:
            raise ParseError(f"The PDF has more than {MAX_PAGES:,} pages. {SPLIT_IT}")
        text = (page.extract_text() or "").strip()
        chars += len(text)
        if chars > limit:
            raise ParseError(f"The document has more than {limit:,} characters of text; the limit is {limit:,} "
                             f"(KEFU_KB_MAX_DOCUMENT_CHARS). {SPLIT_IT}")
        if text:
            sections.append(Section(text=text, page=number))
    return sections


def open_reader(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except DAMAGED_PDF_ERRORS as exc:
        raise ParseError("The PDF is damaged and could not be opened.") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise ParseError("The PDF is password-protected; remove the password and upload it again.") from exc
        if not opened:
            raise ParseError("The PDF is password-protected; remove the password and upload it again.")
    return reader
