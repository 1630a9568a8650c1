"""The drift gate: a 1-sigma shift in two features against the champion's training data
blocks; data from the same population passes; a first model has no reference."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from conftest import (
    make_pipeline,
    policy_params,
    run_against_champion,
)
from risk_assets.catalogue.params import DriftParams
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


# -- issue 12: category moves and numeric moves that PSI bins hide -------------------------


def _drift_params() -> dict:
    """The shipped register's drift thresholds, checked against the policy defaults."""
    params = _params()
    defaults = DriftParams()
    assert params["min_numeric_distance"] == defaults.min_numeric_distance
    assert params["min_category_distance"] == defaults.min_category_distance
    assert params["alpha"] == defaults.alpha
    return params


def _reference(credit):
    return split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True).train


def _drifted_rows(result) -> dict:
    return {r["feature"]: r for r in result.table if r["drift"]}


@pytest.mark.parametrize(
    ("column", "top", "to"), [("saving_accounts", "little", "not_known"), ("sex", "male", "female")]
)
def test_a_fifth_of_the_top_category_moved_is_drift(credit, column, top, to):
    """20 % of the rows of the column's top category moved to another category: 12 to 14
    points of share, which PSI >= 0.1 let through (PSI 0.08 to 0.09)."""
    params = _drift_params()
    current = credit.copy()
    rows = current.index[current[column] == top]
    moved = np.random.default_rng(0).choice(rows, size=round(0.2 * len(rows)), replace=False)
    current.loc[moved, column] = to
    result = feature_drift(
        _reference(credit), current, numeric=NUMERIC, categorical=[*CATEGORICAL, "sex"], **params
    )
    assert not result.passed and result.value == 1.0, result.summary
    row = _drifted_rows(result)[column]
    assert row["effect_size"] == "TV distance"
    assert row["effect_threshold"] == params["min_category_distance"]
    assert row["effect"] >= params["min_category_distance"] and row["psi"] < 0.1
    assert row["p_adjusted"] < params["alpha"]
    # the summary names the figure with enough digits to see the margin
    assert f"TV distance {row['effect']:.3f} ≥ {params['min_category_distance']:.3f}" in (
        result.summary
    )


def test_a_half_sd_shift_of_a_mostly_zero_feature_is_drift(credit):
    """The amount above 5,000 is zero for 81 % of the applicants; moving it by half a
    standard deviation moves nearly every row, but decile bins see almost nothing (PSI
    0.011)."""
    params = _drift_params()
    frame = credit.assign(amount_above=(credit["credit_amount"] - 5000).clip(lower=0))
    current = frame.assign(amount_above=frame["amount_above"] + 0.5 * frame["amount_above"].std())
    result = feature_drift(
        _reference(frame), current, numeric=["amount_above"], categorical=[], **params
    )
    assert not result.passed, result.summary
    row = result.table[0]
    assert row["psi"] < 0.1  # what the PSI rule looked at
    assert row["effect_size"] == "KS distance" and row["effect"] > 0.8
    assert row["effect_threshold"] == params["min_numeric_distance"]


@pytest.mark.parametrize("column", ["credit_amount", "duration", "age"])
def test_a_quarter_sd_shift_and_a_wider_spread_are_drift(credit, column):
    params = _drift_params()
    reference = _reference(credit)
    numeric = ["credit_amount", "duration", "age"]
    values = credit[column].astype(float)
    shifted = credit.assign(**{column: values + 0.25 * values.std()})
    result = feature_drift(reference, shifted, numeric=numeric, categorical=CATEGORICAL, **params)
    assert set(_drifted_rows(result)) == {column}, result.summary
    median = values.median()
    wider = credit.assign(**{column: median + 1.5 * (values - median)})
    result = feature_drift(reference, wider, numeric=numeric, categorical=CATEGORICAL, **params)
    assert set(_drifted_rows(result)) == {column}, result.summary
    row = _drifted_rows(result)[column]
    assert row["effect"] >= params["min_numeric_distance"] and row["effect_size"] == "KS distance"


def test_clean_resamples_of_the_credit_data_pass(credit):
    """20 seeded re-samples (a retraining on another 75 % split, or a bootstrap) of the
    same data against a 75 % training split: no false alarm."""
    params = _drift_params()
    numeric = ["credit_amount", "duration", "age"]
    categorical = [*CATEGORICAL, "sex"]
    reference = _reference(credit)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        if seed % 2:
            current = credit.iloc[rng.integers(0, len(credit), len(credit))]
        else:
            current = credit.iloc[rng.permutation(len(credit))[:750]]
        result = feature_drift(
            reference, current, numeric=numeric, categorical=categorical, seed=seed, **params
        )
        assert result.passed, (seed, result.summary)
        assert result.summary.startswith("no drift")


def test_the_control_defaults_are_the_policy_defaults():
    """``drift_against`` passes the policy's thresholds; a caller that leaves them out gets
    the same defaults as a register that leaves them out."""
    defaults = DriftParams()
    signature = inspect.signature(feature_drift).parameters
    for name in ("alpha", "min_numeric_distance", "min_category_distance", "max_drifted"):
        assert signature[name].default == getattr(defaults, name), name
    # min_psi is still accepted (older registers) and does not decide
    assert DriftParams(min_psi=0.1).min_psi == 0.1
    assert signature["min_psi"].default is None


def test_evidence_names_test_p_values_and_effect_size(credit):
    params = _drift_params()
    result = feature_drift(
        _reference(credit), credit, numeric=NUMERIC, categorical=CATEGORICAL, **params
    )
    for row in result.table:
        assert {"test", "p_value", "p_adjusted", "effect_size", "effect", "effect_threshold"} <= (
            set(row)
        )
        assert "psi" in row  # still reported
    kinds = {r["kind"]: r["effect_size"] for r in result.table}
    assert kinds == {"numeric": "KS distance", "categorical": "TV distance"}
