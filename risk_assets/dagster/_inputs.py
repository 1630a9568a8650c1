"""What a gate looks at, loaded lazily and verified: the Dagster layer's implementation of
:class:`risk_assets.catalogue.Inputs`.

:class:`GateInputs` serves the training gates (snapshots by hash from the snapshot store,
the candidate model by hash from its MLflow run, the champion from the registry);
:class:`MonitorInputs` serves the monitoring checks (a scored batch, the champion that
scored it, the decision counts of earlier partitions from the Dagster instance).
"""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from risk_assets.catalogue import Champion
from risk_assets.errors import IntegrityError, SpecError
from risk_assets.registry import RunLineage, VersionTags

__all__ = ["GateInputs", "MonitorInputs"]

#: The candidate's test decisions, by (model hash, test snapshot hash, features).
_PREDICTIONS: dict[tuple, Any] = {}
#: The candidate model, loaded and verified, by (tracking URI, MLflow run, model hash).
_MODELS: dict[tuple, Any] = {}


@dataclass
class _Inputs:
    pipeline: Any  # LoadedPipeline
    store: Any  # SnapshotStore
    mlflow: Any = None  # MlflowResource: the client is made only if a gate needs it
    #: extra metadata the gate shows in the UI (e.g. the reference it compared with)
    extra: dict[str, Any] = field(default_factory=dict)
    suite_sha256: str | None = None

    @property
    def spec(self) -> Any:
        return self.pipeline.spec.spec

    @property
    def spec_path(self) -> str:
        return str(self.pipeline.spec.path)

    @property
    def policy_path(self) -> str:
        return str(self.pipeline.policy.path)

    @property
    def suite_path(self) -> Path:
        return self.pipeline.spec.suite_path

    @cached_property
    def client(self) -> Any:
        return self.mlflow.get_client()

    @cached_property
    def labels(self) -> Any:
        """The positive and favourable labels, resolved against the model's classes."""
        return self.spec.labels(self.model.classes_, where=self.pipeline.spec.path)

    @property
    def favourable(self) -> Any:
        return self.labels.require_favourable(target=self.spec.target, where=self.spec_path)

    @property
    def target(self) -> str:
        return self.spec.target


@dataclass
class GateInputs(_Inputs):
    """A training gate's inputs: the validated data (data gates) or the candidate (model
    gates)."""

    validated: dict | None = None
    candidate: dict | None = None

    @property
    def _value(self) -> dict:
        return self.candidate if self.candidate is not None else self.validated

    @property
    def features(self) -> list[str]:
        return list(self._value["features"])

    @property
    def categorical(self) -> list[str]:
        return list(self._value["categorical"])

    @property
    def target(self) -> str:
        return self._value["target"]

    @cached_property
    def frame(self) -> Any:
        return self.store.get(self.validated["sha256"])

    @cached_property
    def raw(self) -> Any:
        """Every column of the source as snapshotted, features or not (hash verified)."""
        return self.store.get(self.validated.get("raw_sha256") or self.validated["sha256"])

    @cached_property
    def test(self) -> Any:
        return self.store.get(self.candidate["test"]["sha256"])

    @cached_property
    def train(self) -> Any:
        return self.store.get(self.candidate["train"]["sha256"])

    @cached_property
    def metrics(self) -> dict[str, float]:
        """The candidate's held-out metrics as recorded in MLflow, for this model hash."""
        run = self.client.get_run(self.candidate["run_id"])
        if RunLineage.from_tags(run.data.tags).model_sha256 != self.candidate["model_sha256"]:
            raise IntegrityError(
                f"MLflow run {self.candidate['run_id']} records another model hash"
            )
        return {k[5:]: v for k, v in run.data.metrics.items() if k.startswith("test.")}

    @cached_property
    def model(self) -> Any:
        """The candidate model from its MLflow run, loaded safely, hash verified. Every gate
        downloads and checks the folder again (a file swapped since is refused); the skops
        archive is loaded once per process for a run and a model hash (no control changes
        a model it is given)."""
        import tempfile

        from risk_assets.registry._mlflow import download_model
        from risk_assets.registry._models import check_model_dir, load_model_dir

        uri = self.mlflow.resolved_tracking_uri() if self.mlflow is not None else None
        sha = self.candidate["model_sha256"]
        key = (uri, self.candidate["run_id"], sha)
        with tempfile.TemporaryDirectory() as tmp:
            local = download_model(self.client, self.candidate["run_id"], tmp)
            if key in _MODELS:
                check_model_dir(local, expected_sha256=sha)
                return _MODELS[key]
            loaded = load_model_dir(local, expected_sha256=sha)
        _MODELS.clear()  # one candidate at a time: a run judges one
        _MODELS[key] = loaded
        return loaded

    @cached_property
    def reference(self) -> Any:
        """The reference window: the training snapshot of the champion, else of the latest
        registered candidate; None for a first model. Hash verified on read."""
        from risk_assets.registry._mlflow import reference_version

        version = reference_version(self.client, self.spec.model_name)
        if version is None:
            self.extra["risk/reference"] = "none"
            return None
        ref_sha = RunLineage.from_tags(self.client.get_run(version.run_id).data.tags).train_sha256
        if not ref_sha:
            raise IntegrityError(f"{version.name}/{version.version} records no training snapshot")
        self.extra["risk/reference"] = f"{version.name}/{version.version} train {ref_sha}"
        return self.store.get(ref_sha)

    @cached_property
    def test_predictions(self) -> Any:
        """The candidate's decisions on its test rows: computed once per process for a
        model hash and a test snapshot (each gate of a run asks for them)."""
        key = (self.candidate["model_sha256"], self.candidate["test"]["sha256"], *self.features)
        if key not in _PREDICTIONS:
            _PREDICTIONS.clear()  # one model's at a time: a run judges one candidate
            _PREDICTIONS[key] = self.model.predict(self.test[self.features])
        return _PREDICTIONS[key].copy()

    def serving(self) -> Any:
        from risk_assets.data import read_source

        loaded = self.pipeline.spec
        if loaded.serving_path is None:
            raise SpecError(f"{loaded.path}: the skew control needs serving_source")
        return read_source(loaded.serving_path, loaded.spec.serving_source.format)

    def champion(self) -> Champion | None:
        """The production champion with its training and test snapshots (hash verified)."""
        from risk_assets.registry._mlflow import find_champion, load_version_model

        found = find_champion(self.client, self.spec.model_name)
        if found is None:
            return None
        ref = f"{found.name}/{found.version}"
        self.extra["champion_version"] = ref  # named even if what follows fails
        lineage = RunLineage.from_tags(self.client.get_run(found.run_id).data.tags)
        if not lineage.train_sha256 or not lineage.test_sha256:
            raise IntegrityError(f"{ref} records no training or test snapshot")
        self.extra["risk/evaluation_rows"] = (
            "both models' test rows minus every row either model trained on "
            f"(champion train {lineage.train_sha256[:12]} test {lineage.test_sha256[:12]}, "
            f"candidate train {self.candidate['train']['sha256'][:12]} test "
            f"{self.candidate['test']['sha256'][:12]})"
        )
        return Champion(
            ref=ref,
            model=load_version_model(self.client, found),
            train=self.store.get(lineage.train_sha256),
            test=self.store.get(lineage.test_sha256),
        )


