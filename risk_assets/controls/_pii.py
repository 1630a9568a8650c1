"""PII scan: e-mail addresses, phone numbers, US SSNs, payment cards, IBANs, IP addresses
and person names, in values and in column names.

Vectorised with pandas string methods on a seeded sample of rows (the sample size is in
the result); names by a loop over the rows that stops at a row's first name. Cards are
Luhn-checked and IBANs mod-97-checked, so ordinary numbers do not count as PII. Person
names need more than capital letters: a known first name (US Census 1990 list shipped in
``data/first_names.txt``) followed by a capitalised word, and categorical columns (``Not
Verified``, ``New York``) do not count unless most of their rows name people; see
:func:`_person_name_share`. Figures are kinds and shares per column; matched values never
leave here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult, names_extreme_columns

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
    # the shape of a name ("Jane Doe", "Maria de Souza"); capitals alone are no evidence, so
    # names are detected by _NAME_PAIR with the first-name lexicon (_person_name_share)
    "person_name": r"[A-Z][a-z]+(?:[ '\-](?:[a-z]{1,3} )?[A-Z][a-z]+){1,2}",
}
PII_KINDS = (*_PATTERNS, "column_name")

_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
# A capitalised word followed by another ("Maria Schmidt", "Maria de Souza", "Anne-Marie
# Smith", "Mary O'Brien") or the same in capitals ("MARIA SCHMIDT"); the lookahead lets
# every word of a run be a candidate first name ("Called Maria Schmidt"). Groups: first
# word and next word, title case (1, 2) or capitals (3, 4).
_NAME_PAIR = (
    rf"(?<![\w'’])([{_UPPER}][{_LOWER}]+)"
    rf"(?=(?: +|-)(?:[{_LOWER}]{{1,3}} )?([{_UPPER}](?:['’][{_UPPER}])?[{_LOWER}]+))"
    rf"|(?<![\w'’])([{_UPPER}]{{2,}})"
    rf"(?=(?: +|-)(?:[{_UPPER}]{{1,3}} )?([{_UPPER}](?:['’][{_UPPER}])?[{_UPPER}]+))"
)
_NAME_PAIR_RE = re.compile(_NAME_PAIR)
# Census first names that are, in running text and in lending data, far more often a word,
# a month, a place or a brand than a person: they are no evidence of a name ("Will Pay",
# "May Payment", "In New York", "Major Purchase", "Sallie Mae", "Harley Davidson").
_NOT_FIRST_NAMES = frozenset(
    """an in my so see un ok else many miss ha ma pa na le mi ja ka ta jc wm
    will may bill mark grant art hope joy faith love mercy glory liberty charity chance page
    lane star moon golden forest diamond crystal pearl jewel velvet honey candy cherry berry
    echo genesis trinity numbers manual marine angle brain tiny temple sparkle sunshine
    precious fairy lean carry marry rich sterling young long king queen prince princess royal
    major noble lady junior guy dot bee kit loan season spring summer autumn winter sunday
    easter january april june august september america argentina china india asia kenya
    florida maryland nevada dakota venice paris german irish trinidad hong santa dallas
    houston denver cleveland raleigh columbus chase sallie fannie freddie mae mac harley mercedes
    porsche lincoln dell mack tiffany""".split()
)
# Words that end organisations and places, not people ("Chase Bank", "Marshall Islands").
_NOT_SURNAMES = frozenset(
    """bank banks card cards credit loan loans mortgage insurance street avenue road island
    islands city county state university college school hospital inc co company corporation
    group motors""".split()
)
# A column is a category when its distinct values are at most this share of its sampled
# non-null rows (each value on two rows or more on average).
_CATEGORY_MAX_DISTINCT_SHARE = 0.5
# A category still counts as names when the rows naming people are at least this share;
# below it, names in its values of at most _CATEGORY_MAX_WORDS words do not count.
_CATEGORY_MIN_NAME_SHARE = 0.5
_CATEGORY_MAX_WORDS = 4

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


def _mod97_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check (move four characters to the end, letters to numbers)."""
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban_ok(values: pd.Series) -> np.ndarray:
    """Whether each candidate is an IBAN, or starts with one that ends at a space.

    The pattern runs on into capitals and digits after the IBAN ("GB82 WEST 1234 5698 7654
    32 FOR RENT"), so the candidate cut back at each space, down to the 15 characters of
    the shortest IBAN, is checked too.
    """
    out = np.zeros(len(values), dtype=bool)
    for i, raw in enumerate(values):
        words = raw.split(" ")
        for end in range(len(words), 0, -1):
            iban = "".join(words[:end])
            if len(iban) < 15:
                break
            if _mod97_ok(iban):
                out[i] = True
                break
    return out


def _checked(kind: str, candidates: pd.Series) -> np.ndarray:
    """Whether each candidate of ``kind`` passes its check digit (payment cards: Luhn;
    IBANs: mod 97)."""
    if kind == "payment_card":
        return _luhn_ok(candidates.str.replace(r"[ \-]", "", regex=True))
    return _iban_ok(candidates)


