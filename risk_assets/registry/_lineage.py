"""The lineage tag schema of a candidate run and of a registered model version.

Every MLflow tag risk-assets writes about where a model came from is a field of
:class:`RunLineage` (on the candidate's run, or a refusal run) or :class:`VersionTags` (on
a version of ``<name>-candidates`` or ``<name>``), and what became of a run is a
:class:`RunVerdict`; each writes and reads its tags, so the key names and value formats
live here and nowhere else. They are a published schema: audit queries
(``tags."risk_assets.train_sha256" = '...'``) and stores written by earlier versions
depend on them, so a key or a format never changes.

Reading is tolerant: a tag that is absent reads as None (an empty tuple for the list
tags), a tag that is present reads as the exact string stored, and tags this schema does
not know (gate evidence, MLflow's own) are ignored. Whoever needs a value decides what
its absence means and raises.

Example::

    lineage = RunLineage.from_tags(client.get_run(run_id).data.tags)
    if not lineage.train_sha256:
        raise IntegrityError(f"run {run_id} records no training snapshot")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

__all__ = ["TAG_PREFIX", "RunLineage", "RunVerdict", "VersionTags"]

#: The namespace of every tag risk-assets writes on MLflow runs and model versions.
TAG_PREFIX = "risk_assets."

# Field name -> tag key of a candidate run, in the order the tags are written. The keys
# outside the prefix are Dagster's run and MLflow's own user tag.
_RUN_KEYS: dict[str, str] = {
    "dagster_run_id": "dagster.run_id",
    "dagster_partition": "dagster.partition",
    "partition": TAG_PREFIX + "partition",
    "window": TAG_PREFIX + "window",
    "dagster_job": "dagster.job",
    "pipeline": TAG_PREFIX + "pipeline",
    "source": TAG_PREFIX + "source",
    "raw_snapshot_sha256": TAG_PREFIX + "raw_snapshot_sha256",
    "snapshot_sha256": TAG_PREFIX + "snapshot_sha256",
    "train_sha256": TAG_PREFIX + "train_sha256",
    "test_sha256": TAG_PREFIX + "test_sha256",
    "suite_sha256": TAG_PREFIX + "suite_sha256",
    "suite_path": TAG_PREFIX + "suite_path",
    "policy_sha256": TAG_PREFIX + "policy_sha256",
    "policy_name": TAG_PREFIX + "policy_name",
    "policy_tier": TAG_PREFIX + "policy_tier",
    "spec_sha256": TAG_PREFIX + "spec_sha256",
    "protected_attributes": TAG_PREFIX + "protected_attributes",
    "positive_label": TAG_PREFIX + "positive_label",
    "favourable_label": TAG_PREFIX + "favourable_label",
    "spec_path": TAG_PREFIX + "spec_path",
    "code_version": TAG_PREFIX + "code_version",
    "user": "mlflow.user",
    "model_class": TAG_PREFIX + "model_class",
    "model_sha256": TAG_PREFIX + "model_sha256",
    "logged_model_id": TAG_PREFIX + "logged_model_id",
    "window_sha256": TAG_PREFIX + "window_sha256",
    "candidate_version": TAG_PREFIX + "candidate_version",
    "dagster_run_url": TAG_PREFIX + "dagster_run_url",
}
#: MLflow's own "source" of a run; ours names the pipeline spec (``spec_path``).
_MLFLOW_SOURCE_NAME = "mlflow.source.name"

_VERSION_KEYS: dict[str, str] = {
    name: TAG_PREFIX + name
    for name in (
        "model_sha256",
        "run_id",
        "policy_sha256",
        "snapshot_sha256",
        "suite_sha256",
        "gates_passed",
        "registered_by",
        "policy_tier",
        "partition",
        "window",
        "candidate_version",
        "promoted_by",
        "promotion_reason",
    )
}


def _join(items: Iterable[str]) -> str:
    return ",".join(items)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(item for item in (text or "").split(",") if item)


def _as_tuple(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, str):
        raise TypeError(f"{type(obj).__name__}.{name} is a sequence of names, not a string")
    # a list would make the object unhashable and unequal to what from_tags reads
    object.__setattr__(obj, name, tuple(value))


def _write(obj: Any, keys: Mapping[str, str], lists: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for name, key in keys.items():
        value = getattr(obj, name)
        if name in lists:
            tags[key] = _join(value)
        elif value is not None:
            tags[key] = value
    return tags


_T = TypeVar("_T")


def _read(
    cls: type[_T], tags: Mapping[str, str], keys: Mapping[str, str], lists: Sequence[str]
) -> _T:
    values: dict[str, Any] = {}
    for name, key in keys.items():
        value = tags.get(key)
        values[name] = _split(value) if name in lists else value
    return cls(**values)


@dataclass(frozen=True, kw_only=True)
class RunLineage:
    """The lineage tags of a candidate's MLflow run: what data, suite, policy, spec and
    code stand behind the model, and which Dagster run made it.

    The fields without a default are written when the run is created; a reader of a run
    that lacks one of them (a run risk-assets did not make, or a store edited by hand)
    gets None. ``model_class``, ``model_sha256``, ``logged_model_id`` and ``window_sha256``
    are set once the
    model is fitted and saved (:meth:`model_tags`, :meth:`window_tags`),
    ``candidate_version`` once it is registered (:meth:`registration_tags`).

    Example::

        lineage = RunLineage(pipeline="credit_risk", ..., user=current_user())
        run = client.create_run(experiment_id, tags=lineage.to_tags())
    """

    #: The pipeline spec's name.
    pipeline: str | None
    #: Where the data came from (a file path or a table), as the spec's source reads it.
    source: str | None
    raw_snapshot_sha256: str | None
    #: The validated snapshot (for a window of partitions: the combined snapshot).
    snapshot_sha256: str | None
    train_sha256: str | None
    test_sha256: str | None
    suite_sha256: str | None
    suite_path: str | None
    policy_sha256: str | None
    policy_name: str | None
    policy_tier: str | None
    spec_sha256: str | None
    #: The spec file; also written as MLflow's own ``mlflow.source.name``.
    spec_path: str | None
    #: Written comma-separated; an empty tuple when there are none (or the tag is absent).
    protected_attributes: tuple[str, ...]
    #: The positive label and why, as :meth:`describe_label` writes it.
    positive_label: str | None
    #: The favourable label and why, as :meth:`describe_label` writes it.
    favourable_label: str | None
    #: The git commit of the spec's folder (``+dirty`` with local changes).
    code_version: str | None
    dagster_run_id: str | None
    #: The Dagster partition key, ``"none"`` for an unpartitioned run.
    dagster_partition: str | None
    dagster_job: str | None
    #: Who ran it (MLflow's own ``mlflow.user`` tag).
    user: str | None
    #: The partition the run was for (the last of its window, if any); None when unpartitioned.
    partition: str | None = None
    #: The training window, as :meth:`describe_window` writes it; None without one.
    window: str | None = None
    model_class: str | None = None
    model_sha256: str | None = None
    #: The MLflow 3 LoggedModel holding a copy of the run's ``model/`` (the experiment's
    #: Models tab); the run's own ``model/`` is the one registered and verified.
    logged_model_id: str | None = None
    #: SHA-256 of the run's ``lineage/window.json`` record; None without a window.
    window_sha256: str | None = None
    #: ``<name>-candidates/<version>`` once the run is registered.
    candidate_version: str | None = None
    #: The Dagster run in the Dagster UI (a link back from MLflow to the run that made it).
    dagster_run_url: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "protected_attributes")

    def to_tags(self) -> dict[str, str]:
        """The run's tags: every field that is not None under its published key, plus
        ``mlflow.source.name`` (the spec path); ``protected_attributes`` always."""
        tags = _write(self, _RUN_KEYS, ("protected_attributes",))
        if self.spec_path is not None:
            tags[_MLFLOW_SOURCE_NAME] = self.spec_path
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunLineage:
        """Read a run's tags (``client.get_run(run_id).data.tags``); absent tags are None."""
        return _read(cls, tags, _RUN_KEYS, ("protected_attributes",))

    @staticmethod
    def describe_label(value: Any, reason: str) -> str:
        """A label and why it was chosen, as the ``*_label`` tags record it: ``1 (spec)``."""
        return f"{value!r} ({reason})"

    @staticmethod
    def describe_window(partitions: Sequence[str]) -> str:
        """A training window as the ``window`` tag records it: ``first..last (n partitions)``.

        Raises:
            ValueError: the window has no partitions.
        """
        if not partitions:
            raise ValueError("a training window needs at least one partition")
        return f"{partitions[0]}..{partitions[-1]} ({len(partitions)} partitions)"

    @staticmethod
    def model_tags(
        *,
        model_sha256: str | None = None,
        model_class: str | None = None,
        logged_model_id: str | None = None,
    ) -> dict[str, str]:
        """Tags set once the model is fitted (its class) and saved (its SHA-256 and the
        LoggedModel that shows it)."""
        values = {
            "model_class": model_class,
            "model_sha256": model_sha256,
            "logged_model_id": logged_model_id,
        }
        return {_RUN_KEYS[name]: value for name, value in values.items() if value is not None}

    @staticmethod
    def window_tags(window_sha256: str) -> dict[str, str]:
        """The tag that records the hash of the run's training window record."""
        return {_RUN_KEYS["window_sha256"]: window_sha256}

    @staticmethod
    def registration_tags(candidate_version: str) -> dict[str, str]:
        """The tag that links the run to its version of ``<name>-candidates``."""
        return {_RUN_KEYS["candidate_version"]: candidate_version}


