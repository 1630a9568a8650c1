"""Run a pipeline in one process on the configured Dagster instance and report its gates."""

import logging
import os
import re
import socket
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.catalogue import MONITORING_ASSETS, TRAINING_ASSETS, checks_of
from risk_assets.dagster._definitions import build_definitions, default_resources
from risk_assets.dagster._names import data_job_name, job_name, monitoring_job_name, sensor_name
from risk_assets.dagster._partitions import check_partition, partition_keys, read_partition
from risk_assets.dagster._production import check_production_stores
from risk_assets.dagster._sensors import missing_window_data
from risk_assets.errors import ConfigError, DataError
from risk_assets.pipeline import LoadedPipeline, load_pipeline

__all__ = ["GateOutcome", "RunOutcome", "preflight", "run_pipeline"]

#: Dagster's run tags for the sensor that requested a run and its run key: the daemon sets
#: them on the runs it launches and finds earlier runs of a run key by them.
SENSOR_NAME_TAG = "dagster/sensor_name"
RUN_KEY_TAG = "dagster/run_key"

_CONFIG_ERRORS = {"ConfigError", "SpecError", "PolicyError", "SuiteError", "DataError"}

#: The Dagster run's log, replayed after each run for whoever handles it (the CLI's log
#: file): step failures with their stack traces, which the console no longer shows.
_RUN_LOG = logging.getLogger("risk_assets.runs")
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateOutcome:
    name: str
    risk_id: str
    asset: str
    passed: bool | None  # None: not evaluated (a gate before it blocked, or a step failed)
    blocking: bool
    value: float | None
    threshold: float | None
    summary: str
    seconds: float | None = None  # how long the control ran

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "risk_id": self.risk_id,
            "asset": self.asset,
            "passed": self.passed,
            "blocking": self.blocking,
            "value": self.value,
            "threshold": self.threshold,
            "summary": self.summary,
            "seconds": self.seconds,
        }


@dataclass
class RunOutcome:
    pipeline: str
    status: str  # registered | blocked | error
    exit_code: int
    model: str
    version: str | None
    aliases: list[str]
    gates: list[GateOutcome]
    dagster_run_id: str | None = None
    candidate: dict[str, Any] | None = None
    error: str | None = None
    blocked_by: list[str] = field(default_factory=list)
    partition: str | None = None
    #: earlier partitions of the window whose data was snapshotted and gated first
    prepared: list[str] = field(default_factory=list)
    #: what dead runs had left behind, cleaned up before this run (see recover_dead_runs)
    recovered: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "aliases": self.aliases,
            "gates": [g.to_json() for g in self.gates],
            "pipeline": self.pipeline,
            "dagster_run_id": self.dagster_run_id,
            "candidate": self.candidate,
            "blocked_by": self.blocked_by,
            "error": self.error,
            "partition": self.partition,
            "prepared": self.prepared,
            "recovered": self.recovered,
        }

    def render(self) -> str:
        where = f" partition {self.partition}" if self.partition else ""
        lines = [f"pipeline {self.pipeline}{where} (dagster run {self.dagster_run_id})"]
        lines += [f"before this run: {line}" for line in self.recovered]
        if self.prepared:
            lines.append(f"window data snapshotted and gated first: {', '.join(self.prepared)}")
        lines.append("gates:")
        lines += [_gate_line(g) for g in self.gates]
        if self.status == "registered":
            cand = self.candidate or {}
            lines.append(
                f"registered: {cand.get('model')}/{cand.get('version')} (challenger)"
                + (
                    f", {self.model}/{self.version} (champion)"
                    if "champion" in self.aliases
                    else "; awaiting promotion to production"
                )
            )
        elif self.status == "blocked":
            lines.append(f"BLOCKED by {', '.join(self.blocked_by)}: nothing was registered")
        else:
            lines.append(f"ERROR: {self.error}")
        return "\n".join(lines)


