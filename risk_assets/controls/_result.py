"""The value every control returns."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "MAX_MAGNITUDE",
    "ControlResult",
    "as_groups",
    "group_counts",
    "group_labels",
    "extreme_columns",
    "extreme_counts",
    "lost_columns",
    "markdown_table",
    "names_extreme_columns",
    "sampling_power",
    "tabular_encoder",
]

#: Numbers beyond this magnitude are taken for corrupt values (an overflow, a placeholder
#: such as 1e308), not measurements: past 2**53 (about 9e15) float64 no longer even holds
#: whole numbers exactly. The suite ``init`` profiles keeps them out of its ranges.
MAX_MAGNITUDE = 1e15

_Control = TypeVar("_Control", bound=Callable[..., Any])


@dataclass(frozen=True)
class ControlResult:
    """The verdict of one control and the figures behind it.

    Attributes:
        passed: the verdict; a control that cannot decide returns ``False``.
        value: the headline figure (``None`` when there is nothing to measure).
        threshold: the bound the headline figure was held to.
        summary: one sentence a person can read in the UI or the CLI.
        figures: named numeric figures, logged as MLflow metrics.
        table: rows of evidence (counts and shares only, never raw data values).
        sample_size: rows the control looked at, when it sampled.
    """

    passed: bool
    value: float | None
    threshold: float | None
    summary: str
    figures: Mapping[str, float] = field(default_factory=dict)
    table: Sequence[Mapping[str, Any]] = ()
    sample_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", bool(self.passed))
        for name in ("value", "threshold"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, float(v))
        object.__setattr__(self, "figures", {k: float(v) for k, v in self.figures.items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "value": _finite_or_none(self.value),
            "threshold": _finite_or_none(self.threshold),
            "summary": self.summary,
            "figures": {k: _finite_or_none(v) for k, v in self.figures.items()},
            "sample_size": self.sample_size,
        }

    @classmethod
    def undecided(cls, reason: str) -> ControlResult:
        """The fail-closed verdict of a control that could not decide."""
        return cls(passed=False, value=None, threshold=None, summary=f"could not decide: {reason}")


def sampling_power(n: int) -> dict[str, float]:
    """What ``n`` rows can show, whatever the control: the 95 % margin of error of a share
    measured on them (worst case, a share of one half) and the smallest share of rows an
    event must have to be among them with 95 % probability (1 - 0.05 ** (1 / n))."""
    if n <= 0:
        return {}
    return {"margin_95": 1.96 * math.sqrt(0.25 / n), "detectable_share_95": 1 - 0.05 ** (1 / n)}


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Render evidence rows as a markdown table (floats to 4 decimals)."""
    if not rows:
        return "_no rows_"
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if math.isfinite(v) else str(v)
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def as_groups(values: Any) -> Any:
    """Group labels as text: missing values become "missing", and whole numbers print
    without a decimal point, so 2 and 2.0 (an integer column with a gap) are one group."""
    import pandas as pd

    s = pd.Series(values)  # a list, an array, an Index or a Series: as before
    return pd.Series(group_labels(s), index=s.index, name=s.name)


def group_labels(values: Any) -> Any:
    """:func:`as_groups` as an object array of ``str``, without the Series: each value's
    ``str()``, computed once per distinct value where the type is one (numbers, booleans),
    since a column of a million rows holds a few dozen groups."""
    import numpy as np
    import pandas as pd

    s = pd.Series(values)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        whole = s.dropna()
        # whole numbers an integer holds exactly (beyond 2**53 a float is no count)
        if len(whole) and (whole == whole.round()).all() and (whole.abs() < 2**53).all():
            s = s.astype("Int64")
    missing = s.isna().to_numpy(dtype=bool)
    dtype = s.dtype
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        text = s.to_numpy(dtype=object, na_value="missing")
    elif pd.api.types.is_object_dtype(dtype):
        # mixed Python values: str() of each (factorising would merge True, 1 and 1.0)
        text = np.frompyfunc(str, 1, 1)(s.to_numpy(dtype=object))
    elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        text = np.array([str(u) for u in uniques] + ["missing"], dtype=object)[codes]
    elif isinstance(dtype, pd.CategoricalDtype):  # str() of each category, once
        names = [str(c) for c in s.cat.categories] + ["missing"]
        text = np.array(names, dtype=object)[s.cat.codes.to_numpy()]
    else:  # datetimes, ...: str() of each value as it is
        text = s.astype(object).map(str).to_numpy(dtype=object)
    text = np.array(text, dtype=object)
    text[missing] = "missing"
    return text


