"""A blocked gate is a verdict, not a crash: the Dagster run of a blocked pipeline ends in
success, the failed gate reads as a failed (blocking) check, the asset after the gated one
withholds itself naming the gate, and every check planned after it reads as skipped (not
"Execution failed"). The CLI says the same, without a stack trace."""

from __future__ import annotations

import asyncio

import dagster as dg
import pytest

from conftest import (
    make_pipeline,
    mlflow_client,
    registered_versions,
    run_cli,
    state_env,
    using_state,
)

PIPELINE = "credit_risk"


def _key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([PIPELINE, asset])


def _resolved(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, run_id: str):
    """What the Dagster UI shows for a check in one run (its resolved status)."""
    from dagster._core.loader import LoadingContextForTest

    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
    (record,) = [r for r in records if r.run_id == run_id]
    return asyncio.run(record.resolve_status(LoadingContextForTest(instance)))


@pytest.fixture(scope="module")
def pii_blocked(tmp_path_factory, credit_frame):
    """The shipped register on data with an undeclared e-mail column, run by the CLI."""
    tmp = tmp_path_factory.mktemp("pii_blocked")
    emails = [f"applicant{i}@example.org" for i in range(len(credit_frame))]
    features = [c for c in credit_frame.columns if c not in ("risk", "sex", "age")] + ["contact"]
    spec = make_pipeline(
        tmp / "p", data=credit_frame.assign(contact=emails), spec={"features": features}
    )
    proc = run_cli("run", str(spec), env=state_env(tmp / "state"), fresh=True)
    return spec, tmp / "state", proc


@pytest.fixture(scope="module")
def credit_frame():
    import pandas as pd

    from conftest import CREDIT_DATA

    return pd.read_csv(CREDIT_DATA)


def test_the_cli_reports_a_block_once_without_a_stack_trace(pii_blocked):
    _, _, proc = pii_blocked
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "DagsterAssetCheckFailedError" not in proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    (pii,) = [line for line in lines if " pii_free " in line]
    assert pii.lstrip().startswith("FAIL")
    # every model gate was not evaluated, and says which gate stopped it
    model_gates = [line for line in lines if " candidate_model " in line]
    assert model_gates
    for line in model_gates:
        assert line.lstrip().startswith("SKIP"), line
        assert "not evaluated: blocked by " in line and "pii_free" in line, line
    (blocked,) = [line for line in lines if line.startswith("BLOCKED by ")]
    assert "pii_free" in blocked


def test_dagster_shows_a_failed_blocking_gate_and_skipped_checks_after_it(pii_blocked):
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionResolvedStatus as Status,
    )

    from risk_assets.dagster import build_definitions
    from risk_assets.dagster._blocking import BLOCKED_BY_TAG, VERDICT_TAG

    spec, state, _ = pii_blocked
    with using_state(state):
        instance = dg.DagsterInstance.get()
        (run,) = instance.get_runs()
        # the run ended in success: a blocked pipeline is a verdict, not a crash
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[VERDICT_TAG] == "blocked"
        assert "pii_free [PRIV-001] failed" in run.tags[BLOCKED_BY_TAG]
        events = [r.event_log_entry for r in instance.get_records_for_run(run.run_id).records]
        assert not [e for e in events if e.is_dagster_event and e.dagster_event.is_step_failure]

        pii = dg.AssetCheckKey(_key("validated_data"), "pii_free")
        assert _resolved(instance, pii, run.run_id) == Status.FAILED
        (latest,) = instance.event_log_storage.get_asset_check_execution_history(pii, limit=1)
        evaluation = latest.event.dagster_event.event_specific_data
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR and not evaluation.passed
        assert evaluation.target_materialization_data is not None  # on this run's data
        # the check is still a blocking check where the UI reads it: its definition
        defs = build_definitions([spec])
        graph = defs.resolve_asset_graph()
        assert graph.get_check_spec(pii).blocking

        # every check after the withheld asset reads as skipped, none as an execution failure
        model_checks = [k for k in graph.asset_check_keys if k.asset_key == _key("candidate_model")]
        assert model_checks
        for check_key in model_checks:
            assert _resolved(instance, check_key, run.run_id) == Status.SKIPPED, check_key

        # the asset after the gated one withheld itself and says why, where Dagster shows it
        for asset in ("train_test_split", "candidate_model", "registered_model"):
            assert instance.get_latest_materialization_event(_key(asset)) is None, asset
        observation = instance.fetch_observations(_key("train_test_split"), limit=1).records[0]
        obs = observation.asset_observation
        assert obs.description.startswith("Not built: blocked by validated_data: ")
        assert "pii_free [PRIV-001] failed" in obs.description
        assert registered_versions(mlflow_client()) == []


def test_a_gate_without_a_verdict_on_the_current_data_blocks(state, tmp_path):
    """Fail closed: after the validated data is materialised again without its gates, the
    split will not build on it until the gates have judged it."""
    from risk_assets.dagster import build_definitions

    spec = make_pipeline(tmp_path / "p")
    data = [_key("raw_snapshot"), _key("validated_data")]
    ungated = dg.define_asset_job(
        "data_without_gates", selection=dg.AssetSelection.assets(*data).without_checks()
    )
    defs = dg.Definitions.merge(build_definitions([spec]), dg.Definitions(jobs=[ungated]))
    instance = dg.DagsterInstance.get()
    split = [_key("train_test_split")]
    gated = defs.resolve_job_def(f"{PIPELINE}_job")

    first = gated.execute_in_process(instance=instance, asset_selection=[*data, *split])
    assert first.success
    assert {e.check_name for e in first.get_asset_check_evaluations()} >= {"pii_free"}
    assert [m.asset_key for m in first.get_asset_materialization_events()][-1] == split[0]

    again = defs.resolve_job_def("data_without_gates").execute_in_process(instance=instance)
    assert again.success and not again.get_asset_check_evaluations()
    result = gated.execute_in_process(instance=instance, asset_selection=split)
    assert result.success and not result.get_asset_materialization_events()
    (observation,) = result.get_asset_observation_events()
    described = observation.asset_observation_data.asset_observation.description
    assert "pii_free [PRIV-001] has no verdict on the current validated_data" in described
