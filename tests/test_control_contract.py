"""The contract every control keeps, checked for every control ``risk_assets.controls``
exports (after scikit-learn's ``parametrize_with_checks``: one list of cases, one set of
checks applied to each case).

A case runs one control on a :class:`Data` the way its gate in the pipeline does (the
same kinds of inputs: the spec's kind of model fitted on the training rows, training
ranges, seen categories, predictions), with fixed, small parameters. The checks:

1. **Seeded determinism**: the same data and seed give the same verdict, figures and
   evidence rows.
2. **Fail closed** on an empty frame (0 rows) and on a column that is entirely missing
   in the data the control judges (the model, the training rows and the reference stay
   as they were). "Fails closed" means the control returns a failed result whose summary
   says it could not decide or names the problem, or it raises and the Dagster layer's
   ``_run_control`` (used by ``evaluate_gate``) turns the exception into such a failed
   gate; returning the failed result from the control is preferred. Which column goes
   missing is the one the control's verdict rests on (a mutable feature for the
   robustness attacks, the protected attribute for fairness and explainability, the
   labels for the performance controls, a feature for the data gates). Where a control
   rightly decides without that column, the case says why (``decides_without``) and the
   check asserts that it decides (no "could not decide").
3. **Every column type and any column name**: clean data with a column of every type
   pandas reads from a CSV or Parquet file (bool, nullable integers, categoricals,
   datetimes, text, all-missing; see ``column_types.py``) and a column named ``self``,
   as extra model features (the model is trained on them), gives the clean verdict:
   the control's verdict on the plain credit data with the same parameters.
4. **No raw values in evidence**: a recognisable text (``zz_SECRET_9f3``) planted in a
   text feature and a distinctive number (987654.321) planted in a numeric feature, in
   both training and judged rows, appear nowhere in ``to_dict()``, the summary or the
   table rows. The rule: evidence holds counts, shares, figures, column names and the
   bounds the policy set; the only data values allowed are the group labels of the
   columns a control groups by (fairness: the protected attribute, e.g. ``female``;
   slices: the slice columns), which name groups, not rows. Row-level values of any
   column never appear. No value is planted in a grouping column, so any appearance of a
   planted value is a leak.

A meta-check asserts the list of cases covers every public control (every function the
package exports that returns a :class:`ControlResult`).

Two data gates, PII and drift, are being rewritten elsewhere; where they break the
contract today their case is marked ``xfail(strict=True)`` with the reason, so the mark
fails as soon as the rewrite fixes it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from column_types import (
    CATEGORICAL_TYPES,
    NULLABLE_TYPES,
    NUMERIC_TYPES,
    SECRET_NUMBER,
    SECRET_TEXT,
    with_column_types,
)

import risk_assets.controls as controls
from conftest import CATEGORICAL, FEATURES
from risk_assets.controls import ControlResult, DecisionCounts
from risk_assets.data import split_frame
from risk_assets.estimator import build_pipeline, categorical_columns

# An all-missing feature is dropped by scikit-learn's imputer, which warns each time it
# fits or transforms; the column types under test include such features on purpose.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipping features without any observed values:UserWarning"
)

TARGET = "risk"
SEED = 0
ROWS = 500  # of the 1,000 German credit rows: enough for every control, fast on 2 cores
ESTIMATOR = "sklearn.linear_model.LogisticRegression"


@dataclass(frozen=True)
class Data:
    """What a gate sees: training rows (also the reference window and the training side
    of skew), judged rows (test split, current batch, serving data), the fitted model."""

    train: pd.DataFrame
    test: pd.DataFrame
    model: Any
    features: list[str]
    numeric: list[str]
    categorical: list[str]

    def judged(self, test: pd.DataFrame) -> Data:
        return replace(self, test=test)


def _build(frame: pd.DataFrame, features: list[str]) -> Data:
    """Split as the pipeline does and fit the spec's kind of model on the training rows."""
    categorical = categorical_columns(frame, features, CATEGORICAL)
    numeric = [c for c in features if c not in categorical]
    split = split_frame(frame, target=TARGET, test_size=0.25, seed=42, stratify=True)
    model = _make_model(numeric, categorical).fit(split.train[features], split.train[TARGET])
    return Data(split.train, split.test, model, features, numeric, categorical)


