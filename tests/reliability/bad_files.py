"""Builders of hostile or broken upload files, generated in code with the formats' own libraries."""

from __future__ import annotations

import io
import re
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


# --- decompression and dimension bombs (issue 16, item 4) ----------------------------------------
FAQ_ROWS = [["question", "answer"], ["What is the return window?", "Thirty days from delivery."],
            ["Do you deliver on Saturdays?", "Yes, between 9:00 and 14:00."]]


def xlsx_with_sheet(rewrite, *, shared_strings: bytes | None = None) -> bytes:
    """The FAQ workbook with its sheet XML passed through ``rewrite`` (and a shared-string table, if given)."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes(FAQ_ROWS)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as patched:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = rewrite(content)
            patched.writestr(item.filename, content)
        if shared_strings is not None:
            patched.writestr("xl/sharedStrings.xml", shared_strings)
    return out.getvalue()


def xlsx_declaring_a_huge_sheet(rows: int = 50_000) -> bytes:
    """A few-KB FAQ workbook whose <dimension> declares ``rows`` rows × 16,384 columns (XFD)."""
    return xlsx_with_sheet(lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="A1:XFD{rows}"/>'.encode(),
                                              xml))


def xlsx_with_a_far_cell(ref: str = "XFD1048576") -> bytes:
    """The FAQ workbook plus one value in the sheet's last possible cell (a reader that pads builds it all)."""
    row = re.match(r"[A-Z]+(\d+)", ref).group(1)
    cell = f'<row r="{row}"><c r="{ref}" t="inlineStr"><is><t>far away</t></is></c></row>'.encode()
    return xlsx_with_sheet(lambda xml: xml.replace(b"</sheetData>", cell + b"</sheetData>"))


def xlsx_with_shared_strings(count: int) -> bytes:
    """The FAQ rows as shared strings (as Excel writes them), plus ``count`` distinct unused ones."""
    texts = [text for row in FAQ_ROWS for text in row]
    table = io.BytesIO()
    table.write(f'<sst xmlns="{SHEET_NS}" count="{len(texts) + count}" uniqueCount="{len(texts) + count}">'.encode())
    for text in texts:
        table.write(f"<si><t>{text}</t></si>".encode())
    for n in range(count):
        table.write(f"<si><t>{n}</t></si>".encode())
    table.write(b"</sst>")

    def shared(xml: bytes) -> bytes:
        for index, text in enumerate(texts):
            xml = xml.replace(f'<c r="{"AB"[index % 2]}{index // 2 + 1}" t="inlineStr"><is><t>{text}</t></is></c>'.encode(),
                              f'<c r="{"AB"[index % 2]}{index // 2 + 1}" t="s"><v>{index}</v></c>'.encode())
        assert b"inlineStr" not in xml
        return xml

    return xlsx_with_sheet(shared, shared_strings=table.getvalue())


def xlsx_with_many_cells(cells: int) -> bytes:
    """The FAQ rows, then ``cells`` numeric cells in column C, one per row."""
    rows = "".join(f'<row r="{n}"><c r="C{n}"><v>{n}</v></c></row>' for n in range(10, 10 + cells)).encode()
    return xlsx_with_sheet(lambda xml: xml.replace(b"</sheetData>", rows + b"</sheetData>"))


