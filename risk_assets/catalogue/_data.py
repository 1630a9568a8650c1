"""Data gates: checks on ``validated_data`` (the snapshot a model would be trained on)."""

from __future__ import annotations

from typing import Any

from risk_assets.catalogue import params as p
from risk_assets.catalogue._entry import Check, DefaultRisk, Entry, Problem
from risk_assets.controls._plots import drift_figure
from risk_assets.controls._result import ControlResult

__all__ = ["DATA_GATES", "drift_against"]


def _expectations(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._expectations import load_suite, run_expectation_suite
    from risk_assets.data import file_sha256

    path = inp.suite_path
    inp.suite_sha256 = file_sha256(path) if path.is_file() else None
    inp.extra["risk/suite_sha256"] = inp.suite_sha256 or "unreadable"
    return run_expectation_suite(
        inp.frame,
        load_suite(path),
        source=str(path),
        sample_size=check.params.sample_size,
        seed=inp.spec.split.seed,
    )


def _pii(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._pii import scan_pii

    # the raw snapshot: every column the spec declares, features or not
    result = scan_pii(
        inp.raw,
        allowed=inp.spec.pii_allowed,
        max_share=check.params.max_share,
        sample_size=check.params.sample_size,
        seed=inp.spec.split.seed,
    )
    # the columns the spec does not declare were scanned before they were dropped (their
    # values are never stored): their finding counts as much as the stored columns'
    undeclared = (getattr(inp, "validated", None) or {}).get("undeclared") or {}
    if not undeclared.get("columns"):
        return result
    return _with_undeclared(result, undeclared)


def _with_undeclared(result: ControlResult, undeclared: dict) -> ControlResult:
    """One verdict from the scan of the stored columns and the recorded scan of the columns
    that were not stored; a column not stored and never scanned fails closed."""
    columns = undeclared["columns"]
    where = f"{len(columns)} column(s) the spec does not declare (scanned, not stored)"
    found = undeclared.get("pii")
    if found is None:
        return ControlResult.undecided(f"{where} were not scanned for PII")
    other = ControlResult(
        passed=found["passed"],
        value=found["value"],
        threshold=found["threshold"],
        summary=found["summary"],
        figures={k: v for k, v in (found.get("figures") or {}).items() if v is not None},
        table=found.get("table") or (),
        sample_size=found.get("sample_size"),
    )
    if result.passed and other.passed:
        summary = f"{result.summary}; none in {where}"
    else:
        failed = [] if result.passed else [result.summary]
        if not other.passed:
            failed.append(f"{other.summary} in {where}")
        summary = "; ".join(failed)
    values = [v for v in (result.value, other.value) if v is not None]
    undecided = not values and not (result.passed and other.passed)
    figures = {
        "columns_with_pii": result.figures.get("columns_with_pii", 0.0)
        + other.figures.get("columns_with_pii", 0.0),
        "max_share": max(values, default=0.0),
    }
    return ControlResult(
        passed=result.passed and other.passed,
        value=None if undecided else max(values, default=0.0),
        threshold=result.threshold,
        summary=summary,
        figures=figures,
        table=[*result.table, *other.table],
        sample_size=max(n for n in (result.sample_size, other.sample_size, 0) if n is not None),
    )


def drift_against(
    params: Any, reference: Any, current: Any, features: list, categorical: list, *, seed: int
) -> ControlResult:
    """The drift control of a policy on two frames (training gate and monitoring alike)."""
    from risk_assets.controls._drift import feature_drift

    return feature_drift(
        reference,
        current,
        numeric=[c for c in features if c not in categorical],
        categorical=categorical,
        alpha=params.alpha,
        min_numeric_distance=params.min_numeric_distance,
        min_category_distance=params.min_category_distance,
        max_drifted=params.max_drifted,
        sample_size=params.sample_size,
        seed=seed,
        backend=params.backend,
        multivariate=params.multivariate,
        min_multivariate_distance=params.min_multivariate_distance,
    )


def _drift(check: Check, inp: Any) -> ControlResult:
    reference = inp.reference
    if reference is None:
        return ControlResult(
            passed=True,
            value=None,
            threshold=float(check.params.max_drifted),
            summary="no registered model yet: no reference window, gate passes",
        )
    return drift_against(
        check.params, reference, inp.frame, inp.features, inp.categorical, seed=inp.spec.split.seed
    )


def _label_noise(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._poisoning import label_consistency
    from risk_assets.estimator import build_pipeline

    spec, features, categorical = inp.spec, inp.features, inp.categorical

    def make_model():
        return build_pipeline(
            class_path=spec.estimator.class_path,
            params=spec.estimator.params,
            numeric=[c for c in features if c not in categorical],
            categorical=categorical,
        )

    params = check.params
    return label_consistency(
        inp.reference,
        inp.frame,
        features=features,
        target=inp.target,
        make_model=make_model,
        confidence=params.confidence,
        max_increase=params.max_increase,
        max_conflicting_duplicates=params.max_conflicting_duplicates,
        sample_size=params.sample_size,
        seed=spec.split.seed,
    )


def _outliers(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._poisoning import outliers_against_reference

    params = check.params
    return outliers_against_reference(
        inp.reference,
        inp.frame,
        numeric=[c for c in inp.features if c not in inp.categorical],
        categorical=inp.categorical,
        detector=params.detector,
        quantile=params.quantile,
        max_increase=params.max_increase,
        sample_size=params.sample_size,
        seed=inp.spec.split.seed,
    )


def _skew(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._skew import training_serving_skew
    from risk_assets.data import frame_sha256

    serving = inp.serving()
    inp.extra["risk/serving_sha256"] = frame_sha256(serving)
    params = check.params
    return training_serving_skew(
        inp.frame,
        serving,
        numeric=[c for c in inp.features if c not in inp.categorical],
        categorical=inp.categorical,
        max_out_of_range_share=params.max_out_of_range_share,
        max_unseen_share=params.max_unseen_share,
        min_expected=params.min_expected,
    )


def _skew_requires(params: Any, spec: Any, kinds: Any) -> list[Problem]:
    if spec.serving_source is None:
        return [
            Problem(
                "spec:serving_source",
                "the skew control compares the serving data with the training data; name "
                "it under serving_source in the spec",
            )
        ]
    return []


DATA_GATES = (
    Entry(
        name="expectations",
        params=p.ExpectationsParams,
        asset="validated_data",
        check="meets_expectations",
        description="Great Expectations suite on the training data",
        run=_expectations,
        uses_suite=True,
        default_risk=DefaultRisk(
            "DQ-001",
            "Invalid or malformed training data",
            "data_quality",
            "Missing columns, out-of-range values, unknown categories or unexpected nulls.",
            3,
            4,
            "data-engineering",
            lambda ctx: {},
        ),
    ),
    Entry(
        name="pii",
        params=p.PiiParams,
        asset="validated_data",
        check="pii_free",
        description="no PII the spec does not allow, in values or column names",
        run=_pii,
        default_risk=DefaultRisk(
            "PRIV-001",
            "Personal data in training data",
            "data_privacy",
            "PII the spec does not declare (pii_allowed) in values or column names.",
            2,
            5,
            "data-protection",
            lambda ctx: {"max_share": 0.0, "sample_size": 10000},
        ),
    ),
    Entry(
        name="drift",
        params=p.DriftParams,
        asset="validated_data",
        check="no_feature_drift",
        description="features against the champion's training data (KS, chi-squared, Holm, PSI)",
        run=_drift,
        plot=drift_figure,
        default_risk=DefaultRisk(
            "DRIFT-001",
            "Training data drifted from the data of the model in production",
            "drift",
            "Feature distributions against the champion's training data.",
            3,
            3,
            "data-engineering",
            lambda ctx: {
                "backend": "scipy",
                "alpha": 0.01,
                "min_numeric_distance": 0.05,
                "min_category_distance": 0.05,
                "max_drifted": 0,
                "sample_size": 20000,
            },
        ),
    ),
    Entry(
        name="label_noise",
        params=p.LabelNoiseParams,
        asset="validated_data",
        check="labels_consistent",
        description="labels against the reference window; duplicates with conflicting labels",
        run=_label_noise,
        default_risk=DefaultRisk(
            "INT-001",
            "Poisoned or noisy labels",
            "data_integrity",
            "New labels must not contradict the reference window more than it contradicts "
            "itself; duplicates with different labels.",
            2,
            4,
            "data-engineering",
            lambda ctx: {
                "confidence": 0.7,
                "max_increase": 0.03,
                "max_conflicting_duplicates": 0.01,
                "sample_size": 20000,
            },
        ),
    ),
    Entry(
        name="outliers",
        params=p.OutliersParams,
        asset="validated_data",
        check="no_outliers_against_reference",
        description="rows the reference window calls outliers (local outlier factor or "
        "isolation forest)",
        run=_outliers,
        default_risk=DefaultRisk(
            "INT-002",
            "Injected rows unlike the reference (poisoning)",
            "data_integrity",
            "Rows the reference window's local outlier factor calls outliers.",
            2,
            4,
            "data-engineering",
            # 0.02: clean re-samples of German credit and breast cancer stay within 1.6
            # points of the 1 % expected; 5 % in-range synthetic rows add 2.4 or more
            lambda ctx: {
                "detector": "local_outlier_factor",
                "quantile": 0.01,
                "max_increase": 0.02,
            },
        ),
    ),
    Entry(
        name="skew",
        params=p.SkewParams,
        asset="validated_data",
        check="no_training_serving_skew",
        description="serving features against training: schema, ranges, unseen and vanished "
        "categories",
        run=_skew,
        requires=_skew_requires,
        default_risk=DefaultRisk(
            "SKEW-001",
            "The model will see other data at scoring than in training",
            "data_quality",
            "The spec's serving_source against the training data: missing features, "
            "values out of range, unseen categories.",
            3,
            3,
            "data-engineering",
            lambda ctx: (
                {"max_out_of_range_share": 0.01, "max_unseen_share": 0.01} if ctx.serving else None
            ),
        ),
    ),
)
