"""Batch scoring and monitoring of a partitioned pipeline.

``scored_batch`` scores each partition's batch with the production ``champion`` (loaded
safely, its hash verified) and writes the predictions to the snapshot store; its checks
watch the inputs, the scores and the decision counts. ``batch_outcomes`` joins a scored
batch with its delayed labels once they have arrived; its check watches performance. The
retraining sensor turns failed blocking monitoring checks into one retraining request per
drift episode (a run of the training job for the window ending at that partition), with a
cool-down, and sends an alert through the webhook resource.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import dagster as dg

from risk_assets.controls._result import ControlResult
from risk_assets.dagster._partitions import quiet_previews, read_partition
from risk_assets.dagster._resources import (
    MlflowResource,
    SnapshotStoreResource,
    WebhookAlertResource,
)
from risk_assets.errors import DataError, IntegrityError
from risk_assets.policy import MONITORING_ASSETS

__all__ = [
    "MonitoringDefinitions",
    "RetrainingRequest",
    "data_job_name",
    "missing_window_data",
    "monitoring_definitions",
    "monitoring_job_name",
    "partition_verdicts",
    "plan_retraining",
    "sensor_name",
]

_TAG = "risk_assets."


def monitoring_job_name(pipeline: str) -> str:
    return f"{pipeline}_monitoring_job"


def sensor_name(pipeline: str) -> str:
    return f"{pipeline}_retraining_sensor"


@dataclass(frozen=True)
class MonitoringDefinitions:
    assets: list[Any]
    checks: list[Any]
    jobs: list[Any]
    sensors: list[Any]


# -- the retraining decision (pure) -------------------------------------------------------


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


# -- what a monitoring gate may look at -----------------------------------------------------


@dataclass
class MonitorInputs:
    """A scored batch and what it is compared with; everything loads lazily and verified."""

    pipeline: Any  # LoadedPipeline
    store: Any
    scored: dict
    mlflow: Any
    instance: Any = None
    history_keys: list[str] = field(default_factory=list)
    outcomes: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    suite_sha256: str | None = None

    @property
    def spec(self) -> Any:
        return self.pipeline.spec.spec

    @cached_property
    def client(self) -> Any:
        return self.mlflow.get_client()

    @cached_property
    def batch(self) -> Any:
        return self.store.get(self.scored["batch_sha256"])

    @cached_property
    def predictions(self) -> Any:
        return self.store.get(self.scored["sha256"])

    @cached_property
    def reference(self) -> Any:
        """The champion's training snapshot (the one the batch was scored by)."""
        self.extra["risk/reference"] = (
            f"{self.scored['champion']} train {self.scored['train_sha256']}"
        )
        return self.store.get(self.scored["train_sha256"])

    @cached_property
    def model(self) -> Any:
        from risk_assets.registry._mlflow import load_version_model

        name, _, version = self.scored["champion"].rpartition("/")
        mv = self.client.get_model_version(name, version)
        if mv.tags.get(_TAG + "model_sha256") != self.scored["model_sha256"]:
            raise IntegrityError(f"{self.scored['champion']} records another model hash")
        return load_version_model(self.client, mv)

    @property
    def features(self) -> list[str]:
        return list(self.scored["features"])

    @property
    def categorical(self) -> list[str]:
        return list(self.scored["categorical"])


def _input_drift(params: Any) -> Callable[[MonitorInputs], ControlResult]:
    def run(inp: MonitorInputs) -> ControlResult:
        from risk_assets.dagster._gates import drift_against

        return drift_against(
            params,
            inp.reference,
            inp.batch,
            inp.features,
            inp.categorical,
            seed=inp.spec.split.seed,
        )

    return run


