"""Builders of small real files for parser tests (written with the formats' own libraries), and small shared test data."""

from __future__ import annotations

import io


def pdf_bytes(pages: list[str], password: str = "") -> bytes:
    """A PDF with one line of Helvetica text per page, optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        font = DictionaryObject({
            NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        })
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})
        })
        stream = DecodedStreamObject()
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Returns", level=1)
    document.add_paragraph("You can return any item within 30 days.")
    document.add_heading("Refunds", level=2)
    document.add_paragraph("Refunds are paid to the original card.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Country", "Days"
    table.cell(1, 0).text, table.cell(1, 1).text = "Sweden", "14"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# A small shop's policies with one customer wording each (the regression gate's evaluation cases).
SHOP_TOPICS = [
    ("parking", "Parking is free for customers in the basement garage on weekdays.", "Where can I leave my car?"),
    ("pets", "Dogs and cats are welcome in the showroom if they stay on a lead.", "May I bring my dog along?"),
    ("refunds", "Money is paid back to the original card within five working days.", "When do I get my money back?"),
    ("delivery", "Furniture is delivered by truck within two weeks of the order.", "How soon will my sofa arrive?"),
    ("warranty", "Every appliance carries a three-year guarantee against defects.", "Is my fridge covered if it breaks?"),
    ("invoice", "Companies may pay by invoice with thirty days to settle it.", "Can my firm pay later?"),
    ("assembly", "Our fitters put wardrobes together at your home for a fixed fee.", "Will someone build the cupboard?"),
    ("recycling", "We collect your old mattress for recycling when we deliver the new one.",
     "What happens to my old bed?"),
    ("gift cards", "Gift cards are valid for three years and can be used online.", "How long can a voucher be used?"),
    ("opening hours", "The store opens at nine and closes at eight, Sundays at six.", "When do you close on Sunday?"),
    ("samples", "Fabric samples are sent free of charge to any address.", "Can I get a swatch of the cloth?"),
    ("price match", "We match a lower price from another shop within fourteen days.",
     "A rival is cheaper, what now?"),
]
