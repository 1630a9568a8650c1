"""When a pipeline retrains: the spec's cron schedule, and the retraining sensor that turns
failed blocking monitoring checks into one retraining request per drift episode (a run of
the training job for the window ending at that partition, its missing data first), with a
cool-down, alerting through the webhook resource."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from risk_assets.dagster._names import (
    RETRAIN_OF_TAG,
    WINDOW_OF_TAG,
    schedule_name,
    sensor_name,
)
from risk_assets.dagster._resources import WebhookAlertResource

__all__ = [
    "RetrainingRequest",
    "alerted_partitions",
    "missing_window_data",
    "partition_verdicts",
    "plan_retraining",
    "requested_runs",
    "retraining_sensor",
    "schedules",
]


@dataclass(frozen=True)
class RetrainingRequest:
    """Retrain on the window ending at ``partition``, where a drift episode began."""

    partition: str
    failed_checks: tuple[str, ...]


def plan_retraining(
    verdicts: Sequence[tuple[str, bool, Sequence[str]]],
    *,
    order: Sequence[str],
    cool_down: int,
) -> list[RetrainingRequest]:
    """Which partitions ask for retraining, from the monitoring verdicts.

    An episode is a run of consecutive failed partitions (in partition order; partitions
    not evaluated yet are skipped). Each episode asks once, at its first partition, unless
    it begins within ``cool_down`` partitions of the previous request: a drift that comes
    and goes does not start a storm of retraining.

    Args:
        verdicts: ``(partition, passed, failed_checks)`` per evaluated partition.
        order: every partition key in order (positions measure the cool-down).
        cool_down: partitions after a request in which a new episode asks for nothing.
    """
    position = {key: i for i, key in enumerate(order)}
    known = sorted((v for v in verdicts if v[0] in position), key=lambda v: position[v[0]])
    requests: list[RetrainingRequest] = []
    in_episode = False
    last_request: int | None = None
    for partition, passed, failed in known:
        if passed:
            in_episode = False
            continue
        if not in_episode:
            at = position[partition]
            if last_request is None or at - last_request > cool_down:
                requests.append(RetrainingRequest(partition, tuple(failed)))
                last_request = at
        in_episode = True
    return requests


def partition_verdicts(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]
) -> list[tuple[str, bool, list[str]]]:
    """Per partition, the latest evaluation of each blocking monitoring check: a partition
    failed when any of them failed."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    latest: dict[str, dict[str, bool]] = {}
    for key in check_keys:
        seen: set[str] = set()
        for rec in instance.event_log_storage.get_asset_check_execution_history(
            key, limit=10_000
        ):  # newest first
            if rec.partition is None or rec.partition in seen:
                continue
            if rec.status not in (Status.SUCCEEDED, Status.FAILED):
                continue  # planned or still running: no verdict yet
            seen.add(rec.partition)
            latest.setdefault(rec.partition, {})[key.name] = rec.status == Status.SUCCEEDED
    return [
        (part, all(checks.values()), sorted(c for c, ok in checks.items() if not ok))
        for part, checks in latest.items()
    ]


def missing_window_data(
    instance: dg.DagsterInstance, pipeline: Any, keys: Sequence[str], partition: str
) -> list[str]:
    """Partitions of the window ending at ``partition`` (itself excluded: its own training
    run makes it) whose validated data was never materialised."""
    spec = pipeline.spec.spec
    at = keys.index(partition)
    window = keys[max(0, at - spec.training_window + 1) : at]
    done = instance.get_materialized_partitions(dg.AssetKey([spec.name, "validated_data"]))
    return [k for k in window if k not in done]


#: Dagster's run tag of a run's partition.
PARTITION_TAG = "dagster/partition"
#: Where the instance records that a drift episode was alerted (Dagster's key-value store of
#: the instance, shared by every evaluation of the sensor: daemon or CLI).
_ALERTED = "risk_assets/retraining_alerted/{pipeline}/{partition}"


def alerted_partitions(
    instance: dg.DagsterInstance, pipeline_name: str, partitions: Sequence[str]
) -> set[str]:
    """The partitions among ``partitions`` whose retraining request was alerted already."""
    keys = {_ALERTED.format(pipeline=pipeline_name, partition=p): p for p in partitions}
    if not keys:
        return set()
    found = instance.run_storage.get_cursor_values(set(keys))
    return {keys[k] for k in found}


def _alert(context: Any, alerts: Any, spec: Any, req: RetrainingRequest, window: list[str]) -> None:
    summary = (
        f"{spec.name}: monitoring failed in partition {req.partition} "
        f"({', '.join(req.failed_checks)}); retraining requested on {window[0]}..{window[-1]}"
    )
    context.log.info(summary)
    alerts.send(
        {
            "event": "retraining_requested",
            "pipeline": spec.name,
            "partition": req.partition,
            "window": [window[0], window[-1]],
            "failed_checks": list(req.failed_checks),
            "summary": summary,
        },
        log=context.log,
    )
    # recorded once sent (a failed webhook is logged by send and not retried): the next
    # evaluation, wherever it runs, does not alert this episode again
    key = _ALERTED.format(pipeline=spec.name, partition=req.partition)
    context.instance.run_storage.set_cursor_values({key: summary})


def requested_runs(
    instance: dg.DagsterInstance, job: str, tag: str, partitions: Sequence[str]
) -> list[Any]:
    """Runs of ``job`` in the instance whose ``tag`` names one of ``partitions``: what the
    retraining sensor requested before, whoever executed it (the daemon or the CLI)."""
    if not partitions:
        return []
    return list(instance.get_runs(dg.RunsFilter(job_name=job, tags={tag: list(partitions)})))


