"""The drift gate: a 1-sigma shift in two features against the champion's training data
blocks; data from the same population passes; a first model has no reference."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import (
    make_pipeline,
    policy_params,
    run_against_champion,
)
from risk_assets.controls._drift import feature_drift, holm, psi
from risk_assets.data import split_frame

NUMERIC = ["credit_amount", "duration"]
CATEGORICAL = ["job", "housing", "saving_accounts", "checking_account", "purpose"]


def _params() -> dict:
    """The shipped register's drift parameters (its backend: scipy)."""
    return policy_params("DRIFT-001")


def _shifted(df, columns):
    out = df.copy()
    for col in columns:
        out[col] = out[col] + out[col].std()
    return out


def test_same_population_passes_and_shift_is_caught(credit):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    same = feature_drift(
        split.train, split.test, numeric=NUMERIC, categorical=CATEGORICAL, **_params()
    )
    assert same.passed and same.value == 0.0
    shifted = feature_drift(
        split.train,
        _shifted(credit, NUMERIC),
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        **_params(),
    )
    assert not shifted.passed and shifted.value == 2.0
    drifted = {r["feature"] for r in shifted.table if r["drift"]}
    assert drifted == set(NUMERIC)
    row = next(r for r in shifted.table if r["feature"] == "duration")
    assert row["wasserstein_sd"] == pytest.approx(1.0, abs=0.15)
    assert shifted.figures["reference_rows"] == 750 and shifted.figures["current_rows"] == 1000


def test_vanished_category_is_drift(credit):
    current = credit[credit["purpose"] != "radio/TV"]
    result = feature_drift(credit, current, numeric=[], categorical=["purpose"], **_params())
    assert not result.passed and result.table[0]["psi"] > 1.0


def test_holm_and_psi():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    # (0.5-0.9)*ln(0.5/0.9) + (0.5-0.1)*ln(0.5/0.1)
    assert psi(np.array([0.9, 0.1]), np.array([0.5, 0.5])) == pytest.approx(0.8789, abs=1e-4)


def test_missing_feature_cannot_decide(credit):
    result = feature_drift(
        credit, credit.drop(columns=["duration"]), numeric=NUMERIC, categorical=[], **_params()
    )
    assert not result.passed and result.summary.startswith("could not decide")


def test_shifted_batch_is_blocked_against_the_champion(clean_run, tmp_path, credit, capsys):
    spec = make_pipeline(tmp_path / "p", data=_shifted(credit, NUMERIC))
    code, payload, gates = run_against_champion(clean_run["state"], spec, capsys)
    gate = gates["no_feature_drift"]
    assert code == 3 and "no_feature_drift" in payload["blocked_by"]
    assert gate["passed"] is False and gate["value"] == 2.0 and gate["risk_id"] == "DRIFT-001"
    assert "credit_amount" in gate["summary"] and "duration" in gate["summary"]


def test_a_gap_in_an_integer_category_is_not_drift_but_missing_numbers_are(credit):
    gappy = credit.astype({"job": "float64"})
    gappy.loc[0, "job"] = np.nan  # job now prints as 2.0, not 2
    same = feature_drift(credit, gappy, numeric=[], categorical=["job"], **_params())
    assert same.passed, same.summary
    holes = credit.copy()
    holes.loc[holes.sample(frac=0.5, random_state=0).index, "duration"] = np.nan
    result = feature_drift(credit, holes, numeric=["duration"], categorical=[], **_params())
    assert not result.passed and "duration (missing)" in result.summary
