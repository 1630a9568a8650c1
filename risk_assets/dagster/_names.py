"""The names a pipeline gives its Dagster definitions: one place, so that the CLI, the
sensors and the UI agree."""

import dagster as dg

__all__ = [
    "ASSET_NAMES",
    "PIPELINE_TAG",
    "asset_key",
    "data_job_name",
    "job_name",
    "monitoring_job_name",
    "schedule_name",
    "sensor_name",
]

#: The training assets, in the order of the flow.
ASSET_NAMES = (
    "raw_snapshot",
    "validated_data",
    "train_test_split",
    "candidate_model",
    "registered_model",
)
#: The run tag naming the pipeline a job belongs to.
PIPELINE_TAG = "risk_assets/pipeline"


def asset_key(pipeline: str, asset: str) -> dg.AssetKey:
    return dg.AssetKey([pipeline, asset])


def job_name(pipeline: str) -> str:
    return f"{pipeline}_job"


def data_job_name(pipeline: str) -> str:
    return f"{pipeline}_data_job"


def monitoring_job_name(pipeline: str) -> str:
    return f"{pipeline}_monitoring_job"


def sensor_name(pipeline: str) -> str:
    return f"{pipeline}_retraining_sensor"


def schedule_name(pipeline: str) -> str:
    return f"{pipeline}_retraining_schedule"
