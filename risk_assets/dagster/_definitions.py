"""Composition: a loaded pipeline's assets, gate checks, jobs, sensors and schedules,
assembled from the modules that build them; and the code location's definitions.

Nothing here builds an asset or a check: it only assembles. A pipeline's definitions carry
no resources and no executor, so that several pipelines (or several components) combine
without collisions; :func:`build_definitions` adds them once, at the root.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.audit import AUDIT_LOG_ENV
from risk_assets.catalogue import MONITORING_ASSETS, TRAINING_ASSETS, checks_of
from risk_assets.dagster._assets import training_assets
from risk_assets.dagster._checks import build_check
from risk_assets.dagster._monitoring import monitoring_assets
from risk_assets.dagster._names import (
    PIPELINE_TAG,
    asset_key,
    data_job_name,
    job_name,
    monitoring_job_name,
)
from risk_assets.dagster._partitions import partitions_def, quiet_previews
from risk_assets.dagster._production import resolve_executor
from risk_assets.dagster._resources import (
    ALERT_WEBHOOK_ENV,
    DAGSTER_URL_ENV,
    MLFLOW_UI_URL_ENV,
    AuditResource,
    JsonIOManager,
    MlflowResource,
    SnapshotStoreResource,
    WebhookAlertResource,
)
from risk_assets.dagster._sensors import retraining_sensor, schedules
from risk_assets.errors import SpecError
from risk_assets.pipeline import LoadedPipeline, load_pipeline
from risk_assets.settings import current_settings

__all__ = [
    "PipelineDefinitions",
    "build_definitions",
    "build_pipeline_definitions",
    "default_resources",
    "definitions_from_folder",
    "pipeline_checks",
    "pipeline_definitions",
    "root_definitions",
    "spec_files",
]


@dataclass(frozen=True)
class PipelineDefinitions:
    pipeline: LoadedPipeline
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    job: Any  # the training job (an unresolved asset job)
    jobs: list[Any] = field(default_factory=list)  # every job, the training job first
    sensors: list[Any] = field(default_factory=list)
    schedules: list[Any] = field(default_factory=list)

    def to_definitions(self) -> dg.Definitions:
        """As Dagster definitions, without resources or executor (see the module)."""
        return dg.Definitions(
            assets=self.assets,
            asset_checks=self.checks,
            jobs=self.jobs,
            sensors=self.sensors,
            schedules=self.schedules,
        )


def pipeline_checks(pipeline: LoadedPipeline, assets: tuple[str, ...]) -> list[Any]:
    """The policy's checks on ``assets``, in register order.

    Raises:
        SpecError: a check the spec cannot support (naming both files).
    """
    spec = pipeline.spec.spec
    try:
        return checks_of(pipeline.policy.policy, spec.protected_attributes, assets=assets)
    except ValueError as exc:
        raise SpecError(f"{pipeline.policy.path} with {pipeline.spec.path}: {exc}") from None


def _job(pipeline: LoadedPipeline, name: str, assets: Sequence[Any], description: str) -> Any:
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*assets),
        description=description,
        tags={PIPELINE_TAG: pipeline.spec.name},
    )


def build_pipeline_definitions(pipeline: LoadedPipeline) -> PipelineDefinitions:
    """Assets, gate checks, jobs, sensors and schedules for one pipeline; no side effects."""
    name, spec = pipeline.spec.name, pipeline.spec.spec
    pdef = partitions_def(pipeline.spec) if pipeline.spec.partitioned else None
    assets = training_assets(pipeline, pdef)
    with quiet_previews():
        checks = [
            build_check(pipeline, c, pdef) for c in pipeline_checks(pipeline, TRAINING_ASSETS)
        ]
    job = _job(
        pipeline,
        job_name(name),
        assets,
        f"The gated pipeline {name}: data, gates, candidate, registration.",
    )
    out = PipelineDefinitions(
        pipeline, assets, checks, job, jobs=[job], schedules=schedules(pipeline, job, pdef)
    )
    if pdef is None:
        return out
    data_job = _job(
        pipeline,
        data_job_name(name),
        assets[:2],
        f"Snapshots and gates one partition's data of {name}.",
    )
    monitored = monitoring_assets(pipeline, pdef)
    monitor_checks = pipeline_checks(pipeline, MONITORING_ASSETS)
    with quiet_previews():
        out.checks.extend(build_check(pipeline, c, pdef) for c in monitor_checks)
    blocking = [
        dg.AssetCheckKey(asset_key(name, c.asset), c.name) for c in monitor_checks if c.blocking
    ]
    out.assets.extend(monitored)
    out.jobs.extend(
        [
            data_job,
            _job(
                pipeline,
                monitoring_job_name(name),
                monitored,
                f"Scores a batch with the champion of {spec.model_name} and monitors it.",
            ),
        ]
    )
    out.sensors.append(retraining_sensor(pipeline, pdef, blocking, job, data_job))
    return out


def pipeline_definitions(spec: str | Path | LoadedPipeline) -> dg.Definitions:
    """One pipeline's definitions, without resources or executor: merge any number of them
    with :func:`root_definitions` once (``dg.Definitions.merge``), as components do.

    Raises:
        SpecError, PolicyError, SuiteError: at load time, naming the file and the key.
    """
    pipeline = spec if isinstance(spec, LoadedPipeline) else load_pipeline(spec)
    return build_pipeline_definitions(pipeline).to_definitions()


def _env_or(var: str, default: str | None) -> Any:
    """A resource field read from ``var`` when the environment sets it (Dagster's EnvVar:
    the Resources page names the variable, and the value is read where the run executes),
    else the embedded default as resolved now (the page shows the path)."""
    return dg.EnvVar(var) if os.environ.get(var) else default


def default_resources() -> dict[str, Any]:
    """Resources on embedded defaults, moved by the environment (see risk_assets.settings);
    the Dagster UI's Resources page shows where each keeps its state."""
    s = current_settings()
    local_store = not s.tracking_uri.startswith(("http://", "https://", "databricks"))
    return {
        "mlflow": MlflowResource(
            tracking_uri=_env_or("MLFLOW_TRACKING_URI", s.tracking_uri),
            registry_uri=_env_or("MLFLOW_REGISTRY_URI", None),  # None: the tracking URI
            artifact_root=s.artifact_root if local_store else None,
            ui_url=_env_or(MLFLOW_UI_URL_ENV, None),
            dagster_ui_url=_env_or(DAGSTER_URL_ENV, None),
        ),
        "snapshots": SnapshotStoreResource(base_dir=s.snapshot_location),
        "audit": AuditResource(
            path=_env_or(AUDIT_LOG_ENV, str(s.state_dir / "audit" / "audit.jsonl"))
        ),
        "alerts": WebhookAlertResource(url=_env_or(ALERT_WEBHOOK_ENV, None)),
        "io_manager": JsonIOManager(base_dir=s.io_location),
    }