def _prediction_drift(params: Any) -> Callable[[MonitorInputs], ControlResult]:
    def run(inp: MonitorInputs) -> ControlResult:
        from risk_assets.controls._monitoring import prediction_drift

        reference = positive_scores(inp.model, inp.reference[inp.features], inp.spec)
        return prediction_drift(
            reference,
            inp.predictions["score"].to_numpy(),
            alpha=params.alpha,
            min_psi=params.min_psi,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _decision_volume(params: Any) -> Callable[[MonitorInputs], ControlResult]:
    def run(inp: MonitorInputs) -> ControlResult:
        from risk_assets.controls._monitoring import DecisionCounts, decision_volume

        keys = inp.history_keys
        part = inp.scored["partition"]
        at = keys.index(part)
        earlier = keys[max(0, at - params.history) : at]
        history = _scored_history(inp, earlier)
        inp.extra["risk/history"] = ", ".join(h.partition for h in history) or "none"
        current = DecisionCounts(part, int(inp.scored["rows"]), int(inp.scored["favourable"]))
        return decision_volume(
            current,
            history,
            max_rate_change=params.max_rate_change,
            max_volume_ratio=params.max_volume_ratio,
            min_history=params.min_history,
        )

    return run


def _scored_history(inp: MonitorInputs, partitions: list[str]) -> list[Any]:
    """Decision counts of earlier partitions, from their latest scored_batch
    materialisation in the Dagster instance."""
    from risk_assets.controls._monitoring import DecisionCounts

    if not partitions:
        return []
    key = dg.AssetKey([inp.spec.name, "scored_batch"])
    result = inp.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=10_000
    )
    latest: dict[str, Any] = {}
    for record in result.records:  # newest first
        part = record.partition_key
        if part not in latest and record.asset_materialization is not None:
            latest[part] = record.asset_materialization.metadata
    out = []
    for part in partitions:
        md = latest.get(part)
        if md is None:
            continue
        out.append(
            DecisionCounts(
                part, int(md["dagster/row_count"].value), int(md["risk/favourable"].value)
            )
        )
    return out


def _batch_expectations(params: Any) -> Callable[[MonitorInputs], ControlResult]:
    def run(inp: MonitorInputs) -> ControlResult:
        from risk_assets.controls._expectations import load_suite, run_expectation_suite
        from risk_assets.registry._models import file_sha256

        path = inp.pipeline.spec.suite_path
        inp.suite_sha256 = file_sha256(path)
        inp.extra["risk/suite_sha256"] = inp.suite_sha256
        suite = batch_suite(load_suite(path), target=inp.spec.target)
        frame = inp.batch
        id_column = inp.spec.source.id_column
        if id_column in frame.columns:
            frame = frame.drop(columns=[id_column])
        return run_expectation_suite(frame, suite, source=f"{path} (batch expectations)")

    return run


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


def _outcome_performance(params: Any) -> Callable[[MonitorInputs], ControlResult]:
    def run(inp: MonitorInputs) -> ControlResult:
        from risk_assets.controls._monitoring import outcome_performance

        joined = inp.store.get(inp.outcomes["sha256"])
        positive = inp.spec.labels(inp.model.classes_, where=inp.pipeline.spec.path).positive
        return outcome_performance(
            joined["label"],
            joined["prediction"],
            joined["score"],
            thresholds=params.thresholds,
            positive_label=positive,
            min_rows=params.min_rows,
        )

    return run


RUNNERS = {
    "input_drift": _input_drift,
    "prediction_drift": _prediction_drift,
    "decision_volume": _decision_volume,
    "batch_expectations": _batch_expectations,
    "outcome_performance": _outcome_performance,
}


def positive_scores(model: Any, frame: Any, spec: Any) -> Any:
    """The model's probability of the spec's positive class for each row."""
    classes = list(model.classes_)
    positive = spec.labels(classes, where="the champion's classes").positive
    if positive is None:
        raise DataError(f"a score needs a two-class model; the champion has classes {classes}")
    return model.predict_proba(frame)[:, classes.index(positive)]


# -- Dagster definitions ----------------------------------------------------------------------


