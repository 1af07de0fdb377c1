"""PII redaction on a labelled sample: what must go, what must stay, and the column path agreeing with the scalar."""

from __future__ import annotations

import polars as pl
import pytest

from core.pii import KINDS, iban_ok, luhn_ok, redact, redact_frame

# (text, {kind: count}, redacted text) — labelled by hand; amounts, dates, order and reference numbers must stay.
LABELLED = [
    ("mail me at john.doe+x@example.co.uk please", {"email": 1}, "mail me at [EMAIL] please"),
    ("JANE_DOE@Mail.Example.com is mine", {"email": 1}, "[EMAIL] is mine"),
    ("card 4111 1111 1111 1111 expired", {"card": 1}, "card [CARD] expired"),
    ("my card 5500-0000-0000-0004 was charged twice", {"card": 1}, "my card [CARD] was charged twice"),
    ("amex 378282246310005", {"card": 1}, "amex [CARD]"),
    ("order 4111111111111112 has not arrived", {}, "order 4111111111111112 has not arrived"),
    ("call +44 20 7946 0958 after 5", {"phone": 1}, "call [PHONE] after 5"),
    ("(020) 7946 0958 is the office", {"phone": 1}, "[PHONE] is the office"),
    ("my mobile is 07700 900123", {"phone": 1}, "my mobile is [PHONE]"),
    ("US number 555-867-5309", {"phone": 1}, "US number [PHONE]"),
    ("+1 415 555 2671 or +49 30 901820", {"phone": 2}, "[PHONE] or [PHONE]"),
    ("my IBAN is GB82 WEST 1234 5698 7654 32", {"iban": 1}, "my IBAN is [IBAN]"),
    ("send it to DE89370400440532013000", {"iban": 1}, "send it to [IBAN]"),
    ("not an iban GB00 WEST 1234 5698 7654 32", {}, "not an iban GB00 WEST 1234 5698 7654 32"),
    ("on 2026-12-01 I paid 1,250.00 EUR", {}, "on 2026-12-01 I paid 1,250.00 EUR"),
    ("reference 123456789 and ticket #4471", {}, "reference 123456789 and ticket #4471"),
    ("it cost $12.99 at 10:45", {}, "it cost $12.99 at 10:45"),
    ("pin 1234", {}, "pin 1234"),
    ("", {}, ""),
    (
        "email a@b.io, card 4012 8888 8888 1881, phone +44 7700 900123",
        {"email": 1, "card": 1, "phone": 1},
        "email [EMAIL], card [CARD], phone [PHONE]",
    ),
]


@pytest.mark.parametrize(("text", "counts", "expected"), LABELLED)
def test_each_labelled_text_is_redacted_exactly(text, counts, expected):
    result = redact(text)
    assert result.text == expected
    assert result.counts == {kind: counts.get(kind, 0) for kind in KINDS}


def test_precision_and_recall_on_the_sample_are_perfect():
    found = sum(sum(redact(text).counts.values()) for text, _, _ in LABELLED)
    labelled = sum(sum(counts.values()) for _, counts, _ in LABELLED)
    wrongly_touched = [text for text, counts, expected in LABELLED if not counts and redact(text).text != text]
    assert found == labelled and not wrongly_touched


def test_the_column_path_gives_what_the_scalar_path_gives():
    texts = [text for text, _, _ in LABELLED] * 3 + [None, "no digits at all"]
    out = redact_frame(pl.DataFrame({"text": texts}), "text")
    for row, text in zip(out.iter_rows(named=True), texts, strict=True):
        if text is None:
            assert row["text"] is None and all(row[f"pii_{kind}"] == 0 for kind in KINDS)
            continue
        single = redact(text)
        assert row["text"] == single.text
        assert {kind: row[f"pii_{kind}"] for kind in KINDS} == single.counts


def test_checksums():
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB83WEST12345698765432")
