"""A blocked gate is a verdict, not a crash.

Dagster fails the step, and so the run, of a blocking check that fails with severity
error; every check it had planned downstream then reads "Execution failed", a blocked
partition of a backfill reads as a crash, and the console prints a stack trace. So our
gates enforce the block themselves, and a blocked run ends in success:

- a gate's check keeps Dagster's ``blocking`` flag (the UI says "blocking", and the assets
  downstream wait for it), and a failed gate is recorded as a failed evaluation with
  severity error that does not fail its step (:func:`failed_evaluation`);
- the asset downstream of a gated asset first reads the verdicts of its blocking gates and,
  if one failed or has no verdict on the current materialisation, withholds its output
  (:func:`blocked_by`): it is not materialised, the steps after it are skipped, and the
  checks planned on them read as skipped (not evaluated). It says which gate blocked it in
  its log, in an observation and in the run's tags.

A gate that has no verdict on the current materialisation of the asset it checks (not
selected in the run, or run on an earlier materialisation) counts as not passed: the
block fails closed. A gate that another run in progress has planned and not yet evaluated
(a backfill requests a month's training run as soon as that month's data is materialised,
while the data run's gates still run) is waited for, up to ``RISK_ASSETS_GATE_WAIT_SECONDS``
(default 600); then it counts as not passed.
"""

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg

from risk_assets.dagster._names import asset_key

__all__ = [
    "BLOCKED_BY_TAG",
    "GATE_WAIT_ENV",
    "VERDICT_TAG",
    "blocked_by",
    "failed_evaluation",
    "withhold",
]

#: Run tags a blocked run carries: its verdict and the gates that blocked it.
VERDICT_TAG = "risk_assets/verdict"
BLOCKED_BY_TAG = "risk_assets/blocked_by"
#: How long (seconds) to wait for a gate that another run in progress has planned.
GATE_WAIT_ENV = "RISK_ASSETS_GATE_WAIT_SECONDS"
DEFAULT_GATE_WAIT_S = 600.0
#: How often to look again while waiting.
_POLL_S = 2.0


def failed_evaluation(context: Any, result: dg.AssetCheckResult) -> Iterator[Any]:
    """A failed blocking gate's events: the check's output (so the assets downstream run and
    find the failure) and its evaluation, failed with severity error but without the flag
    that makes Dagster fail the step. The check's definition stays blocking."""
    step = context.op_execution_context._step_execution_context  # noqa: SLF001
    evaluation = result.to_asset_check_evaluation(step)
    (output,) = context.op_execution_context.op_def.output_dict
    yield dg.Output(None, output_name=output)
    yield dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key,
        check_name=evaluation.check_name,
        passed=False,
        metadata=evaluation.metadata,
        target_materialization_data=evaluation.target_materialization_data,
        severity=dg.AssetCheckSeverity.ERROR,
        description=evaluation.description,
        blocking=False,
        partition=evaluation.partition,
    )


def _latest_materialisation(instance: Any, key: dg.AssetKey, partition: str | None) -> Any:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    return records[0] if records else None


def _partition_kwargs(partition: str | None) -> dict[str, Any]:
    if partition is None:
        return {}
    from dagster._core.storage.event_log.base import PartitionKeyFilter

    return {"partition_filter": PartitionKeyFilter(key=partition)}


def _verdict(instance: Any, check_key: dg.AssetCheckKey, partition: str | None) -> Any:
    """The latest evaluation of a check (of one partition), or None."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    storage = instance.event_log_storage
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    records = storage.get_asset_check_execution_history(
        check_key, limit=1, status=done, **_partition_kwargs(partition)
    )
    if not records or records[0].event is None:
        return None
    return records[0].event.dagster_event.event_specific_data


def _judged_in_run(
    instance: Any, key: dg.AssetKey, partition: str | None, run_id: str | None
) -> dict[str, Any] | None:
    """When run ``run_id`` materialised the asset (of one partition): the evaluations of its
    checks made in that run, by check name (the last of each). None when it did not.

    Runs of one pipeline at the same time each judge the value they made: Dagster records
    as a check's target the asset's latest materialisation when the check started, which
    may be another run's, and the latest verdict may be another run's too."""
    if run_id is None:
        return None
    records = instance.get_records_for_run(
        run_id,
        of_type={
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        },
    ).records
    made, verdicts = False, {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            made = made or (record.asset_key == key and record.partition_key == partition)
            continue
        data = event.event_specific_data
        if data.asset_key == key and getattr(data, "partition", None) in (None, partition):
            verdicts[data.check_name] = data
    return verdicts if made else None


def _pending_in(
    instance: Any, check_key: dg.AssetCheckKey, partition: str | None, run_id: str | None
) -> str | None:
    """The id of another run, still in progress, whose latest execution of the check (of
    one partition) is planned and not yet evaluated; else None."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=1, **_partition_kwargs(partition)
    )
    if not records:
        return None
    record = records[0]
    if record.status != AssetCheckExecutionRecordStatus.PLANNED or record.run_id == run_id:
        return None
    run = instance.get_run_by_id(record.run_id)
    return record.run_id if run is not None and not run.is_finished else None


