"""Infinities and absurdly large numbers: a data-quality finding named by column.

``init`` once profiled a column holding ``inf`` into the range [0, Infinity], the
expectation gate passed, and training crashed (exit 1); a data gate that overflowed said
only ``could not decide: OverflowError``. Now the suite init writes has finite ranges that
leave such values out, so the expectation gate blocks naming the column, and a control
that fails on them names the column too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import CATEGORICAL, FEATURES, mlflow_client, run_cli, state_env, using_state
from risk_assets.controls._expectations import profile_suite, run_expectation_suite
from risk_assets.controls._pii import scan_pii
from risk_assets.controls._poisoning import label_consistency, outliers_against_reference
from risk_assets.controls._result import MAX_MAGNITUDE, extreme_columns
from risk_assets.estimator import build_pipeline
from risk_assets.profiling import extreme_values

NUMERIC = ["credit_amount", "duration"]


def dirty(credit: pd.DataFrame) -> pd.DataFrame:
    """The credit data with inf and 1e308 in credit_amount and -1e308 in duration."""
    frame = credit.copy()
    for col in NUMERIC:
        frame[col] = frame[col].astype(float)
    frame.loc[3, "credit_amount"] = np.inf
    frame.loc[7, "credit_amount"] = 1e308
    frame.loc[11, "duration"] = -1e308
    return frame


def _between(suite: dict, column: str) -> dict:
    return next(
        e["kwargs"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == column
    )


def test_profiled_ranges_are_finite_and_leave_extremes_out(credit: pd.DataFrame) -> None:
    suite = profile_suite(dirty(credit), name="d", target="risk", categorical=CATEGORICAL)
    emptied = dirty(credit).replace([np.inf, 1e308, -1e308], np.nan)
    clean = profile_suite(emptied, name="d", target="risk", categorical=CATEGORICAL)
    for col in NUMERIC:
        # the range is that of the other values: the corrupt ones do not widen it
        assert _between(suite, col) == _between(clean, col)
        assert _between(suite, col)["max_value"] < 25_000
    json.dumps(suite, allow_nan=False)  # no Infinity / NaN in the file init writes
    assert extreme_values(dirty(credit), NUMERIC) == {
        "credit_amount": f"1 infinite value(s) and 1 value(s) beyond ±{MAX_MAGNITUDE:g}",
        "duration": f"1 value(s) beyond ±{MAX_MAGNITUDE:g}",
    }
    result = run_expectation_suite(dirty(credit), suite)
    assert not result.passed
    failed = {r["column"] for r in result.table if not r["success"]}
    assert failed == set(NUMERIC)


def test_only_infinities_still_give_a_finite_range() -> None:
    frame = pd.DataFrame({"y": [0, 1] * 10, "x": [np.inf] * 20})
    suite = profile_suite(frame, name="d", target="y", categorical=[])
    kwargs = _between(suite, "x")
    assert np.isfinite([kwargs["min_value"], kwargs["max_value"]]).all()
    assert not run_expectation_suite(frame, suite).passed


def _datasets(credit: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The credit data and scikit-learn's bundled real data sets (no download)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    out = {"german_credit": credit}
    for name, load in (
        ("breast_cancer", load_breast_cancer),
        ("wine", load_wine),
        ("diabetes", load_diabetes),
    ):
        bunch = load(as_frame=True)
        out[name] = bunch.frame.rename(columns={bunch.target.name: "target"})
    out["german_credit"] = credit.rename(columns={"risk": "target"})
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bound_refuses_no_clean_resample(credit: pd.DataFrame, seed: int) -> None:
    """On clean real data nothing is extreme, and a bootstrap re-sample meets the suite
    profiled on the whole data set."""
    for name, frame in _datasets(credit).items():
        assert extreme_columns([frame]) == {}, name
        categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        suite = profile_suite(frame, name=name, target="target", categorical=categorical)
        resample = frame.sample(frac=1.0, replace=True, random_state=seed)
        result = run_expectation_suite(resample.reset_index(drop=True), suite)
        assert result.passed, (name, result.summary)


def test_controls_that_fail_on_extremes_name_the_column(credit: pd.DataFrame) -> None:
    """Against a clean reference, the label-noise and outlier gates cannot score the
    corrupt rows: each says so naming the columns and counts, never the values."""
    current = dirty(credit)

    def make_model():
        return build_pipeline(
            class_path="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 1000},
            numeric=NUMERIC,
            categorical=CATEGORICAL,
        )

    results = [
        outliers_against_reference(
            credit, current, numeric=NUMERIC, categorical=CATEGORICAL, max_increase=0.02
        ),
        label_consistency(
            credit,
            current,
            features=FEATURES,
            target="risk",
            make_model=make_model,
            confidence=0.9,
            max_increase=0.03,
            max_conflicting_duplicates=0.05,
        ),
    ]
    for result in results:
        assert not result.passed
        assert result.summary.startswith("could not decide: ValueError on numeric column(s)")
        assert "'credit_amount' (1 infinite, 1 beyond ±1e+15)" in result.summary
        assert "'duration' (1 beyond ±1e+15)" in result.summary
        assert "1e+308" not in result.summary and "inf)" not in result.summary
    # the PII scan decides on such columns (numbers beyond 19 digits hold no identifiers)
    assert scan_pii(current).passed


def test_init_then_run_blocks_on_the_expectation_gate(tmp_path: Path, credit: pd.DataFrame) -> None:
    """The real CLI: init on the corrupt file says what it found, then run is blocked by
    the expectation gate naming both columns, exit 3, nothing registered, no traceback."""
    data = tmp_path / "credit.csv"
    dirty(credit).to_csv(data, index=False)
    out, state = tmp_path / "out", tmp_path / "state"
    env = state_env(state)
    init = run_cli(
        "init",
        str(data),
        "--target",
        "risk",
        "--protected",
        "sex",
        "age",
        "--out",
        str(out),
        env=env,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert "column 'credit_amount' holds 1 infinite value(s) and 1 value(s) beyond" in (init.stdout)
    assert "column 'duration' holds 1 value(s) beyond" in init.stdout
    suite_text = (out / "expectations" / "credit.json").read_text()
    assert "Infinity" not in suite_text and "NaN" not in suite_text

    run = run_cli("run", str(out / "credit.yaml"), "--json", env=env)
    assert run.returncode == 3, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(run.stdout.strip().splitlines()[-1])
    assert payload["status"] == "blocked"
    assert "meets_expectations" in payload["blocked_by"]
    gate = next(g for g in payload["gates"] if g["name"] == "meets_expectations")
    assert gate["passed"] is False
    assert "expect_column_values_to_be_between(credit_amount)" in gate["summary"]
    assert "expect_column_values_to_be_between(duration)" in gate["summary"]
    assert "Traceback" not in run.stderr
    assert "OverflowError" not in run.stdout + run.stderr
    with using_state(state):
        assert mlflow_client().search_model_versions() == []
