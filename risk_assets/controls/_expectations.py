"""The expectation-suite control (Great Expectations 1.x) and the suite profiler.

Results keep counts and shares only: GX's sample unexpected values, unexpected rows,
index lists and observed values are dropped before anything leaves this module, so a
validation report never carries raw data values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from risk_assets.controls._result import MAX_MAGNITUDE, ControlResult, extreme_counts
from risk_assets.errors import SuiteError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_MAGNITUDE",
    "extreme_counts",
    "load_suite",
    "is_row_wise",
    "profile_suite",
    "run_expectation_suite",
]


# Only these keys of an expectation result are kept: counts and shares.
_SAFE_RESULT_KEYS = (
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
)
# Keys of an expectation's kwargs shown in the evidence table: what was expected, not data.
_KWARG_KEYS = ("column", "min_value", "max_value", "mostly")


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read a GX 1.x suite JSON file; an unreadable or empty suite is an error.

    Raises:
        SuiteError: naming the file and what is wrong.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"expectation suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the expectation suite: {exc}") from exc
    except RecursionError:
        raise SuiteError(
            f"{path}: cannot read the expectation suite: its JSON is nested too deeply"
        ) from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: expected a JSON object with 'name' and 'expectations'")
    expectations = raw.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteError(
            f"{path}: 'expectations' is missing or empty; an empty suite would pass any data"
        )
    for i, exp in enumerate(expectations):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
            raise SuiteError(f"{path}: expectations[{i}]: expected an object with a 'type'")
        if not isinstance(exp.get("kwargs", {}), dict):
            raise SuiteError(f"{path}: expectations[{i}].kwargs: expected an object")
    raw.setdefault("name", path.stem)
    return raw


def _build_suite(suite: dict[str, Any], source: str) -> Any:
    import great_expectations as gx

    try:
        return gx.ExpectationSuite(
            name=str(suite["name"]),
            expectations=[
                {"type": e["type"], "kwargs": e.get("kwargs", {}), "meta": e.get("meta", {})}
                for e in suite["expectations"]
            ],
        )
    except Exception as exc:  # GX raises many types for unknown expectation types / kwargs
        raise SuiteError(
            f"{source}: invalid expectation suite: {type(exc).__name__}: {exc}"
        ) from exc


def is_row_wise(expectation_type: str) -> bool:
    """Whether an expectation judges each value on its own (a value in a set, in a range,
    not null, matching a pattern), so that a seeded sample of rows estimates its verdict;
    table-level ones (row count, columns), aggregates (mean, quantiles, distinct values)
    and uniqueness need every row."""
    return expectation_type.startswith("expect_column_values_to_") and (
        "unique" not in expectation_type
    )


def run_expectation_suite(
    df: pd.DataFrame,
    suite: dict[str, Any],
    *,
    source: str = "suite",
    sample_size: int | None = None,
    seed: int = 0,
) -> ControlResult:
    """Validate a DataFrame against a suite in an ephemeral GX context.

    The context is ephemeral on purpose: GX Cloud credentials in the environment must
    never redirect where results go. Zero expectations is a failure, not a pass.

    With ``sample_size`` (a policy's choice) and more rows than that, the row-wise
    expectations (:func:`is_row_wise`) are judged on a seeded sample of ``sample_size``
    rows and every other one on all rows; the evidence says which rows each saw, and the
    smallest share of faulty rows the sample finds with 95 % probability (3 / n).
    """
    if not suite.get("expectations"):
        return ControlResult.undecided("the suite has no expectations")
    sampled = sample_size is not None and len(df) > sample_size
    if not sampled:
        success, rows = _validate(df, suite, source)
        for row in rows:
            row["rows"] = len(df)
    else:
        part = [e for e in suite["expectations"] if is_row_wise(e["type"])]
        rest = [e for e in suite["expectations"] if not is_row_wise(e["type"])]
        sample = df.sample(n=sample_size, random_state=seed)
        success, rows = True, []
        for frame, exps in ((sample, part), (df, rest)):
            if exps:
                ok, found = _validate(frame, dict(suite, expectations=exps), source)
                success = success and ok
                rows += [dict(r, rows=len(frame)) for r in found]
    return _suite_result(success, rows, len(df), sample_size if sampled else None)


def _validate(df: pd.DataFrame, suite: dict[str, Any], source: str) -> tuple[bool, list[dict]]:
    """GX's verdict on ``df`` and one evidence row per expectation (counts, no values)."""
    import great_expectations as gx

    gx_suite = _build_suite(suite, source)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas(name="risk_assets")
    asset = datasource.add_dataframe_asset(name="frame")
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        gx_suite,
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": 0,
            "include_unexpected_rows": False,
            "return_unexpected_index_query": False,
            "exclude_unexpected_values": True,
        },
    )
    return bool(result.success), [_evidence_row(r) for r in result.results]


