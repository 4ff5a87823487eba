"""Invoice and credit note PDFs, read back with pypdf: what they say, that long invoices
flow over pages under a repeated header, and that the same document gives the same
bytes (in this process and in another one)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from pypdf import PdfReader
from pypdf.generic import DictionaryObject
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]

from services.billing import models
from services.billing.models import (
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceState,
    Issuer,
    LineKind,
    Unit,
    amount_minor,
    format_minor,
    tax_of,
)
from services.billing.pdf import (
    FONT,
    FONT_BOLD,
    format_tax_rate,
    register_fonts,
    render_credit_note,
    render_invoice,
)

ROOT = Path(__file__).resolve().parents[2]

ISSUER = Issuer(name="CAAS Operations Ltd", address="1 Example Road\nLondon EC1A 1AA",
                tax_id="GB999999973")
ACCOUNT = BillingAccount(organization_id="org-42", email="billing@mueller.example",
                         legal_name="Müller GmbH", address="Hauptstraße 5\n10115 Berlin",
                         country="DE", tax_id="DE123456789", tax_rate_bps=1900)


def line(kind: LineKind, description: str, quantity: int, price_micros: int,
         unit: Unit | None = None) -> InvoiceLine:
    return InvoiceLine(kind, description, quantity, price_micros,
                       amount_minor(quantity, price_micros), unit,
                       plan_id="pro" if kind is LineKind.BASE else "")


LINES = (
    line(LineKind.BASE, "Pro plan", 1, 49_000_000),
    line(LineKind.OVERAGE, "Messages above the 1,000,000 included", 234_567, 100,
         Unit.MESSAGES),
    line(LineKind.OVERAGE, "Monthly active users above the 5,000 included", 1_250, 20_000,
         Unit.MONTHLY_ACTIVE_USERS),
    line(LineKind.OVERAGE, "Storage above 50 GiB → per GiB", 12, 1_500_000, Unit.STORAGE_GIB),
)


def sample_invoice(lines: tuple[InvoiceLine, ...] = LINES, tax_rate_bps: int = 1900,
                   **changes: object) -> Invoice:
    subtotal = sum(found.amount_minor for found in lines)
    tax = tax_of(subtotal, tax_rate_bps)
    invoice = Invoice(
        invoice_id="inv_0001", organization_id="org-42", app_id="chat-prod",
        period_start=datetime(2025, 2, 1, tzinfo=UTC),
        period_end=datetime(2025, 3, 1, tzinfo=UTC),
        currency="EUR", lines=lines, subtotal_minor=subtotal, tax_rate_bps=tax_rate_bps,
        tax_minor=tax, total_minor=subtotal + tax, state=InvoiceState.OPEN, number=42,
        display_number="INV-2025-000042", bill_to=ACCOUNT,
        create_time=datetime(2025, 3, 1, 0, 1, tzinfo=UTC),
        issue_time=datetime(2025, 3, 1, 0, 5, tzinfo=UTC),
        due_time=datetime(2025, 3, 15, tzinfo=UTC))
    return replace(invoice, **changes)  # type: ignore[arg-type]


def pages_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def text_of(data: bytes) -> str:
    return "\n".join(pages_text(data))


def test_invoice_shows_its_number_parties_lines_and_totals() -> None:
    invoice = sample_invoice()
    data = render_invoice(invoice, ISSUER)

    assert data.startswith(b"%PDF-")
    text = text_of(data)
    assert "Invoice" in text
    assert "INV-2025-000042" in text
    # Amounts as the models compute them: 49.00, 23.46 (234,567 times 0.0001, half up),
    # 25.00, 18.00; subtotal 115.46, tax 19 % of it 21.94 (21.9374 rounded), total 137.40.
    assert [found.amount_minor for found in LINES] == [4900, 2346, 2500, 1800]
    for found in LINES:
        assert format_minor(found.amount_minor, "EUR") in text
        assert f"{found.quantity:,}" in text
    assert "234,567" in text
    assert "0.0001 EUR" in text  # the unit price, with the decimals it needs
    assert "1.50 EUR" in text
    assert "Storage above 50 GiB → per GiB" in text
    assert "Subtotal" in text and "115.46 EUR" in text
    assert "Tax (19%)" in text and "21.94 EUR" in text
    assert "Total" in text and "137.40 EUR" in text
    assert invoice.total_minor == 13740
    # Bill to, as it was when issued, non-ASCII included; and the issuer.
    for expected in ("Müller GmbH", "Hauptstraße 5", "10115 Berlin", "DE123456789",
                     "billing@mueller.example", "CAAS Operations Ltd", "London EC1A 1AA",
                     "GB999999973"):
        assert expected in text
    assert "apps/chat-prod" in text
    assert "2025-03-01" in text  # issued
    assert "2025-03-15" in text  # due
    assert "2025-02-01 \N{EN DASH} 2025-02-28" in text  # the period's last day, not its end
    # Unpaid and never credited: neither is mentioned.
    assert "Paid" not in text
    assert "Credited" not in text and "Amount due" not in text


def test_invoice_columns_follow_the_header() -> None:
    text = text_of(render_invoice(sample_invoice(), ISSUER))
    header = text.index("Description")
    assert text.index("Quantity") > header
    assert text.index("Unit price") > text.index("Quantity")
    assert text.index("Amount") > text.index("Unit price")
    # A row reads description, quantity, unit price, amount.
    row = text.index("Messages above the 1,000,000 included")
    assert row < text.index("234,567", row) < text.index("0.0001 EUR", row) < text.index(
        "23.46 EUR", row)


def test_credited_and_paid_invoice() -> None:
    invoice = sample_invoice(credited_minor=2000, state=InvoiceState.PAID,
                             paid_time=datetime(2025, 3, 3, 23, 30, tzinfo=UTC))
    text = text_of(render_invoice(invoice, ISSUER))

    assert "Credited" in text and "-20.00 EUR" in text
    assert "Amount due" in text and "117.40 EUR" in text
    assert "Paid on 2025-03-03" in text


def test_account_without_legal_name_shows_the_organization() -> None:
    account = replace(ACCOUNT, legal_name="", address="", tax_id="")
    text = text_of(render_invoice(sample_invoice(bill_to=account), ISSUER))

    assert "org-42" in text
    assert "Müller" not in text
    assert "Tax ID: DE" not in text


def test_text_is_printed_as_written_not_as_markup() -> None:
    lines = (line(LineKind.OVERAGE, "API calls <above> the plan & more", 10, 1_000_000,
                  Unit.API_CALLS),)
    account = replace(ACCOUNT, legal_name="Smith & Sons <UK>")
    text = text_of(render_invoice(sample_invoice(lines, bill_to=account), ISSUER))

    assert "API calls <above> the plan & more" in text
    assert "Smith & Sons <UK>" in text


def test_the_same_invoice_renders_to_the_same_bytes() -> None:
    invoice = sample_invoice(credited_minor=500)
    first = render_invoice(invoice, ISSUER)
    second = render_invoice(invoice, ISSUER)

    assert first == second
    # Any change shows.
    assert render_invoice(replace(invoice, display_number="INV-2025-000043"), ISSUER) != first


def test_the_same_invoice_renders_to_the_same_bytes_in_another_process() -> None:
    here = render_invoice(sample_invoice(), ISSUER)
    script = ("import sys\n"
              "from tests.billing.test_pdf import ISSUER, sample_invoice\n"
              "from services.billing.pdf import render_invoice\n"
              "sys.stdout.buffer.write(render_invoice(sample_invoice(), ISSUER))\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    env.pop("SOURCE_DATE_EPOCH", None)
    there = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                           capture_output=True, check=True, timeout=60).stdout

    assert there == here


def test_pdf_metadata_is_the_documents_not_the_clocks() -> None:
    invoice = sample_invoice()
    reader = PdfReader(io.BytesIO(render_invoice(invoice, ISSUER)))

    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice INV-2025-000042"
    assert reader.metadata.author == "CAAS Operations Ltd"
    assert reader.metadata.creation_date == invoice.issue_time


def test_fonts_are_the_shipped_ones_embedded() -> None:
    reader = PdfReader(io.BytesIO(render_invoice(sample_invoice(), ISSUER)))
    resources = cast(DictionaryObject, reader.pages[0]["/Resources"])
    fonts = cast(DictionaryObject, resources["/Font"].get_object())
    entries = [cast(DictionaryObject, fonts[name].get_object()) for name in fonts]
    base_fonts = {str(entry["/BaseFont"]) for entry in entries}

    assert base_fonts  # the text is set in fonts of the file's own, …
    assert all("DejaVuSans" in name for name in base_fonts), base_fonts
    # … embedded, not one of the 14 standard PDF fonts (which have no "→").
    for entry in entries:
        assert "/FontFile2" in cast(DictionaryObject, entry["/FontDescriptor"].get_object())


def test_register_fonts_can_be_called_again() -> None:
    register_fonts()
    register_fonts()

    assert {FONT, FONT_BOLD} <= set(pdfmetrics.getRegisteredFontNames())
    assert pdfmetrics.getFont(FONT).face.name == b"DejaVuSans"
    assert pdfmetrics.getFont(FONT_BOLD).face.name == b"DejaVuSans-Bold"


def test_long_invoice_flows_over_pages_under_a_repeated_header() -> None:
    lines = tuple(line(LineKind.OVERAGE, f"Item {index:03d}", index * 1000, 1234, Unit.API_CALLS)
                  for index in range(1, 121))
    invoice = sample_invoice(lines)
    texts = pages_text(render_invoice(invoice, ISSUER))

    assert len(texts) > 1
    total = format_minor(invoice.total_minor, "EUR")
    assert total in texts[-1]
    assert "Total" in texts[-1]
    assert all(total not in text for text in texts[:-1])
    assert "Description" in texts[1]
    # Every page with lines on it has the header; every line is on exactly one page.
    for text in texts:
        if "Item " in text:
            assert "Description" in text and "Amount" in text
    for index in range(1, 121):
        assert sum(f"Item {index:03d}" in text for text in texts) == 1
    # The page footer numbers them.
    assert f"Page {len(texts)}" in texts[-1]


def test_totals_stay_with_the_last_line() -> None:
    # Invoices growing a line at a time, across the length where a third page begins:
    # the subtotal, tax and total are never split, nor alone under the header.
    page_counts = set()
    for count in range(45, 71):
        lines = tuple(line(LineKind.OVERAGE, f"Item {index:03d}", index, 1234, Unit.API_CALLS)
                      for index in range(1, count + 1))
        texts = pages_text(render_invoice(sample_invoice(lines), ISSUER))
        page_counts.add(len(texts))
        last = texts[-1]
        assert "Subtotal" in last and "Tax (19%)" in last and "Total" in last, count
        assert f"Item {count:03d}" in last, count
    assert len(page_counts) > 1  # the range did cross a page break


def test_credit_note() -> None:
    invoice = sample_invoice(credited_minor=2000)
    note = CreditNote(credit_note_id="cn_0001", organization_id="org-42",
                      invoice_id=invoice.invoice_id, amount_minor=2000,
                      reason="Service outage on 2025-02-14", number=7,
                      display_number="CN-2025-000007",
                      issue_time=datetime(2025, 3, 10, 12, tzinfo=UTC))
    data = render_credit_note(note, invoice, ISSUER)
    text = text_of(data)

    assert "Credit note" in text
    assert "CN-2025-000007" in text
    assert "2025-03-10" in text
    assert "Credits invoice INV-2025-000042" in text
    assert "Service outage on 2025-02-14" in text
    assert "20.00 EUR" in text
    assert "Müller GmbH" in text and "Hauptstraße 5" in text
    assert render_credit_note(note, invoice, ISSUER) == data
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata is not None
    assert reader.metadata.creation_date == note.issue_time


@pytest.mark.parametrize(("rate_bps", "expected"), [
    (0, "0%"), (1900, "19%"), (1950, "19.5%"), (1925, "19.25%"), (2000, "20%"),
    (5, "0.05%"), (750, "7.5%"), (10_000, "100%")])
def test_tax_rate_formatting(rate_bps: int, expected: str) -> None:
    assert format_tax_rate(rate_bps) == expected


def test_tax_rate_on_the_invoice() -> None:
    invoice = sample_invoice(tax_rate_bps=1950)
    text = text_of(render_invoice(invoice, ISSUER))

    assert invoice.tax_minor == tax_of(11546, 1950) == 2251
    assert "Tax (19.5%)" in text
    assert format_minor(invoice.tax_minor, "EUR") in text
    assert "19%" not in text


def test_amounts_are_the_models() -> None:
    # The arithmetic these tests lean on (so a changed rounding rule is seen here too).
    assert models.amount_minor(234_567, 100) == 2346
    assert models.format_micros(100, "EUR") == "0.0001 EUR"