def preflight(pipeline: LoadedPipeline, partition: str | None = None) -> None:
    """Checks worth doing before a run starts: the estimator imports, the data has the columns.

    Raises:
        ConfigError: naming the spec key, file or column at fault.
    """
    from risk_assets.data import read_source, require_columns
    from risk_assets.estimator import resolve_estimator_class

    spec = pipeline.spec.spec
    resolve_estimator_class(
        spec.estimator.class_path, where=f"{pipeline.spec.path}: estimator.class"
    )
    if pipeline.spec.partitioned:
        df, _, source = read_partition(pipeline.spec, partition)
    else:
        # the head is enough to check columns; raw_snapshot reads (and checks) the whole file
        source = pipeline.spec.source_path
        df = read_source(source, spec.source.format, nrows=1000)
    # only the target here: a missing feature is the expectation suite's finding (every
    # register has one), a gate with evidence rather than an error before any gate
    require_columns(df.columns, target=spec.target, features=None, source=source)
    missing = [c for c in spec.protected_attributes if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: protected attribute column(s) {missing} not found "
            f"(spec {pipeline.spec.path}: protected_attributes)"
        )


def _partition_arg(pipeline: LoadedPipeline, partition: str | None) -> None:
    loaded = pipeline.spec
    if loaded.partitioned:
        if partition is None:
            keys = partition_keys(loaded)
            span = f" ({keys[0]} .. {keys[-1]})" if keys else ""
            raise ConfigError(
                f"{loaded.path}: the source is partitioned; name a partition{span} "
                "(--partition KEY, or backfill --from KEY --to KEY)"
            )
        check_partition(loaded, partition)
    elif partition is not None:
        raise ConfigError(f"{loaded.path}: the source is not partitioned; drop --partition")


def _instance() -> dg.DagsterInstance:
    from risk_assets.settings import (
        current_settings,
        ensure_embedded_dagster_home,
        store_creation_lock,
    )

    settings = current_settings()
    if not os.environ.get("DAGSTER_HOME") or settings.is_embedded_dagster_home:
        # the embedded default: a project-local home, made (or brought up to date) on use
        ensure_embedded_dagster_home(settings)
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    # runs started at once on a new state would each create the instance's tables
    with store_creation_lock(Path(os.environ["DAGSTER_HOME"])):
        instance = dg.DagsterInstance.get()
    check_production_stores(instance, settings.tracking_uri, settings.registry_uri)
    _free_slots_of_finished_runs(instance)
    return instance


#: Run tag of a run executed in this process: ``host:pid:start`` (the process's start time
#: in clock ticks since boot, so a reused pid is not taken for the same process).
PROCESS_TAG = "risk_assets/process"


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of ``/proc/<pid>/stat``), or None when
    there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid()) or ''}"


def _process_is_gone(tag: str) -> bool:
    """Whether the process a :data:`PROCESS_TAG` names is known to have ended: only a
    process of this host can be asked; one elsewhere is taken to be alive."""
    host, _, rest = tag.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or not Path("/proc/self").exists():
        return False
    return _process_start(int(pid)) != start or not start


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this host executed in a process that has since died (killed
    mid-run): without a daemon's run monitoring they would stay STARTED for ever, and a
    later run would wait on the gates they planned. Returns a line per run marked."""
    in_progress = [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    marked = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=in_progress)):
        tag = run.tags.get(PROCESS_TAG)
        if tag and _process_is_gone(tag):
            pid = tag.split(":")[1]
            instance.report_run_failed(
                run, message=f"the process that ran it (pid {pid}) ended without finishing it"
            )
            # the pool slots its steps held are not freed by a failure report (a daemon
            # frees them later, if there is one): free them, or the next run of the
            # pipeline waits for ever on the registry's pool
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            marked.append(f"Dagster run {run.run_id} marked failed: its process {pid} died")
    return marked


def recover_dead_runs(
    pipeline: LoadedPipeline, instance: dg.DagsterInstance, resources: dict[str, Any] | None
) -> list[str]:
    """Before a run: mark dead runs failed (:func:`fail_dead_runs`), then finish or clean
    up what they left in MLflow (:func:`risk_assets.registry._recovery.recover`). Returns
    what was done, a line each; each is logged as a warning too."""
    from risk_assets.dagster._assets import recover_left_behind

    done = fail_dead_runs(instance)
    chosen = {**default_resources(), **(resources or {})}
    # outside a run nothing resolves a field Dagster reads from the environment (an EnvVar
    # is the variable's name until then: MLFLOW_TRACKING_URI would open a file store of
    # that name): initialise the two resources as a run would, on this instance (without
    # one, Dagster makes an ephemeral instance per resource: half a second)
    with dg.build_resources({k: chosen[k] for k in ("mlflow", "audit")}, instance=instance) as res:
        left = recover_left_behind(
            instance, res.mlflow.get_client(), res.audit.get_log(), pipeline.spec.spec
        )
    done += [r.render() for r in left]
    for line in done:
        _LOG.warning(line)
    return done


def _free_slots_of_finished_runs(instance: dg.DagsterInstance) -> None:
    """Pool slots still held by runs that have ended (a run whose process died mid-step,
    later marked failed): without a daemon nothing frees them, and the next registration
    of that model would wait for ever."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    for run_id in storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)