def xlsx_with_a_dtd() -> bytes:
    """A sheet with an internal DTD declaring a billion-laughs entity (Office never writes a DTD)."""
    dtd = (b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
           b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>')
    return xlsx_with_sheet(lambda xml: dtd + xml.replace(b"<t>question</t>", b"<t>&c;</t>"))


SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_with_body(body_xml: bytes) -> bytes:
    """A real DOCX whose body is replaced by ``body_xml`` (inside <w:body>, before its section properties)."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as patched:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "word/document.xml":
                head, rest = content.split(b"<w:body>", 1)
                content = head + b"<w:body>" + body_xml + rest[rest.index(b"<w:sectPr"):]
            patched.writestr(item.filename, content)
    return out.getvalue()


def docx_table_declaring_a_huge_grid() -> bytes:
    """A two-row table whose cells declare a span of a billion grid columns and a billion before and after."""
    def cell(text: str, span: int) -> str:
        return (f'<w:tc><w:tcPr><w:gridSpan w:val="{span}"/></w:tcPr><w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
                "</w:tc>")

    rows = "".join(
        f'<w:tr><w:trPr><w:gridBefore w:val="1000000000"/><w:gridAfter w:val="1000000000"/></w:trPr>'
        f'{cell(a, 1_000_000_000)}{cell(b, 1)}</w:tr>'
        for a, b in (("Country", "Days"), ("Sweden", "14")))
    body = (f'<w:p><w:r><w:t>Returns are accepted within 30 days.</w:t></w:r></w:p>'
            f'<w:tbl><w:tblGrid><w:gridCol w:w="2000"/><w:gridCol w:w="2000"/></w:tblGrid>{rows}</w:tbl>')
    return docx_with_body(body.encode())


def docx_with_many_paragraphs(count: int) -> bytes:
    """``count`` short, distinct paragraphs (each a few XML elements): a DOM of that many nodes when parsed."""
    body = io.BytesIO()
    for n in range(count):
        body.write(f'<w:p w:rsidR="{n:08X}"><w:r><w:t>{n}</w:t></w:r></w:p>'.encode())
    return docx_with_body(body.getvalue())


def pdf_with_many_pages(pages: int) -> bytes:
    """``pages`` pages sharing one page's content and font: a small file whose page tree is huge."""
    from pypdf import PdfReader, PdfWriter

    page = PdfReader(io.BytesIO(pdf_bytes(["Returns are accepted within thirty days."]))).pages[0]
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def html_nested(depth: int) -> bytes:
    """A page whose text sits ``depth`` elements deep (unclosed <div>s, as a broken generator writes them)."""
    return (b"<!doctype html><html><body><h1>Returns</h1>" + b"<div>" * depth
            + b"<p>You can return any item within thirty days.</p></body></html>")


def pdf_with_many_objects(count: int) -> bytes:
    """A one-page PDF followed by ``count`` tiny unused objects, each in the cross-reference table."""
    base = pdf_bytes(["Returns are accepted within thirty days."])
    from pypdf import PdfReader

    size = int(PdfReader(io.BytesIO(base)).trailer["/Size"])
    out = io.BytesIO()
    body = base[:base.rindex(b"xref")]
    out.write(body)
    offsets = []
    for number in range(size, size + count):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n<<>>\nendobj\n" % number)
    xref_at = out.tell()
    # one subsection for the new objects; the original table is reached through /Prev
    out.write(b"xref\n%d %d\n" % (size, count))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    original_xref = base.rindex(b"startxref")
    previous = int(base[original_xref + 9:].split()[0])
    root = PdfReader(io.BytesIO(base)).trailer.raw_get("/Root")
    out.write(b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
              % (size + count, root.idnum, previous, xref_at))
    return out.getvalue()


def html_with_many_elements(count: int) -> bytes:
    """A flat page of ``count`` short paragraphs (BeautifulSoup spends a few hundred bytes on each)."""
    return b"<!doctype html><html><body>" + b"".join(b"<p>%d</p>" % n for n in range(count)) + b"</body></html>"


def text_with_one_astral_character(megabytes: int) -> bytes:
    """ASCII prose with one emoji: decoded, every character takes 4 bytes (a str is as wide as its widest)."""
    line = b"The tenant keeps the premises in good order and reports damage without delay.\n"
    return "\U0001F600 ".encode() + line * (megabytes * (1 << 20) // len(line))


def csv_with_a_wide_row(columns: int) -> bytes:
    """The FAQ rows, then one row of ``columns`` fields (a reader holds a list of that many)."""
    head = "\n".join(",".join(row) for row in FAQ_ROWS).encode() + b"\n"
    return head + b"x," * columns + b"far\n"


def xlsx_full_of_cells(rows: int, columns: int) -> bytes:
    """``rows`` FAQ-shaped rows of ``columns`` short distinct cells each (every limit nearly reached at once)."""
    def cell(row: int, column: int) -> str:
        return f'<c r="{chr(ord("A") + column)}{row}" t="inlineStr"><is><t>{row}.{column}</t></is></c>'

    body = "".join(f'<row r="{row}">{"".join(cell(row, column) for column in range(columns))}</row>'
                   for row in range(2, rows + 2)).encode()
    return xlsx_with_sheet(lambda xml: re.sub(rb'(<sheetData>.*?</row>).*(</sheetData>)',
                                              lambda m: m.group(1) + body + m.group(2), xml, flags=re.S))