def _requests_for(
    context: Any, pipeline: Any, keys: list[str], req: RetrainingRequest, jobs: tuple[Any, Any]
) -> tuple[list[dg.RunRequest], str | None]:
    """The runs one retraining request needs now: the data runs of the window's partitions
    never materialised, else the training run; or why it waits."""
    training_job, data_job = jobs
    missing = missing_window_data(context.instance, pipeline, keys, req.partition)
    if missing:
        earlier = {
            run.tags.get(PARTITION_TAG): run
            for run in requested_runs(
                context.instance, data_job.name, WINDOW_OF_TAG, [req.partition]
            )
        }
        todo = [key for key in missing if key not in earlier]
        if todo:
            return [
                dg.RunRequest(
                    job_name=data_job.name,
                    run_key=f"window-data:{key}:for:{req.partition}",
                    partition_key=key,
                    tags={
                        WINDOW_OF_TAG: req.partition,
                        "risk_assets/trigger": f"window of {req.partition}",
                    },
                )
                for key in todo
            ], None
        running = [k for k in missing if not earlier[k].is_finished]
        if running:
            return [], f"retraining of {req.partition} waits for the data runs of {running}"
        return [], (
            f"retraining of {req.partition} waits: the data runs of {missing} ended without "
            f"materialising their validated data (run {data_job.name} for them to go on)"
        )
    training = dg.RunRequest(
        job_name=training_job.name,
        run_key=f"retrain:{req.partition}",
        partition_key=req.partition,
        tags={
            RETRAIN_OF_TAG: req.partition,
            "risk_assets/trigger": "monitoring",
            "risk_assets/failed_checks": ",".join(req.failed_checks),
        },
    )
    return [training], None


def legacy_cursor(cursor: str | None) -> dict[str, list[str]]:
    """The state earlier versions kept in the sensor's cursor (``{"requested": [...],
    "alerted": [...]}``), so that an upgrade does not request or alert those episodes
    again; anything else reads as empty."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    if not isinstance(state, dict):
        return {}
    return {
        k: [p for p in state.get(k, []) if isinstance(p, str)]
        for k in ("requested", "alerted")
        if isinstance(state.get(k), list)
    }


def retraining_sensor(
    pipeline: Any,
    pdef: Any,
    check_keys: list[dg.AssetCheckKey],
    training_job: Any,
    data_job: Any,
) -> dg.SensorDefinition:
    """The sensor that asks for retraining when blocking monitoring checks fail.

    It keeps no cursor: what it requested before is read from the instance's runs (tagged
    ``risk_assets/retrain_of`` / ``risk_assets/window_of``), and which episodes were alerted
    from the instance's key-value store, so every evaluation (the daemon's, or the CLI's in
    process) sees the same history. Every request carries a run key as well, so Dagster
    itself never launches one twice.
    """
    spec = pipeline.spec.spec
    cool_down = spec.retraining.cool_down

    @dg.sensor(
        name=sensor_name(spec.name),
        jobs=[training_job, data_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Requests retraining of {spec.name} (the window ending at the partition) when a "
            f"blocking monitoring check fails: once per drift episode, cool-down {cool_down} "
            "partitions; alerts through the webhook resource. Keeps no cursor: what it "
            "requested is read from the runs it tagged."
        ),
    )
    def sensor(context: dg.SensorEvaluationContext, alerts: WebhookAlertResource):
        keys = list(pdef.get_partition_keys())
        plan = plan_retraining(
            partition_verdicts(context.instance, check_keys), order=keys, cool_down=cool_down
        )
        planned = [req.partition for req in plan]
        retrained = {
            run.tags[RETRAIN_OF_TAG]
            for run in requested_runs(context.instance, training_job.name, RETRAIN_OF_TAG, planned)
        }
        alerted = alerted_partitions(context.instance, spec.name, planned)
        earlier = legacy_cursor(context.cursor)  # what a version with a cursor recorded
        retrained |= set(earlier.get("requested", ()))
        alerted = set(alerted) | set(earlier.get("alerted", ()))
        requests: list[dg.RunRequest] = []
        waiting: list[str] = []
        for req in plan:
            if req.partition in retrained:
                continue
            if req.partition not in alerted:
                at = keys.index(req.partition)
                window = keys[max(0, at - spec.training_window + 1) : at + 1]
                _alert(context, alerts, spec, req, window)
            runs, note = _requests_for(context, pipeline, keys, req, (training_job, data_job))
            requests += runs
            if note:
                waiting.append(note)
        if requests:
            return requests
        if waiting:
            return dg.SkipReason("; ".join(waiting))
        return dg.SkipReason(
            f"no new drift episode ({len(retrained)} retraining(s) requested before)"
        )

    return sensor


def schedules(pipeline: Any, job: Any, pdef: Any) -> list[Any]:
    """The spec's cron schedule of retraining (stopped until someone turns it on): a
    partitioned pipeline retrains on the window ending at the last complete partition."""
    spec = pipeline.spec.spec
    if spec.schedule is None:
        return []
    name = schedule_name(spec.name)
    description = f"Retrains {spec.name} on schedule {spec.schedule!r} (from {pipeline.spec.path})"
    if pdef is None:
        return [
            dg.ScheduleDefinition(
                name=name,
                job=job,
                cron_schedule=spec.schedule,
                description=description,
                default_status=dg.DefaultScheduleStatus.STOPPED,
            )
        ]

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=spec.schedule,
        description=description,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def retraining_schedule(context: dg.ScheduleEvaluationContext):
        keys = pdef.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason("no complete partition yet")
        key = keys[-1]
        return dg.RunRequest(
            run_key=f"schedule:{key}", partition_key=key, tags={"risk_assets/trigger": "schedule"}
        )

    return [retraining_schedule]