def root_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The resources (embedded defaults, replaced by key) and the executor, defined once.

    The executor is ``$RISK_ASSETS_EXECUTOR`` (see :mod:`risk_assets.dagster._production`).
    By default steps run one after another in the run's process: the embedded SQLite
    instance must not be written by several processes at once (dagster#2884).

    Raises:
        ConfigError: ``$RISK_ASSETS_EXECUTOR`` names no executor, or one not installed.
    """
    from risk_assets.dagster._governance import decision_job

    return dg.Definitions(
        resources={**default_resources(), **(resources or {})},
        executor=resolve_executor(),
        jobs=[decision_job],
    )


def build_definitions(
    specs: Iterable[str | Path | LoadedPipeline], *, resources: dict[str, Any] | None = None
) -> dg.Definitions:
    """Definitions for every spec: one asset group, its gates and its jobs per pipeline,
    with the resources and executor once.

    Args:
        specs: spec paths, or pipelines already loaded with :func:`load_pipeline`.
        resources: resources that replace the embedded defaults, by key.

    Raises:
        SpecError, PolicyError, SuiteError: at load time, naming the file and the key.
    """
    parts: list[dg.Definitions] = []
    seen: dict[str, Path] = {}
    for item in specs:
        pipeline = item if isinstance(item, LoadedPipeline) else load_pipeline(item)
        if pipeline.spec.name in seen:
            raise SpecError(
                f"{pipeline.spec.path}: name {pipeline.spec.name!r} is already used by "
                f"{seen[pipeline.spec.name]}"
            )
        seen[pipeline.spec.name] = pipeline.spec.path
        parts.append(build_pipeline_definitions(pipeline).to_definitions())
    return dg.Definitions.merge(*parts, root_definitions(resources))


def spec_files(folder: str | Path) -> Sequence[Path]:
    """Pipeline specs in a folder: each ``*.yaml`` or ``*.yml`` in it with a ``source`` key."""
    import yaml

    from risk_assets._yaml import load_file_bounded, yaml_problem

    out = []
    for path in sorted(Path(folder).glob("*.y*ml")):
        try:
            head = load_file_bounded(path)
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {yaml_problem(exc)}") from exc
        if isinstance(head, dict) and "source" in head:
            out.append(path)
    return out


def definitions_from_folder(folder: str | Path) -> dg.Definitions:
    """Definitions for every pipeline spec in ``folder`` (drop a spec in, it appears)."""
    return build_definitions(spec_files(folder))
