"""Robustness gates: a deep unpruned tree flips under small perturbations and is blocked;
the shipped model passes; a model that cannot take missing values fails the stress gate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from column_types import CATEGORICAL_TYPES, NUMERIC_TYPES, with_column_types
from sklearn.linear_model import LogisticRegression

from conftest import (
    CATEGORICAL,
    FEATURES,
    make_pipeline,
    mlflow_client,
    policy_params,
    registered_versions,
)
from risk_assets.cli import main
from risk_assets.controls._robustness import (
    evasion_attack,
    perturbation_flip_rate,
    stress_scenarios,
)
from risk_assets.data import split_frame
from risk_assets.estimator import build_pipeline, categorical_columns

NUMERIC = ["credit_amount", "duration"]


def _fit(credit, class_path, params):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    model = build_pipeline(
        class_path=class_path, params=params, numeric=NUMERIC, categorical=CATEGORICAL
    ).fit(split.train[FEATURES], split.train["risk"])
    return model, split


def test_flip_rate_separates_a_smooth_model_from_a_deep_tree(credit):
    p = policy_params("ROB-001")
    kwargs = {"budgets": p["budgets"], "max_flip_rate": p["max_flip_rate"], "trials": p["trials"]}
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    tree, _ = _fit(credit, "sklearn.tree.DecisionTreeClassifier", {"random_state": 0})
    ok = perturbation_flip_rate(smooth, split.test[FEATURES], **kwargs)
    bad = perturbation_flip_rate(tree, split.test[FEATURES], **kwargs)
    assert ok.passed and ok.value <= p["max_flip_rate"]
    assert not bad.passed and bad.value > 3 * p["max_flip_rate"]
    assert ok.sample_size == len(split.test)


def test_categorical_moves_stay_within_seen_categories(credit):
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    seen = sorted(split.train["purpose"].unique())
    result = perturbation_flip_rate(
        smooth,
        split.test[FEATURES],
        budgets={"duration": 1},
        categorical_moves=["purpose"],
        categories={"purpose": seen},
        max_flip_rate=1.0,
    )
    assert result.passed and 0.0 < result.value < 1.0


def test_stress_scenarios(credit):
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    ranges = {c: (split.train[c].min(), split.train[c].max()) for c in NUMERIC}
    ok = stress_scenarios(
        smooth, split.test[FEATURES], numeric=NUMERIC, categorical=CATEGORICAL, train_ranges=ranges
    )
    assert ok.passed and ok.figures["scenarios"] == 4 * 2 + 7 + 5
    # a bare estimator without imputation cannot take a missing value: the finding
    bare = LogisticRegression(max_iter=1000).fit(split.train[NUMERIC], split.train["risk"])
    bad = stress_scenarios(
        bare, split.test[NUMERIC], numeric=NUMERIC, categorical=[], train_ranges=ranges
    )
    assert not bad.passed
    assert {r["scenario"] for r in bad.table if not r["valid"]} == {
        "credit_amount:missing",
        "duration:missing",
    }
    assert bad.value == 2.0


def test_stress_asks_the_model_once_for_all_scenarios(credit):
    """The scenarios are stacked into one predict and one predict_proba call, with the
    verdict of the calls one by one; a model that gives invalid outputs in one scenario
    is caught there, by name."""
    from risk_assets.controls._robustness import _problem

    model, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    ranges = {c: (split.train[c].min(), split.train[c].max()) for c in NUMERIC}
    calls: list[int] = []

    class Counting:
        classes_ = model.classes_

        def predict(self, X):
            calls.append(len(X))
            return model.predict(X)

        def predict_proba(self, X):
            proba = model.predict_proba(X)
            beyond = (X["duration"] > 2 * ranges["duration"][1]).to_numpy()
            proba[beyond] = np.nan  # broken far beyond the training range
            return proba

    X = split.test[FEATURES]
    result = stress_scenarios(
        Counting(), X, numeric=NUMERIC, categorical=CATEGORICAL, train_ranges=ranges
    )
    assert len(calls) == 1 and calls[0] == result.sample_size * result.figures["scenarios"]
    assert [r["scenario"] for r in result.table if not r["valid"]] == ["duration:beyond_max"]
    lo, hi = ranges["duration"]
    # the same verdict as the scenario's own calls
    assert _problem(Counting(), X.assign(duration=hi + 10 * (hi - lo))) == (
        next(r["problem"] for r in result.table if r["scenario"] == "duration:beyond_max")
    )
    assert _problem(Counting(), X.assign(duration=hi)) is None


def _fit_mixed(frame, features):
    """Fit the spec's kind of model on ``features`` of ``frame`` as the pipeline does:
    categorical columns are the declared ones plus every non-numeric one."""
    categorical = categorical_columns(frame, features, CATEGORICAL)
    numeric = [c for c in features if c not in categorical]
    split = split_frame(frame, target="risk", test_size=0.25, seed=42, stratify=True)
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=numeric,
        categorical=categorical,
    ).fit(split.train[features], split.train["risk"])
    return model, split, numeric, categorical


# an all-missing feature is dropped by the imputer, which says so: expected here
@pytest.mark.filterwarnings("ignore:Skipping features without any observed values:UserWarning")
def test_stress_runs_on_mixed_column_types(credit):
    """Reported: the stress gate raised TypeError on data with integer, float and text
    columns. The cause: a nullable-integer feature with no values in training has the
    range (<NA>, <NA>), and ``(hi - lo) or 1.0`` asks NA for its truth value. Now such a
    feature gets no range scenarios (the summary names it) and every other type runs."""
    frame = with_column_types(credit)
    features = [*FEATURES, *NUMERIC_TYPES, *CATEGORICAL_TYPES]
    model, split, numeric, categorical = _fit_mixed(frame, features)
    assert {"dependents", "empty", "empty_int", "self"} <= set(numeric)
    assert {"flag", "region", "opened", "note", "empty_text"} <= set(categorical)
    ranges = {c: (split.train[c].min(), split.train[c].max()) for c in numeric}
    assert ranges["empty_int"][0] is pd.NA
    result = stress_scenarios(
        model,
        split.test[features],
        numeric=numeric,
        categorical=categorical,
        train_ranges=ranges,
        sample_size=50,
    )
    assert result.passed, result.summary
    ranged = len(numeric) - 2  # empty and empty_int had no values in training
    assert result.figures["scenarios"] == 4 * ranged + len(numeric) + 2 * len(categorical)
    assert result.figures["features_without_range"] == 2
    assert "no range scenarios, for empty, empty_int" in result.summary
    scenarios = {r["scenario"] for r in result.table}
    assert {"dependents:at_max", "region:unseen_category", "opened:missing"} <= scenarios


def test_stress_with_a_feature_named_self(credit):
    """Reported: a feature named ``self`` crashed the stress gate (``DataFrame.assign() got
    multiple values for argument 'self'``); no column name may break a control."""
    frame = credit.rename(columns={"duration": "self"})
    features = [c if c != "duration" else "self" for c in FEATURES]
    model, split, numeric, categorical = _fit_mixed(frame, features)
    assert "self" in numeric
    result = stress_scenarios(
        model,
        split.test[features],
        numeric=numeric,
        categorical=categorical,
        train_ranges=_ranges(split.train, numeric),
    )
    assert result.passed, result.summary
    assert {"self:at_min", "self:beyond_max", "self:missing"} <= {
        r["scenario"] for r in result.table
    }
    # the evasion attack's category switches built their rows the same way
    evasion = evasion_attack(
        model,
        split.test[features],
        budgets={"self": 6},
        train_ranges=_ranges(split.train, numeric),
        categorical_moves=["purpose"],
        categories={"purpose": sorted(split.train["purpose"].unique())},
        max_success_rate=1.0,
        sample_size=10,
        max_iter=1,
        init_size=10,
    )
    assert not evasion.summary.startswith("could not decide"), evasion.summary


def test_stress_keeps_each_column_dtype_for_missing_values(credit):
    """A missing value arrives in the column's own dtype (``<NA>`` in an ``Int64`` column,
    NaN in a ``category`` column), as it would from a Parquet batch; an unseen category
    of a ``category`` column arrives as a new category of that dtype."""
    frame = with_column_types(credit)
    seen: list[pd.DataFrame] = []

    class Recording:
        classes_ = np.array([0, 1])

        def predict(self, X):
            seen.append(X)
            return np.zeros(len(X), dtype=int)

    stress_scenarios(
        Recording(),
        frame[["dependents", "region"]],
        numeric=["dependents"],
        categorical=["region"],
        train_ranges={"dependents": (0, 3)},
        sample_size=20,
    )
    by_dtype = {(str(f["dependents"].dtype), str(f["region"].dtype)) for f in seen}
    assert ("Int64", "category") in by_dtype  # dependents:missing keeps Int64
    unseen = seen[-1]["region"]
    assert isinstance(unseen.dtype, pd.CategoricalDtype)
    assert set(unseen) == {"__unseen__"}


def test_stress_without_rows_or_ranges_cannot_decide(credit):
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    kwargs = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    empty = stress_scenarios(
        smooth, split.test[FEATURES].iloc[:0], train_ranges=_ranges(split.train, NUMERIC), **kwargs
    )
    assert not empty.passed and empty.summary == "could not decide: no rows to stress"
    unranged = stress_scenarios(
        smooth, split.test[FEATURES], train_ranges={"credit_amount": (0, 1)}, **kwargs
    )
    assert not unranged.passed
    assert unranged.summary == "could not decide: no training range for numeric feature 'duration'"
    dates = stress_scenarios(
        smooth,
        split.test[FEATURES],
        train_ranges={"credit_amount": (0, 1), "duration": (pd.Timestamp(0), pd.Timestamp(1))},
        **kwargs,
    )
    assert not dates.passed and "'duration' is not a pair of numbers" in dates.summary


def _ranges(frame, columns):
    return {c: (float(frame[c].min()), float(frame[c].max())) for c in columns}


def test_evasion_attack_separates_a_smooth_model_from_a_deep_tree(credit):
    p = policy_params("ROB-003")
    kwargs = {k: p[k] for k in ("budgets", "max_success_rate", "sample_size", "max_iter")}
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    tree, _ = _fit(credit, "sklearn.tree.DecisionTreeClassifier", {"random_state": 0})
    ranges = _ranges(split.train, NUMERIC)
    ok = evasion_attack(smooth, split.test[FEATURES], train_ranges=ranges, **kwargs)
    bad = evasion_attack(tree, split.test[FEATURES], train_ranges=ranges, **kwargs)
    assert ok.passed and ok.value <= p["max_success_rate"], ok.summary
    assert not bad.passed and bad.value > 2 * p["max_success_rate"], bad.summary
    assert ok.sample_size == bad.sample_size == p["sample_size"]
    f = bad.figures
    assert f["successes"] == f["by_category_switch"] + f["by_random_search"] + f["by_hopskipjump"]
    # the median move of the successes lies within each budget
    for row in bad.table:
        assert 0 <= row["median_move_of_successes"] <= p["budgets"][row["feature"]]


class _Recording:
    """A model that remembers every frame it was asked to score."""

    def __init__(self, model):
        self.model, self.frames = model, []
        self.classes_ = model.classes_

    def predict(self, frame):
        self.frames.append(frame.copy())
        return self.model.predict(frame)


def test_hopskipjump_moves_only_the_masked_features_and_finds_what_random_search_misses():
    """Breast cancer data, 30 numeric features, 25 of them mutable: a random search in a
    25-dimensional box rarely lands near the boundary, HopSkipJump walks to it. Features
    without a budget never move, and no queried value leaves the training range."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    columns = list(data.data.columns)
    X_train, X_test, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0
    )
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=columns,
        categorical=[],
    ).fit(X_train, y_train)
    mutable = columns[:25]
    budgets = {c: 0.5 * float(X_train[c].std()) for c in mutable}
    ranges = _ranges(X_train, columns)
    recording = _Recording(model)
    result = evasion_attack(
        recording,
        X_test,
        budgets=budgets,
        train_ranges=ranges,
        max_success_rate=1.0,
        sample_size=30,
        max_iter=5,
        max_eval=50,
    )
    assert result.figures["by_hopskipjump"] >= 1, result.summary
    queried = pd.concat(recording.frames, ignore_index=True)
    fixed = [c for c in columns if c not in mutable]
    originals = set(map(tuple, X_test[fixed].to_numpy()))
    assert set(map(tuple, queried[fixed].to_numpy())) <= originals
    for c in mutable:  # within the training range, widened to the test rows' own values
        lo, hi = min(ranges[c][0], X_test[c].min()), max(ranges[c][1], X_test[c].max())
        assert queried[c].between(lo, hi).all(), c
    assert len(queried) > 30 * 100  # the random search alone asks this much


