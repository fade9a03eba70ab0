"""Parsers: uploaded bytes → sections (text, heading path, page), one module per format.

``parse_document(data, filename)`` sniffs the type from the content (the extension only
breaks ties between text formats), enforces ``KEFU_MAX_UPLOAD_BYTES`` and
``KEFU_KB_MAX_DOCUMENT_CHARS`` (a document too long to chunk and embed in bounded time)
and raises :class:`ParseError` with a sentence a person understands for empty, corrupt,
encrypted, mislabelled, over-long or unsupported files.
"""

from __future__ import annotations

from django.conf import settings

from kb.parsing.errors import ParseError
from kb.parsing.sections import FaqRow, ParsedDocument, Section
from kb.parsing.sniff import sniff_type, sniff_upload

__all__ = ["FaqRow", "ParseError", "ParsedDocument", "Section", "parse_document", "sniff_type", "sniff_upload"]


# Text formats whose characters are (about) the document's text: one too long is refused before decoding.
PLAIN_TEXT_TYPES = frozenset({"txt", "markdown", "csv"})
UTF8_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))


def parse_document(data: bytes, filename: str = "") -> ParsedDocument:
    """Parse any supported upload; the parser is chosen by :func:`sniff_type`."""
    file_type = sniff_type(data, filename)
    if file_type in PLAIN_TEXT_TYPES:
        check_raw_length(data)
    parser = _parser_for(file_type)
    parsed = parser(data)
    if not parsed.sections and not parsed.faq_rows:
        raise ParseError("The file contains no text that could be extracted.")
    check_length(parsed)
    return parsed


def check_length(parsed: ParsedDocument) -> None:
    """Refuse text that would take hours to embed, before it is chunked (upload size alone does not bound it)."""
    limit = settings.KEFU_KB_MAX_DOCUMENT_CHARS
    chars = sum(len(section.text) for section in parsed.sections)
    if chars > limit:
        raise ParseError(f"The document has {chars:,} characters of text; the limit is {limit:,} "
                         "(KEFU_KB_MAX_DOCUMENT_CHARS). Split it into smaller files and upload those.")


def check_raw_length(data: bytes) -> None:
    """A text file of more than 4 bytes per allowed character has too many characters in any encoding:
    refused before it is decoded (a decoded str may take 4 bytes per character)."""
    limit = settings.KEFU_KB_MAX_DOCUMENT_CHARS
    if len(data) <= 4 * limit:
        return
    chars = max(len(data.translate(None, UTF8_CONTINUATION_BYTES)), len(data) // 4)  # exact for UTF-8
    raise ParseError(f"The document has {chars:,} characters of text; the limit is {limit:,} "
                     "(KEFU_KB_MAX_DOCUMENT_CHARS). Split it into smaller files and upload those.")


def _parser_for(file_type: str):
    # Parser modules import their libraries at module level; importing them lazily keeps
    # pypdf/docx/openpyxl out of processes that never parse.
    if file_type == "pdf":
        from kb.parsing.pdf import parse_pdf
        return parse_pdf
    if file_type == "docx":
        from kb.parsing.docx import parse_docx
        return parse_docx
    if file_type == "html":
        from kb.parsing.html import parse_html
        return parse_html
    if file_type == "markdown":
        from kb.parsing.markdown import parse_markdown
        return parse_markdown
    if file_type == "csv":
        from kb.parsing.faq_sheet import parse_csv
        return parse_csv
    if file_type == "xlsx":
        from kb.parsing.faq_sheet import parse_xlsx
        return parse_xlsx
    from kb.parsing.text import parse_text
    return parse_text
