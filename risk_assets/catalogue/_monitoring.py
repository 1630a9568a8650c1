"""Monitoring checks: on ``scored_batch`` (a batch the champion scored) and
``batch_outcomes`` (the batch joined with its delayed labels). Partitioned pipelines only."""

from __future__ import annotations

from typing import Any

from risk_assets.catalogue import params as p
from risk_assets.catalogue._data import drift_against
from risk_assets.catalogue._entry import Check, Entry, Problem
from risk_assets.controls._result import ControlResult

__all__ = ["MONITORING_CHECKS", "batch_suite"]


def _input_drift(check: Check, inp: Any) -> ControlResult:
    return drift_against(
        check.params,
        inp.reference,
        inp.frame,
        inp.features,
        inp.categorical,
        seed=inp.spec.split.seed,
    )


def _prediction_drift(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._monitoring import prediction_drift
    from risk_assets.labels import positive_scores

    params = check.params
    return prediction_drift(
        positive_scores(inp.model, inp.reference[inp.features], inp.spec),
        inp.predictions["score"].to_numpy(),
        alpha=params.alpha,
        min_psi=params.min_psi,
        sample_size=params.sample_size,
        seed=inp.spec.split.seed,
    )


def _decision_volume(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._monitoring import decision_volume

    params = check.params
    history = inp.earlier_decisions(params.history)
    inp.extra["risk/history"] = ", ".join(h.partition for h in history) or "none"
    return decision_volume(
        inp.decisions,
        history,
        max_rate_change=params.max_rate_change,
        max_volume_ratio=params.max_volume_ratio,
        min_history=params.min_history,
    )


#: Expectations about a whole training table that do not hold for an incoming batch: a
#: batch has no target column and fewer rows by design.
_TABLE_LEVEL = (
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between",
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
)


def batch_suite(suite: dict[str, Any], *, target: str) -> dict[str, Any]:
    """The training suite as it applies to an incoming batch: without the expectations on
    the target column and on the table's shape."""
    kept = [
        e
        for e in suite["expectations"]
        if e["type"] not in _TABLE_LEVEL and e.get("kwargs", {}).get("column") != target
    ]
    return {**suite, "expectations": kept}


def _batch_expectations(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._expectations import load_suite, run_expectation_suite
    from risk_assets.data import file_sha256

    path = inp.suite_path
    inp.suite_sha256 = file_sha256(path)
    inp.extra["risk/suite_sha256"] = inp.suite_sha256
    suite = batch_suite(load_suite(path), target=inp.spec.target)
    frame = inp.frame
    id_column = inp.spec.source.id_column
    if id_column in frame.columns:
        frame = frame.drop(columns=[id_column])
    return run_expectation_suite(
        frame,
        suite,
        source=f"{path} (batch expectations)",
        sample_size=check.params.sample_size,
        seed=inp.spec.split.seed,
    )


def _outcome_performance(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._monitoring import outcome_performance

    joined = inp.outcomes
    return outcome_performance(
        joined["label"],
        joined["prediction"],
        joined["score"],
        thresholds=check.params.thresholds,
        positive_label=inp.labels.positive,
        min_rows=check.params.min_rows,
    )


def _partitioned(params: Any, spec: Any, kinds: Any) -> list[Problem]:
    if not spec.source.partitioned:
        return [
            Problem(
                "spec:source.folder",
                "monitoring controls score batches; they need a partitioned source (source.folder)",
            )
        ]
    return []


MONITORING_CHECKS = (
    Entry(
        name="input_drift",
        params=p.DriftParams,
        asset="scored_batch",
        check="no_input_drift",
        description="a scored batch's features against the champion's training data",
        run=_input_drift,
        requires=_partitioned,
    ),
    Entry(
        name="prediction_drift",
        params=p.PredictionDriftParams,
        asset="scored_batch",
        check="no_prediction_drift",
        description="the champion's scores on a batch against its scores on its training data "
        "(KS, PSI)",
        run=_prediction_drift,
        requires=_partitioned,
    ),
    Entry(
        name="decision_volume",
        params=p.DecisionVolumeParams,
        asset="scored_batch",
        check="decision_volume_stable",
        description="favourable and unfavourable decision counts against the recent partitions",
        run=_decision_volume,
        requires=_partitioned,
        counts_favourable=True,
    ),
    Entry(
        name="batch_expectations",
        params=p.ExpectationsParams,
        asset="scored_batch",
        check="batch_meets_expectations",
        description="the expectation suite (without the target's expectations) on an incoming "
        "batch",
        run=_batch_expectations,
        uses_suite=True,
        requires=_partitioned,
    ),
    Entry(
        name="outcome_performance",
        params=p.OutcomePerformanceParams,
        asset="batch_outcomes",
        check="performs_on_outcomes",
        description="the champion's metrics on a batch once its delayed labels have arrived",
        run=_outcome_performance,
        requires=_partitioned,
    ),
)
