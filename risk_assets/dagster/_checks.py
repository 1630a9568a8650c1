"""One builder for every gate's asset check, training and monitoring alike.

A check runs its catalogue entry's control on the inputs of the asset it sits on (fail
closed: an exception is a failed gate), records the evidence where that asset keeps it
(beside the snapshot for data gates and monitoring, on the candidate's MLflow run for
model gates) and reports the result, figures and evidence table as Dagster metadata.

What a blocking gate decides is also kept in MLflow: a failed model gate marks the
candidate's run ``blocked``, a failed data gate leaves a ``refused`` run (see
:class:`risk_assets.registry.RunVerdict`); the check's metadata links to that run.

A blocking gate that fails does not fail its Dagster run: the asset after the gated one
withholds its output (see :mod:`risk_assets.dagster._blocking`), so the checks planned
after it read as skipped, not as failed executions.

Monitoring checks never block in Dagster (a scored batch must still get its outcomes
measured): their metadata says ``risk/blocking`` False, and ``risk/drives_retraining``
True for severity error, which is what the retraining sensor acts on.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from risk_assets.catalogue import Check
from risk_assets.controls._result import ControlResult, markdown_table, sampling_power
from risk_assets.dagster._blocking import failed_evaluation
from risk_assets.dagster._inputs import GateInputs, MonitorInputs
from risk_assets.dagster._names import asset_key
from risk_assets.dagster._resources import AuditResource, MlflowResource, SnapshotStoreResource
from risk_assets.errors import RiskAssetsError

__all__ = ["build_check", "check_metadata", "evaluate_gate", "evidence_table", "run_control"]


def check_metadata(
    check: Check, result: ControlResult, *, extra: dict[str, Any], monitoring: bool = False
) -> dict:
    """A gate's result as Dagster metadata: the risk it treats, verdict, figures, evidence.

    ``risk/blocking`` is what the check does in Dagster: a monitoring check never blocks;
    there, ``risk/drives_retraining`` says whether its failure asks for retraining.
    """
    risk = check.risk
    md: dict[str, Any] = {
        "risk/id": risk.id,
        "risk/title": risk.title,
        "risk/category": risk.category,
        "risk/severity": risk.control.severity,
        "risk/blocking": check.blocking and not monitoring,
        **({"risk/drives_retraining": check.blocking} if monitoring else {}),
        "risk/passed": result.passed,
        "risk/summary": result.summary,
        "risk/value": _number(result.value),
        "risk/threshold": _number(result.threshold),
    }
    for name, val in result.figures.items():
        md[f"risk/figures/{name}"] = dg.MetadataValue.float(float(val))
    if result.sample_size is not None:
        n = int(result.sample_size)
        md["risk/sample_size"] = dg.MetadataValue.int(n)
        power = sampling_power(n)
        if power:
            md["risk/sample_power"] = (
                f"{n:,} rows: a share measured on them is within ±{power['margin_95']:.1%} "
                f"(95 %, worst case); a fault in {power['detectable_share_95']:.2%} of rows or "
                "more is among them with 95 % probability"
            )
    if result.table:
        md["risk/evidence"] = dg.MetadataValue.md(markdown_table(result.table))
        md["risk/evidence_table"] = evidence_table(result.table)
    md.update(extra)
    return md


def _number(value: float | None) -> Any:
    """A figure as a float, or Dagster's null (never a string where a number belongs)."""
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.float(float(value))


