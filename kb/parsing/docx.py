"""DOCX: paragraphs under their headings (Title / Heading N styles), tables as text rows.

Before python-docx builds its tree, every XML part is streamed once to count its elements and
attributes: a document with more than :data:`MAX_XML_NODES` (a tree of a few hundred MB) or an
XML DTD is refused with the reason. Tables are read from the cells that exist: a cell's declared
span (``gridSpan``) or a row's ``gridBefore`` / ``gridAfter`` is never expanded into cells, so a
table declaring a billion columns costs what it holds. Styles are looked up once per document,
not once per paragraph.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from lxml import etree

from kb.parsing.errors import ParseError
from kb.parsing.outline import Outline
from kb.parsing.sections import ParsedDocument

HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)
# Elements + attributes of all XML parts together: about 200 bytes each once parsed, so ≈ 150 MB at most.
MAX_XML_NODES = 750_000
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DAMAGED = "The DOCX file is damaged and could not be opened."
# What reading a damaged archive raises: a bad directory or header (BadZipFile, ValueError on a negative
# offset), a corrupt deflate stream (zlib.error), a truncated member (EOFError, OSError), an encrypted or
# unknown-method member (RuntimeError, NotImplementedError), a part that is not XML (XMLSyntaxError).
DAMAGED_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, etree.XMLSyntaxError, OSError, EOFError, zlib.error,
                      ValueError, RuntimeError, NotImplementedError, KeyError)


def parse_docx(data: bytes) -> ParsedDocument:
    import docx  # python-docx; imported here so only the ingest worker pays for it

    check_xml_size(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(DAMAGED) from exc
    except Exception as exc:  # lxml raises its own XMLSyntaxError for broken parts
        raise ParseError(DAMAGED) from exc
    style_names = StyleNames(document)
    outline = Outline()
    for block in document.element.body.iterchildren(f"{{{W_NS}}}p", f"{{{W_NS}}}tbl"):
        if block.tag == f"{{{W_NS}}}tbl":
            outline.text(table_text(block))
            continue
        level = heading_level(style_names.of(block))
        if level:
            outline.heading(level, block.text)
        else:
            outline.text(block.text)
    title = document.core_properties.title or ""
    return ParsedDocument(file_type="docx", sections=outline.finish(), title=title)


def check_xml_size(data: bytes) -> None:
    """Stream every XML part once (nothing kept): refuse a DTD, or more nodes than MAX_XML_NODES."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        nodes = 0
        for member in archive.infolist():
            if member.filename.endswith((".xml", ".rels")):
                nodes = count_nodes(archive, member.filename, nodes)
    except ParseError:
        raise
    except DAMAGED_ZIP_ERRORS as exc:
        raise ParseError(DAMAGED) from exc


def count_nodes(archive: zipfile.ZipFile, name: str, nodes: int) -> int:
    with archive.open(name) as source:
        for event, element in etree.iterparse(source, events=("start", "end"), resolve_entities=False,
                                              no_network=True, load_dtd=False, huge_tree=False):
            if event == "end":
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
                continue
            if nodes == 0 and (element.getroottree().docinfo.doctype
                               or element.getroottree().docinfo.internalDTD is not None):
                raise ParseError("The DOCX file declares an XML DTD, which Office files never do; it was refused.")
            nodes += 1 + len(element.attrib)
            if nodes > MAX_XML_NODES:
                raise ParseError(f"The DOCX file has more than {MAX_XML_NODES:,} XML elements; split it into "
                                 "smaller documents and upload those.")
    return nodes


class StyleNames:
    """Paragraph style id → name, read once (python-docx looks the default up per paragraph, slowly)."""

    def __init__(self, document) -> None:
        from docx.enum.style import WD_STYLE_TYPE  # lazy: python-docx, as in parse_docx

        styles = document.styles.element
        self.names = {style.styleId: style.name_val or "" for style in styles.style_lst}
        default = styles.default_for(WD_STYLE_TYPE.PARAGRAPH)
        self.default = (default.name_val or "") if default is not None else ""

    def of(self, paragraph) -> str:
        style_id = paragraph.style
        return self.names.get(style_id, self.default) if style_id else self.default


def heading_level(style_name: str) -> int:
    if style_name.lower() == "title":
        return 1
    match = HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) + 1 if match else 0


def table_text(table) -> str:
    """One line per row: the text of the cells that exist, joined by " | " (declared spans are not expanded)."""
    rows = []
    for row in table.iterchildren(f"{{{W_NS}}}tr"):
        cells = []
        for cell in row.iterchildren(f"{{{W_NS}}}tc"):
            text = " ".join("\n".join(p.text for p in cell.iterchildren(f"{{{W_NS}}}p")).split())
            if text and (not cells or cells[-1] != text):  # a merged cell may repeat its text
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)