@dataclass
class MonitorInputs(_Inputs):
    """A scored batch and what it is compared with."""

    scored: dict | None = None
    instance: Any = None  # the Dagster instance: decision counts of earlier partitions
    history_keys: list[str] = field(default_factory=list)
    outcomes_value: dict | None = None

    @property
    def features(self) -> list[str]:
        return list(self.scored["features"])

    @property
    def categorical(self) -> list[str]:
        return list(self.scored["categorical"])

    @cached_property
    def frame(self) -> Any:
        """The batch's inputs as they arrived."""
        return self.store.get(self.scored["batch_sha256"])

    @cached_property
    def predictions(self) -> Any:
        return self.store.get(self.scored["sha256"])

    @cached_property
    def outcomes(self) -> Any:
        return self.store.get(self.outcomes_value["sha256"])

    @cached_property
    def reference(self) -> Any:
        """The champion's training snapshot (the one the batch was scored by)."""
        self.extra["risk/reference"] = (
            f"{self.scored['champion']} train {self.scored['train_sha256']}"
        )
        return self.store.get(self.scored["train_sha256"])

    @cached_property
    def model(self) -> Any:
        from risk_assets.registry._mlflow import load_version_model

        name, _, version = self.scored["champion"].rpartition("/")
        mv = self.client.get_model_version(name, version)
        if VersionTags.from_tags(mv.tags).model_sha256 != self.scored["model_sha256"]:
            raise IntegrityError(f"{self.scored['champion']} records another model hash")
        return load_version_model(self.client, mv)

    @property
    def decisions(self) -> Any:
        from risk_assets.controls._monitoring import DecisionCounts

        scored = self.scored
        return DecisionCounts(scored["partition"], int(scored["rows"]), int(scored["favourable"]))

    def earlier_decisions(self, history: int) -> list[Any]:
        """Decision counts of up to ``history`` earlier partitions, from their latest
        scored_batch materialisation in the Dagster instance."""
        import dagster as dg

        from risk_assets.controls._monitoring import DecisionCounts

        at = self.history_keys.index(self.scored["partition"])
        partitions = self.history_keys[max(0, at - history) : at]
        if not partitions:
            return []
        key = dg.AssetKey([self.spec.name, "scored_batch"])
        result = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=10_000
        )
        latest: dict[str, Any] = {}
        for record in result.records:  # newest first
            part = record.partition_key
            if part not in latest and record.asset_materialization is not None:
                latest[part] = record.asset_materialization.metadata
        return [
            DecisionCounts(
                part, int(md["dagster/row_count"].value), int(md["risk/favourable"].value)
            )
            for part in partitions
            if (md := latest.get(part)) is not None
        ]
