"""What a control's runner may look at: the :class:`Inputs` protocol.

The Dagster layer implements it (loading snapshots by hash, the model from MLflow, the
champion from the registry, all verified); a test or a notebook can implement it with
plain DataFrames. A runner uses only what its control needs; whatever it uses must be
there, or the runner raises and the gate fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Champion", "Inputs"]


@dataclass(frozen=True)
class Champion:
    """The production model a candidate is compared with, and the rows it saw."""

    ref: str  # "<model>/<version>"
    model: Any
    train: Any  # its training snapshot
    test: Any  # its test snapshot


class Inputs(Protocol):
    """A gate's inputs. Frames are pandas DataFrames, the model a fitted scikit-learn
    classifier. ``extra`` collects what the gate shows beside its result (e.g. the reference
    it compared with) as ``risk/<name>`` keys."""

    spec: Any  # the PipelineSpec
    spec_path: str  # the spec file, for messages
    policy_path: str  # the policy file, for messages
    suite_path: Path  # the expectation suite the spec names
    extra: dict[str, Any]
    suite_sha256: str | None  # set by a control that ran the suite

    features: list[str]
    categorical: list[str]  # of the features
    target: str

    # data gates and input monitoring
    frame: Any  # the rows judged: validated training data, or a scored batch's inputs
    raw: Any  # every source column of the snapshot (PII is scanned here)
    reference: Any  # the reference window (the champion's training rows), None for a first model

    # model gates
    train: Any
    test: Any
    model: Any  # the candidate (model gates) or the champion (monitoring)
    metrics: dict[str, float]  # the candidate's held-out metrics as recorded
    labels: Any  # risk_assets.labels.Labels, resolved against the model's classes
    favourable: Any  # the favourable label; raises when the spec leaves it unresolved
    test_predictions: Any

    def serving(self) -> Any:
        """The spec's serving source (raises when it has none)."""

    def champion(self) -> Champion | None:
        """The production champion, or None before the first promotion."""

    # monitoring
    predictions: Any  # a scored batch: prediction and score per row
    outcomes: Any  # a scored batch joined with its delayed labels ("label" column)
    decisions: Any  # risk_assets.controls.DecisionCounts of the scored batch

    def earlier_decisions(self, history: int) -> list[Any]:
        """Decision counts of up to ``history`` earlier partitions, oldest first."""
