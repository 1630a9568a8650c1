"""PII scan: e-mail addresses, phone numbers, US SSNs, payment cards, IBANs, IP addresses
and person names, in values and in column names.

Vectorised with pandas string methods on a seeded sample of rows (the sample size is in
the result). Cards are Luhn-checked and IBANs mod-97-checked, so ordinary numbers do not
count as PII. Figures are kinds and shares per column; matched values never leave here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from risk_assets.controls._result import ControlResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PII_KINDS", "scan_pii"]

_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
    "phone": r"(?:\+|00)[1-9][0-9 ().\-]{7,17}[0-9]|\(?[0-9]{3}\)?[ .\-][0-9]{3}[ .\-][0-9]{4}",
    "us_ssn": r"(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}",
    "payment_card": r"[0-9](?:[ \-]?[0-9]){12,18}",
    "iban": r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
    "ip_address": (
        r"(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
        r"|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4})?"
    ),
    # two or three capitalised words: "Jane Doe", "Maria de Souza"-like free text
    "person_name": r"[A-Z][a-z]+(?:[ '\-](?:[a-z]{1,3} )?[A-Z][a-z]+){1,2}",
}
PII_KINDS = (*_PATTERNS, "column_name")

_NAME_HINTS = re.compile(
    r"(^|_)(e?mail|phone|mobile|ssn|social_security|iban|card_?number|credit_card|ip_?addr(ess)?"
    r"|first_?name|last_?name|full_?name|surname|given_name|name|address|street|postcode|zip"
    r"|date_of_birth|dob|passport|national_id)($|_)",
    re.IGNORECASE,
)


def _luhn_ok(digits: pd.Series) -> np.ndarray:
    """Luhn check of digit strings, vectorised over a padded digit matrix."""
    if digits.empty:
        return np.zeros(0, dtype=bool)
    width = int(digits.str.len().max())
    padded = digits.str.zfill(width)
    mat = np.frombuffer("".join(padded).encode("ascii"), dtype=np.uint8).reshape(-1, width) - 48
    mat = mat[:, ::-1].astype(np.int64)  # from the right
    doubled = mat[:, 1::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    return (mat[:, 0::2].sum(axis=1) + doubled.sum(axis=1)) % 10 == 0


def _iban_ok(values: pd.Series) -> np.ndarray:
    """ISO 13616 mod-97 check (move four characters to the end, letters to numbers)."""
    out = np.zeros(len(values), dtype=bool)
    for i, raw in enumerate(values.str.replace(" ", "", regex=False)):
        moved = raw[4:] + raw[:4]
        number = "".join(str(int(ch, 36)) for ch in moved)
        out[i] = int(number) % 97 == 1
    return out


def _matches(text: pd.Series, kind: str) -> np.ndarray:
    """Rows holding PII of ``kind`` anywhere in the text (names: the whole value)."""
    pattern = _PATTERNS[kind]
    if kind == "person_name":  # free text is full of capitalised words: whole values only
        return text.str.fullmatch(pattern, na=False).to_numpy(dtype=bool, copy=True)
    bounded = rf"(?<![\w@.+\-])(?:{pattern})(?![\w@\-])"
    if kind not in ("payment_card", "iban"):
        return text.str.contains(bounded, regex=True, na=False).to_numpy(dtype=bool, copy=True)
    found = text.str.extract(f"({bounded})", expand=False)
    hit = found.notna().to_numpy(dtype=bool, copy=True)
    if hit.any():
        candidates = found[hit]
        if kind == "payment_card":
            ok = _luhn_ok(candidates.str.replace(r"[ \-]", "", regex=True))
        else:
            ok = _iban_ok(candidates)
        hit[np.flatnonzero(hit)[~ok]] = False
    return hit


def scan_pii(
    df: pd.DataFrame,
    *,
    allowed: Mapping[str, Sequence[str]] | None = None,
    max_share: float = 0.0,
    sample_size: int = 10_000,
    seed: int = 0,
) -> ControlResult:
    """Find columns that hold PII the spec does not allow.

    Args:
        df: the data to scan.
        allowed: column -> PII kinds declared as allowed there (``"*"`` for any).
        max_share: a column blocks when more than this share of its sampled non-null
            values is PII of one kind (0.0: any match blocks). Column names that say PII
            (``email``, ``phone``, ``ssn``, ``name``, ...) block unless allowed.
        sample_size: rows scanned (seeded sample when the frame is larger).

    Returns:
        A failed result listing, per offending column, the kind and the share of rows.
    """
    import pandas as pd

    allowed = {c: set(kinds) for c, kinds in (allowed or {}).items()}
    sample = df.sample(n=sample_size, random_state=seed) if len(df) > sample_size else df
    rows: list[dict] = []
    for col in df.columns:
        ok_kinds = allowed.get(col, set())
        if _NAME_HINTS.search(str(col)):
            rows.append(
                {
                    "column": col,
                    "kind": "column_name",
                    "share": 1.0,
                    "allowed": bool({"*", "column_name"} & ok_kinds),
                }
            )
        s = sample[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            continue
        if pd.api.types.is_float_dtype(s.dtype):
            whole = s.dropna()
            if not len(whole) or not (whole == whole.round()).all():
                continue  # fractional numbers hold none of the patterns above
            s = s.astype("Int64")  # numbers stored as floats (a column with gaps)
        text = s.dropna().astype(str).str.strip()
        if text.empty:
            continue
        for kind in _PATTERNS:
            if kind == "person_name" and pd.api.types.is_numeric_dtype(s.dtype):
                continue
            share = float(_matches(text, kind).mean())
            if share > 0:
                rows.append(
                    {
                        "column": col,
                        "kind": kind,
                        "share": share,
                        "allowed": bool({"*", kind} & ok_kinds),
                    }
                )
    offending = [
        r
        for r in rows
        if not r["allowed"] and (r["kind"] == "column_name" or r["share"] > max_share)
    ]
    worst = max((r["share"] for r in offending), default=0.0)
    summary = (
        f"no undeclared PII in {len(df.columns)} columns ({len(sample)} rows scanned)"
        if not offending
        else "undeclared PII: "
        + ", ".join(f"{r['column']} ({r['kind']}, {r['share']:.1%})" for r in offending[:6])
        + (" ..." if len(offending) > 6 else "")
    )
    return ControlResult(
        passed=not offending,
        value=worst,
        threshold=max_share,
        summary=summary,
        figures={"columns_with_pii": len({r["column"] for r in offending}), "max_share": worst},
        table=rows,
        sample_size=len(sample),
    )
