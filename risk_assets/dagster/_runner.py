"""Run a pipeline in one process on the configured Dagster instance and report its gates."""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.dagster._factory import LoadedPipeline, build_definitions, job_name, load_pipeline
from risk_assets.errors import ConfigError, DataError
from risk_assets.policy import TRAINING_ASSETS, checks_of

__all__ = ["GateOutcome", "RunOutcome", "preflight", "run_pipeline"]

_CONFIG_ERRORS = {"ConfigError", "SpecError", "PolicyError", "SuiteError", "DataError"}


@dataclass(frozen=True)
class GateOutcome:
    name: str
    risk_id: str
    asset: str
    passed: bool | None  # None: the gate did not run (an upstream step stopped first)
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
        }

    def render(self) -> str:
        lines = [f"pipeline {self.pipeline} (dagster run {self.dagster_run_id})", "gates:"]
        for g in self.gates:
            mark = "not run" if g.passed is None else ("PASS" if g.passed else "FAIL")
            num = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
            lines.append(
                f"  {mark:<7} {g.name:<36} {g.risk_id:<10} {g.asset:<16} "
                f"{'blocking' if g.blocking else 'warning '} value {num(g.value)} "
                f"threshold {num(g.threshold)}  {g.summary}"
            )
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


def preflight(pipeline: LoadedPipeline) -> None:
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
    # the head is enough to check columns; raw_snapshot reads (and checks) the whole file
    df = read_source(pipeline.spec.source_path, spec.source.format, nrows=1000)
    require_columns(
        df.columns, target=spec.target, features=spec.features, source=pipeline.spec.source_path
    )
    missing = [c for c in spec.protected_attributes if c not in df.columns]
    if missing:
        raise DataError(
            f"{pipeline.spec.source_path}: protected attribute column(s) {missing} not found "
            f"(spec {pipeline.spec.path}: protected_attributes)"
        )


def _instance() -> dg.DagsterInstance:
    from risk_assets.settings import current_settings

    if not os.environ.get("DAGSTER_HOME"):
        # The embedded default: a project-local home, made on first use without telemetry.
        home = current_settings().dagster_home
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
        os.environ["DAGSTER_HOME"] = str(home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def _error_chain(error: Any):
    while error is not None:
        yield error
        error = error.cause or error.context


def run_pipeline(
    spec_path: str | Path,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log_to_console: bool = True,
) -> RunOutcome:
    """Materialise every asset and gate of a pipeline; classify the result for the CLI.

    Raises:
        ConfigError: the spec, policy, suite or data is bad (before anything runs).
    """
    pipeline = load_pipeline(spec_path)
    preflight(pipeline)
    spec, policy = pipeline.spec.spec, pipeline.policy.policy
    defs = build_definitions([pipeline], resources=resources)
    job = defs.resolve_job_def(job_name(spec.name))
    inst = instance or _instance()
    level = "INFO" if log_to_console else "CRITICAL"
    run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
    result = job.execute_in_process(instance=inst, raise_on_error=False, run_config=run_config)

    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    gates = []
    for required in checks_of(policy, spec.protected_attributes, assets=TRAINING_ASSETS):
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
    blocked_by = [g.name for g in gates if g.blocking and g.passed is False]

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
            config_error = config_error or e.message.strip()
        elif "GateEvidenceError" in names:
            e = next(e for e in _error_chain(err) if e.cls_name == "GateEvidenceError")
            evidence_error = evidence_error or e.message.strip()
        elif not any("AssetCheckFailed" in n or "Blocking" in n for n in names) and not blocked_by:
            root = list(_error_chain(err))[-1]
            other_error = other_error or f"{ev.step_key}: {root.message.strip()}"

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
