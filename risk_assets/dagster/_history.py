"""What the Dagster instance recorded of a pipeline's monitoring checks: per check, the
latest verdict of each partition (monitoring verdicts live in the instance, with their
evidence beside each scored batch, not on a candidate's MLflow run)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from risk_assets.catalogue import MONITORING_ASSETS, checks_of
from risk_assets.dagster._names import asset_key

__all__ = ["MonitoringHistory", "monitoring_history"]


@dataclass(frozen=True)
class MonitoringHistory:
    """One monitoring check's latest verdict per partition."""

    check: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return len(self.passed) + len(self.failed)

    def summary(self) -> str:
        if not self.evaluated:
            return f"{self.check}: not evaluated yet"
        text = f"{self.check}: {len(self.failed)} of {self.evaluated} partitions failed"
        return text + (f" ({', '.join(self.failed)})" if self.failed else "")


def _latest(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> dict[str, bool]:
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    out: dict[str, bool] = {}
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10_000)
    for rec in history:  # newest first
        if rec.partition is None or rec.partition in out:
            continue
        if rec.status in (Status.SUCCEEDED, Status.FAILED):
            out[rec.partition] = rec.status == Status.SUCCEEDED
    return out


def monitoring_history(pipeline: Any, instance: dg.DagsterInstance) -> list[MonitoringHistory]:
    """Each monitoring check of the pipeline with the partitions it passed and failed, in
    partition order."""
    spec = pipeline.spec.spec
    out = []
    checks: Sequence[Any] = checks_of(
        pipeline.policy.policy, spec.protected_attributes, assets=MONITORING_ASSETS
    )
    for check in checks:
        latest = _latest(instance, dg.AssetCheckKey(asset_key(spec.name, check.asset), check.name))
        parts = sorted(latest)
        out.append(
            MonitoringHistory(
                check.name,
                passed=[p for p in parts if latest[p]],
                failed=[p for p in parts if not latest[p]],
            )
        )
    return out