def test_categorical_switches_count_exactly_the_rows_one_switch_flips(credit):
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    seen = sorted(split.train["purpose"].unique())
    sample = split.test[FEATURES].sample(n=40, random_state=0)
    result = evasion_attack(
        smooth,
        sample,
        budgets={"duration": 1e-9},  # numeric moves too small to matter
        train_ranges=_ranges(split.train, NUMERIC),
        categorical_moves=["purpose"],
        categories={"purpose": seen},
        max_success_rate=1.0,
        sample_size=40,
        max_iter=1,  # the numeric part is not under test here
        init_size=5,
    )
    base = smooth.predict(sample)
    flips = sum(
        any(smooth.predict(sample.iloc[[i]].assign(purpose=p))[0] != base[i] for p in seen)
        for i in range(len(sample))
    )
    assert flips > 0
    assert result.figures["by_category_switch"] == flips
    assert result.figures["successes"] == flips


def test_evasion_with_missing_values_and_integer_budgets(credit):
    """A missing value stays missing (the model imputes it) and the row is still attacked on
    its other features; a move counts only as the model saw it, after rounding."""
    smooth, split = _fit(credit, "sklearn.linear_model.LogisticRegression", {"max_iter": 1000})
    ranges = _ranges(split.train, NUMERIC)
    holes = split.test[FEATURES].copy()
    holes.loc[holes.sample(frac=0.3, random_state=0).index, "credit_amount"] = np.nan
    recording = _Recording(smooth)
    result = evasion_attack(
        recording,
        holes,
        budgets={"credit_amount": 3000, "duration": 12},
        train_ranges=ranges,
        max_success_rate=1.0,
        sample_size=30,
        max_iter=2,
    )
    assert not result.summary.startswith("could not decide"), result.summary
    assert result.figures["successes"] > 0
    medians = {r["feature"]: r["median_move_of_successes"] for r in result.table}
    assert all(np.isfinite(v) for v in medians.values())
    queried = pd.concat(recording.frames, ignore_index=True)
    assert queried["credit_amount"].isna().any()  # never filled in by the attack
    # duration is a whole number of months: a budget below one month allows no move at all
    tight = evasion_attack(
        smooth,
        split.test[FEATURES],
        budgets={"duration": 0.6},
        train_ranges=ranges,
        max_success_rate=1.0,
        sample_size=30,
        max_iter=2,
    )
    assert tight.figures["successes"] == 0, tight.summary