def monitoring_definitions(
    pipeline: Any, pdef: Any, training_job: Any, data_job: Any
) -> MonitoringDefinitions:
    """scored_batch, batch_outcomes, their checks, the monitoring job and the sensor."""
    from risk_assets.dagster._gates import gates_for

    loaded = pipeline.spec
    spec = loaded.spec
    prefix = [spec.name]
    group = f"{spec.name}_monitoring"

    @dg.asset(
        name="scored_batch",
        key_prefix=prefix,
        group_name=group,
        partitions_def=pdef,
        description=(
            f"Each new batch of {spec.source.folder}/{spec.source.pattern} scored by the "
            f"champion of {spec.model_name} (hash verified, safe load); predictions stored."
        ),
    )
    def scored_batch(
        context: dg.AssetExecutionContext, mlflow: MlflowResource, snapshots: SnapshotStoreResource
    ):
        import pandas as pd

        from risk_assets.registry._mlflow import find_champion, load_version_model

        part = context.partition_key
        client, store = mlflow.get_client(), snapshots.get_store()
        champion = find_champion(client, spec.model_name)
        if champion is None:
            raise dg.Failure(
                f"no champion of {spec.model_name} to score partition {part} with; "
                "train and promote a model first",
                allow_retries=False,
            )
        model = load_version_model(client, champion)  # safe load, hash verified
        run = client.get_run(champion.run_id)
        features = [f for f in run.data.params.get("features", "").split(",") if f]
        categorical = [f for f in run.data.params.get("categorical", "").split(",") if f]
        train_sha = run.data.tags.get(_TAG + "train_sha256")
        if not features or not train_sha:
            raise IntegrityError(
                f"{champion.name}/{champion.version} records no features or training snapshot"
            )
        batch, counts, source = read_partition(loaded, part, labelled=False)
        missing = [f for f in features if f not in batch.columns]
        if missing:
            raise DataError(f"{source}: feature column(s) {missing} of the champion not found")
        batch_ref = store.put(batch)
        decisions = model.predict(batch[features])
        scores = positive_scores(model, batch[features], spec)
        labels = spec.labels(model.classes_, where=loaded.path)
        favourable = (
            labels.require_favourable(target=spec.target, where=str(loaded.path))
            if pipeline.policy.policy.needs_favourable_label
            else labels.favourable  # counted when known; no control needs it here
        )
        out = pd.DataFrame({"prediction": decisions, "score": scores})
        id_column = spec.source.id_column
        if id_column is not None and id_column in batch.columns:
            out.insert(0, id_column, batch[id_column].to_numpy())
        pred_ref = store.put(out)
        n_favourable = (
            None if favourable is None else int((pd.Series(decisions) == favourable).sum())
        )
        ref = f"{champion.name}/{champion.version}"
        context.log.info(f"partition {part}: {len(out)} rows scored by {ref}")
        return dg.Output(
            {
                "sha256": pred_ref.sha256,
                "path": pred_ref.path,
                "batch_sha256": batch_ref.sha256,
                "partition": part,
                "source": source,
                "champion": ref,
                "champion_run_id": champion.run_id,
                "model_sha256": champion.tags.get(_TAG + "model_sha256"),
                "train_sha256": train_sha,
                "features": features,
                "categorical": categorical,
                "rows": len(out),
                "favourable": n_favourable,
            },
            data_version=dg.DataVersion(pred_ref.sha256),
            metadata={
                "risk/champion": ref,
                "risk/model_sha256": champion.tags.get(_TAG + "model_sha256", ""),
                "risk/batch_sha256": batch_ref.sha256,
                "risk/predictions_sha256": pred_ref.sha256,
                "risk/predictions": dg.MetadataValue.path(pred_ref.path),
                "dagster/row_count": dg.MetadataValue.int(len(out)),
                **(
                    {
                        "risk/favourable": dg.MetadataValue.int(n_favourable),
                        "risk/favourable_rate": dg.MetadataValue.float(
                            n_favourable / len(out) if len(out) else float("nan")
                        ),
                    }
                    if n_favourable is not None
                    else {}
                ),
                "source": source,
            },
        )

    @dg.asset(
        name="batch_outcomes",
        key_prefix=prefix,
        group_name=group,
        partitions_def=pdef,
        ins={"scored_batch": dg.AssetIn(key=dg.AssetKey([*prefix, "scored_batch"]))},
        output_required=False,
        description=(
            "A scored batch joined with its delayed labels; materialises once they have "
            "arrived (until then the step yields nothing and its check does not run)."
        ),
    )
    def batch_outcomes(
        context: dg.AssetExecutionContext, scored_batch: dict, snapshots: SnapshotStoreResource
    ):
        part = context.partition_key
        labels_path = loaded.labels_path(part)
        if labels_path is not None and not labels_path.is_file():
            context.log.info(f"partition {part}: labels not arrived yet ({labels_path})")
            return
        store = snapshots.get_store()
        labelled, counts, source = read_partition(loaded, part, labelled=True)
        joined = _join_outcomes(store.get(scored_batch["sha256"]), labelled, spec, scored_batch)
        ref = store.put(joined)
        yield dg.Output(
            {**ref.to_dict(), "partition": part, "scored_sha256": scored_batch["sha256"]},
            data_version=dg.DataVersion(ref.sha256),
            metadata={
                "risk/outcomes_sha256": ref.sha256,
                "dagster/row_count": dg.MetadataValue.int(int(joined["label"].notna().sum())),
                "rows/scored": dg.MetadataValue.int(len(joined)),
                "source": source,
            },
        )

    checks = []
    with quiet_previews():
        for gate in gates_for(pipeline, assets=MONITORING_ASSETS, runners=RUNNERS):
            checks.append(_monitor_check(pipeline, gate, pdef))
    job = dg.define_asset_job(
        monitoring_job_name(spec.name),
        selection=dg.AssetSelection.assets(scored_batch, batch_outcomes),
        description=f"Scores a batch with the champion of {spec.model_name} and monitors it.",
        tags={"risk_assets/pipeline": spec.name},
    )
    blocking_keys = [
        dg.AssetCheckKey(dg.AssetKey([*prefix, g.asset]), g.check)
        for g in gates_for(pipeline, assets=MONITORING_ASSETS, runners=RUNNERS)
        if g.blocking
    ]
    sensors = [_retraining_sensor(pipeline, pdef, blocking_keys, training_job, data_job)]
    return MonitoringDefinitions(
        assets=[scored_batch, batch_outcomes], checks=checks, jobs=[job], sensors=sensors
    )


