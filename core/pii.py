"""PII redaction for text that leaves the live database: emails, phone numbers, payment card numbers and IBANs.

Each kind becomes a placeholder (`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`) and is counted. Card numbers must pass the
Luhn check and IBANs the ISO 13616 mod-97 check, so an order number or an amount is not taken for one; phone numbers
need a shape that dates and amounts do not have (an international prefix, a parenthesised area code, a leading trunk
zero, or the 3-3-4 grouping). Kinds are matched in that order (email, IBAN, card, phone), each on what the earlier left.

`redact_frame` works on a whole column at once (polars' Rust regex engine, literal replacement of the validated
matches), `redact` on one string; both give the same result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

KINDS = ("email", "iban", "card", "phone")
PLACEHOLDER = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "phone": "[PHONE]"}

_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    "card": r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
    "phone": (
        r"(?:\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,4}"  # +44 20 7946 0958
        r"|\([0-9]{2,4}\)[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}"  # (020) 7946 0958
        r"|\b0[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){2,3}"  # 020 7946 0958, 07700 900123
        r"|\b[0-9]{3}[.-][0-9]{3}[.-][0-9]{4})\b"  # 555-867-5309
    ),
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in _PATTERNS.items()}
# Only text with a digit or an @ can hold any of them: the rest skips the regexes.
_CANDIDATE = r"[0-9@]"


def luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _phone_ok(candidate: str) -> bool:
    return 7 <= sum(c.isdigit() for c in candidate) <= 15


_VALID = {"iban": iban_ok, "card": luhn_ok, "phone": _phone_ok}


@dataclass(frozen=True)
class Redacted:
    text: str
    counts: dict[str, int]


def redact(text: str) -> Redacted:
    counts = dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        valid = _VALID.get(kind, lambda _: True)

        def replace(match: re.Match, kind=kind, valid=valid) -> str:
            if not valid(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return PLACEHOLDER[kind]

        text = _COMPILED[kind].sub(replace, text)
    return Redacted(text, counts)


def redact_frame(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """`column` redacted, with `pii_<kind>` counts (Int16) for every kind. The regexes run over the whole column in
    Rust to find the rows that hold a valid match; only those (a small share of real traffic) go through `redact`."""
    frame = frame.with_columns(**{f"pii_{kind}": pl.lit(0, dtype=pl.Int16) for kind in KINDS})
    rows = frame.select(pl.col(column)).with_row_index("_row").filter(pl.col(column).str.contains(_CANDIDATE))
    if rows.height == 0:
        return frame
    flagged = pl.Series([False] * rows.height)
    for kind in KINDS:
        found = rows[column].str.extract_all(_PATTERNS[kind])
        validate = _VALID.get(kind)
        matches = found.explode().drop_nulls().unique().to_list()
        valid = [m for m in matches if validate is None or validate(m)]
        if valid:
            flagged = flagged | found.list.eval(pl.element().is_in(valid)).list.any().fill_null(False)
    rows = rows.filter(flagged)
    if rows.height == 0:
        return frame
    results = [redact(text) for text in rows[column].to_list()]
    redacted = pl.DataFrame(
        {
            "_row": rows["_row"],
            column: [r.text for r in results],
            **{f"pii_{kind}": pl.Series([r.counts[kind] for r in results], dtype=pl.Int16) for kind in KINDS},
        }
    )
    return frame.with_row_index("_row").update(redacted, on="_row").drop("_row")
