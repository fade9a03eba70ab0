"""XLSX cells read from the XML that exists, one cell at a time, within limits.

A worksheet's declared ``<dimension>`` and the position of its farthest cell say nothing of
what the file holds: a few-KB workbook may declare tens of thousands of rows × 16,384
columns, and a reader that pads rows to that size builds gigabytes. This reader never pads:
it streams each worksheet's ``<c>`` elements (lxml iterparse, each element freed once read),
keeps only cells with a value, and refuses — with a sentence a person understands — a
workbook with a cell beyond :data:`MAX_COLUMNS`, more than :data:`MAX_ROWS` rows or
:data:`MAX_CELLS` cells with a value, more than :data:`MAX_SHARED_STRINGS` shared strings, or
more text than ``KEFU_KB_MAX_DOCUMENT_CHARS``. Formulas are never evaluated: a formula cell's
value is the one Excel cached when it saved the file. An XML part with a DTD (which Office
never writes) is refused, and entities are never expanded.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from lxml import etree

from kb.parsing.errors import ParseError

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
# An FAQ sheet needs a question, an answer and a few alternative columns; IV (256) was Excel's own limit
# until 2007. Rows and cells are counted where they hold a value.
MAX_COLUMNS = 256
MAX_ROWS = 100_000
MAX_CELLS = 1_000_000
MAX_SHARED_STRINGS = 1_000_000
# XML elements of one part (cells, their values, styles, merged ranges …): bounds the parsing time.
MAX_XML_ELEMENTS = 10_000_000
CELL_REF = re.compile(r"^([A-Z]{1,3})(\d{1,7})$")
DAMAGED = "The XLSX file is damaged and could not be opened."
# What reading a damaged archive raises (as kb.parsing.docx): a bad directory or offset, a corrupt deflate
# stream, a truncated, encrypted or unknown-method member, a part that is not XML.
DAMAGED_ZIP_ERRORS = (KeyError, etree.XMLSyntaxError, zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                      zlib.error, ValueError, RuntimeError, NotImplementedError)


@dataclass
class Budget:
    """What the workbook has used of the limits so far."""

    rows: int = 0
    cells: int = 0
    chars: int = 0
    max_chars: int = field(default_factory=lambda: settings.KEFU_KB_MAX_DOCUMENT_CHARS)

    def text(self, value: str) -> str:
        self.chars += len(value)
        if self.chars > self.max_chars:
            raise ParseError(f"The workbook holds more than {self.max_chars:,} characters of text "
                             "(KEFU_KB_MAX_DOCUMENT_CHARS). Split it into smaller files and upload those.")
        return value

    def cell(self) -> None:
        self.cells += 1
        if self.cells > MAX_CELLS:
            raise ParseError(f"The workbook has more than {MAX_CELLS:,} cells with a value. "
                             "Split it into smaller files and upload those.")

    def row(self) -> None:
        self.rows += 1
        if self.rows > MAX_ROWS:
            raise ParseError(f"The workbook has more than {MAX_ROWS:,} rows with a value. "
                             "Split it into smaller files and upload those.")


def xlsx_sheets(archive: zipfile.ZipFile) -> Iterator[tuple[str, list[list[str]]]]:
    """Each worksheet's name and its rows with a value (each row as wide as its last cell with a value)."""
    budget = Budget()
    strings = shared_strings(archive, budget)
    for name, path in sheet_paths(archive):
        yield name, sheet_rows(archive, path, name=name, strings=strings, budget=budget)