def _join_outcomes(predictions: Any, labelled: Any, spec: Any, scored: dict) -> Any:
    """Predictions with the label of each row (missing where it has not arrived)."""
    id_column = spec.source.id_column
    out = predictions.copy()
    if id_column is not None:
        labels = dict(zip(labelled[id_column].astype(str), labelled[spec.target], strict=True))
        out["label"] = out[id_column].astype(str).map(labels)
    else:
        if len(labelled) != len(out):
            raise DataError(
                f"{scored['source']}: {len(labelled)} labelled rows against {len(out)} scored"
            )
        out["label"] = labelled[spec.target].to_numpy()
    return out


def _monitor_check(pipeline: Any, gate: Any, pdef: Any) -> Any:
    from risk_assets.dagster._factory import _check_metadata, evaluate_gate

    risk = gate.risk
    prefix = [pipeline.spec.spec.name]
    description = (
        f"[{risk.id}] {risk.title}: {risk.control.name} "
        f"({'blocking' if gate.blocking else 'warning'}; monitoring)"
    )

    def evaluate(context: Any, inputs: MonitorInputs, subject: str) -> dg.AssetCheckResult:
        result, record = evaluate_gate(
            context,
            gate,
            inputs,
            subject=subject,
            policy_sha256=pipeline.policy.sha256,
            reference=inputs.scored["champion"],
        )
        inputs.store.put_evidence(subject, gate.check, record.to_dict())
        extra = {
            **inputs.extra,
            "risk/champion": inputs.scored["champion"],
            "risk/partition": inputs.scored["partition"],
        }
        return dg.AssetCheckResult(
            passed=bool(result.passed),
            severity=dg.AssetCheckSeverity.ERROR if gate.blocking else dg.AssetCheckSeverity.WARN,
            metadata=_check_metadata(risk, result, extra=extra),
        )

    keys = list(pdef.get_partition_keys())
    if gate.asset == "scored_batch":

        @dg.asset_check(
            asset=dg.AssetKey([*prefix, "scored_batch"]),
            name=gate.check,
            # the batch is scored already: a failed check must not stop its outcomes being
            # measured; severity ERROR is what the retraining sensor acts on
            blocking=False,
            description=description,
            partitions_def=pdef,
        )
        def scored_check(
            context: dg.AssetCheckExecutionContext,
            scored_batch: dict,
            snapshots: SnapshotStoreResource,
            mlflow: MlflowResource,
        ) -> dg.AssetCheckResult:
            inputs = MonitorInputs(
                pipeline=pipeline,
                store=snapshots.get_store(),
                scored=scored_batch,
                mlflow=mlflow,
                instance=context.instance,
                history_keys=keys,
            )
            return evaluate(context, inputs, scored_batch["sha256"])

        return scored_check

    @dg.asset_check(
        asset=dg.AssetKey([*prefix, "batch_outcomes"]),
        name=gate.check,
        blocking=False,
        description=description,
        partitions_def=pdef,
        additional_ins={"scored_batch": dg.AssetIn(key=dg.AssetKey([*prefix, "scored_batch"]))},
    )
    def outcomes_check(
        context: dg.AssetCheckExecutionContext,
        batch_outcomes: dict,
        scored_batch: dict,
        snapshots: SnapshotStoreResource,
        mlflow: MlflowResource,
    ) -> dg.AssetCheckResult:
        inputs = MonitorInputs(
            pipeline=pipeline,
            store=snapshots.get_store(),
            scored=scored_batch,
            mlflow=mlflow,
            outcomes=batch_outcomes,
        )
        return evaluate(context, inputs, batch_outcomes["sha256"])

    return outcomes_check


