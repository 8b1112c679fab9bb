"""The report as an A4 PDF (reportlab platypus): the same sections, tables, plots and gallery as the
HTML page."""

from __future__ import annotations

import io
import math
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as PdfTable

from physadv.report.content import Block, Card, Gallery, Links, Plot, Report, Table, Text
from physadv.report.plots import DPI

FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
MARGIN = 15 * mm
FRAME_WIDTH = A4[0] - 2 * MARGIN
FRAME_HEIGHT = A4[1] - 2 * MARGIN - 40  # room for a caption below
PICTURE_WIDTH = 40 * mm
GRID = colors.HexColor("#bbbbbb")
HEADER = colors.HexColor("#eef1f5")
GREY = colors.HexColor("#888888")
VERDICT_COLOUR = {True: "#b00020", False: "#1b7f3b", None: "#777777"}


def _register_fonts() -> None:
    # reportlab's built-in Helvetica has no ε, → or —; matplotlib ships DejaVu Sans, which has them.
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


def _style(name: str, size: float, font: str = FONT, **options) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.3, **options)


STYLES = {
    "title": _style("title", 18, BOLD, spaceAfter=2),
    "subtitle": _style("subtitle", 9, textColor=GREY, spaceAfter=6),
    "h2": _style("h2", 13, BOLD, spaceBefore=12, spaceAfter=6, keepWithNext=1),
    "body": _style("body", 9, spaceAfter=6),
    "missing": _style("missing", 9, backColor=colors.HexColor("#fff6dd"), borderColor=colors.HexColor("#e0a800"),
                      borderWidth=0.5, borderPadding=4, spaceBefore=4, spaceAfter=10),
    "caption": _style("caption", 8, BOLD, spaceAfter=3, keepWithNext=1),
    "figcaption": _style("figcaption", 8, textColor=colors.HexColor("#555555"), spaceAfter=10),
    "header": _style("header", 7, BOLD),
    "card": _style("card", 8, BOLD),
    "picture": _style("picture", 7, alignment=TA_CENTER),
}


MAX_PARAGRAPH_CHARS = 2_000
"""A paragraph longer than this (a name or path from a damaged or hostile store) is cut: reportlab
cannot split one table cell over pages, and about 2,000 characters fill a gallery card."""


def _paragraph(text: str, style: str) -> Paragraph:
    if len(text) > MAX_PARAGRAPH_CHARS:
        text = text[:MAX_PARAGRAPH_CHARS] + f"… ({len(text) - MAX_PARAGRAPH_CHARS} more characters)"
    return Paragraph(escape(text), STYLES[style])


def _column_widths(table: Table) -> list[float]:
    """Each column as wide as its widest cell or the longest word of its (wrapping) header: left to
    itself, reportlab shares the page width out among the header paragraphs."""
    padding = 14  # reportlab's default cell padding, 6 pt a side, and a little air
    widths = []
    for column, name in enumerate(table.header):
        cells = [pdfmetrics.stringWidth(row[column], FONT, 7) for row in table.body]
        words = [pdfmetrics.stringWidth(word, BOLD, 7) for word in name.split()]
        widths.append(max(cells + words) + padding)
    scale = min(1.0, FRAME_WIDTH / sum(widths))
    return [width * scale for width in widths]


def _table(table: Table) -> list[Flowable]:
    data = [[_paragraph(name, "header") for name in table.header], *[list(row) for row in table.body]]
    commands = [
        ("FONTNAME", (0, 1), (-1, -1), FONT), ("FONTSIZE", (0, 1), (-1, -1), 7),
        ("GRID", (0, 0), (-1, -1), 0.3, GRID), ("BACKGROUND", (0, 0), (-1, 0), HEADER),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (table.key_columns, 1), (-1, -1), "RIGHT"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    commands += [("TEXTCOLOR", (column, line), (column, line), GREY)
                 for line, row in enumerate(table.body, start=1) for column, text in enumerate(row)
                 if text.startswith("n/a") or text == "—"]
    grid = PdfTable(data, colWidths=_column_widths(table), repeatRows=1, hAlign="LEFT")
    grid.setStyle(TableStyle(commands))
    return [_paragraph(table.caption, "caption"), grid, Spacer(1, 10)]


def _image(png: bytes, max_width: float, max_height: float = FRAME_HEIGHT,
           points_per_pixel: float = 72 / DPI) -> Image:
    """At ``points_per_pixel`` (by default the size matplotlib drew it at, where its fonts have their
    nominal size), shrunk to fit if need be."""
    with PILImage.open(io.BytesIO(png)) as picture:
        width, height = picture.size
    scale = min(points_per_pixel, max_width / width, max_height / height)
    return Image(io.BytesIO(png), width=width * scale, height=height * scale)


def _card(card: Card) -> Flowable:
    pictures = [_image(p.image, PICTURE_WIDTH, PICTURE_WIDTH, math.inf) if p.image is not None else _paragraph("no picture", "picture")
                for p in card.pictures]
    verdict = Paragraph(f'<font color="{VERDICT_COLOUR[card.fooled]}">{escape(card.verdict)}</font>',
                        STYLES["body"])
    columns = len(card.pictures)
    grid = PdfTable([[_paragraph(card.title, "card")] + [""] * (columns - 1), [verdict] + [""] * (columns - 1),
                     pictures, [_paragraph(p.caption, "picture") for p in card.pictures]],
                    colWidths=[PICTURE_WIDTH + 6] * columns, hAlign="LEFT")
    grid.setStyle(TableStyle([
        ("SPAN", (0, 0), (-1, 0)), ("SPAN", (0, 1), (-1, 1)), ("BOX", (0, 0), (-1, -1), 0.5, GRID),
        ("ALIGN", (0, 2), (-1, -1), "CENTER"), ("VALIGN", (0, 2), (-1, 2), "MIDDLE"),
        ("BACKGROUND", (0, 2), (-1, 2), colors.HexColor("#f6f6f6")),
    ]))
    return KeepTogether([grid, Spacer(1, 8)])


def _block(block: Block) -> list[Flowable]:
    if isinstance(block, Text):
        return [_paragraph(block.text, "missing" if block.missing else "body")]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Plot):
        return [_image(block.png, FRAME_WIDTH), _paragraph(block.caption, "figcaption")]
    if isinstance(block, Links):
        return [_paragraph(block.caption, "body")] + [_paragraph(text, "body") for text, _ in block.items]
    assert isinstance(block, Gallery)
    return [_card(card) for card in block.cards]


def render_pdf(report: Report) -> bytes:
    _register_fonts()
    story: list[Flowable] = [_paragraph(report.title, "title"), _paragraph(report.subtitle, "subtitle")]
    for section in report.sections:
        story.append(_paragraph(section.title, "h2"))
        for block in section.blocks:
            story += _block(block)

    def footer(canvas, document) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.setFillColor(GREY)
        canvas.drawString(MARGIN, MARGIN / 2, report.title)
        canvas.drawRightString(A4[0] - MARGIN, MARGIN / 2, f"page {document.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    # invariant: no timestamp or random document id, so the same report gives the same bytes.
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                                 bottomMargin=MARGIN, title=report.title, author="physadv", invariant=1)
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
