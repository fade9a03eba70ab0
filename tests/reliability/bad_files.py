"""Builders of hostile or broken upload files, generated in code with the formats' own libraries."""

from __future__ import annotations

import io
import zipfile

from tests.kb.files import docx_bytes, pdf_bytes, xlsx_bytes

ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00"
PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44 + b"PE\x00\x00"


def corrupt_pdf() -> bytes:
    """A PDF header, then the middle of a real PDF cut away: no xref, no objects that parse."""
    real = pdf_bytes(["Returns are accepted within thirty days."])
    return real[:40] + b"\x00\xff garbage that is not a PDF object \x00" * 20


def encrypted_pdf() -> bytes:
    return pdf_bytes(["Secret price list: the door costs 12 000 SEK."], password="s3cret")


def docx_zip_bomb(unpacked_mb: int = 200) -> bytes:
    """A real DOCX whose word/document.xml is padded to ``unpacked_mb`` MB of spaces (≈1000:1 compression)."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename != "word/document.xml":
                bomb.writestr(item.filename, data)
                continue
            head, tail = data.split(b"<w:body>", 1)
            with bomb.open("word/document.xml", "w", force_zip64=True) as member:
                member.write(head + b"<w:body>")
                block = b" " * (1 << 20)
                for _ in range(unpacked_mb):
                    member.write(block)
                member.write(tail)
    return out.getvalue()


def executable_named_pdf(header: bytes) -> bytes:
    return header + bytes(range(256)) * 16


def csv_with_broken_encoding() -> bytes:
    """A UTF-8 FAQ sheet (accents, Chinese) with a few damaged bytes in the middle of line 3."""
    good = "question,answer\nDo you deliver to Malmö?,Yes — delivery takes two days.\n"
    damaged = "退货政策是什么？,三十天内可以退货。\n".encode()
    damaged = damaged[:7] + b"\xff\xfe" + damaged[9:]
    return good.encode() + damaged + "Where is the café?,Next to the entrance.\n".encode()


def xlsx_with_formulas() -> bytes:
    """An FAQ workbook whose answer cells are formulas; one has a cached value as Excel would have saved it."""
    data = xlsx_bytes([
        ["question", "answer"],
        ["What is the delivery fee?", "=1+1"],
        ["Open the calculator", "=cmd|' /C calc'!A0"],
        ["What is the return window?", "Thirty days from delivery."],
    ])
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as patched:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                # B2 gets the value Excel cached when it last saved the file (not what =1+1 evaluates to).
                content = content.replace(b"<f>1+1</f><v></v>", b'<f>1+1</f><v>Delivery costs 49 SEK.</v>', 1)
                content = content.replace(b"<c r=\"B2\">", b"<c r=\"B2\" t=\"str\">", 1)
                assert b"Delivery costs 49 SEK." in content
            patched.writestr(item, content)
    return out.getvalue()


HTML_FULL_OF_SCRIPTS = b"""<!doctype html><html><head><title>Returns</title>
<script>alert(document.cookie)</script><script src="https://evil.example/x.js"></script>
<style>body{background:url(javascript:alert(1))}</style></head>
<body onload="alert('onload')"><script>document.write('<p>injected by script</p>')</script>
<h1>Returns</h1><p>You can return any unused item within thirty days for a full refund.</p>
<img src=x onerror="alert('img')"><noscript>Enable JavaScript to continue.</noscript>
<p><a href="javascript:alert('link')">Click here</a> to print the return label.</p>
<iframe src="https://evil.example/frame"></iframe><script>for(;;){}</script></body></html>"""

HTML_ONLY_SCRIPTS = b"""<!doctype html><html><head><script>alert(1)</script></head>
<body><script>fetch('/api').then(r => r.text())</script><noscript>JavaScript required.</noscript>
<style>p { color: red }</style><script type="module">import x from "./x.js"</script></body></html>"""


def ten_thousand_pages(chars_per_page: int = 3000) -> bytes:
    """A 10,000-page text (form feeds between pages), ~3 kB of prose per page."""
    sentence = "Clause {n}: the tenant keeps the premises in good order and reports damage without delay. "
    pages = []
    for page in range(1, 10_001):
        body = "".join(sentence.format(n=f"{page}.{i}") for i in range(chars_per_page // len(sentence) + 1))
        pages.append(f"Page {page}\n\n{body[:chars_per_page]}")
    return "\f".join(pages).encode()


OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def zip_of_files() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "Returns are free.")
    return out.getvalue()


def truncated_docx() -> bytes:
    """A DOCX cut in half (an interrupted download): the ZIP directory at the end is missing."""
    data = docx_bytes()
    return data[: len(data) // 2]


def pdf_without_text() -> bytes:
    """A PDF of blank pages, like a scan without OCR."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
