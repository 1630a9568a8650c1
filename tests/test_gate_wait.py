"""A gate still running in another run is waited for, not taken as missing.

A backfill launched from the UI requests a month's training run as soon as that month's
``validated_data`` is materialised, while the data run's gates may still be running. The
training run's ``train_test_split`` must then wait for those verdicts instead of
withholding itself for "no verdict". Here the other run and its events are written to a
real Dagster instance as Dagster's executor writes them: the materialisation, the checks
it planned, later their evaluations."""

from __future__ import annotations

import threading
import time
import uuid

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEvent, DagsterEventType

from conftest import make_pipeline, using_state
from risk_assets.catalogue import checks_of
from risk_assets.dagster._blocking import blocked_by
from risk_assets.pipeline import load_pipeline

ASSET = "validated_data"


@pytest.fixture
def gated(tmp_path):
    with using_state(tmp_path / "state"):
        pipeline = load_pipeline(make_pipeline(tmp_path / "p"))
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            spec = pipeline.spec.spec
            key = dg.AssetKey([spec.name, ASSET])
            gates = [
                c.name
                for c in checks_of(
                    pipeline.policy.policy, spec.protected_attributes, assets=(ASSET,)
                )
                if c.blocking
            ]
            yield pipeline, instance, key, gates


def _other_run(instance, key, gates, *, status=dg.DagsterRunStatus.STARTED) -> tuple[str, int]:
    """A run in progress that materialised ``key`` and planned its gates; returns its id and
    the materialisation's storage id."""
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="data_job", run_id=run_id, status=status))
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    storage_id = instance.fetch_materializations(key, limit=1).records[0].storage_id
    for gate in gates:
        instance.report_dagster_event(
            DagsterEvent(
                event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
                job_name="data_job",
                event_specific_data=AssetCheckEvaluationPlanned(asset_key=key, check_name=gate),
            ),
            run_id=run_id,
        )
    return run_id, storage_id


def _evaluate(instance, key, gates, run_id, storage_id, passed: dict[str, bool]) -> None:
    target = AssetCheckEvaluationTargetMaterializationData(
        storage_id=storage_id, run_id=run_id, timestamp=time.time()
    )
    for gate in gates:
        instance.report_dagster_event(
            DagsterEvent(
                event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                job_name="data_job",
                event_specific_data=dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=gate,
                    passed=passed.get(gate, True),
                    target_materialization_data=target,
                ),
            ),
            run_id=run_id,
        )


def test_a_gate_running_in_another_run_is_waited_for(gated):
    pipeline, instance, key, gates = gated
    run_id, storage_id = _other_run(instance, key, gates)
    later = threading.Timer(
        2.5, _evaluate, args=(instance, key, gates, run_id, storage_id, {gates[0]: False})
    )
    later.start()
    started = time.monotonic()
    try:
        reasons = blocked_by(instance, pipeline, ASSET, [None], run_id="training", wait_seconds=60)
    finally:
        later.join()
    assert time.monotonic() - started >= 2.0  # it waited for the verdicts
    # and then judged them: the one gate that failed blocks, nothing is "missing"
    assert reasons == [f"{ASSET}: {gates[0]} [{_risk(pipeline, gates[0])}] failed"], reasons


def test_the_wait_ends_at_its_limit_and_then_fails_closed(gated):
    pipeline, instance, key, gates = gated
    _other_run(instance, key, gates)
    started = time.monotonic()
    reasons = blocked_by(instance, pipeline, ASSET, [None], run_id="training", wait_seconds=1)
    assert 1.0 <= time.monotonic() - started < 30
    assert reasons and all("has no verdict on the current" in r for r in reasons), reasons


def test_a_gate_planned_by_a_run_that_ended_is_not_waited_for(gated):
    pipeline, instance, key, gates = gated
    _other_run(instance, key, gates, status=dg.DagsterRunStatus.FAILURE)
    started = time.monotonic()
    reasons = blocked_by(instance, pipeline, ASSET, [None], run_id="training", wait_seconds=60)
    assert time.monotonic() - started < 10
    assert reasons and "has no verdict on the current" in reasons[0], reasons


def test_the_run_itself_is_not_waited_for(gated):
    """A check the current run planned and did not evaluate (it was not selected, or a
    step before it failed) is missing, not pending: the run cannot wait for itself."""
    pipeline, instance, key, gates = gated
    run_id, _ = _other_run(instance, key, gates)
    started = time.monotonic()
    reasons = blocked_by(instance, pipeline, ASSET, [None], run_id=run_id, wait_seconds=60)
    assert time.monotonic() - started < 10
    assert reasons


def _risk(pipeline, gate: str) -> str:
    spec = pipeline.spec.spec
    (check,) = [
        c
        for c in checks_of(pipeline.policy.policy, spec.protected_attributes, assets=(ASSET,))
        if c.name == gate
    ]
    return check.risk.id
