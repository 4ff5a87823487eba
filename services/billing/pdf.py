"""Invoices and credit notes as PDF: what is emailed and kept for every issued document.

`render_invoice(invoice, issuer)` lays out an A4 invoice: the issuer, the account billed
(as it was when the invoice was issued: `invoice.bill_to`), the app and billing period,
one table row per line (its header repeated on every page, so long invoices flow over
several), then subtotal, tax and total, what credit notes took off and what is still
due, and when it was paid. `render_credit_note(note, invoice, issuer)` does the same for
a credit note against an invoice.

Rendered with reportlab's platypus: BSD licensed, pure Python wheels with no system
libraries (no browser, no Cairo, no fontconfig), and deterministic: the same document
gives the same bytes (invariant mode, the creation date set to the document's issue
time), so a PDF's SHA-256 can be recorded and a copy rendered again checked against it.
Text is set in DejaVu Sans, shipped in `fonts/` beside this module (its licence there)
and embedded in each PDF, so names like "Müller", signs like "€" and "→" and en dashes
print as written whatever the machine. Money arrives as integers and is only ever formatted
(models.format_minor, models.format_micros): nothing is computed here.

Rendering is CPU-bound and synchronous (a few milliseconds a page); asyncio callers run
it in a thread.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.enums import TA_RIGHT  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.billing.models import (
    UNIT_WORDS,
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    Issuer,
    format_micros,
    format_minor,
)

# Fonts: DejaVu Sans, registered with reportlab under names of our own so they never
# clash with (or replace) fonts another part of the process registers.
FONT_DIR: Final = Path(__file__).resolve().parent / "fonts"
FONT: Final = "CaasSans"
FONT_BOLD: Final = "CaasSans-Bold"
_FONT_FILES: Final = ((FONT, "DejaVuSans.ttf"), (FONT_BOLD, "DejaVuSans-Bold.ttf"))

# Page geometry: A4, the lines table's columns filling the width between the margins
# (inside the padding platypus's frame keeps along each side).
PAGE_SIZE: Final = A4
MARGIN: Final = 16 * mm
BOTTOM_MARGIN: Final = 22 * mm  # room for the page footer
FRAME_PADDING: Final = 6  # points: Frame's default
TEXT_LEFT: Final = MARGIN + FRAME_PADDING
TEXT_RIGHT: Final = PAGE_SIZE[0] - MARGIN - FRAME_PADDING
CONTENT_WIDTH: Final = TEXT_RIGHT - TEXT_LEFT
FOOTER_Y: Final = 12 * mm
QUANTITY_WIDTH: Final = 30 * mm  # 12 digits
PRICE_WIDTH: Final = 34 * mm  # "1,234.123456 EUR"
AMOUNT_WIDTH: Final = 40 * mm  # "12,345,678.90 EUR" in bold
DESCRIPTION_WIDTH: Final = CONTENT_WIDTH - QUANTITY_WIDTH - PRICE_WIDTH - AMOUNT_WIDTH
LINE_COLUMNS: Final = ("Description", "Quantity", "Unit price", "Amount")

INK: Final = colors.HexColor("#1f2328")
MUTED: Final = colors.HexColor("#59636e")
RULE: Final = colors.HexColor("#d1d9e0")
HEADER_FILL: Final = colors.HexColor("#f3f5f7")

BODY_SIZE: Final = 9
BODY_LEADING: Final = 12
CELL_PADDING: Final = 4

TITLE_STYLE: Final = ParagraphStyle(
    "caas-title", fontName=FONT_BOLD, fontSize=20, leading=24, textColor=INK)
BODY_STYLE: Final = ParagraphStyle(
    "caas-body", fontName=FONT, fontSize=BODY_SIZE, leading=BODY_LEADING, textColor=INK)
STRONG_STYLE: Final = ParagraphStyle("caas-strong", parent=BODY_STYLE, fontName=FONT_BOLD)
LABEL_STYLE: Final = ParagraphStyle("caas-label", parent=BODY_STYLE, textColor=MUTED)
HEADING_STYLE: Final = ParagraphStyle(
    "caas-heading", parent=BODY_STYLE, fontName=FONT_BOLD, fontSize=8, leading=11,
    textColor=MUTED, spaceAfter=2)
NUMBER_STYLE: Final = ParagraphStyle(
    "caas-number", parent=BODY_STYLE, fontSize=11, leading=15, textColor=MUTED)
ISSUER_STYLE: Final = ParagraphStyle("caas-issuer", parent=BODY_STYLE, alignment=TA_RIGHT)
ISSUER_NAME_STYLE: Final = ParagraphStyle(
    "caas-issuer-name", parent=ISSUER_STYLE, fontName=FONT_BOLD)

NO_DATE: Final = "\N{EM DASH}"
EN_DASH: Final = "\N{EN DASH}"
BPS_PER_PERCENT: Final = 100


def register_fonts() -> None:
    """Registers the shipped DejaVu Sans faces with reportlab (its registry is the
    process's): the first call loads them, later ones find them there and do nothing."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    if registered.issuperset(name for name, _ in _FONT_FILES):
        return
    for name, file_name in _FONT_FILES:
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / file_name)))
    # <b> in a paragraph picks the bold face.
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT,
                                  boldItalic=FONT_BOLD)