def data_job_name(pipeline: str) -> str:
    return f"{pipeline}_data_job"


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


def _retraining_sensor(
    pipeline: Any,
    pdef: Any,
    check_keys: list[dg.AssetCheckKey],
    training_job: Any,
    data_job: Any,
) -> dg.SensorDefinition:
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
            "partitions; alerts through the webhook resource."
        ),
    )
    def retraining_sensor(context: dg.SensorEvaluationContext, alerts: WebhookAlertResource):
        state = {"requested": [], "alerted": []}
        state.update(json.loads(context.cursor) if context.cursor else {})
        keys = list(pdef.get_partition_keys())
        plan = plan_retraining(
            partition_verdicts(context.instance, check_keys), order=keys, cool_down=cool_down
        )
        requests = []
        for req in plan:
            if req.partition in state["requested"]:
                continue
            at = keys.index(req.partition)
            window = keys[max(0, at - spec.training_window + 1) : at + 1]
            if req.partition not in state["alerted"]:
                summary = (
                    f"{spec.name}: monitoring failed in partition {req.partition} "
                    f"({', '.join(req.failed_checks)}); retraining requested on "
                    f"{window[0]}..{window[-1]}"
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
                state["alerted"].append(req.partition)
            missing = missing_window_data(context.instance, pipeline, keys, req.partition)
            if missing:
                # the window's earlier data first; training follows on a later tick
                requests += [
                    dg.RunRequest(
                        job_name=data_job.name,
                        run_key=f"window-data:{key}:for:{req.partition}",
                        partition_key=key,
                        tags={"risk_assets/trigger": f"window of {req.partition}"},
                    )
                    for key in missing
                ]
                continue
            state["requested"].append(req.partition)
            requests.append(
                dg.RunRequest(
                    job_name=training_job.name,
                    run_key=f"retrain:{req.partition}",
                    partition_key=req.partition,
                    tags={
                        "risk_assets/trigger": "monitoring",
                        "risk_assets/failed_checks": ",".join(req.failed_checks),
                    },
                )
            )
        context.update_cursor(json.dumps(state, sort_keys=True))
        if not requests:
            return dg.SkipReason(
                f"no new drift episode ({len(state['requested'])} retraining(s) requested before)"
            )
        return requests

    return retraining_sensor
