"""Decide a file's type from its bytes; the extension only chooses between text formats.

Binary formats are recognised by their magic numbers (``%PDF``, a ZIP with
``word/document.xml`` or ``xl/workbook.xml``); an OLE2 container is what an encrypted
DOCX/XLSX (or an old .doc/.xls) is. A name that promises a binary format whose bytes
are something else is mislabelled and refused. A ZIP whose members would unpack to far
more than an upload may hold (a zip bomb) is refused before any parser inflates it.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from django.conf import settings

from kb.parsing.errors import ParseError

BINARY_EXTENSIONS = {".pdf": "pdf", ".docx": "docx", ".xlsx": "xlsx", ".doc": "doc", ".xls": "xls"}
MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
MARKDOWN_HINT = re.compile(r"^(#{1,6} \S|```|\s*[-*] \S)", re.M)
# Office XML compresses about 10:1 (rarely 30:1); a large member packed tighter than this is padding.
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 1 << 20
# An archive may unpack to at most this many times the upload limit (parsers hold the XML in memory).
MAX_UNPACKED_FACTOR = 4


def sniff_type(data: bytes, filename: str = "", *, whole: bool = True) -> str:
    """One of pdf, docx, xlsx, html, markdown, csv, txt — or ParseError saying why not. ``whole=False``:
    ``data`` is only the file's head (:func:`sniff_upload`), so its size says nothing."""
    if whole:
        check_size(data)
    ext = PurePath(filename).suffix.lower()
    binary = sniff_binary(data)
    if binary:
        return binary
    claimed = BINARY_EXTENSIONS.get(ext)
    if claimed:
        raise ParseError(
            f"The file is named {PurePath(filename).name!r} but its content is not a {claimed.upper()} file; "
            "it may be damaged or mislabelled."
        )
    if looks_binary(data):
        raise ParseError("The file is not a supported format (PDF, DOCX, HTML, Markdown, text, CSV or XLSX).")
    return sniff_text_type(data, ext)


SNIFF_HEAD_BYTES = 64 * 1024  # what the magic numbers and the text checks look at


def sniff_upload(upload, filename: str = "") -> str:
    """:func:`sniff_type` of an uploaded file without reading it whole: its first bytes, and for a ZIP its
    directory (read from the file, which Django spooled to disk)."""
    limit = settings.KEFU_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise ParseError(f"The file is {upload.size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB.")
    upload.seek(0)
    head = upload.read(SNIFF_HEAD_BYTES)
    upload.seek(0)
    if not head.strip() and upload.size <= len(head):
        raise ParseError("The file is empty.")
    if head.startswith(b"PK\x03\x04"):
        try:
            return zip_office_type(upload)
        finally:
            upload.seek(0)
    return sniff_type(head, filename, whole=False)


def check_size(data: bytes) -> None:
    limit = settings.KEFU_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise ParseError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB.")
    if not data.strip():
        raise ParseError("The file is empty.")


def sniff_binary(data: bytes) -> str:
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(OLE2_MAGIC):
        raise ParseError(
            "This Office file is password-protected or in the old .doc/.xls format; "
            "save it as .docx/.xlsx without a password and upload it again."
        )
    if data.startswith(b"PK\x03\x04"):
        return zip_office_type(data)
    return ""


def zip_office_type(data) -> str:
    """The Office type of a ZIP given as bytes or as a seekable file."""
    try:
        members = zipfile.ZipFile(data if hasattr(data, "read") else io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        # a damaged directory: bad offsets (ValueError), a zip version or feature Python cannot read
        raise ParseError("The file looks like a ZIP/Office file but is damaged.") from exc
    check_unpacked_size(members)
    names = {member.filename for member in members}
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    raise ParseError("The file is a ZIP archive, not a DOCX or XLSX document; upload the files inside it instead.")


def check_unpacked_size(members: list[zipfile.ZipInfo]) -> None:
    """Refuse zip bombs from the sizes the archive declares (Python's zipfile never inflates past them)."""
    limit = MAX_UNPACKED_FACTOR * settings.KEFU_MAX_UPLOAD_BYTES
    unpacked = sum(member.file_size for member in members)
    if unpacked > limit:
        raise ParseError(f"The file unpacks to {unpacked / 1e6:.0f} MB, more than the {limit / 1e6:.0f} MB "
                         "an upload may unpack to; it was refused.")
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size >= RATIO_CHECK_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ParseError(f"The file looks like a zip bomb ({member.filename} unpacks to "
                             f"{member.file_size / 1e6:.0f} MB, {ratio:.0f} times its packed size); it was refused.")


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head and not (head.startswith((b"\xff\xfe", b"\xfe\xff"))):
        return True
    controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
    return controls > len(head) * 0.05


def sniff_text_type(data: bytes, ext: str) -> str:
    if ext in HTML_EXTENSIONS or HTML_START.match(data[:4096]):
        return "html"
    if ext == ".csv":
        return "csv"
    if ext in MARKDOWN_EXTENSIONS:
        return "markdown"
    head = data[:4096].decode("utf-8", errors="ignore")
    if ext in ("", ".txt") and len(MARKDOWN_HINT.findall(head)) >= 2:
        return "markdown"
    return "txt"
