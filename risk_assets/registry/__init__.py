"""MLflow and snapshot storage: lineage tags, dataset inputs, gated registration, safe loading."""

from risk_assets.registry._lineage import TAG_PREFIX, RunLineage, RunVerdict, VersionTags
from risk_assets.registry._mlflow import (
    CHALLENGER,
    CHAMPION,
    GateRecord,
    Registration,
    candidates_name,
    find_champion,
    lineage,
    load_version_model,
    log_gate,
    record_verdict,
    refusal_run,
    register_candidate,
    risk_summary,
    verify_gate_evidence,
)
from risk_assets.registry._models import TRUSTED_TYPES, file_sha256, load_model_dir, save_model_dir
from risk_assets.registry._snapshots import SnapshotRef, SnapshotStore

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TAG_PREFIX",
    "TRUSTED_TYPES",
    "GateRecord",
    "Registration",
    "RunLineage",
    "RunVerdict",
    "SnapshotRef",
    "SnapshotStore",
    "VersionTags",
    "candidates_name",
    "file_sha256",
    "find_champion",
    "lineage",
    "load_model_dir",
    "load_version_model",
    "log_gate",
    "record_verdict",
    "refusal_run",
    "register_candidate",
    "risk_summary",
    "save_model_dir",
    "verify_gate_evidence",
]
