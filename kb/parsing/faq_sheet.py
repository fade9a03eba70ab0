"""FAQ sheets (CSV, XLSX): question / answer / alternative-question columns, header row detected.

Headers are matched against English and Chinese names within the first five rows; a sheet
without a recognisable header is read as question, answer[, alternatives...] columns.
Alternative phrasings in one cell may be separated by new lines, ``|`` or ``;``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from itertools import islice

from kb.parsing.errors import ParseError
from kb.parsing.sections import FaqRow, ParsedDocument
from kb.parsing.text import decode_text
from kb.parsing.xlsx import MAX_COLUMNS, MAX_ROWS, xlsx_sheets

QUESTION_NAMES = {"question", "questions", "q", "query", "问题", "标准问题", "提问", "問題"}
ANSWER_NAMES = {"answer", "answers", "a", "response", "reply", "答案", "回答", "答复", "回复"}
ALTERNATIVE_HINTS = ("alternative", "alt", "similar", "paraphrase", "variant", "other question",
                     "相似", "其他问法", "同义", "扩展问")
ALTERNATIVE_SPLIT = re.compile(r"\s*(?:\n|\|\||\||;|；)\s*")
HEADER_SEARCH_ROWS = 5
# Above this many delimiters in a CSV file, every row's width is checked before the csv module reads it.
MANY_DELIMITERS = 1_000_000


def parse_csv(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return ParsedDocument(file_type="csv", faq_rows=faq_rows(csv_rows(text, dialect)))


def csv_rows(text: str, dialect) -> list[list[str]]:
    """The sheet's rows with a value, held to the spreadsheet limits (kb.parsing.xlsx: columns and rows)."""
    if text.count(dialect.delimiter) > MANY_DELIMITERS:
        check_row_widths(text, dialect)
    try:
        return csv_value_rows(text, dialect)
    except csv.Error as exc:  # a stray quote or carriage return the sniffed dialect cannot read
        raise ParseError(f"The CSV file could not be read ({exc}). Save it again as CSV (UTF-8) "
                         "from your spreadsheet program and upload that.") from exc


def csv_value_rows(text: str, dialect) -> list[list[str]]:
    rows = []
    # newline="": the csv module sees each line ending as written (a lone \r inside a field is no error)
    for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), dialect), start=1):
        if len(row) > MAX_COLUMNS and any(cell.strip() for cell in islice(row, MAX_COLUMNS, None)):
            raise ParseError(f"Row {number:,} of the CSV file has values beyond column {MAX_COLUMNS}: an FAQ sheet "
                             "needs only its question, answer and alternative columns.")
        cells = [cell.strip() for cell in row[:MAX_COLUMNS]]
        if any(cells):
            rows.append(cells)
            if len(rows) > MAX_ROWS:
                raise ParseError(f"The CSV file has more than {MAX_ROWS:,} rows with a value. "
                                 "Split it into smaller files and upload those.")
    return rows


def parse_xlsx(data: bytes) -> ParsedDocument:
    """Every worksheet read from the cells it holds (kb.parsing.xlsx: never the declared size, within limits)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError("The XLSX file is damaged and could not be opened.") from exc
    rows = []
    with archive:
        for _, sheet_rows in xlsx_sheets(archive):
            try:
                rows.extend(faq_rows(sheet_rows))
            except ParseError:
                continue  # a sheet that is not an FAQ (a cover sheet, notes) is skipped
    if not rows:
        raise ParseError("No sheet of the workbook has question and answer columns.")
    return ParsedDocument(file_type="xlsx", faq_rows=tuple(rows))


def check_row_widths(text: str, dialect) -> None:
    """Count each row's fields without building it (quoted fields skipped whole): a row of millions of empty
    fields is refused before the csv module builds a list of them."""
    delimiter = re.escape(dialect.delimiter)
    token = re.compile(rf'"[^"]*(?:""[^"]*)*"|{delimiter}|\r\n|\n|\r')
    fields, row = 1, 1
    for match in token.finditer(text):
        if match.group() == dialect.delimiter:
            fields += 1
            if fields > MAX_COLUMNS:
                raise ParseError(f"Row {row:,} of the CSV file has more than {MAX_COLUMNS} columns: an FAQ sheet "
                                 "needs only its question, answer and alternative columns.")
        elif not match.group().startswith('"'):
            fields, row = 1, row + 1


def faq_rows(rows: list[list[str]]) -> tuple[FaqRow, ...]:
    rows = [row for row in rows if any(row)]
    if not rows:
        raise ParseError("The FAQ sheet has no rows.")
    header_index, columns = find_header(rows)
    body = rows[header_index + 1:] if header_index >= 0 else rows
    question_col, answer_col, alternative_cols = columns
    out = []
    for row in body:
        question = value_at(row, question_col)
        answer = value_at(row, answer_col)
        if not question or not answer:
            continue
        alternatives = []
        for col in alternative_cols:
            alternatives.extend(part for part in ALTERNATIVE_SPLIT.split(value_at(row, col)) if part)
        out.append(FaqRow(question=question, answer=answer, alternatives=tuple(dict.fromkeys(alternatives))))
    if not out:
        raise ParseError("The FAQ sheet has no rows with both a question and an answer.")
    return tuple(out)


def find_header(rows: list[list[str]]) -> tuple[int, tuple[int, int, list[int]]]:
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        names = [normalise_name(cell) for cell in row]
        question = next((i for i, name in enumerate(names) if name in QUESTION_NAMES), None)
        answer = next((i for i, name in enumerate(names) if name in ANSWER_NAMES), None)
        if question is not None and answer is not None:
            alternatives = [i for i, name in enumerate(names)
                            if i not in (question, answer) and any(hint in name for hint in ALTERNATIVE_HINTS)]
            return index, (question, answer, alternatives)
    width = max(len(row) for row in rows)
    if width < 2:
        raise ParseError("The FAQ sheet needs a question column and an answer column.")
    return -1, (0, 1, list(range(2, width)))


def normalise_name(cell: str) -> str:
    return " ".join(cell.lower().replace("_", " ").replace("-", " ").split()).rstrip(":：s") if cell else ""


def value_at(row: list[str], col: int) -> str:
    return row[col].strip() if col < len(row) and row[col] else ""