def _column_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def evidence_table(rows: list[dict[str, Any]]) -> Any:
    """A gate's evidence rows as a typed Dagster table (numbers, booleans, text), the
    columns in the order they first appear."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    types = {c: _column_type([row.get(c) for row in rows]) for c in columns}

    def cell(value: Any, kind: str) -> Any:
        if value is None:
            return None
        if kind == "float":
            return float(value)
        return value if kind == "bool" else str(value)

    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: cell(row.get(c), types[c]) for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, types[c]) for c in columns]),
    )


def run_control(fn: Callable[[], ControlResult], log: Any, check: str) -> ControlResult:
    """Run a control; an exception is a failed gate (fail closed).

    The evidence names our own errors in full (they name files, keys and columns, never
    values); for any other exception only its type, because library messages may quote
    data values. The full message goes to the run log.
    """
    try:
        return fn()
    except Exception as exc:
        log.error(f"{check}: the control raised {type(exc).__name__}: {exc}")
        if isinstance(exc, RiskAssetsError):
            return ControlResult.undecided(f"{type(exc).__name__}: {exc}")
        return ControlResult.undecided(f"{type(exc).__name__} raised (see the run log)")


def evaluate_gate(
    context: Any,
    check: Check,
    inputs: Any,
    *,
    subject: str,
    policy_sha256: str,
    reference: str | None = None,
) -> tuple[ControlResult, Any]:
    """Run a gate's control (fail closed), time it, and make its evidence record.

    ``reference`` names what the gate compared against; by default what the control put in
    the inputs' metadata while it ran (the champion version, or the reference window).
    """
    from risk_assets.registry._mlflow import GateRecord

    started = time.perf_counter()
    result = run_control(lambda: check.run(inputs), context.log, check.name)
    inputs.extra["risk/seconds"] = dg.MetadataValue.float(round(time.perf_counter() - started, 3))
    record = GateRecord(
        check=check.name,
        risk_id=check.risk.id,
        asset=check.asset,
        blocking=check.blocking,
        passed=result.passed,
        value=result.value,
        threshold=result.threshold,
        summary=result.summary,
        subject_sha256=subject,
        policy_sha256=policy_sha256,
        suite_sha256=inputs.suite_sha256,
        dagster_run_id=context.run.run_id,
        figures=dict(result.figures),
        sample_size=result.sample_size,
        reference=reference
        or inputs.extra.get("champion_version")
        or inputs.extra.get("risk/reference"),
    )
    return result, record


def _plot(check: Check, result: ControlResult, log: Any) -> bytes | None:
    """The gate's plot, if its control draws one. A plot that cannot be drawn is logged and
    left out: it is an illustration of the evidence, not part of the verdict."""
    from risk_assets.controls._plots import plot_png

    if check.entry.plot is None:
        return None
    try:
        return plot_png(check.entry.plot, check.name, result)
    except Exception as exc:  # noqa: BLE001 - reported, never decides the gate
        log.warning(f"{check.name}: no plot ({type(exc).__name__}: {exc})")
        return None


# -- where each asset's checks get their inputs and keep their evidence ---------------------


@dataclass(frozen=True)
class _Call:
    """One evaluation: the check's context, the checked asset's value, the scored batch
    (outcome checks only) and the resources."""

    context: Any
    value: dict
    scored: dict | None
    store: Any
    mlflow: Any
    partition_keys: list[str]
    audit: Any  # the audit log
    model: str  # the registered model's name


def _validated_inputs(pipeline: Any, call: _Call) -> tuple[Any, str]:
    inputs = GateInputs(
        pipeline=pipeline, store=call.store, validated=call.value, mlflow=call.mlflow
    )
    return inputs, call.value["sha256"]


def _candidate_inputs(pipeline: Any, call: _Call) -> tuple[Any, str]:
    inputs = GateInputs(
        pipeline=pipeline, store=call.store, candidate=call.value, mlflow=call.mlflow
    )
    return inputs, call.value["model_sha256"]


def _scored_inputs(pipeline: Any, call: _Call) -> tuple[Any, str]:
    inputs = MonitorInputs(
        pipeline=pipeline,
        store=call.store,
        mlflow=call.mlflow,
        scored=call.value,
        instance=call.context.instance,
        history_keys=call.partition_keys,
    )
    return inputs, call.value["sha256"]


def _outcome_inputs(pipeline: Any, call: _Call) -> tuple[Any, str]:
    inputs = MonitorInputs(
        pipeline=pipeline,
        store=call.store,
        mlflow=call.mlflow,
        scored=call.scored,
        outcomes_value=call.value,
    )
    return inputs, call.value["sha256"]


def _keep_beside_snapshot(
    call: _Call, check: Check, record: Any, plot: bytes | None, inputs: Any
) -> dict:
    from risk_assets.dagster._training import record_refusal

    subject = record.subject_sha256
    call.store.put_evidence(subject, check.name, record.to_dict())
    extra: dict[str, Any] = {"risk/snapshot_sha256": subject}
    if plot is not None:
        path = call.store.put_evidence_plot(subject, check.name, plot)
        extra["risk/plot"] = dg.MetadataValue.path(str(path))
    else:
        call.store.drop_evidence_plot(subject, check.name)
    try:
        extra.update(
            record_refusal(
                call.context, inputs.pipeline, call.value, record, call.mlflow, call.store
            )
        )
    except Exception as exc:  # the verdict stands; only its copy in MLflow is missing
        call.context.log.error(
            f"{check.name}: not recorded in MLflow ({type(exc).__name__}: {exc})"
        )
        extra["risk/mlflow_record"] = f"not recorded in MLflow ({type(exc).__name__})"
    return extra


def _keep_on_mlflow_run(
    call: _Call, check: Check, record: Any, plot: bytes | None, inputs: Any
) -> dict:
    from risk_assets.dagster._training import log_plot
    from risk_assets.registry import RunVerdict
    from risk_assets.registry._mlflow import log_gate, record_verdict

    run_id = call.value["run_id"]
    log_gate(inputs.client, run_id, record)
    if record.blocking and not record.passed:
        # the candidate will not be registered: say so on its run, where MLflow shows it
        record_verdict(inputs.client, run_id, RunVerdict.BLOCKED)
    extra: dict[str, Any] = {
        "mlflow_run_id": run_id,
        "mlflow_run": dg.MetadataValue.url(
            call.mlflow.run_url(call.value["experiment_id"], run_id)
        ),
    }
    if plot is not None:
        extra.update(log_plot(call.context, inputs.client, call.mlflow, run_id, check.name, plot))
    return extra


def _keep_monitoring(
    call: _Call, check: Check, record: Any, plot: bytes | None, inputs: Any
) -> dict:
    call.store.put_evidence(record.subject_sha256, check.name, record.to_dict())
    champion = inputs.scored["champion"]
    extra: dict[str, Any] = {
        "risk/champion": champion,
        "risk/partition": inputs.scored["partition"],
    }
    name, _, version = str(champion).rpartition("/")
    if name and version:
        extra["mlflow_model_version"] = dg.MetadataValue.url(
            call.mlflow.model_version_url(name, version)
        )
    return extra


@dataclass(frozen=True)
class _Binding:
    inputs: Callable[[Any, _Call], tuple[Any, str]]
    keep: Callable[[_Call, Check, Any, bytes | None, Any], dict]
    monitoring: bool = False
    with_scored: bool = False  # the check also reads the scored batch


_BINDINGS = {
    "validated_data": _Binding(_validated_inputs, _keep_beside_snapshot),
    "candidate_model": _Binding(_candidate_inputs, _keep_on_mlflow_run),
    "scored_batch": _Binding(_scored_inputs, _keep_monitoring, monitoring=True),
    "batch_outcomes": _Binding(
        _outcome_inputs, _keep_monitoring, monitoring=True, with_scored=True
    ),
}


def _audit(call: _Call, check: Check, record: Any, extra: dict) -> Any:
    """The gate's verdict as a record of the audit trail (the source of truth that
    registration checks MLflow's copy against)."""
    from risk_assets.settings import current_user

    return call.audit.append(
        "gate",
        actor=current_user(),
        model=call.model,
        run_id=extra.get("mlflow_run_id") or call.value.get("run_id"),
        dagster_run_id=call.context.run.run_id,
        risk_ids=[check.risk.id],
        hashes={
            "subject_sha256": record.subject_sha256,
            "policy_sha256": record.policy_sha256,
            "suite_sha256": record.suite_sha256,
        },
        details={
            "check": check.name,
            "asset": check.asset,
            "partition": call.context.partition_key if call.context.has_partition_key else None,
            "passed": bool(record.passed),
            "blocking": bool(record.blocking),
            "value": record.value,
            "threshold": record.threshold,
            "summary": record.summary,
        },
    )