def _evidence_row(r: Any) -> dict[str, Any]:
    cfg = r.expectation_config
    kwargs = dict(cfg.kwargs or {})
    res = r.result or {}
    row: dict[str, Any] = {"expectation": cfg.type}
    for key in _KWARG_KEYS:
        if key in kwargs and kwargs[key] is not None and _is_scalar(kwargs[key]):
            row[key] = kwargs[key]
    if "value_set" in kwargs:
        row["value_set_size"] = len(kwargs["value_set"] or [])
    row["success"] = bool(r.success)
    for key in _SAFE_RESULT_KEYS:
        if key in res and res[key] is not None:
            row[key] = res[key]
    # GX 1.x keys exception_info by metric id; the messages may quote data values,
    # so only the fact that a metric raised is kept.
    infos = r.exception_info or {}
    infos = [infos] if "raised_exception" in infos else list(infos.values())
    if any(isinstance(i, dict) and i.get("raised_exception") for i in infos):
        row["success"] = False
        row["error"] = "a metric of this expectation raised an error"
    return row


def _suite_result(
    success: bool, rows: list[dict[str, Any]], n_rows: int, sample_size: int | None
) -> ControlResult:
    total = len(rows)
    passed_n = sum(1 for r in rows if r["success"])
    if total == 0:
        return ControlResult.undecided("Great Expectations evaluated zero expectations")
    failed = [r for r in rows if not r["success"]]
    summary = (
        f"{passed_n}/{total} expectations met"
        if not failed
        else f"{len(failed)}/{total} expectations failed: "
        + ", ".join(f"{r['expectation']}({r.get('column', '')})" for r in failed[:5])
        + (" ..." if len(failed) > 5 else "")
    )
    figures: dict[str, float] = {
        "expectations_total": total,
        "expectations_failed": len(failed),
        "success_share": passed_n / total,
    }
    if sample_size is not None:
        summary += (
            f" (values judged on a seeded sample of {sample_size:,} of {n_rows:,} rows: a "
            f"fault in {3 / sample_size:.3%} of rows or more is found with 95 % probability;"
            " table-level expectations on every row)"
        )
        figures["detectable_share_95"] = 3 / sample_size
    return ControlResult(
        passed=success and not failed,
        value=passed_n / total,
        threshold=1.0,
        summary=summary,
        figures=figures,
        table=rows,
        sample_size=sample_size if sample_size is not None else n_rows,
    )


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool))


def _plausible(values: pd.Series) -> pd.Series:
    """The finite values within :data:`MAX_MAGNITUDE` (all finite ones when none is)."""
    import numpy as np

    x = values.to_numpy(dtype=float)
    finite = np.isfinite(x)
    within = finite & (np.abs(np.where(finite, x, 0.0)) <= MAX_MAGNITUDE)
    return values[within if within.any() else finite]


def profile_suite(
    df: pd.DataFrame, *, name: str, target: str, categorical: list[str], max_categories: int = 50
) -> dict[str, Any]:
    """Profile a frame into a GX 1.x suite: columns, nullability, numeric ranges, categories.

    Numeric ranges are the observed range widened by 10 % of its span on each side (never
    below zero for a column with no negative values), so ordinary new data fits and
    impossible values do not. The range is always finite and ignores infinities and values
    beyond :data:`MAX_MAGNITUDE`, so a column holding them fails its range expectation,
    by name. Categorical columns with up to ``max_categories`` values get a value set.
    """
    import pandas as pd

    exps: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": [str(c) for c in df.columns], "exact_match": True},
        },
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": int(min(len(df), 100)), "max_value": None},
        },
    ]
    for col in df.columns:
        s = df[col]
        null_share = float(s.isna().mean())
        if null_share == 0.0:
            exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col}})
        elif null_share < 1.0:
            mostly = max(0.0, math.floor((1.0 - null_share - 0.05) * 100) / 100)
            if mostly > 0:
                exps.append(
                    {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": col, "mostly": mostly},
                    }
                )
        values = s.dropna()
        is_cat = col == target or col in categorical or not pd.api.types.is_numeric_dtype(s.dtype)
        if is_cat:
            uniques = values.unique()
            if 0 < len(uniques) <= max_categories:
                value_set = sorted((_plain(v) for v in uniques), key=lambda v: (str(type(v)), v))
                exps.append(
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": col, "value_set": value_set},
                    }
                )
        elif (
            pd.api.types.is_numeric_dtype(s.dtype)
            and not pd.api.types.is_bool_dtype(s.dtype)
            and len(values)
        ):
            plausible = _plausible(values)
            if not len(plausible):  # only infinities: any finite range refuses them all
                lo, hi = -MAX_MAGNITUDE, MAX_MAGNITUDE
            else:
                lo, hi = float(plausible.min()), float(plausible.max())
            pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1.0)
            low = lo - pad
            if lo >= 0 and low < 0:
                low = 0.0
            integer = pd.api.types.is_integer_dtype(s.dtype)
            low_v = math.floor(low) if integer else round(low, 6)
            high_v = math.ceil(hi + pad) if integer else round(hi + pad, 6)
            exps.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": col, "min_value": low_v, "max_value": high_v},
                }
            )
    for e in exps:
        e["meta"] = {}
    return {"name": name, "expectations": exps, "meta": {"generated_by": "risk-assets init"}}


def _plain(v: Any) -> Any:
    """numpy scalars to plain Python for JSON."""
    return v.item() if hasattr(v, "item") else v