def _wait_seconds() -> float:
    raw = os.environ.get(GATE_WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_GATE_WAIT_S
    except ValueError:
        from risk_assets.errors import ConfigError

        raise ConfigError(f"{GATE_WAIT_ENV}={raw!r} is not a number of seconds") from None


def blocked_by(
    instance: Any,
    pipeline: Any,
    asset: str,
    partitions: Iterable[str | None],
    *,
    run_id: str | None = None,
    log: Any = None,
    wait_seconds: float | None = None,
) -> list[str]:
    """Why the assets after ``asset`` must not be built: each blocking gate on ``asset``
    that failed, or has no verdict on the asset's current materialisation, per partition.
    Empty when every blocking gate passed. When run ``run_id`` materialised ``asset`` (of a
    partition), the current materialisation is its own, judged by the checks it ran.

    A gate without a verdict that another run in progress (not ``run_id``) has planned is
    waited for, up to ``wait_seconds`` (default ``$RISK_ASSETS_GATE_WAIT_SECONDS``, else
    600 s), looking again every 2 s; after that it counts as not passed.
    """
    from risk_assets.catalogue import checks_of

    spec = pipeline.spec.spec
    checks = [
        c
        for c in checks_of(pipeline.policy.policy, spec.protected_attributes, assets=(asset,))
        if c.blocking
    ]
    key = asset_key(spec.name, asset)
    partitions = list(partitions)
    deadline = time.monotonic() + (_wait_seconds() if wait_seconds is None else wait_seconds)
    told: set[str] = set()
    while True:
        reasons, pending = [], []
        for partition in partitions:
            own = _judged_in_run(instance, key, partition, run_id)
            if own is not None:  # this run made the asset: its own checks judge it
                found = [
                    f"{c.name} [{c.risk.id}] "
                    + (f"has no verdict on the current {asset}" if c.name not in own else "failed")
                    for c in checks
                    if c.name not in own or not own[c.name].passed
                ]
                if found:
                    where = f" of {partition}" if partition is not None else ""
                    reasons.append(f"{asset}{where}: {', '.join(found)}")
                continue
            latest = _latest_materialisation(instance, key, partition)
            found = []
            for check in checks:
                check_key = dg.AssetCheckKey(key, check.name)
                verdict = _verdict(instance, check_key, partition)
                target = getattr(verdict, "target_materialization_data", None)
                current = (
                    latest is not None
                    and target is not None
                    and target.storage_id == latest.storage_id
                )
                name = f"{check.name} [{check.risk.id}]"
                if verdict is None or not current:
                    found.append(f"{name} has no verdict on the current {asset}")
                    if other := _pending_in(instance, check_key, partition, run_id):
                        pending.append(f"{name} of {partition or asset} in run {other}")
                elif not verdict.passed:
                    found.append(f"{name} failed")
            if found:
                where = f" of {partition}" if partition is not None else ""
                reasons.append(f"{asset}{where}: {', '.join(found)}")
        if not pending or time.monotonic() >= deadline:
            return reasons
        if log is not None and (new := [p for p in pending if p not in told]):
            log.info(f"waiting for gates still running elsewhere: {', '.join(new)}")
            told.update(new)
        time.sleep(_POLL_S)


def withhold(
    context: Any, pipeline: Any, asset: str, partitions: Iterable[str | None], audit: Any
) -> list:
    """The events of an asset that withholds its output because a gate on ``asset`` blocked
    it (an empty list when nothing blocks): an observation naming the gates; the run is
    tagged ``blocked``, the log says why, and the refusal is a record of the audit trail."""
    from risk_assets.settings import current_user

    reasons = blocked_by(
        context.instance, pipeline, asset, partitions, run_id=context.run.run_id, log=context.log
    )
    if not reasons:
        return []
    text = "; ".join(reasons)
    audit.append(
        "refusal",
        actor=current_user(),
        model=pipeline.spec.spec.model_name,
        dagster_run_id=context.run.run_id,
        reason=f"{context.asset_key.path[-1]} not built: blocked by {text}",
        details={"partition": context.partition_key if context.has_partition_key else None},
    )
    context.log.warning(f"not built: blocked by {text}")
    context.instance.add_run_tags(
        context.run.run_id, {VERDICT_TAG: "blocked", BLOCKED_BY_TAG: text[:2000]}
    )
    return [
        dg.AssetObservation(
            asset_key=context.asset_key,
            partition=context.partition_key if context.has_partition_key else None,
            description=f"Not built: blocked by {text}",
            metadata={"risk/blocked_by": text},
        )
    ]