def render_invoice(invoice: Invoice, issuer: Issuer) -> bytes:
    """An invoice as a PDF (A4, one page or more): the same invoice, the same bytes."""
    register_fonts()  # before any paragraph is made: they look their fonts up
    number = invoice.display_number or "Draft"
    details = [("Invoice number", number),
               ("Issue date", _date(invoice.issue_time)),
               ("Due date", _date(invoice.due_time)),
               ("Billing period", _period(invoice.period_start, invoice.period_end)),
               ("App", f"apps/{invoice.app_id}")]
    story: list[Any] = [
        *_heading("Invoice", number, issuer),
        _parties(_bill_to(invoice.bill_to, invoice.organization_id), details),
        Spacer(0, 8 * mm),
        _lines_table(invoice),
    ]
    if invoice.paid_time is not None:
        story += [Spacer(0, 6 * mm),
                  Paragraph(f"Paid on {_date(invoice.paid_time)}.", STRONG_STYLE)]
    return _build(story, title=f"Invoice {number}", issuer=issuer, number=number,
                  created=invoice.issue_time or invoice.create_time)


def render_credit_note(note: CreditNote, invoice: Invoice, issuer: Issuer) -> bytes:
    """A credit note against `invoice` as a PDF: the same note, the same bytes."""
    register_fonts()
    number = note.display_number or "Draft"
    invoice_number = invoice.display_number or invoice.invoice_id
    details = [("Credit note number", number),
               ("Issue date", _date(note.issue_time)),
               ("Invoice", invoice_number),
               ("Invoice date", _date(invoice.issue_time)),
               ("Billing period", _period(invoice.period_start, invoice.period_end)),
               ("App", f"apps/{invoice.app_id}")]
    amount = Table(
        [["Amount credited (tax included)", format_minor(note.amount_minor, invoice.currency)]],
        colWidths=[CONTENT_WIDTH - AMOUNT_WIDTH - PRICE_WIDTH, PRICE_WIDTH + AMOUNT_WIDTH],
        style=TableStyle([
            *_cell_style(),
            ("FONTNAME", (0, 0), (-1, -1), FONT_BOLD),
            ("ALIGN", (1, 0), (1, 0), "RIGHT"),
            ("LINEABOVE", (0, 0), (-1, 0), 1, INK),
            ("LINEBELOW", (0, 0), (-1, 0), 1, INK),
        ]))
    story: list[Any] = [
        *_heading("Credit note", number, issuer),
        _parties(_bill_to(invoice.bill_to, invoice.organization_id), details),
        Spacer(0, 8 * mm),
        Paragraph(_text(f"Credits invoice {invoice_number}."), STRONG_STYLE),
        Spacer(0, 2 * mm),
        Paragraph(f"Reason: {_text(note.reason or 'not given')}", BODY_STYLE),
        Spacer(0, 6 * mm),
        amount,
    ]
    return _build(story, title=f"Credit note {number}", issuer=issuer, number=number,
                  created=note.issue_time)


