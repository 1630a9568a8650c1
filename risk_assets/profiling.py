"""What ``risk-assets init`` learns from a data set it has never seen: pure functions.

Budgets and spreads come from robust statistics (quantiles), so that one placeholder such
as 999999 cannot inflate them; values that look like such placeholders are pointed out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Sentinel",
    "describe_labels",
    "extreme_values",
    "identifier_columns",
    "perturbation_budgets",
    "pii_columns",
    "robust_spread",
    "sentinel_values",
]

#: Gaussian consistency factor of the interquartile range (IQR / 1.349 estimates sigma).
_IQR_TO_SD = 1.349


def robust_spread(values: pd.Series) -> float:
    """A standard-deviation-like spread that outliers and placeholders cannot inflate.

    The IQR over 1.349 (sigma for normal data); for a lumpy or mostly-constant column whose
    IQR is 0, the 5–95 % range over 3.29 (also sigma for normal data); else 0.
    """
    x = values.dropna().to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return 0.0
    q05, q25, q75, q95 = np.quantile(x, [0.05, 0.25, 0.75, 0.95])
    if q75 > q25:
        return float((q75 - q25) / _IQR_TO_SD)
    if q95 > q05:
        return float((q95 - q05) / 3.29)
    return 0.0


def perturbation_budgets(
    df: pd.DataFrame, numeric: Sequence[str], *, share: float = 0.05
) -> dict[str, float]:
    """Per numeric feature, ``share`` of its robust spread, in the feature's units (3
    significant digits). Constant columns get none."""
    out: dict[str, float] = {}
    for col in numeric:
        s = df[col]
        spread = robust_spread(s)
        if spread <= 0:
            continue
        out[col] = float(f"{share * spread:.3g}")
    return out


@dataclass(frozen=True)
class Sentinel:
    """Values of one column that look like placeholders (999999, -1 in a positive column)."""

    column: str
    value: float
    count: int
    typical_high: float  # the 99th percentile of the other values

    def describe(self) -> str:
        return (
            f"column {self.column!r}: {self.count} value(s) of {self.value:.12g} far beyond the "
            f"rest (99th percentile {self.typical_high:.6g}): a placeholder for a missing value?"
        )


def _nines(v: float) -> bool:
    digits = str(int(abs(math.floor(v))))
    return len(digits) >= 3 and set(digits) == {"9"}


def sentinel_values(df: pd.DataFrame, numeric: Sequence[str]) -> list[Sentinel]:
    """Placeholder-like values: all-nines numbers (999, 99999.5, -9999) or negative ones in
    an otherwise non-negative column, lying far outside the bulk of the column (more than
    ten interquartile ranges beyond the quartiles; the 1–99 % range for a lumpy column)."""
    found: list[Sentinel] = []
    for col in numeric:
        x = df[col].dropna().to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if len(x) < 20:
            continue
        q01, q25, q75, q99 = np.quantile(x, [0.01, 0.25, 0.75, 0.99])
        width = (q75 - q25) or (q99 - q01) or 1e-12
        is_far = (x > q75 + 10 * width) | (x < q25 - 10 * width)
        if not is_far.any():
            continue
        bulk = x[~is_far]
        high = float(np.quantile(bulk, 0.99))
        for value in np.unique(x[is_far])[:100]:
            if _nines(value) or (value < 0 and bulk.min() >= 0):
                found.append(Sentinel(col, float(value), int((x == value).sum()), high))
    return found


#: Last words of a column name that say "identifier": ``id``, ``customer_id``,
#: ``ApplicantRef``, ``uuid``, ``loan number``.
_ID_WORDS = frozenset({"id", "ids", "ref", "reference", "uuid", "guid", "key", "number", "no"})


def _names_an_identifier(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)  # camelCase to words
    words = re.split(r"[^A-Za-z0-9]+", spaced.strip())
    return bool(words) and words[-1].lower() in _ID_WORDS


def identifier_columns(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """Columns that identify rows rather than describe them, each with the reason: text
    (or boolean) columns with too many distinct values to be categories
    (:func:`risk_assets.estimator.identifier_reason`), and whole-number columns whose values
    are all distinct and either run consecutively (a row number) or sit under an
    identifier's name (``..._id``, ``...Ref``)."""
    import pandas as pd

    from risk_assets.estimator import categorical_columns, identifier_reason

    text = set(categorical_columns(df, list(columns), None))
    found: dict[str, str] = {}
    for col in columns:
        s = df[col]
        if col in text:
            reason = identifier_reason(s)
            if reason is not None:
                found[col] = reason
            continue
        values = s.dropna()
        if len(values) < 20 or not pd.api.types.is_numeric_dtype(values.dtype):
            continue
        x = values.to_numpy(dtype=float)
        if not np.isfinite(x).all() or not (x == np.round(x)).all():
            continue
        if values.nunique() != len(values):
            continue
        ordered = np.sort(x)
        if (np.diff(ordered) == 1).all():
            found[col] = f"{len(x):,} distinct consecutive whole numbers: a row number"
        elif _names_an_identifier(str(col)):
            found[col] = f"{len(x):,} distinct whole numbers under an identifier's name"
    return found


def extreme_values(df: pd.DataFrame, numeric: Sequence[str]) -> dict[str, str]:
    """Numeric columns holding infinities or values beyond
    :data:`risk_assets.controls._result.MAX_MAGNITUDE`, with what they hold (counts only)."""
    from risk_assets.controls._result import MAX_MAGNITUDE, extreme_counts

    found: dict[str, str] = {}
    for col in numeric:
        infinite, huge = extreme_counts(df[col])
        parts = [f"{infinite} infinite value(s)"] if infinite else []
        parts += [f"{huge} value(s) beyond ±{MAX_MAGNITUDE:g}"] if huge else []
        if parts:
            found[col] = " and ".join(parts)
    return found


def pii_columns(df: pd.DataFrame, *, sample_size: int = 10_000) -> dict[str, str]:
    """Columns the PII scan flags (by values or by name), with the kinds found."""
    from risk_assets.controls._pii import scan_pii

    result = scan_pii(df, sample_size=sample_size)
    kinds: dict[str, list[str]] = {}
    for row in result.table:
        if row["kind"] == "column_name" or row["share"] > 0:
            share = "" if row["kind"] == "column_name" else f" {row['share']:.0%}"
            kinds.setdefault(str(row["column"]), []).append(f"{row['kind']}{share}")
    return {c: ", ".join(k) for c, k in kinds.items()}


def describe_labels(values: Any) -> str:
    """The classes of a target and their shares, for init's output."""
    import pandas as pd

    shares = pd.Series(values).value_counts(normalize=True)
    return ", ".join(f"{k!r} {v:.0%}" for k, v in shares.items())
