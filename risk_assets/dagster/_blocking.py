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
block fails closed.
"""

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg

from risk_assets.dagster._names import asset_key

__all__ = ["BLOCKED_BY_TAG", "VERDICT_TAG", "blocked_by", "failed_evaluation", "withhold"]

#: Run tags a blocked run carries: its verdict and the gates that blocked it.
VERDICT_TAG = "risk_assets/verdict"
BLOCKED_BY_TAG = "risk_assets/blocked_by"


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


def _verdict(instance: Any, check_key: dg.AssetCheckKey, partition: str | None) -> Any:
    """The latest evaluation of a check (of one partition), or None."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    storage = instance.event_log_storage
    kwargs: dict[str, Any] = {}
    if partition is not None:
        from dagster._core.storage.event_log.base import PartitionKeyFilter

        kwargs["partition_filter"] = PartitionKeyFilter(key=partition)
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    records = storage.get_asset_check_execution_history(check_key, limit=1, status=done, **kwargs)
    if not records or records[0].event is None:
        return None
    return records[0].event.dagster_event.event_specific_data


def blocked_by(
    instance: Any,
    pipeline: Any,
    asset: str,
    partitions: Iterable[str | None],
) -> list[str]:
    """Why the assets after ``asset`` must not be built: each blocking gate on ``asset``
    that failed, or has no verdict on the asset's current materialisation, per partition.
    Empty when every blocking gate passed."""
    from risk_assets.catalogue import checks_of

    spec = pipeline.spec.spec
    checks = [
        c
        for c in checks_of(pipeline.policy.policy, spec.protected_attributes, assets=(asset,))
        if c.blocking
    ]
    key = asset_key(spec.name, asset)
    reasons = []
    for partition in partitions:
        latest = _latest_materialisation(instance, key, partition)
        found = []
        for check in checks:
            verdict = _verdict(instance, dg.AssetCheckKey(key, check.name), partition)
            target = getattr(verdict, "target_materialization_data", None)
            current = (
                latest is not None and target is not None and target.storage_id == latest.storage_id
            )
            name = f"{check.name} [{check.risk.id}]"
            if verdict is None or not current:
                found.append(f"{name} has no verdict on the current {asset}")
            elif not verdict.passed:
                found.append(f"{name} failed")
        if found:
            where = f" of {partition}" if partition is not None else ""
            reasons.append(f"{asset}{where}: {', '.join(found)}")
    return reasons


def withhold(
    context: Any, pipeline: Any, asset: str, partitions: Iterable[str | None], audit: Any
) -> list:
    """The events of an asset that withholds its output because a gate on ``asset`` blocked
    it (an empty list when nothing blocks): an observation naming the gates; the run is
    tagged ``blocked``, the log says why, and the refusal is a record of the audit trail."""
    from risk_assets.settings import current_user

    reasons = blocked_by(context.instance, pipeline, asset, partitions)
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
