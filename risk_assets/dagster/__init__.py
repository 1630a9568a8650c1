"""The Dagster layer: specs and policies become assets, gate checks, jobs and resources."""

from risk_assets.dagster._component import RiskAssetsPipeline, definitions_from_defs_folder
from risk_assets.dagster._factory import (
    ASSET_NAMES,
    PipelineDefinitions,
    build_definitions,
    build_pipeline_definitions,
    default_resources,
    definitions_from_folder,
    job_name,
    load_pipeline,
)
from risk_assets.dagster._monitoring import plan_retraining
from risk_assets.dagster._resources import (
    JsonIOManager,
    MlflowResource,
    SnapshotStoreResource,
    WebhookAlertResource,
)

__all__ = [
    "ASSET_NAMES",
    "JsonIOManager",
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
    "plan_retraining",
]