def group_counts(values: Any) -> Any:
    """Rows per :func:`as_groups` label (a Series, label -> count), counting each distinct
    value once and labelling the distinct values only, where a column's type makes equal
    values equal labels (Python objects of mixed types are labelled row by row)."""
    import numpy as np
    import pandas as pd

    s = pd.Series(values)
    if pd.api.types.is_object_dtype(s.dtype):
        return pd.Series(group_labels(s)).value_counts(sort=False)
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    counts = np.bincount(codes, minlength=len(uniques))
    labels = group_labels(pd.Series(uniques, dtype=s.dtype))
    return pd.Series(counts, index=labels).groupby(level=0, sort=False).sum()


def lost_columns(before: Any, after: Any, columns: Sequence[str]) -> list[str]:
    """The ``columns`` that hold values in the frame ``before`` (the reference, the training
    rows) but none in ``after``: a lost feature, which a control cannot judge."""
    return [c for c in columns if before[c].notna().any() and after[c].isna().all()]


def tabular_encoder(numeric: Sequence[str], categorical: Sequence[str]) -> Any:
    """Numbers imputed and scaled, categories imputed and one-hot encoded (dense)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, RobustScaler

    from risk_assets.estimator import PlainColumns

    parts = []
    if numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(
                    PlainColumns("numeric"), SimpleImputer(strategy="median"), RobustScaler()
                ),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    PlainColumns("categorical"),
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        )
    return ColumnTransformer(parts, sparse_threshold=0.0)


def extreme_counts(values: Any) -> tuple[int, int]:
    """How many of a numeric column's values are infinite, and how many finite ones lie
    beyond :data:`MAX_MAGNITUDE`."""
    import numpy as np

    x = values.dropna().to_numpy(dtype=float)
    finite = np.isfinite(x)
    return int((~finite).sum()), int((np.abs(x[finite]) > MAX_MAGNITUDE).sum())


def extreme_columns(frames: Sequence[Any]) -> dict[str, str]:
    """The numeric columns of ``frames`` holding infinities or values beyond
    :data:`MAX_MAGNITUDE`, each with the counts (never the values)."""
    import pandas as pd

    found: dict[str, list[int]] = {}
    for frame in frames:
        for col in frame.columns:
            s = frame[col]
            if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                continue
            infinite, huge = extreme_counts(s)
            if infinite or huge:
                counts = found.setdefault(str(col), [0, 0])
                counts[0] += infinite
                counts[1] += huge
    return {
        col: ", ".join([f"{i} infinite"] * bool(i) + [f"{h} beyond ±{MAX_MAGNITUDE:g}"] * bool(h))
        for col, (i, h) in found.items()
    }


def names_extreme_columns(control: _Control) -> _Control:
    """Wrap a control so that an arithmetic failure on data holding infinite or absurdly
    large numbers is a "could not decide" naming those columns (counts only), not an
    anonymous ``OverflowError`` or ``ValueError``. Any other failure propagates as before."""

    @functools.wraps(control)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return control(*args, **kwargs)
        except (ArithmeticError, ValueError) as exc:
            frames = [a for a in (*args, *kwargs.values()) if hasattr(a, "select_dtypes")]
            found = extreme_columns(frames)
            if not found:
                raise
            columns = "; ".join(f"{c!r} ({what})" for c, what in found.items())
            return ControlResult.undecided(
                f"{type(exc).__name__} on numeric column(s) holding infinite or out-of-range "
                f"values: {columns}"
            )

    return run  # type: ignore[return-value]