@lru_cache(maxsize=1)
def _first_names() -> frozenset[str]:
    """The shipped first-name lexicon (lowercase, ASCII), less the words in _NOT_FIRST_NAMES."""
    text = resources.files(__package__).joinpath("data/first_names.txt").read_text("utf-8")
    names = {line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"}
    return frozenset(names - _NOT_FIRST_NAMES)


def _fold(word: str) -> str:
    """Lowercase ASCII form of a word for the lexicon ("José" -> "jose")."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()


def _name_rows(text: pd.Series) -> np.ndarray:
    """Rows where a known first name is followed by a capitalised word, anywhere in the text.

    A loop over the rows that stops at a row's first name: on capitalised free text it is
    several times faster than ``str.extractall``, which materialises every word pair.
    """
    lexicon = _first_names()
    verdicts: dict[tuple[str, str], bool] = {}

    def names_someone(value: str) -> bool:
        for m in _NAME_PAIR_RE.finditer(value):
            pair = (m[1] or m[3], m[2] or m[4])
            ok = verdicts.get(pair)
            if ok is None:
                ok = verdicts[pair] = (
                    _fold(pair[0]) in lexicon and _fold(pair[1]) not in _NOT_SURNAMES
                )
            if ok:
                return True
        return False

    return np.fromiter(
        (isinstance(v, str) and names_someone(v) for v in text), dtype=bool, count=len(text)
    )


def _person_name_share(text: pd.Series) -> float:
    """Share of the sampled rows of a text column that name a person.

    The rule: a row names a person when a first name of the lexicon is followed by a
    capitalised word (whole values and free text alike; capitals alone are no evidence).
    A column is a category when its distinct values number at most half of its sampled
    non-null rows, i.e. values repeat on two rows or more on average: 3 verification
    statuses or 50 states in 1,000 rows, a few hundred countries in a 10,000-row sample of
    a million rows, whereas people's names are nearly all distinct in any sample. A
    category counts as names only when rows naming people are at least half its rows (a
    column of a few staff names is still personal data); otherwise its short values (four
    words or fewer) do not count, so the odd place named like a person ("Marshall
    Islands", "Ivory Coast") does not block it, while a name inside a longer text does.
    """
    text = text.reset_index(drop=True)
    hits = _per_distinct(text, _name_rows)
    if not hits.any():
        return 0.0
    is_category = text.nunique() <= _CATEGORY_MAX_DISTINCT_SHARE * len(text)
    if is_category and hits.mean() < _CATEGORY_MIN_NAME_SHARE:
        # the exemption is for short codes; a name inside a sentence still counts
        short = text.str.count(r"\S+").to_numpy(dtype=np.int64) <= _CATEGORY_MAX_WORDS
        hits &= ~short
    return float(hits.mean())


def _per_distinct(text: pd.Series, rows: Any) -> np.ndarray:
    """``rows(text)`` (a verdict per row that depends on the row's value alone) computed
    once per distinct value when values repeat, as in a column of categories."""
    import pandas as pd

    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    if len(uniques) > len(text) // 2:
        return rows(text)
    per_value = np.append(rows(pd.Series(uniques, dtype=text.dtype)), False)
    return per_value[codes]  # code -1 (a missing value): no match


def _matches(text: pd.Series, kind: str) -> np.ndarray:
    """Rows holding PII of ``kind`` anywhere in the text (names: see _person_name_share)."""
    return _per_distinct(text, lambda values: _value_matches(values, kind))


def _value_matches(text: pd.Series, kind: str) -> np.ndarray:
    pattern = _PATTERNS[kind]
    if kind == "person_name":
        return _name_rows(text)
    bounded = rf"(?<![\w@.+\-])(?:{pattern})(?![\w@\-])"
    if kind not in ("payment_card", "iban"):
        return text.str.contains(bounded, regex=True, na=False).to_numpy(dtype=bool, copy=True)
    found = text.str.extract(f"({bounded})", expand=False)
    hit = found.notna().to_numpy(dtype=bool, copy=True)
    if hit.any():
        rows = np.flatnonzero(hit)
        failed = rows[~_checked(kind, found.iloc[rows])]
        hit[failed] = False
        if len(failed):
            # a row's first candidate failed its check, a later one may pass ("order
            # 1234567890123, card 4111 1111 1111 1111"): every candidate of those rows
            later = text.iloc[failed].reset_index(drop=True).str.extractall(f"({bounded})")[0]
            passed = later.index.get_level_values(0)[_checked(kind, later)]
            hit[failed[np.unique(passed)]] = True
    return hit


@names_extreme_columns
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

    if len(df) == 0:
        return ControlResult.undecided("no rows to scan: a scan of no rows proves nothing")
    allowed = {c: set(kinds) for c, kinds in (allowed or {}).items()}
    sample = df.sample(n=sample_size, random_state=seed) if len(df) > sample_size else df
    rows: list[dict] = []
    for position, col in enumerate(df.columns):
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
        s = sample.iloc[:, position]  # by position: duplicate column names stay apart
        if pd.api.types.is_bool_dtype(s.dtype):
            continue
        if pd.api.types.is_float_dtype(s.dtype):
            numbers = s.dropna()
            numbers = numbers[np.isfinite(numbers.to_numpy(dtype=float))]
            if not len(numbers) or not (numbers == numbers.round()).all():
                continue  # fractional numbers hold none of the patterns above
            if not (numbers.abs() < 2**63).all():
                continue  # beyond 19 digits: no card, phone or id number
            s = numbers.astype("int64")  # numbers stored as floats (a column with gaps)
        text = s.dropna().astype(str).str.strip()
        if text.empty:
            continue
        for kind in _PATTERNS:
            if kind == "person_name":
                if pd.api.types.is_numeric_dtype(s.dtype):
                    continue
                share = _person_name_share(text)
            else:
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
