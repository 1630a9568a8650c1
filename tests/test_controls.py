"""Controls as pure functions on real data: verdicts, figures, fail-closed behaviour."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import CREDIT_SUITE
from risk_assets.controls import (
    compare_to_champion,
    evaluate_classifier,
    load_suite,
    markdown_table,
    meets_metric_thresholds,
    profile_suite,
    run_expectation_suite,
)


@pytest.fixture(scope="module")
def suite():
    return load_suite(CREDIT_SUITE)


def test_clean_data_meets_the_shipped_suite(credit, suite):
    result = run_expectation_suite(credit, suite)
    assert result.passed and result.value == 1.0
    assert result.figures["expectations_total"] == len(suite["expectations"])


def test_unknown_category_and_nulls_fail(credit, suite):
    bad = credit.copy()
    bad.loc[:19, "housing"] = "castle"
    bad.loc[20:29, "duration"] = np.nan
    result = run_expectation_suite(bad, suite)
    assert not result.passed
    failed = {(r["expectation"], r.get("column")) for r in result.table if not r["success"]}
    assert failed == {
        ("expect_column_values_to_be_in_set", "housing"),
        ("expect_column_values_to_not_be_null", "duration"),
    }
    housing = next(r for r in result.table if r.get("column") == "housing" and not r["success"])
    assert housing["unexpected_count"] == 20 and housing["unexpected_percent"] == 2.0


def test_results_carry_counts_not_values(credit, suite, monkeypatch):
    # GX Cloud credentials in the environment must not change where results go.
    monkeypatch.setenv("GX_CLOUD_ACCESS_TOKEN", "not-a-real-token")
    monkeypatch.setenv("GX_CLOUD_ORGANIZATION_ID", "00000000-0000-0000-0000-000000000000")
    bad = credit.copy()
    secret = "jane.doe.4471@example.org"
    bad.loc[:4, "purpose"] = secret
    bad.loc[5:9, "age"] = 987654
    result = run_expectation_suite(bad, suite)
    assert not result.passed
    rendered = (
        json.dumps(result.to_dict()) + json.dumps(list(result.table)) + markdown_table(result.table)
    )
    assert secret not in rendered and "987654" not in rendered
    assert all(
        "partial_unexpected_list" not in r and "observed_value" not in r for r in result.table
    )


def test_a_sampled_suite_judges_values_on_the_sample_and_the_table_on_every_row(credit, suite):
    """A policy's sample_size: the row-wise expectations see a seeded sample, the rest
    every row; a fault in 2 % of rows is found (3 / 2,000 = 0.15 % is the stated floor),
    a clean re-sample passes, and the evidence names the rows each expectation saw."""
    big = credit.sample(n=20_000, replace=True, random_state=1).reset_index(drop=True)
    clean = run_expectation_suite(big, suite, sample_size=2_000, seed=0)
    assert clean.passed, clean.summary
    assert clean.sample_size == 2_000 and clean.figures["detectable_share_95"] == 3 / 2_000
    assert "seeded sample of 2,000 of 20,000 rows" in clean.summary
    seen = {r["expectation"]: r["rows"] for r in clean.table}
    assert seen["expect_table_row_count_to_be_between"] == 20_000
    assert seen["expect_table_columns_to_match_set"] == 20_000
    assert seen["expect_column_values_to_be_in_set"] == 2_000
    bad = big.copy()
    bad.loc[bad.sample(frac=0.02, random_state=2).index, "housing"] = "castle"
    blocked = run_expectation_suite(bad, suite, sample_size=2_000, seed=0)
    assert not blocked.passed
    assert [(r["expectation"], r.get("column")) for r in blocked.table if not r["success"]] == [
        ("expect_column_values_to_be_in_set", "housing")
    ]
    # uniqueness needs every row: a duplicate the sample would likely miss still fails
    unique = {
        "name": "ids",
        "expectations": [
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "row"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "row"}},
        ],
    }
    ids = pd.DataFrame({"row": np.r_[np.arange(19_999), 5]})
    dup = run_expectation_suite(ids, unique, sample_size=1_000)
    assert not dup.passed
    assert {r["expectation"]: r["rows"] for r in dup.table} == {
        "expect_column_values_to_be_unique": 20_000,
        "expect_column_values_to_not_be_null": 1_000,
    }
    # fewer rows than the sample size: every row, as without one
    small = run_expectation_suite(credit, suite, sample_size=5_000)
    assert small.sample_size == len(credit) and "detectable_share_95" not in small.figures


def test_empty_suite_is_not_a_pass(credit):
    result = run_expectation_suite(credit, {"name": "empty", "expectations": []})
    assert result.passed is False and result.summary.startswith("could not decide")


def test_profile_then_validate_catches_injected_range_fault(credit):
    suite = profile_suite(credit, name="x", target="risk", categorical=["job"])
    assert run_expectation_suite(credit, suite).passed
    bad = credit.copy()
    bad.loc[:49, "credit_amount"] = -1000
    result = run_expectation_suite(bad, suite)
    assert not result.passed and "credit_amount" in result.summary


def test_metric_thresholds():
    ok = meets_metric_thresholds(
        {"roc_auc": 0.8, "accuracy": 0.75}, {"roc_auc": 0.7, "accuracy": 0.7}
    )
    assert ok.passed and ok.value == 0.75 and ok.threshold == 0.7  # smallest margin is headline
    bad = meets_metric_thresholds(
        {"roc_auc": 0.65, "accuracy": 0.75}, {"roc_auc": 0.7, "accuracy": 0.7}
    )
    assert not bad.passed and bad.value == 0.65 and "roc_auc 0.6500 < 0.7000" in bad.summary
    missing = meets_metric_thresholds({"accuracy": 0.9}, {"roc_auc": 0.7})
    assert not missing.passed and "not measured" in missing.summary
    assert not meets_metric_thresholds({"accuracy": 0.9}, {}).passed


def test_champion_comparison():
    none = compare_to_champion(
        metric="roc_auc", candidate=0.7, champion=None, tolerance=0.02, champion_ref=None
    )
    assert none.passed and "no champion" in none.summary
    within = compare_to_champion(
        metric="roc_auc", candidate=0.75, champion=0.76, tolerance=0.02, champion_ref="m/1"
    )
    assert within.passed and within.value == pytest.approx(-0.01)
    worse = compare_to_champion(
        metric="roc_auc", candidate=0.70, champion=0.76, tolerance=0.02, champion_ref="m/1"
    )
    assert not worse.passed and worse.value == pytest.approx(-0.06)
    unscored = compare_to_champion(
        metric="roc_auc", candidate=0.8, champion=None, tolerance=0.02, champion_ref="m/1"
    )
    assert not unscored.passed


def test_evaluate_classifier_on_credit(credit):
    from sklearn.linear_model import LogisticRegression

    X = credit[["duration", "credit_amount", "age"]]
    y = credit["risk"]
    model = LogisticRegression(max_iter=1000).fit(X, y)
    metrics = evaluate_classifier(model, X, y, positive_label=1)
    assert set(metrics) == {"accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc"}
    from sklearn.metrics import roc_auc_score

    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, model.predict_proba(X)[:, 1]))
