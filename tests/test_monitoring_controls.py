"""Monitoring controls on a real model: a logistic regression fitted on the first 600 rows
of the German credit data, scored on the other 400 (the "production" rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import CATEGORICAL, FEATURES
from risk_assets.controls._drift import psi
from risk_assets.controls._monitoring import (
    DecisionCounts,
    decision_volume,
    outcome_performance,
    prediction_drift,
)
from risk_assets.controls._performance import evaluate_classifier
from risk_assets.estimator import build_pipeline

#: Policy-like limits, as a risk register would set them.
DRIFT = {"alpha": 0.01, "min_psi": 0.1}
VOLUME = {"max_rate_change": 0.15, "max_volume_ratio": 2.0, "min_history": 3}
MONTH = 57  # held-out rows per "month": six months of history and a current batch of 58


@pytest.fixture(scope="module")
def fitted(credit):
    train, held_out = credit.iloc[:600], credit.iloc[600:]
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=["credit_amount", "duration"],
        categorical=CATEGORICAL,
    ).fit(train[FEATURES], train["risk"])
    return {"model": model, "train": train, "held_out": held_out}


def _scores(model, frame) -> np.ndarray:
    return model.predict_proba(frame[FEATURES])[:, list(model.classes_).index(1)]


def _counts(model, partition: str, frame) -> DecisionCounts:
    approved = int((model.predict(frame[FEATURES]) == 1).sum()) if len(frame) else 0
    return DecisionCounts(partition, len(frame), approved)


def _months(fitted):
    """Six months of history and the current month, from the held-out rows."""
    model, rows = fitted["model"], fitted["held_out"]
    history = [
        _counts(model, f"2024-{i + 1:02d}", rows.iloc[i * MONTH : (i + 1) * MONTH])
        for i in range(6)
    ]
    return history, rows.iloc[6 * MONTH :]


# -- prediction_drift ---------------------------------------------------------------------


def test_held_out_scores_do_not_drift(fitted):
    model = fitted["model"]
    reference = _scores(model, fitted["train"])
    batch = _scores(model, fitted["held_out"])
    result = prediction_drift(reference, batch, **DRIFT)
    assert result.passed, result.summary
    assert result.figures["p_value"] >= DRIFT["alpha"]
    assert result.figures["psi"] < DRIFT["min_psi"] and result.value == result.figures["psi"]
    assert result.threshold == DRIFT["min_psi"]
    assert result.figures["reference_rows"] == 600 and result.figures["batch_rows"] == 400
    assert result.sample_size == 400
    # the evidence is counts and shares over ten bins of the reference, nothing else
    assert len(result.table) == 10
    assert sum(r["reference_rows"] for r in result.table) == 600
    assert sum(r["batch_rows"] for r in result.table) == 400
    assert set(result.table[0]) == {
        "bin",
        "reference_rows",
        "batch_rows",
        "reference_share",
        "batch_share",
    }


def test_shifted_applicants_drift_and_figures_are_consistent(fitted):
    model = fitted["model"]
    shifted = fitted["held_out"].copy()
    shifted["credit_amount"] = shifted["credit_amount"] * 3
    shifted["duration"] = shifted["duration"] + 24
    reference, batch = _scores(model, fitted["train"]), _scores(model, shifted)
    result = prediction_drift(reference, batch, **DRIFT)
    assert not result.passed
    assert result.figures["p_value"] < DRIFT["alpha"] and result.value >= DRIFT["min_psi"]
    assert "drift" in result.summary and "PSI" in result.summary
    # the figures, recomputed independently
    ks = stats.ks_2samp(reference, batch)
    assert result.figures["p_value"] == pytest.approx(ks.pvalue, rel=1e-12)
    assert result.figures["ks_statistic"] == pytest.approx(ks.statistic)
    deciles = np.quantile(reference, np.linspace(0, 1, 11))
    ref_bins = pd.cut(reference, deciles, include_lowest=True)
    cur_bins = pd.cut(np.clip(batch, deciles[0], deciles[-1]), deciles, include_lowest=True)
    ref_share = pd.Series(ref_bins).value_counts(normalize=True, sort=False).to_numpy()
    cur_share = pd.Series(cur_bins).value_counts(normalize=True, sort=False).to_numpy()
    assert result.figures["psi"] == pytest.approx(psi(ref_share, cur_share))
    assert result.figures["batch_mean_score"] == pytest.approx(batch.mean())
    assert result.figures["reference_mean_score"] == pytest.approx(reference.mean())
    # larger, longer loans: the model thinks fewer applicants are good risks
    assert result.figures["batch_mean_score"] < result.figures["reference_mean_score"] - 0.1


def test_scores_are_sampled_with_a_seed(fitted):
    model = fitted["model"]
    reference = _scores(model, fitted["train"])
    batch = _scores(model, fitted["held_out"])
    first = prediction_drift(reference, batch, sample_size=100, seed=3, **DRIFT)
    again = prediction_drift(reference, batch, sample_size=100, seed=3, **DRIFT)
    assert first.figures == again.figures
    assert first.figures["reference_rows"] == 100 and first.figures["batch_rows"] == 100
    assert first.sample_size == 100


def test_missing_or_broken_scores_cannot_decide(fitted):
    reference = _scores(fitted["model"], fitted["train"])
    empty = prediction_drift(reference, [], **DRIFT)
    assert not empty.passed and empty.value is None
    assert empty.summary == "could not decide: the batch has no scores"
    no_reference = prediction_drift(np.array([]), reference, **DRIFT)
    assert not no_reference.passed and "the reference has no scores" in no_reference.summary
    holes = reference.copy()
    holes[:5] = np.nan
    broken = prediction_drift(reference, holes, **DRIFT)
    assert not broken.passed and "5 of 600 batch scores are not finite" in broken.summary


# -- decision_volume ----------------------------------------------------------------------


def test_a_normal_month_passes(fitted):
    history, current = _months(fitted)
    result = decision_volume(_counts(fitted["model"], "2024-07", current), history, **VOLUME)
    assert result.passed, result.summary
    f = result.figures
    assert f["history_partitions"] == 6 and f["favourable"] + f["denied"] == len(current)
    pooled = sum(h.favourable for h in history) / sum(h.total for h in history)
    assert f["history_rate"] == pytest.approx(pooled)
    assert result.value == pytest.approx(abs(f["rate"] - pooled))
    assert result.value <= VOLUME["max_rate_change"]
    assert f["history_median_favourable"] == np.median([h.favourable for h in history])
    assert 1 / 2.0 <= f["favourable_ratio"] <= 2.0 and 1 / 2.0 <= f["denied_ratio"] <= 2.0
    assert [r["partition"] for r in result.table] == [
        *(h.partition for h in history),
        "2024-07 (batch)",
    ]
    assert result.summary.startswith("approval rate")


def test_a_volume_jump_is_flagged_though_the_rate_holds(fitted):
    history, current = _months(fitted)
    surge = _counts(fitted["model"], "2024-07", pd.concat([current] * 4))
    result = decision_volume(surge, history, **VOLUME)
    assert not result.passed
    f = result.figures
    assert f["rate_change"] <= VOLUME["max_rate_change"]  # same applicants, same rate ...
    assert f["favourable_ratio"] > VOLUME["max_volume_ratio"]  # ... four times as many
    assert f["denied_ratio"] > VOLUME["max_volume_ratio"]
    assert f["favourable"] == 4 * _counts(fitted["model"], "c", current).favourable
    assert "approvals" in result.summary and "(limit 2.0x)" in result.summary


def test_a_month_of_denials_is_flagged_on_rate_and_counts(fitted):
    history, _ = _months(fitted)
    rows = fitted["held_out"]
    denied = rows[fitted["model"].predict(rows[FEATURES]) == 0].iloc[:MONTH]
    result = decision_volume(_counts(fitted["model"], "2024-07", denied), history, **VOLUME)
    assert not result.passed
    f = result.figures
    assert f["rate"] == 0.0 and f["favourable"] == 0 and f["denied"] == MONTH
    assert result.value == f["rate_change"] == pytest.approx(f["history_rate"])
    assert f["rate_change"] > VOLUME["max_rate_change"]
    assert f["favourable_ratio"] == 0.0 < 1 / VOLUME["max_volume_ratio"]  # approvals collapse
    assert f["denied_ratio"] > VOLUME["max_volume_ratio"]  # denials jump
    assert "approval rate 0.00" in result.summary and "approvals 0 = 0.0x" in result.summary


def test_too_little_history_passes_and_says_so(fitted):
    history, current = _months(fitted)
    result = decision_volume(_counts(fitted["model"], "2024-07", current), history[:2], **VOLUME)
    assert result.passed
    assert "not enough history" in result.summary
    assert "2 earlier partitions" in result.summary and "3 needed" in result.summary
    assert result.figures["history_partitions"] == 2
    assert result.figures["rate"] == pytest.approx(result.table[-1]["rate"])


def test_an_empty_month_cannot_be_judged(fitted):
    history, _ = _months(fitted)
    result = decision_volume(DecisionCounts("2024-07", 0, 0), history, **VOLUME)
    assert not result.passed and result.value is None
    assert "2024-07" in result.summary and result.summary.startswith("could not decide")
    assert np.isnan(DecisionCounts("2024-07", 0, 0).rate)
    with pytest.raises(ValueError, match="between 0 and the total"):
        DecisionCounts("2024-07", 10, 11)


# -- outcome_performance ------------------------------------------------------------------


def test_real_outcomes_meet_the_policy_and_match_evaluate_classifier(fitted):
    model, rows = fitted["model"], fitted["held_out"]
    y = rows["risk"].to_numpy()
    result = outcome_performance(
        y,
        model.predict(rows[FEATURES]),
        _scores(model, rows),
        thresholds={"accuracy": 0.6, "roc_auc": 0.6},
        positive_label=1,
    )
    assert result.passed, result.summary
    expected = evaluate_classifier(model, rows[FEATURES], y, positive_label=1)
    assert {k: result.figures[k] for k in expected} == pytest.approx(expected)
    assert result.figures["labelled_rows"] == 400 and result.sample_size == 400


def test_flipped_labels_fail_the_same_policy(fitted):
    model, rows = fitted["model"], fitted["held_out"]
    y = rows["risk"].to_numpy().copy()
    flip = np.random.default_rng(0).choice(len(y), size=int(0.4 * len(y)), replace=False)
    y[flip] = 1 - y[flip]
    result = outcome_performance(
        y,
        model.predict(rows[FEATURES]),
        _scores(model, rows),
        thresholds={"accuracy": 0.6},
        positive_label=1,
    )
    assert not result.passed
    assert result.figures["accuracy"] < 0.6 and result.threshold == 0.6
    assert "accuracy" in result.summary and "below threshold" in result.summary


def test_labels_still_to_arrive_are_left_out_and_too_few_cannot_decide(fitted):
    model, rows = fitted["model"], fitted["held_out"]
    pred, score = model.predict(rows[FEATURES]), _scores(model, rows)
    y = rows["risk"].to_numpy().astype(float)
    y[300:] = np.nan  # the last 100 rows have no outcome yet
    partial = outcome_performance(y, pred, score, thresholds={"accuracy": 0.6}, positive_label=1)
    expected = evaluate_classifier(
        model, rows[FEATURES].iloc[:300], rows["risk"].iloc[:300], positive_label=1
    )
    assert partial.figures["accuracy"] == pytest.approx(expected["accuracy"])
    assert partial.figures["labelled_rows"] == 300 and partial.figures["unlabelled_rows"] == 100
    y[20:] = np.nan
    few = outcome_performance(y, pred, score, thresholds={"accuracy": 0.6}, positive_label=1)
    assert not few.passed and few.value is None
    assert (
        few.summary == "could not decide: only 20 labelled rows of 400 scored, at least 30 needed"
    )


def test_one_class_of_labels_fails_a_roc_auc_threshold(fitted):
    model, rows = fitted["model"], fitted["held_out"]
    good = rows[rows["risk"] == 1]
    result = outcome_performance(
        good["risk"],
        model.predict(good[FEATURES]),
        _scores(model, good),
        thresholds={"accuracy": 0.6, "roc_auc": 0.6},
        positive_label=1,
    )
    assert not result.passed
    assert "roc_auc not measured" in result.summary and "one class only" in result.summary
    assert "roc_auc" not in result.figures
    verdicts = {r["metric"]: r["passed"] for r in result.table}
    assert verdicts == {"accuracy": True, "roc_auc": False}