def test_deep_tree_is_blocked_by_the_robustness_and_membership_gates(state, tmp_path, capsys):
    spec = make_pipeline(
        tmp_path / "p",
        spec={
            "estimator": {
                "class": "sklearn.tree.DecisionTreeClassifier",
                "params": {"random_state": 0},
            }
        },
        # only the robustness gate is meant to stop it
        policy={
            "risk_params": {
                "PERF-001": {"thresholds": {"accuracy": 0.5}},
                "PERF-003": {"metric": "accuracy", "min_value": 0.0},
                "FAIR-001": {"min_ratio": 0.01},
            }
        },
        without=(),  # the evasion attack is part of this test
    )
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gates = {g["name"]: g for g in payload["gates"]}
    # it flips under small perturbations and it memorises its training rows
    assert code == 3 and payload["blocked_by"] == [
        "robust_to_perturbation",
        "robust_to_evasion",
        "no_membership_leakage",
    ], payload["blocked_by"]
    assert gates["robust_to_perturbation"]["value"] > policy_params("ROB-001")["max_flip_rate"]
    assert gates["robust_to_evasion"]["value"] > policy_params("ROB-003")["max_success_rate"]
    assert gates["no_membership_leakage"]["value"] > policy_params("PRIV-002")["max_advantage"]
    assert gates["no_membership_leakage"]["risk_id"] == "PRIV-002"
    assert gates["valid_under_stress"]["passed"] is True
    assert registered_versions(mlflow_client()) == []