def sheet_paths(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(name, member path) of each worksheet, in the workbook's order."""
    targets = {}
    for element in small_xml(archive, "xl/_rels/workbook.xml.rels").iter(f"{{{PACKAGE_REL_NS}}}Relationship"):
        target = element.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        targets[element.get("Id")] = path
    sheets = []
    for element in small_xml(archive, "xl/workbook.xml").iter(f"{{{MAIN_NS}}}sheet"):
        path = targets.get(element.get(f"{{{REL_NS}}}id"))
        if path in archive.NameToInfo:
            sheets.append((element.get("name", ""), path))
    return sheets


def small_xml(archive: zipfile.ZipFile, name: str):
    """A small structural part (workbook, relationships), parsed whole without a DTD or entities."""
    try:
        with archive.open(name) as source:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            tree = etree.parse(source, parser)
    except DAMAGED_ZIP_ERRORS as exc:
        raise ParseError(DAMAGED) from exc
    refuse_dtd(tree)
    return tree


def refuse_dtd(tree) -> None:
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ParseError("The XLSX file declares an XML DTD, which Office files never do; it was refused.")


def streamed(archive: zipfile.ZipFile, name: str, record: str) -> Iterator[tuple[str, object]]:
    """("end", element) for every ``record`` element (``si``, ``c``) of one part, once it is complete, and
    ("row", element) at each row's start; everything else is freed as soon as it ends, so memory stays flat
    whatever the part holds (merged ranges, column styles, …). The caller frees each record."""
    record_tag, row_tag = f"{{{MAIN_NS}}}{record}", f"{{{MAIN_NS}}}row"
    elements, depth_in_record = 0, 0
    try:
        with archive.open(name) as source:
            context = etree.iterparse(source, events=("start", "end"), resolve_entities=False, no_network=True,
                                      load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
            for event, element in context:
                if elements == 0:
                    refuse_dtd(element.getroottree())
                if event == "start":
                    elements += 1
                    if elements > MAX_XML_ELEMENTS:
                        raise ParseError(f"The XLSX file has more than {MAX_XML_ELEMENTS:,} XML elements in "
                                         f"{name}. Split it into smaller files and upload those.")
                    depth_in_record += element.tag == record_tag or depth_in_record > 0
                    if element.tag == row_tag:
                        yield "row", element
                    continue
                if element.tag == record_tag:
                    depth_in_record = 0
                    yield "end", element
                elif depth_in_record:
                    depth_in_record -= 1
                elif element.getparent() is not None:
                    free(element)
    except DAMAGED_ZIP_ERRORS as exc:
        raise ParseError(DAMAGED) from exc


def free(element) -> None:
    """Drop an element that was read, and the siblings read before it, so memory stays flat."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]


def shared_strings(archive: zipfile.ZipFile, budget: Budget) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.NameToInfo:
        return []
    strings: list[str] = []
    for _, element in streamed(archive, "xl/sharedStrings.xml", "si"):
        if len(strings) >= MAX_SHARED_STRINGS:
            raise ParseError(f"The workbook has more than {MAX_SHARED_STRINGS:,} distinct texts. "
                             "Split it into smaller files and upload those.")
        strings.append(budget.text(rich_text(element)))
        free(element)
    return strings


def rich_text(element) -> str:
    """The text of an ``<si>`` or ``<is>``: its ``<t>`` runs, without phonetic (``<rPh>``) ones."""
    parts = [t.text or "" for t in element.iter(f"{{{MAIN_NS}}}t")
             if t.getparent() is not None and t.getparent().tag != f"{{{MAIN_NS}}}rPh"]
    return "".join(parts).replace("_x005F_", "_")


def sheet_rows(archive: zipfile.ZipFile, path: str, *, name: str, strings: list[str],
               budget: Budget) -> list[list[str]]:
    rows: dict[int, dict[int, str]] = {}
    row_number, column = 0, 0
    for event, element in streamed(archive, path, "c"):
        if event == "row":
            row_number, column = int_or(element.get("r"), row_number + 1), 0
            continue
        row_number, column = cell_position(element.get("r"), row_number, column)
        text = cell_text(element, strings)
        free(element)
        if not text:
            continue  # an empty (styled) cell: nothing to read, wherever it is
        if column > MAX_COLUMNS:
            raise ParseError(f"The sheet {name!r} has a value at {column_letters(column)}{row_number}, beyond "
                             f"column {column_letters(MAX_COLUMNS)}: an FAQ sheet needs only its question, answer "
                             "and alternative columns. Delete the cells beyond it and upload the file again.")
        store(rows, row_number, column, budget.text(text), budget)
    return [dense(rows[number]) for number in sorted(rows)]


def store(rows: dict[int, dict[int, str]], row_number: int, column: int, text: str, budget: Budget) -> None:
    budget.cell()
    if row_number not in rows:
        budget.row()
        rows[row_number] = {}
    rows[row_number][column] = text


def dense(cells: dict[int, str]) -> list[str]:
    row = [""] * max(cells)
    for column, text in cells.items():
        row[column - 1] = text
    return row


def cell_position(ref: str | None, row_number: int, column: int) -> tuple[int, int]:
    """(row, column) from ``r="B7"``; a cell without one follows the previous cell of its row."""
    match = CELL_REF.match(ref or "")
    if match is None:
        return row_number, column + 1
    return int(match.group(2)), column_number(match.group(1))


def column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def cell_text(element, strings: list[str]) -> str:
    """The value a cell shows, as text: shared or inline string, cached formula result, number or boolean."""
    kind = element.get("t", "n")
    if kind == "inlineStr":
        inline = element.find(f"{{{MAIN_NS}}}is")
        return rich_text(inline).strip() if inline is not None else ""
    value = element.findtext(f"{{{MAIN_NS}}}v")
    if value is None:
        return ""
    if kind == "s":
        index = int_or(value, -1)
        return strings[index].strip() if 0 <= index < len(strings) else ""
    if kind == "b":
        return {"1": "True", "0": "False"}.get(value.strip(), "")
    if kind == "n":
        return number_text(value.strip())
    return value.strip()  # str (a formula's cached text), e (an error such as #N/A), d (an ISO date)


def number_text(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else str(number)