def _error_chain(error: Any):
    while error is not None:
        yield error
        error = error.cause or error.context


def run_pipeline(
    spec_path: str | Path,
    *,
    partition: str | None = None,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log_to_console: bool = True,
    tags: dict[str, str] | None = None,
) -> RunOutcome:
    """Materialise every asset and gate of a pipeline (for one partition of a partitioned
    one); classify the result for the CLI.

    For a partitioned pipeline, the window's earlier partitions whose data was never
    materialised are snapshotted and gated first, each in a run of its own. ``tags`` go on
    the training run (e.g. a sensor request's run key).

    Raises:
        ConfigError: the spec, policy, suite, partition or data is bad (before anything runs).
    """
    pipeline = load_pipeline(spec_path)
    _partition_arg(pipeline, partition)
    preflight(pipeline, partition)
    spec = pipeline.spec.spec
    defs = build_definitions([pipeline], resources=resources)
    inst = instance or _instance()
    recovered = recover_dead_runs(pipeline, inst, resources)
    prepared = []
    if partition is not None:
        keys = partition_keys(pipeline.spec)
        for key in missing_window_data(inst, pipeline, keys, partition):
            _execute(defs, data_job_name(spec.name), inst, key, log_to_console)
            prepared.append(key)
    result = _execute(defs, job_name(spec.name), inst, partition, log_to_console, tags=tags)
    outcome = _training_outcome(pipeline, result)
    outcome.partition, outcome.prepared, outcome.recovered = partition, prepared, recovered
    return outcome


def _execute(
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    partition: str | None,
    log_to_console: bool,
    *,
    tags: dict[str, str] | None = None,
) -> Any:
    level = "INFO" if log_to_console else "CRITICAL"
    run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        partition_key=partition,
        tags={**(tags or {}), PROCESS_TAG: this_process()},
    )
    _replay_run_log(instance, result.run_id)
    return result


