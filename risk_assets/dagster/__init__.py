"""The Dagster layer: specs and policies become assets, gate checks, jobs and resources.

Modules, by concern: ``_names`` (what things are called), ``_inputs`` (what a gate looks
at), ``_checks`` (the one check builder), ``_assets``/``_training``/``_window`` (the
training assets), ``_monitoring`` (batch scoring), ``_sensors`` (schedules and the
retraining sensor), ``_definitions`` (composition only), ``_component`` (the pipeline as a
Dagster Component) and ``_runner`` (the CLI's in-process runs).
"""

from risk_assets.dagster._component import RiskAssetsPipeline, definitions_from_defs_folder
from risk_assets.dagster._definitions import (
    PipelineDefinitions,
    build_definitions,
    build_pipeline_definitions,
    default_resources,
    definitions_from_folder,
    pipeline_definitions,
    root_definitions,
)
from risk_assets.dagster._names import ASSET_NAMES, job_name
from risk_assets.dagster._resources import (
    JsonIOManager,
    MlflowResource,
    SnapshotStoreResource,
    WebhookAlertResource,
)
from risk_assets.dagster._sensors import plan_retraining
from risk_assets.pipeline import LoadedPipeline, load_pipeline

__all__ = [
    "ASSET_NAMES",
    "JsonIOManager",
    "LoadedPipeline",
    "MlflowResource",
    "PipelineDefinitions",
    "RiskAssetsPipeline",
    "SnapshotStoreResource",
    "WebhookAlertResource",
    "build_definitions",
    "build_pipeline_definitions",
    "default_resources",
    "definitions_from_defs_folder",
    "definitions_from_folder",
    "job_name",
    "load_pipeline",
    "pipeline_definitions",
    "plan_retraining",
    "root_definitions",
]