@dataclass(frozen=True, kw_only=True)
class VersionTags:
    """The tags of a registered model version: the gate evidence it was registered with,
    and, on a production version, where it was promoted from, by whom and why.

    ``snapshot_sha256`` and ``suite_sha256`` are written as given (an empty string when the
    run recorded none); ``gates_passed`` is written comma-separated, in the order given.
    """

    model_sha256: str | None = None
    run_id: str | None = None
    policy_sha256: str | None = None
    snapshot_sha256: str | None = None
    suite_sha256: str | None = None
    gates_passed: tuple[str, ...] = ()
    registered_by: str | None = None
    policy_tier: str | None = None
    partition: str | None = None
    window: str | None = None
    #: On a production version: the candidate it was copied from, ``<name>-candidates/<v>``.
    candidate_version: str | None = None
    promoted_by: str | None = None
    promotion_reason: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "gates_passed")

    def to_tags(self) -> dict[str, str]:
        """The version's tags: every field that is not None; ``gates_passed`` always."""
        return _write(self, _VERSION_KEYS, ("gates_passed",))

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionTags:
        """Read a model version's tags (``mv.tags``); absent tags are None."""
        return _read(cls, tags, _VERSION_KEYS, ("gates_passed",))


# Field name -> tag key of a run's verdict. ``mlflow.note.content`` is MLflow's own run
# description (the "Description" box of a run's page).
_VERDICT_KEYS: dict[str, str] = {
    "verdict": TAG_PREFIX + "verdict",
    "failed_gates": TAG_PREFIX + "failed_gates",
    "description": "mlflow.note.content",
}