def _make_model(numeric: list[str], categorical: list[str]) -> Any:
    return build_pipeline(
        class_path=ESTIMATOR, params={"max_iter": 1000}, numeric=numeric, categorical=categorical
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return with_column_types(frame, seed=SEED)


@pytest.fixture(scope="module")
def plain(credit) -> Data:
    """The credit data as shipped: the reference for the clean verdict."""
    return _build(credit.sample(n=ROWS, random_state=SEED), list(FEATURES))


@pytest.fixture(scope="module")
def typed(credit) -> Data:
    """The same rows with a column of every type as extra model features."""
    frame = _typed(credit.sample(n=ROWS, random_state=SEED))
    return _build(frame, [*FEATURES, *NUMERIC_TYPES, *CATEGORICAL_TYPES])


@pytest.fixture(scope="module")
def planted(typed: Data) -> Data:
    """``typed`` with recognisable raw values planted in training and judged rows (the
    model stays the one trained on clean rows, as a gate's would)."""

    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        rows = frame.index[:25]
        frame.loc[rows, "note"] = SECRET_TEXT
        frame.loc[rows[:3], "purpose"] = SECRET_TEXT
        frame["credit_amount"] = frame["credit_amount"].astype(float)
        frame.loc[rows[:2], "credit_amount"] = SECRET_NUMBER
        frame.loc[rows[:2], "self"] = SECRET_NUMBER
        return frame

    return replace(typed, train=plant(typed.train), test=plant(typed.test))


# -- how each control is called (as its gate calls it, with fixed small parameters) -------


def _ranges(data: Data) -> dict[str, tuple[Any, Any]]:
    """Training ranges of the numeric features; ``<NA>`` for a feature without values."""
    return {c: (data.train[c].min(), data.train[c].max()) for c in data.numeric}


def _seen(data: Data, columns: list[str]) -> dict[str, list]:
    return {c: sorted(data.train[c].dropna().unique(), key=str) for c in columns}


def _predict(data: Data) -> np.ndarray:
    return data.model.predict(data.test[data.features])


def _scores(data: Data, frame: pd.DataFrame) -> np.ndarray:
    model = data.model
    column = list(model.classes_).index(1)
    return model.predict_proba(frame[data.features])[:, column]


def _suite(data: Data) -> dict:
    return controls.profile_suite(
        data.train[[TARGET, *data.features]],
        name="contract",
        target=TARGET,
        categorical=data.categorical,
    )


def run_expectations(data: Data) -> ControlResult:
    return controls.run_expectation_suite(data.test[[TARGET, *data.features]], _suite(data))


def run_pii(data: Data) -> ControlResult:
    return controls.scan_pii(data.test, max_share=0.0, sample_size=1000, seed=SEED)


def run_metric_thresholds(data: Data) -> ControlResult:
    metrics = controls.evaluate_classifier(
        data.model, data.test[data.features], data.test[TARGET], positive_label=1
    )
    return controls.meets_metric_thresholds(metrics, {"accuracy": 0.6, "roc_auc": 0.6})


def run_champion_challenger(data: Data) -> ControlResult:
    X, y = data.test[data.features], data.test[TARGET]
    candidate = controls.evaluate_classifier(data.model, X, y, positive_label=1)
    champion = _make_model(data.numeric, data.categorical).set_params(model__C=0.5)
    champion.fit(data.train[data.features], data.train[TARGET])
    scores = controls.evaluate_classifier(champion, X, y, positive_label=1)
    return controls.compare_to_champion(
        metric="roc_auc",
        candidate=candidate.get("roc_auc"),
        champion=scores.get("roc_auc"),
        tolerance=0.05,
        champion_ref="credit_risk/1",
    )


def run_champion_on_unseen_rows(data: Data) -> ControlResult:
    champion = _make_model(data.numeric, data.categorical).set_params(model__C=0.5)
    champion.fit(data.train[data.features], data.train[TARGET])
    return controls.compare_on_unseen_rows(
        data.model,
        champion,
        data.test,
        features=data.features,
        target=TARGET,
        trained_on=[data.train],
        metric="roc_auc",
        tolerance=0.05,
        positive_label=1,
        champion_ref="credit_risk/1",
        min_rows=30,
        n_boot=100,
    )


def run_fairness(data: Data) -> ControlResult:
    return controls.fairness_across(
        data.test[TARGET],
        _predict(data),
        data.test["sex"],
        favourable=1,
        min_ratio=0.8,
        max_equalized_odds_difference=None,
        min_group_size=20,
    )


SLICES = ["housing", "region"]


def run_slices(data: Data) -> ControlResult:
    segments = {c: data.test[c] for c in SLICES if c in data.test.columns}
    return controls.performs_across_slices(
        data.test[TARGET],
        _predict(data),
        segments,
        metric="accuracy",
        min_value=0.5,
        max_gap=0.35,
        min_slice_size=20,
        positive_label=1,
    )


def _budgets(data: Data) -> dict[str, float]:
    budgets = {"credit_amount": 500.0, "duration": 3.0}
    if "dependents" in data.features:
        budgets["dependents"] = 1.0
    return budgets


def run_perturbation(data: Data) -> ControlResult:
    return controls.perturbation_flip_rate(
        data.model,
        data.test[data.features],
        budgets=_budgets(data),
        categorical_moves=["purpose"],
        categories=_seen(data, ["purpose"]),
        max_flip_rate=0.25,
        trials=3,
        sample_size=60,
        seed=SEED,
    )


def run_evasion(data: Data) -> ControlResult:
    return controls.evasion_attack(
        data.model,
        data.test[data.features],
        budgets=_budgets(data),
        train_ranges=_ranges(data),
        categorical_moves=["housing"],
        categories=_seen(data, ["housing"]),
        max_success_rate=0.8,
        sample_size=5,
        max_iter=1,
        max_eval=20,
        init_size=10,
        seed=SEED,
    )


def run_stress(data: Data) -> ControlResult:
    return controls.stress_scenarios(
        data.model,
        data.test[data.features],
        numeric=data.numeric,
        categorical=data.categorical,
        train_ranges=_ranges(data),
        sample_size=40,
        seed=SEED,
    )


def run_membership(data: Data) -> ControlResult:
    return controls.membership_inference_advantage(
        data.model,
        data.train[data.features],
        data.train[TARGET],
        data.test[data.features],
        data.test[TARGET],
        max_advantage=0.25,
        sample_size=100,
        seed=SEED,
    )


def run_explainability(data: Data) -> ControlResult:
    return controls.protected_among_top_features(
        data.model,
        data.test[data.features],
        data.test[TARGET],
        data.test[["sex", "age"]],
        top_k=3,
        proxy_threshold=0.5,
        categorical=data.categorical,
        n_repeats=2,
        sample_size=200,
        seed=SEED,
    )


def run_label_noise(data: Data) -> ControlResult:
    return controls.label_consistency(
        data.train,
        data.test,
        features=data.features,
        target=TARGET,
        make_model=lambda: _make_model(data.numeric, data.categorical),
        confidence=0.8,
        max_increase=0.15,
        max_conflicting_duplicates=0.05,
        sample_size=1000,
        seed=SEED,
    )


def run_outliers(data: Data) -> ControlResult:
    return controls.outliers_against_reference(
        data.train,
        data.test,
        numeric=data.numeric,
        categorical=data.categorical,
        detector="isolation_forest",
        quantile=0.05,
        max_increase=0.1,
        sample_size=1000,
        seed=SEED,
    )


def run_skew(data: Data) -> ControlResult:
    return controls.training_serving_skew(
        data.train,
        data.test,
        numeric=data.numeric,
        categorical=data.categorical,
        max_out_of_range_share=0.1,
        max_unseen_share=0.1,
        min_expected=5.0,
    )


def run_drift(data: Data) -> ControlResult:
    return controls.feature_drift(
        data.train,
        data.test,
        numeric=data.numeric,
        categorical=data.categorical,
        alpha=0.01,
        min_psi=0.1,
        max_drifted=0,
        sample_size=1000,
        seed=SEED,
    )


def run_prediction_drift(data: Data) -> ControlResult:
    return controls.prediction_drift(
        _scores(data, data.train), _scores(data, data.test), alpha=0.01, min_psi=0.1, seed=SEED
    )


def _decisions(partition: str, predictions: np.ndarray) -> DecisionCounts:
    return DecisionCounts(partition, len(predictions), int((predictions == 1).sum()))


def run_decision_volume(data: Data) -> ControlResult:
    # the history: the model's decisions on the training rows, in batches of the test's size
    size = max(len(data.test), 1)
    train_pred = data.model.predict(data.train[data.features])
    history = [
        _decisions(f"2024-0{i + 1}", train_pred[i * size : (i + 1) * size])
        for i in range(min(3, len(train_pred) // size))
    ]
    return controls.decision_volume(
        _decisions("2024-09", _predict(data)),
        history,
        max_rate_change=0.2,
        max_volume_ratio=2.0,
        min_history=2,
    )


def run_outcome_performance(data: Data) -> ControlResult:
    return controls.outcome_performance(
        data.test[TARGET],
        _predict(data),
        _scores(data, data.test),
        thresholds={"accuracy": 0.6, "roc_auc": 0.6},
        positive_label=1,
        min_rows=30,
    )


# -- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One control in the contract suite.

    Attributes:
        control: the exported function the case runs.
        run: runs it on a :class:`Data` with fixed parameters.
        missing: the column made entirely missing in the judged rows for check 2.
        decides_without: why the control rightly decides without ``missing`` (None: it
            must fail closed).
        xfail: per check name, why the control breaks it today (strict xfail).
    """

    control: Callable[..., ControlResult]
    run: Callable[[Data], ControlResult]
    missing: str
    decides_without: str | None = None
    xfail: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.control.__name__


CASES = [
    Case(controls.run_expectation_suite, run_expectations, missing="credit_amount"),
    Case(
        controls.scan_pii,
        run_pii,
        missing="note",
        decides_without="a column without values holds no PII: the scan passes",
    ),
    Case(controls.meets_metric_thresholds, run_metric_thresholds, missing=TARGET),
    Case(controls.compare_to_champion, run_champion_challenger, missing=TARGET),
    Case(controls.compare_on_unseen_rows, run_champion_on_unseen_rows, missing=TARGET),
    Case(controls.fairness_across, run_fairness, missing="sex"),
    Case(controls.performs_across_slices, run_slices, missing="housing"),
    Case(controls.perturbation_flip_rate, run_perturbation, missing="credit_amount"),
    Case(controls.evasion_attack, run_evasion, missing="credit_amount"),
    Case(
        controls.stress_scenarios,
        run_stress,
        missing="credit_amount",
        decides_without="every scenario writes its own values, and the column's missing "
        "scenario is this very input: the verdict on the model's outputs stands",
    ),
    Case(controls.membership_inference_advantage, run_membership, missing="credit_amount"),
    Case(controls.protected_among_top_features, run_explainability, missing="sex"),
    Case(controls.label_consistency, run_label_noise, missing="credit_amount"),
    Case(controls.outliers_against_reference, run_outliers, missing="credit_amount"),
    Case(controls.training_serving_skew, run_skew, missing="credit_amount"),
    Case(controls.feature_drift, run_drift, missing="credit_amount"),
    Case(
        controls.prediction_drift,
        run_prediction_drift,
        missing="credit_amount",
        decides_without="it judges the model's scores, which the model still gives (it "
        "imputes the feature); a lost feature is the input gates' finding",
    ),
    Case(
        controls.decision_volume,
        run_decision_volume,
        missing="credit_amount",
        decides_without="it judges the volume of decisions the model made, and the model "
        "still decides (it imputes the feature)",
    ),
    Case(controls.outcome_performance, run_outcome_performance, missing=TARGET),
]


def _params(check: str) -> list[Any]:
    return [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail[check])]
            if check in case.xfail
            else [],
        )
        for case in CASES
    ]


def _verdict(case: Case, data: Data) -> ControlResult:
    """The gate's result: the control's own, or the failed gate the Dagster layer makes
    of an exception (``evaluate_gate`` runs every control through ``_run_control``)."""
    from risk_assets.dagster._checks import run_control as _run_control

    return _run_control(lambda: case.run(data), logging.getLogger(__name__), case.name)


def _evidence(result: ControlResult) -> str:
    return json.dumps([result.to_dict(), list(result.table)], default=str, sort_keys=True)


def _undecided(result: ControlResult) -> bool:
    return result.summary.startswith("could not decide")


def test_every_exported_control_has_a_case():
    exported = {
        name
        for name in controls.__all__
        if inspect.isfunction(fn := getattr(controls, name))
        and inspect.signature(fn).return_annotation in ("ControlResult", ControlResult)
    }
    assert exported == {case.name for case in CASES}


@pytest.mark.parametrize("case", _params("determinism"))
def test_same_seed_same_verdict(case: Case, typed: Data):
    first, second = case.run(typed), case.run(typed)
    assert _evidence(first) == _evidence(second)


@pytest.mark.parametrize("case", _params("empty frame"))
def test_fails_closed_on_an_empty_frame(case: Case, typed: Data):
    result = _verdict(case, typed.judged(typed.test.iloc[:0]))
    assert not result.passed, result.summary
    assert result.summary


@pytest.mark.parametrize("case", _params("missing column"))
def test_fails_closed_on_an_entirely_missing_column(case: Case, typed: Data):
    test = typed.test.copy()
    test[case.missing] = test[case.missing].where(np.zeros(len(test), dtype=bool))
    result = _verdict(case, typed.judged(test))
    if case.decides_without is None:
        assert not result.passed, result.summary
        assert result.summary
    else:  # documented: the control decides, and says what it decided
        assert not _undecided(result), (case.decides_without, result.summary)


@pytest.mark.parametrize("case", _params("column types"))
def test_every_column_type_and_name_gives_the_clean_verdict(case: Case, plain: Data, typed: Data):
    assert {"self", *NULLABLE_TYPES} <= set(typed.test.columns)
    clean = case.run(plain)
    result = case.run(typed)  # raises nothing
    assert not _undecided(result), result.summary
    assert result.passed == clean.passed, (clean.summary, result.summary)


@pytest.mark.parametrize("case", _params("raw values"))
def test_no_raw_value_in_evidence(case: Case, planted: Data):
    result = _verdict(case, planted)
    evidence = _evidence(result) + result.summary
    for raw in (SECRET_TEXT, "987654", "9.87654e"):
        assert raw not in evidence, f"{raw!r} in the evidence of {case.name}"