def test_membership_inference_catches_memorisation(credit):
    from risk_assets.controls._privacy import membership_inference_advantage

    limit = policy_params("PRIV-002")["max_advantage"]
    for class_path, params, leaks in [
        ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}, False),
        ("sklearn.tree.DecisionTreeClassifier", {"random_state": 0}, True),
    ]:
        model, split = _fit(credit, class_path, params)
        result = membership_inference_advantage(
            model,
            split.train[FEATURES],
            split.train["risk"],
            split.test[FEATURES],
            split.test["risk"],
            max_advantage=limit,
        )
        assert result.passed is not leaks, (class_path, result.summary)
        again = membership_inference_advantage(
            model,
            split.train[FEATURES],
            split.train["risk"],
            split.test[FEATURES],
            split.test["risk"],
            max_advantage=limit,
        )
        assert again.value == result.value  # seeded: the same inputs give the same verdict
        # 125 rows per half (the 250 held-out rows bound it): 4 halves of training and held-out
        assert result.sample_size == 500


def test_a_budget_on_a_categorical_feature_is_refused_at_load(state, tmp_path, capsys):
    """'purpose' is text, and the expectation suite expects it in a set of values: the
    pipeline does not load (CLI: exit 2 before any run; a code location: a load error), so
    no run can start and fail half-way."""
    from risk_assets.dagster import build_definitions
    from risk_assets.errors import SpecError

    params = policy_params("ROB-001") | {"budgets": {"purpose": 1.0, "duration": 3}}
    spec = make_pipeline(tmp_path / "p", policy={"risk_params": {"ROB-001": params}})
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 2 and payload["status"] == "error"
    assert "params.budgets.purpose: 'purpose' is categorical" in payload["error"]
    assert "policy.yaml" in payload["error"]
    with pytest.raises(SpecError, match="params.budgets.purpose"):
        build_definitions([spec])