def format_tax_rate(rate_bps: int) -> str:
    """A tax rate in basis points as a percent, with the decimals it needs (at most two):
    1900 → "19%", 1950 → "19.5%", 1925 → "19.25%", 0 → "0%"."""
    whole, fraction = divmod(rate_bps, BPS_PER_PERCENT)
    if not fraction:
        return f"{whole}%"
    return f"{whole}.{f'{fraction:02d}'.rstrip('0')}%"


# The document.

def _build(story: Sequence[Any], *, title: str, issuer: Issuer, number: str,
           created: datetime) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=PAGE_SIZE, leftMargin=MARGIN, rightMargin=MARGIN,
        topMargin=MARGIN, bottomMargin=BOTTOM_MARGIN, title=title, author=issuer.name,
        subject=title, creator="CAAS billing",
        # No wall-clock time, random id or object address in the file (the document's,
        # not reportlab's global rl_config.invariant, so nothing else is affected).
        invariant=True, pageCompression=1,
        initialFontName=FONT, initialFontSize=BODY_SIZE)
    decorate = _page_decorator(f"{issuer.name} · {number}", created)
    document.build(list(story), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def _page_decorator(footer: str, created: datetime) -> Callable[[Any, Any], None]:
    """What every page gets besides its flowables: the footer, and the document's
    creation date (invariant mode would write 2000-01-01, or $SOURCE_DATE_EPOCH)."""
    stamp = created.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")

    def decorate(canvas: Any, document: Any) -> None:
        canvas.setDateFormatter(lambda *_: stamp)
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(TEXT_LEFT, FOOTER_Y, footer)
        canvas.drawRightString(TEXT_RIGHT, FOOTER_Y, f"Page {document.page}")
        canvas.restoreState()

    return decorate


def _heading(title: str, number: str, issuer: Issuer) -> list[Any]:
    """The title and number on the left, the issuer on the right."""
    left = [Paragraph(_text(title), TITLE_STYLE), Paragraph(_text(number), NUMBER_STYLE)]
    right = [Paragraph(_text(issuer.name), ISSUER_NAME_STYLE),
             *(Paragraph(_text(line), ISSUER_STYLE) for line in _lines_of(issuer.address))]
    if issuer.tax_id:
        right.append(Paragraph(_text(f"Tax ID: {issuer.tax_id}"), ISSUER_STYLE))
    half = CONTENT_WIDTH / 2
    return [Table([[left, right]], colWidths=[half, half], style=TableStyle(_layout_style())),
            Spacer(0, 10 * mm)]


def _parties(bill_to: list[Any], details: Sequence[tuple[str, str]]) -> Any:
    """The account billed on the left, the document's dates and references on the
    right."""
    label_width = max(pdfmetrics.stringWidth(label, FONT, BODY_SIZE)
                      for label, _ in details) + 4 * mm
    detail_width = CONTENT_WIDTH / 2
    facts = Table(
        [[Paragraph(_text(label), LABEL_STYLE), Paragraph(_text(value), BODY_STYLE)]
         for label, value in details],
        colWidths=[label_width, detail_width - label_width],
        style=TableStyle([*_layout_style(),
                          ("TOPPADDING", (0, 0), (-1, -1), 0),
                          ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    return Table([[bill_to, facts]],
                 colWidths=[CONTENT_WIDTH - detail_width, detail_width],
                 style=TableStyle(_layout_style()))


def _bill_to(account: BillingAccount | None, organization_id: str) -> list[Any]:
    block = [Paragraph("BILL TO", HEADING_STYLE)]
    if account is None:
        return [*block, Paragraph(_text(organization_id), STRONG_STYLE)]
    block.append(Paragraph(_text(account.legal_name or account.organization_id),
                           STRONG_STYLE))
    lines = [*_lines_of(account.address), account.country]
    if account.tax_id:
        lines.append(f"Tax ID: {account.tax_id}")
    lines.append(account.email)
    block += [Paragraph(_text(line), BODY_STYLE) for line in lines if line.strip()]
    return block


def _lines_table(invoice: Invoice) -> Any:
    """One row a line, under a header row repeated at the top of every page, then the
    totals: subtotal, tax and total (and what credit notes took off and what is still
    due), their labels right-aligned against the amounts. The totals never leave the
    last line behind on another page."""
    currency = invoice.currency
    rows: list[list[Any]] = [list(LINE_COLUMNS)]
    for line in invoice.lines:
        rows.append([Paragraph(_text(_description(line)), BODY_STYLE),
                     f"{line.quantity:,}",
                     _unit_price(line.unit_price_micros, currency),
                     format_minor(line.amount_minor, currency)])
    last_line = len(rows) - 1
    totals = [("Subtotal", invoice.subtotal_minor, False),  # label, amount, emphasised
              (f"Tax ({format_tax_rate(invoice.tax_rate_bps)})", invoice.tax_minor, False),
              ("Total", invoice.total_minor, True)]
    if invoice.credited_minor > 0:
        totals += [("Credited", -invoice.credited_minor, False),
                   ("Amount due", invoice.amount_due_minor, True)]
    rows += [[label, "", "", format_minor(amount, currency)] for label, amount, _ in totals]
    style: list[tuple[Any, ...]] = [
        *_cell_style(),
        ("FONTNAME", (0, 0), (-1, 0), FONT_BOLD),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.75, INK),
        ("LINEBELOW", (0, 1), (-1, last_line), 0.25, RULE),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("NOSPLIT", (0, last_line), (-1, -1)),
    ]
    for row, (_, _, emphasised) in enumerate(totals, start=last_line + 1):
        style += [("SPAN", (0, row), (2, row)), ("ALIGN", (0, row), (2, row), "RIGHT")]
        if emphasised:
            style += [("FONTNAME", (0, row), (-1, row), FONT_BOLD),
                      ("LINEABOVE", (2, row), (-1, row), 0.75, INK)]
    return Table(rows, repeatRows=1, style=TableStyle(style),
                 colWidths=[DESCRIPTION_WIDTH, QUANTITY_WIDTH, PRICE_WIDTH, AMOUNT_WIDTH])


def _description(line: InvoiceLine) -> str:
    """A line's description as printed (the unit's words if it has none)."""
    if line.description:
        return line.description
    return UNIT_WORDS[line.unit] if line.unit is not None else str(line.kind)


def _layout_style() -> list[tuple[Any, ...]]:
    """A table that only places blocks side by side (its cells' font set all the same:
    a table starts every cell in its default font, Helvetica, which the file would
    then name)."""
    return [("FONTNAME", (0, 0), (-1, -1), FONT),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("RIGHTPADDING", (0, 0), (-1, -1), 0)]


def _cell_style() -> list[tuple[Any, ...]]:
    return [("FONTNAME", (0, 0), (-1, -1), FONT),
            ("FONTSIZE", (0, 0), (-1, -1), BODY_SIZE),
            ("LEADING", (0, 0), (-1, -1), BODY_LEADING),
            ("TEXTCOLOR", (0, 0), (-1, -1), INK),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), CELL_PADDING),
            ("BOTTOMPADDING", (0, 0), (-1, -1), CELL_PADDING)]


# Text.

def _text(value: str) -> str:
    """Plain text made safe for a Paragraph, whose text is markup ("&", "<")."""
    return html.escape(value, quote=False)


def _lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _date(moment: datetime | None) -> str:
    """The UTC date, YYYY-MM-DD."""
    return NO_DATE if moment is None else moment.astimezone(UTC).date().isoformat()


def _period(start: datetime, end: datetime) -> str:
    """First and last day of [start, end): a calendar month ends the day before the
    next one starts."""
    return f"{_date(start)} {EN_DASH} {_date(end - timedelta(days=1))}"


def _unit_price(micros: int, currency: str) -> str:
    # format_micros expects a price of zero or more.
    if micros < 0:
        return f"-{format_micros(-micros, currency)}"
    return format_micros(micros, currency)