@dataclass(frozen=True, kw_only=True)
class RunVerdict:
    """What became of a run's model, as tags: the verdict, the blocking gates that failed
    and a description naming them (MLflow's run description).

    Verdicts: ``registered`` (in production: a version of ``<name>``, copied from its
    version of ``<name>-candidates``), ``awaiting approval`` (a version of
    ``<name>-candidates`` only, the ``challenger``), ``blocked`` (a blocking gate failed
    on the candidate: nothing was registered) and ``refused`` (a refusal run: a blocking
    data gate failed, so no model was trained; the run holds that data's lineage and gate
    records) and ``abandoned`` (the run's process died before it was finished; what it
    left was cleaned up). A run without the tag has no verdict yet (its gates are running,
    or the run stopped before registration).

    A blocked or refused run is also given MLflow's ``FAILED`` status (:attr:`run_status`):
    MLflow's UI marks and filters runs by status, and a green "finished" on a model that
    must not be deployed reads as success. ``FAILED`` with a verdict is a gate's refusal;
    ``FAILED`` without one is a run that broke.

    Example::

        verdict = RunVerdict(verdict=RunVerdict.BLOCKED, failed_gates=["fair_across_age"],
                             description="Blocked by fair_across_age (FAIR-001): ...")
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in verdict.to_tags().items()])
    """

    REGISTERED: ClassVar[str] = "registered"
    AWAITING_APPROVAL: ClassVar[str] = "awaiting approval"
    BLOCKED: ClassVar[str] = "blocked"
    REFUSED: ClassVar[str] = "refused"
    #: the run's process died before it was finished (see risk_assets.registry._recovery)
    ABANDONED: ClassVar[str] = "abandoned"
    #: Every verdict, and the MLflow run status it goes with.
    STATUS: ClassVar[Mapping[str, str]] = {
        "registered": "FINISHED",
        "awaiting approval": "FINISHED",
        "blocked": "FAILED",
        "refused": "FAILED",
        "abandoned": "FAILED",
    }

    verdict: str | None = None
    #: The blocking gates that failed (written comma-separated; empty when none did).
    failed_gates: tuple[str, ...] = ()
    #: The run's description (Markdown), naming what was decided and why.
    description: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "failed_gates")

    @property
    def run_status(self) -> str | None:
        """The MLflow run status that goes with the verdict (None without a verdict)."""
        return None if self.verdict is None else self.STATUS.get(self.verdict)

    def to_tags(self) -> dict[str, str]:
        """The verdict's tags; ``failed_gates`` always, so a new verdict clears an old list.

        Raises:
            ValueError: the verdict is not one of :attr:`STATUS`.
        """
        if self.verdict is not None and self.verdict not in self.STATUS:
            raise ValueError(
                f"unknown verdict {self.verdict!r}; expected one of {sorted(self.STATUS)}"
            )
        return _write(self, _VERDICT_KEYS, ("failed_gates",))

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunVerdict:
        """Read a run's verdict tags; absent tags are None (a verdict is read as stored)."""
        return _read(cls, tags, _VERDICT_KEYS, ("failed_gates",))

    @staticmethod
    def search_filter(verdict: str) -> str:
        """An MLflow ``search_runs`` filter for runs with this verdict."""
        return f"tags.`{_VERDICT_KEYS['verdict']}` = '{verdict}'"