def _evaluate(pipeline: Any, check: Check, binding: _Binding, call: _Call) -> Iterator[Any]:
    inputs, subject = binding.inputs(pipeline, call)
    result, record = evaluate_gate(
        call.context,
        check,
        inputs,
        subject=subject,
        policy_sha256=pipeline.policy.sha256,
        reference=inputs.scored["champion"] if binding.monitoring else None,
    )
    plot = None if binding.monitoring else _plot(check, result, call.context.log)
    extra = {**inputs.extra, **binding.keep(call, check, record, plot, inputs)}
    extra["risk/audit_seq"] = dg.MetadataValue.int(_audit(call, check, record, extra).seq)
    out = dg.AssetCheckResult(
        passed=bool(result.passed),
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        # the Description column of the check's execution history
        description=result.summary,
        metadata=check_metadata(check, result, extra=extra, monitoring=binding.monitoring),
    )
    if check.blocking and not binding.monitoring and not result.passed:
        # a verdict, not a crash: the asset downstream withholds itself (see _blocking)
        yield from failed_evaluation(call.context, out)
    else:
        yield out


def build_check(pipeline: Any, check: Check, pdef: dg.PartitionsDefinition | None):
    """The asset check of one gate, on the asset its catalogue entry names."""
    name = pipeline.spec.spec.name
    binding = _BINDINGS[check.asset]
    risk = check.risk
    if binding.monitoring:
        # never blocking in Dagster; severity error is what asks for retraining
        kind = (
            "severity error: drives retraining; monitoring"
            if check.blocking
            else "severity warn: reported only; monitoring"
        )
    else:
        kind = "blocking" if check.blocking else "warning"
    description = f"[{risk.id}] {risk.title}: {risk.control.name} ({kind})"
    keys = list(pdef.get_partition_keys()) if binding.monitoring else []
    model = pipeline.spec.spec.model_name

    def log(audit: AuditResource) -> tuple[Any, str]:
        return audit.get_log(), model

    def gate(
        context,
        subject: dict,
        snapshots: SnapshotStoreResource,
        mlflow: MlflowResource,
        audit: AuditResource,
    ):
        call = _Call(context, subject, None, snapshots.get_store(), mlflow, keys, *log(audit))
        yield from _evaluate(pipeline, check, binding, call)

    def gate_with_scored(
        context,
        subject: dict,
        scored: dict,
        snapshots: SnapshotStoreResource,
        mlflow: MlflowResource,
        audit: AuditResource,
    ):
        call = _Call(context, subject, scored, snapshots.get_store(), mlflow, keys, *log(audit))
        yield from _evaluate(pipeline, check, binding, call)

    fn = gate_with_scored if binding.with_scored else gate
    fn.__name__ = f"{check.asset}__{check.name}"
    additional_ins = (
        {"scored": dg.AssetIn(key=asset_key(name, "scored_batch"))} if binding.with_scored else {}
    )
    return dg.asset_check(
        asset=asset_key(name, check.asset),
        name=check.name,
        # a monitored batch is scored already: a failed check must not stop its outcomes
        # being measured; severity ERROR is what the retraining sensor acts on
        blocking=check.blocking and not binding.monitoring,
        description=description,
        partitions_def=pdef,
        additional_ins=additional_ins,
    )(fn)
