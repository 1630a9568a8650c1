"""An asset backfill launched as the Dagster UI launches one, run by the daemons' own code.

The UI's "Materialize" over several partitions of selected assets stores a
``PartitionBackfill`` made by ``PartitionBackfill.from_asset_partitions`` (the GraphQL
``launchPartitionBackfill`` with ``assetSelection`` and ``partitionNames``). The backfill
daemon then requests runs for it (``execute_backfill_iteration``), the run queue daemon
launches them through the instance's run launcher (the ``DefaultRunLauncher``: each run in
a subprocess of the code location's gRPC server) and later iterations of the backfill
daemon give the backfill its final status.

Here that machinery runs on a fresh state (the ``dagster.yaml`` risk-assets writes) over
every month of a four-month ``credit_risk_monthly`` in which the last month carries an
undeclared e-mail column, so its ``pii_free`` gate blocks it. The last month is the one
blocked so that no other month's training window (six months) holds it; the partitions
end there because a backfill of the first months of a longer range also targets the
later months whose window holds them (``AssetBackfillData.from_asset_partitions`` follows
the window's partition mapping downstream), and their data was never materialised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest
from test_retraining import _monthly_copy

from conftest import using_state

PIPELINE = "credit_risk_monthly"
TRAINING_ASSETS = (
    "raw_snapshot",
    "validated_data",
    "train_test_split",
    "candidate_model",
    "registered_model",
)
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04"]
BLOCKED = "2025-04"
#: With these months' data the model gates block the windows ending 2025-01 (fairness) and
#: 2025-02 (metric thresholds), as a CLI backfill of the shipped spec shows; 2025-03 passes.
MODEL_BLOCKED = ["2025-01", "2025-02"]
REGISTERED = ["2025-03"]
TIMEOUT_S = 240


def _key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([PIPELINE, asset])


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _add_email_column(folder, month: str) -> None:
    path = folder / f"applications_{month}.csv"
    frame = pd.read_csv(path)
    frame["contact"] = [f"applicant{i}@example.org" for i in range(len(frame))]
    frame.to_csv(path, index=False)


def _drive(workspace, instance: dg.DagsterInstance, backfill_id: str, logger: logging.Logger):
    """One iteration of the backfill daemon, then one of the run queue daemon, until the
    backfill has a terminal status (at most TIMEOUT_S); returns the errors they yielded and
    the number of iterations."""
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    errors, iterations = [], 0
    deadline = time.monotonic() + TIMEOUT_S
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as queue:
        while time.monotonic() < deadline:
            iterations += 1
            errors += [e for e in execute_backfill_iteration(workspace, logger) if e]
            errors += [e for e in queue.run_iteration(workspace) if e]
            if instance.get_backfill(backfill_id).status in BULK_ACTION_TERMINAL_STATUSES:
                break
            time.sleep(1)
    return errors, iterations


@pytest.fixture(scope="module")
def daemon_backfill(tmp_path_factory: pytest.TempPathFactory):
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.storage.tags import BACKFILL_ID_TAG
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._time import get_current_timestamp

    from risk_assets.settings import current_settings, ensure_embedded_dagster_home

    tmp = tmp_path_factory.mktemp("daemon_backfill")
    spec = _monthly_copy(
        tmp, partitions={"scheme": "monthly", "start": MONTHS[0], "end": MONTHS[-1]}
    )
    _add_email_column(spec.parent / "data" / "monthly", BLOCKED)
    code = tmp / "definitions.py"
    code.write_text(
        "from risk_assets.dagster import build_definitions\n\n"
        f"defs = build_definitions([{str(spec)!r}])\n"
    )
    handler = _Messages()
    logger = logging.getLogger(f"{__name__}.daemon")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        with using_state(tmp / "state"):
            # the instance risk-assets writes: the default run queue and run launcher, and
            # one slot per registry pool
            ensure_embedded_dagster_home(current_settings())
            with dg.DagsterInstance.get() as instance:
                target = PythonFileTarget(
                    python_file=str(code),
                    attribute=None,
                    working_directory=str(tmp),
                    location_name="risk_assets_pipelines",
                )
                with create_test_daemon_workspace_context(target, instance) as workspace:
                    context = workspace.create_request_context()
                    (entry,) = context.get_code_location_entries().values()
                    assert entry.code_location, entry.load_error
                    # what the UI's launchPartitionBackfill stores for a pure asset backfill
                    backfill = PartitionBackfill.from_asset_partitions(
                        backfill_id=make_new_backfill_id(),
                        asset_graph=context.asset_graph,
                        partition_names=MONTHS,
                        asset_selection=[_key(a) for a in TRAINING_ASSETS],
                        backfill_timestamp=get_current_timestamp(),
                        tags={},
                        dynamic_partitions_store=instance,
                        all_partitions=False,
                        title=None,
                        description=None,
                        run_config=None,
                    )
                    instance.add_backfill(backfill)
                    errors, iterations = _drive(workspace, instance, backfill.backfill_id, logger)
                    final = instance.get_backfill(backfill.backfill_id)
                    data = final.get_asset_backfill_data(
                        workspace.create_request_context().asset_graph
                    )
                    runs = instance.get_runs(
                        dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id})
                    )
                    yield SimpleNamespace(
                        instance=instance,
                        backfill=final,
                        data=data,
                        runs=runs,
                        errors=errors,
                        iterations=iterations,
                        log=handler.messages,
                    )
    finally:
        logger.removeHandler(handler)


def _materialised(instance: dg.DagsterInstance, asset: str) -> list[str]:
    return sorted(instance.get_materialized_partitions(_key(asset)))


def _resolved(instance: dg.DagsterInstance, check: dg.AssetCheckKey, partition: str):
    """What the Dagster UI shows for a check of one partition (its latest execution)."""
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.storage.event_log.base import PartitionKeyFilter

    (record,) = instance.event_log_storage.get_asset_check_execution_history(
        check, limit=1, partition_filter=PartitionKeyFilter(key=partition)
    )
    return asyncio.run(record.resolve_status(LoadingContextForTest(instance)))


def _by_partition(runs, asset: str) -> dict:
    return {
        run.tags["dagster/partition"]: run for run in runs if _key(asset) in run.asset_selection
    }


def test_a_daemon_backfill_runs_every_month_and_every_run_succeeds(daemon_backfill):
    """The runs the daemon launched all succeed; the blocked month and the months the
    model gates blocked have no registered model, and the gate that blocked reads Failed."""
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionResolvedStatus as Status,
    )

    from risk_assets.dagster._blocking import BLOCKED_BY_TAG, VERDICT_TAG

    b = daemon_backfill
    assert not b.errors, b.errors
    # the daemon gave the backfill a final status (not FAILED: that is a daemon error)
    assert b.backfill.status in (
        BulkActionStatus.COMPLETED_SUCCESS,
        BulkActionStatus.COMPLETED_FAILED,
    ), (b.backfill.status, b.backfill.error, b.iterations)
    # its target is the five training assets of the four months, nothing later
    for asset in TRAINING_ASSETS:
        subset = b.data.target_subset.get_partitions_subset(_key(asset))
        assert sorted(subset.get_partition_keys()) == MONTHS, asset

    # one run per month for the data (raw snapshot, validated data and its gates), then
    # one per month for the window's split, the candidate and its registration
    data_runs = _by_partition(b.runs, "validated_data")
    training_runs = _by_partition(b.runs, "registered_model")
    assert sorted(data_runs) == MONTHS and sorted(training_runs) == MONTHS
    assert len(b.runs) == 2 * len(MONTHS)
    statuses = {run.run_id: run.status for run in b.runs}
    assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, statuses

    instance = b.instance
    assert _materialised(instance, "raw_snapshot") == MONTHS
    assert _materialised(instance, "validated_data") == MONTHS
    clean = [m for m in MONTHS if m != BLOCKED]
    # the blocked month's split withheld itself, so nothing after it was built
    assert _materialised(instance, "train_test_split") == clean
    assert _materialised(instance, "candidate_model") == clean
    assert _materialised(instance, "registered_model") == REGISTERED

    pii = dg.AssetCheckKey(_key("validated_data"), "pii_free")
    assert _resolved(instance, pii, BLOCKED) == Status.FAILED
    for month in clean:
        assert _resolved(instance, pii, month) == Status.SUCCEEDED, month

    blocked = training_runs[BLOCKED].tags
    assert blocked[VERDICT_TAG] == "blocked"
    assert blocked[BLOCKED_BY_TAG].startswith(f"validated_data of {BLOCKED}: ")
    assert "pii_free [PRIV-001] failed" in blocked[BLOCKED_BY_TAG]
    # the months before it were judged by their model gates: some blocked, some registered
    for month in MODEL_BLOCKED:
        tags = training_runs[month].tags
        assert tags[VERDICT_TAG] == "blocked", month
        assert tags[BLOCKED_BY_TAG].startswith(f"candidate_model of {month}: "), tags
    for month in REGISTERED:
        assert VERDICT_TAG not in training_runs[month].tags, month


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Dagster marks a targeted asset partition that a successful run did not "
        "materialise as failed: in dagster/_core/execution/asset_backfill.py, "
        "execute_asset_backfill_iteration calls _backfill_is_stalled() once every run of the "
        "backfill has ended (backfill_runs_are_complete) and an iteration saw no progress; "
        "the partitions without a materialization status are then added to "
        "failed_and_downstream_subset and the backfill is set to COMPLETED_FAILED (the UI "
        "shows 'Failed'). AssetBackfillData has no state for an output withheld on purpose "
        "(output_required=False), so every withheld train_test_split/registered_model "
        "partition, whether blocked by a data gate or a model gate, fails the backfill."
    ),
)
def test_a_daemon_backfill_with_a_blocked_month_completes(daemon_backfill):
    from dagster._core.execution.backfill import BulkActionStatus

    b = daemon_backfill
    failed = b.data.failed_and_downstream_subset.partitions_subsets_by_asset_key
    marked_failed = {key.path[-1]: sorted(s.get_partition_keys()) for key, s in failed.items()}
    said = [m for m in b.log if "Marking them as failed" in m]
    assert marked_failed == {}, (marked_failed, said)
    assert b.backfill.status == BulkActionStatus.COMPLETED_SUCCESS, b.backfill.status
