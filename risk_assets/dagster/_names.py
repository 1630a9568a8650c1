"""The names a pipeline gives its Dagster definitions: one place, so that the CLI, the
sensors and the UI agree."""

import dagster as dg

__all__ = [
    "ASSET_NAMES",
    "PIPELINE_TAG",
    "RETRAIN_OF_TAG",
    "WINDOW_OF_TAG",
    "asset_key",
    "data_job_name",
    "job_name",
    "monitoring_job_name",
    "registry_pool",
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
#: The run tag of a training run the retraining sensor requested: the partition whose drift
#: episode asked for it (the window ends there).
RETRAIN_OF_TAG = "risk_assets/retrain_of"
#: The run tag of a data run the retraining sensor requested for the window of a retraining:
#: the partition being retrained (the run's own partition is one of its window).
WINDOW_OF_TAG = "risk_assets/window_of"


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


def registry_pool(model: str) -> str:
    """The Dagster concurrency pool that serialises registration and promotion of one
    registered model (the embedded instance limits every pool to one step at a time)."""
    return f"risk_assets/registry/{model}"