def _replay_run_log(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run's event log, as Dagster's console would have shown it, with the stack trace
    of every failure, to :data:`_RUN_LOG` (nothing is read when no one listens)."""
    if not (_RUN_LOG.hasHandlers() and _RUN_LOG.isEnabledFor(logging.INFO)):
        return
    for entry in instance.all_logs(run_id):
        when = datetime.fromtimestamp(entry.timestamp, UTC).isoformat(timespec="milliseconds")
        text = entry.message
        event = entry.dagster_event
        error = entry.error_info
        if error is None and event is not None:
            error = getattr(event.event_specific_data, "error", None)
        if error is not None and hasattr(error, "to_string"):
            text = f"{text}\n{error.to_string()}"
        level = entry.level if isinstance(entry.level, int) else logging.INFO
        _RUN_LOG.log(
            max(level, logging.INFO) if error is None else logging.ERROR,
            f"{when} {entry.job_name} {run_id} {entry.step_key or '-'} - {text}",
        )


def _gate_outcomes(result: Any, checks: list[Any]) -> list[GateOutcome]:
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    gates = []
    for required in checks:
        check, risk = required.name, required.risk
        ev = evaluations.get(check)
        md = ev.metadata if ev else {}

        def figure(key: str, md=md) -> float | None:
            v = md.get(key)
            return (
                float(v.value)
                if isinstance(v, dg.FloatMetadataValue) and v.value is not None
                else None
            )

        summary = md.get("risk/summary")
        gates.append(
            GateOutcome(
                name=check,
                risk_id=risk.id,
                asset=required.asset,
                passed=None if ev is None else bool(ev.passed),
                blocking=risk.blocking,
                value=figure("risk/value"),
                threshold=figure("risk/threshold"),
                summary=summary.value
                if summary is not None
                else "did not run: an earlier step stopped",
                seconds=figure("risk/seconds"),
            )
        )
    return gates


def _message(error: Any) -> str:
    """An error's message without the ``module.ClassName: `` Dagster puts before it."""
    text = error.message.strip()
    prefix = f"{error.cls_name}: "
    head, sep, rest = text.partition(prefix)
    return rest if sep and (not head or head.endswith(".")) else text


#: How MLflow's client names the server a request failed on.
_MLFLOW_REQUEST = re.compile(r"API request to (https?://[^/\s]+)\S* failed")


def _root_error(error: Any) -> str:
    """The innermost error's message; for a request to an MLflow server that failed (the
    server is down, or answered errors), naming that server, which the innermost error
    (``[Errno 111] Connection refused``) does not."""
    chain = list(_error_chain(error))
    root = chain[-1].message.strip()
    for e in chain:
        if found := _MLFLOW_REQUEST.search(e.message):
            return f"the MLflow server at {found.group(1)} failed: {root}"
    return root


def _config_error(result: Any) -> str | None:
    """The message of the first spec, policy, suite or data error a step failed with."""
    for ev in result.all_events:
        if ev.is_step_failure:
            for e in _error_chain(ev.step_failure_data.error):
                if e.cls_name in _CONFIG_ERRORS:
                    return _message(e)
    return None


def _training_outcome(pipeline: LoadedPipeline, result: Any) -> RunOutcome:
    spec, policy = pipeline.spec.spec, pipeline.policy.policy

    gates = _gate_outcomes(
        result, checks_of(policy, spec.protected_attributes, assets=TRAINING_ASSETS)
    )
    blocked_by = [g.name for g in gates if g.blocking and g.passed is False]
    if blocked_by:
        # the gates after a blocking failure were not evaluated: say which gate stopped them
        why = f"not evaluated: blocked by {', '.join(blocked_by)}"
        gates = [replace(g, summary=why) if g.passed is None else g for g in gates]

    registration = None
    reg_key = dg.AssetKey([spec.name, "registered_model"])
    for mat in result.get_asset_materialization_events():
        if mat.asset_key == reg_key:
            registration = {k: v.value for k, v in mat.materialization.metadata.items()}
    failures = [ev for ev in result.all_events if ev.is_step_failure]
    config_error = evidence_error = other_error = None
    for ev in failures:
        err = ev.step_failure_data.error
        names = [e.cls_name for e in _error_chain(err)]
        if any(n in _CONFIG_ERRORS for n in names):
            e = next(e for e in _error_chain(err) if e.cls_name in _CONFIG_ERRORS)
            config_error = config_error or _message(e)
        elif "GateEvidenceError" in names:
            e = next(e for e in _error_chain(err) if e.cls_name == "GateEvidenceError")
            evidence_error = evidence_error or e.message.strip()
        elif not blocked_by:
            other_error = other_error or f"{ev.step_key}: {_root_error(err)}"

    base = {"pipeline": spec.name, "gates": gates, "dagster_run_id": result.run_id}
    if registration is not None:
        cand_model, _, cand_version = str(registration["candidate_version"]).rpartition("/")
        aliases = [a.strip() for a in str(registration["aliases"]).split(",") if a.strip()]
        prod = str(registration["production_version"])
        promoted = "champion" in aliases
        model, _, version = prod.rpartition("/") if promoted else (cand_model, "/", cand_version)
        return RunOutcome(
            status="registered",
            exit_code=0,
            model=model,
            version=version,
            aliases=["champion"] if promoted else ["challenger"],
            candidate={"model": cand_model, "version": cand_version, "aliases": ["challenger"]},
            **base,
        )
    if config_error:
        raise ConfigError(config_error)
    if blocked_by or evidence_error:
        return RunOutcome(
            status="blocked",
            exit_code=3,
            model=spec.model_name,
            version=None,
            aliases=[],
            blocked_by=blocked_by or ["registration: gate evidence"],
            error=evidence_error,
            **base,
        )
    return RunOutcome(
        status="error",
        exit_code=1,
        model=spec.model_name,
        version=None,
        aliases=[],
        error=other_error or "the run did not register a model and no gate failed",
        **base,
    )


@dataclass
class MonitorOutcome:
    """One partition scored by the champion and monitored."""

    pipeline: str
    partition: str
    status: str  # passed | flagged | error
    exit_code: int
    champion: str | None
    gates: list[GateOutcome]
    dagster_run_id: str | None = None
    flagged_by: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "partition": self.partition,
            "status": self.status,
            "champion": self.champion,
            "gates": [g.to_json() for g in self.gates],
            "dagster_run_id": self.dagster_run_id,
            "flagged_by": self.flagged_by,
            "error": self.error,
        }

    def render(self) -> str:
        head = f"monitoring {self.pipeline} partition {self.partition}"
        lines = [f"{head} scored by {self.champion or '-'} (dagster run {self.dagster_run_id})"]
        lines += [_gate_line(g) for g in self.gates]
        if self.status == "flagged":
            lines.append(f"FLAGGED by {', '.join(self.flagged_by)}")
        elif self.status == "error":
            lines.append(f"ERROR: {self.error}")
        return "\n".join(lines)


