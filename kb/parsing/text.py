"""Plain text: encoding detected with charset-normalizer; paragraphs kept."""

from __future__ import annotations

from charset_normalizer import from_bytes
from django.conf import settings

from kb.parsing.errors import ParseError
from kb.parsing.sections import ParsedDocument, Section


def decode_text(data: bytes) -> str:
    """The text of ``data`` in its detected encoding (UTF-8 with or without BOM first)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise ParseError("The file's text encoding could not be recognised.")
    return str(best)


def parse_text(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    limit = settings.KEFU_KB_MAX_DOCUMENT_CHARS
    if len(text) > limit:  # before the copies below: a decoded str may take 4 bytes per character
        raise ParseError(f"The document has {len(text):,} characters of text; the limit is {limit:,} "
                         "(KEFU_KB_MAX_DOCUMENT_CHARS). Split it into smaller files and upload those.")
    text = text.replace("\r\n", "\n").strip()
    sections = (Section(text=text),) if text else ()
    return ParsedDocument(file_type="txt", sections=sections)
