"""Robustness gates: a deep unpruned tree flips under small perturbations and is blocked;
the shipped model passes; a model that cannot take missing values fails the stress gate."""

from __future__ import annotations

import json

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
from risk_assets.controls._robustness import perturbation_flip_rate, stress_scenarios
from risk_assets.data import split_frame
from risk_assets.estimator import build_pipeline

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


def test_deep_tree_is_blocked_by_perturbation_and_membership_gates(state, tmp_path, capsys):
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
    )
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gates = {g["name"]: g for g in payload["gates"]}
    # it flips under small perturbations and it memorises its training rows
    assert code == 3 and payload["blocked_by"] == [
        "robust_to_perturbation",
        "no_membership_leakage",
    ], payload["blocked_by"]
    assert gates["robust_to_perturbation"]["value"] > policy_params("ROB-001")["max_flip_rate"]
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