def _gate_line(g: GateOutcome) -> str:
    mark = "SKIP" if g.passed is None else ("PASS" if g.passed else "FAIL")
    num = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    return (
        f"  {mark:<7} {g.name:<36} {g.risk_id:<10} {g.asset:<16} "
        f"{'blocking' if g.blocking else 'warning '} value {num(g.value)} "
        f"threshold {num(g.threshold)}  {g.summary}"
    )


def monitor_partition(
    spec_path: str | Path,
    partition: str,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log_to_console: bool = True,
) -> MonitorOutcome:
    """Score one partition's batch with the champion and run the monitoring checks.

    Raises:
        ConfigError: the spec, policy or partition is bad (before anything runs).
    """

    pipeline = load_pipeline(spec_path)
    _partition_arg(pipeline, partition)
    if not pipeline.spec.partitioned:
        raise ConfigError(f"{pipeline.spec.path}: monitoring needs a partitioned source")
    # a batch file that is missing or unreadable is named before anything runs
    read_partition(pipeline.spec, partition, labelled=False)
    spec = pipeline.spec.spec
    defs = build_definitions([pipeline], resources=resources)
    inst = instance or _instance()
    result = _execute(defs, monitoring_job_name(spec.name), inst, partition, log_to_console)
    checks = checks_of(pipeline.policy.policy, spec.protected_attributes, assets=MONITORING_ASSETS)
    gates = _gate_outcomes(result, checks)
    for i, g in enumerate(gates):
        if g.passed is None and g.asset == "batch_outcomes":
            gates[i] = GateOutcome(
                **{**g.__dict__, "summary": "did not run: the outcomes have not arrived"}
            )
    champion = None
    for mat in result.get_asset_materialization_events():
        if mat.asset_key == dg.AssetKey([spec.name, "scored_batch"]):
            champion = str(mat.materialization.metadata["risk/champion"].value)
    flagged = [g.name for g in gates if g.blocking and g.passed is False]
    base = {
        "pipeline": spec.name,
        "partition": partition,
        "champion": champion,
        "gates": gates,
        "dagster_run_id": result.run_id,
    }
    if config_error := _config_error(result):
        raise ConfigError(config_error)
    if champion is None:
        errors = [
            list(_error_chain(ev.step_failure_data.error))[-1]
            .message.strip()
            .removeprefix("dagster._core.definitions.events.Failure: ")
            for ev in result.all_events
            if ev.is_step_failure
        ]
        return MonitorOutcome(
            status="error",
            exit_code=1,
            error=errors[0] if errors else "the batch was not scored",
            **base,
        )
    if flagged:
        return MonitorOutcome(status="flagged", exit_code=3, flagged_by=flagged, **base)
    return MonitorOutcome(status="passed", exit_code=0, **base)


def tick_retraining_sensor(
    spec_path: str | Path,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
) -> tuple[list[Any], str | None]:
    """Evaluate the retraining sensor once, as the daemon would. Returns its run requests
    and its skip message.

    The sensor keeps no cursor: it reads what it requested before from the instance's runs
    and what it alerted from the instance, so this evaluation and the daemon's agree.
    """
    pipeline = load_pipeline(spec_path)
    name = sensor_name(pipeline.spec.spec.name)
    defs = build_definitions([pipeline], resources=resources)
    inst = instance or _instance()
    sensor = defs.resolve_sensor_def(name)
    bound = {**default_resources(), **(resources or {})}
    with dg.build_sensor_context(
        instance=inst,
        definitions=defs,
        sensor_name=name,
        resources={"alerts": bound["alerts"]},
        cursor=_legacy_cursor_file(name),
    ) as context:
        data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.skip_message


def _legacy_cursor_file(sensor: str) -> str | None:
    """The cursor file earlier versions of the CLI kept under the state folder: read (never
    written) so that an upgrade does not retrain or alert the episodes it records again."""
    from risk_assets.settings import current_settings

    path = current_settings().state_dir / "sensors" / f"{sensor}.cursor"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def request_tags(request: Any, sensor: str) -> dict[str, str]:
    """The tags of a run launched for a sensor's request, as the daemon sets them: the
    request's own tags, the sensor's name and the run key (Dagster de-duplicates on these)."""
    tags = {k: v for k, v in (request.tags or {}).items() if not k.startswith("dagster/partition")}
    tags[SENSOR_NAME_TAG] = sensor
    if request.run_key:
        tags[RUN_KEY_TAG] = request.run_key
    return tags


def run_requested(
    spec_path: str | Path,
    request: Any,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log_to_console: bool = True,
) -> Any:
    """Execute a retraining sensor's run request in this process, tagged as the daemon tags
    the runs it launches for the sensor (its name, the run key); a training request returns
    its :class:`RunOutcome`, a data request the Dagster result."""
    pipeline = load_pipeline(spec_path)
    tags = request_tags(request, sensor_name(pipeline.spec.spec.name))
    if request.job_name in (None, job_name(pipeline.spec.spec.name)):
        return run_pipeline(
            spec_path,
            partition=request.partition_key,
            instance=instance,
            resources=resources,
            log_to_console=log_to_console,
            tags=tags,
        )
    defs = build_definitions([pipeline], resources=resources)
    inst = instance or _instance()
    return _execute(defs, request.job_name, inst, request.partition_key, log_to_console, tags=tags)


def partitions_between(spec_path: str | Path, start: str, end: str) -> list[str]:
    """The spec's partition keys from ``start`` to ``end`` (inclusive), in order.

    Raises:
        ConfigError: the pipeline is not partitioned, or a key is not one of its partitions.
    """
    pipeline = load_pipeline(spec_path)
    if not pipeline.spec.partitioned:
        raise ConfigError(f"{pipeline.spec.path}: the source is not partitioned; use run")
    for key in (start, end):
        check_partition(pipeline.spec, key)
    keys = partition_keys(pipeline.spec)
    first, last = keys.index(start), keys.index(end)
    if last < first:
        raise ConfigError(f"--from {start} is after --to {end}")
    return keys[first : last + 1]
