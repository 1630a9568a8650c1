"""One resource per external system: MLflow, the snapshot store; plus a JSON IO manager.

Every field falls back to the embedded defaults of :mod:`risk_assets.settings`, which the
environment moves (``MLFLOW_TRACKING_URI``, ``RISK_ASSETS_HOME``, ...). The two UIs link to
each other through :class:`MlflowResource`: ``RISK_ASSETS_MLFLOW_UI_URL`` (Dagster metadata
links to MLflow runs and model versions) and ``RISK_ASSETS_DAGSTER_URL`` (MLflow runs link
back to the Dagster run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
from pydantic import Field, PrivateAttr

from risk_assets.dagster._production import check_production_stores
from risk_assets.settings import bound_mlflow_retries, current_settings, store_creation_lock

__all__ = [
    "AuditResource",
    "JsonIOManager",
    "MlflowResource",
    "SnapshotStoreResource",
    "WebhookAlertResource",
]

#: Environment variable with the URL of the alert webhook (when the resource names none).
ALERT_WEBHOOK_ENV = "RISK_ASSETS_ALERT_WEBHOOK"
#: Environment variable with the base URL of the MLflow UI that Dagster metadata links to.
MLFLOW_UI_URL_ENV = "RISK_ASSETS_MLFLOW_UI_URL"
#: `mlflow ui` on the embedded store listens here by default.
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
#: Environment variable with the base URL of the Dagster UI that MLflow runs link back to.
DAGSTER_URL_ENV = "RISK_ASSETS_DAGSTER_URL"
#: `dagster dev` listens here by default.
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking store and model registry."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default MLFLOW_TRACKING_URI or the embedded SQLite store",
    )
    registry_uri: str | None = Field(
        default=None,
        description="MLflow registry URI; default MLFLOW_REGISTRY_URI or the tracking URI",
    )
    artifact_root: str | None = Field(
        default=None,
        description="artefact location of new experiments on a local store",
    )
    ui_url: str | None = Field(
        default=None,
        description=(
            f"base URL of the MLflow UI that Dagster metadata links to; default "
            f"${MLFLOW_UI_URL_ENV}, else the tracking URI when it is an MLflow server, else "
            f"{DEFAULT_MLFLOW_UI_URL} (`mlflow ui` on the embedded store)"
        ),
    )
    dagster_ui_url: str | None = Field(
        default=None,
        description=(
            f"base URL of the Dagster UI that MLflow runs link back to; default "
            f"${DAGSTER_URL_ENV}, else {DEFAULT_DAGSTER_URL} (`dagster dev`)"
        ),
    )
    _client: Any = PrivateAttr(default=None)

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or current_settings().tracking_uri

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In production mode, refuse a run on SQLite stores before any step writes."""
        settings = current_settings()
        tracking = self.tracking_uri or settings.tracking_uri
        registry = self.registry_uri or (settings.registry_uri if not self.tracking_uri else None)
        check_production_stores(context.instance, tracking, registry or tracking)

    def get_client(self) -> Any:
        """A lazily created ``MlflowClient`` (created on first use, reused by this resource)."""
        if self._client is None:
            # Models are loaded only by risk-assets' own safe loader; MLflow's loaders must
            # not unpickle (or skops-load with the model's own trusted list) anything.
            os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
            # progress bars of artefact downloads would fill the run logs
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            # a dead MLflow server fails a run in about a minute, not after eight
            bound_mlflow_retries()
            from mlflow import MlflowClient

            settings = current_settings()
            tracking = self.tracking_uri or settings.tracking_uri
            default_registry = settings.registry_uri if self.tracking_uri is None else tracking
            registry = self.registry_uri or default_registry
            if not tracking.startswith("sqlite:///"):
                self._client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
                return self._client
            # runs started at once on a new state would each create the store's tables (the
            # client opens the tracking store, the first registry call the registry's): the
            # first to open them does, under a lock, while the others wait
            with store_creation_lock(Path(tracking[len("sqlite:///") :]).parent):
                client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
                client.search_registered_models(max_results=1)
            self._client = client
        return self._client

    def ensure_experiment(self, name: str, description: str | None = None) -> str:
        """The id of the experiment ``name``, created with our artefact root (and
        ``description``, MLflow's experiment note) if it is missing."""
        from mlflow.exceptions import MlflowException

        client = self.get_client()
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        tracking = self.resolved_tracking_uri()
        location = None
        if not tracking.startswith(("http://", "https://", "databricks")):
            location = self.artifact_root or current_settings().artifact_root
        try:
            tags = {"mlflow.note.content": description} if description else None
            return client.create_experiment(name, artifact_location=location, tags=tags)
        except MlflowException:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def resolved_ui_url(self) -> str:
        """The MLflow UI's base URL: the field, ``$RISK_ASSETS_MLFLOW_UI_URL``, the tracking
        URI of an MLflow server (which serves the UI too), or ``http://127.0.0.1:5000``."""
        url = self.ui_url or os.environ.get(MLFLOW_UI_URL_ENV)
        if not url:
            tracking = self.resolved_tracking_uri()
            url = tracking if tracking.startswith(("http://", "https://")) else None
        return (url or DEFAULT_MLFLOW_UI_URL).rstrip("/")

    def resolved_dagster_ui_url(self) -> str:
        """The Dagster UI's base URL: the field, ``$RISK_ASSETS_DAGSTER_URL``, or
        ``http://127.0.0.1:3000``."""
        url = self.dagster_ui_url or os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL
        return url.rstrip("/")

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """An MLflow run's page in the MLflow UI."""
        return f"{self.resolved_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"

    def artifact_url(self, run_id: str, path: str) -> str:
        """A run's artefact as the MLflow UI serves it (``/get-artifact``): what an image in
        Dagster metadata points at."""
        return f"{self.resolved_ui_url()}/get-artifact?path={quote(path)}&run_uuid={run_id}"

    def model_version_url(self, name: str, version: str | int) -> str:
        """A registered model version's page in the MLflow UI."""
        return f"{self.resolved_ui_url()}/#/models/{quote(name, safe='')}/versions/{version}"

    def dagster_run_url(self, run_id: str) -> str:
        """A Dagster run's page in the Dagster UI (the link an MLflow run carries back)."""
        return f"{self.resolved_dagster_ui_url()}/runs/{run_id}"


class SnapshotStoreResource(dg.ConfigurableResource):
    """Content-addressed storage for data snapshots and data-gate evidence, in a folder or
    an object store (an fsspec URL such as ``s3://bucket/prefix/snapshots``)."""

    base_dir: str | None = Field(
        default=None,
        description="folder or fsspec URL of the store; default $RISK_ASSETS_OBJECT_STORE/"
        "snapshots, else $RISK_ASSETS_HOME/snapshots",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In production mode, refuse a run on a SQLite Dagster instance (the data job's
        steps use no MLflow resource)."""
        check_production_stores(context.instance, None, None)

    def get_store(self) -> Any:
        from risk_assets.registry._snapshots import SnapshotStore

        return SnapshotStore(self.base_dir or current_settings().snapshot_location)


class AuditResource(dg.ConfigurableResource):
    """The audit trail (see :mod:`risk_assets.audit`): every gate verdict and registration
    of the pipeline is appended to it."""

    path: str | None = Field(
        default=None,
        description="the audit log file; default $RISK_ASSETS_AUDIT_LOG, else "
        "$RISK_ASSETS_HOME/audit/audit.jsonl",
    )

    def get_log(self) -> Any:
        from risk_assets.audit import open_audit_log

        return open_audit_log(self.path)


class WebhookAlertResource(dg.ConfigurableResource):
    """Alerts (e.g. a retraining request) as a JSON POST to a webhook: chat, paging or
    ticketing systems accept these. Without a URL, alerts are only logged."""

    url: str | None = Field(
        default=None, description=f"URL that receives each alert; default ${ALERT_WEBHOOK_ENV}"
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="per request")

    def resolved_url(self) -> str | None:
        return self.url or os.environ.get(ALERT_WEBHOOK_ENV) or None

    def send(self, payload: dict[str, Any], *, log: Any = None) -> bool:
        """POST ``payload``; True when the webhook answered 2xx. A failure is logged, never
        raised: an alert that cannot be delivered must not stop what it reports on."""
        import urllib.error
        import urllib.request

        url = self.resolved_url()
        if not url:
            if log is not None:
                log.warning(f"alert not sent (no webhook configured): {payload.get('summary')}")
            return False
        request = urllib.request.Request(
            url,
            data=json.dumps(payload, sort_keys=True).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "risk-assets"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if log is not None:
                log.error(f"alert webhook failed ({type(exc).__name__}: {exc})")
            return False
        if not ok and log is not None:
            log.error(f"alert webhook answered {response.status}")
        return ok


def _run_of(context: dg.OutputContext | None) -> str | None:
    """The run that produced an output: for an input, the run in whose plan its value was
    produced (this run, or the run a re-execution loads it from); None for an asset the
    run loads from earlier runs (Dagster builds that context without a run)."""
    if context is None:
        return None
    try:
        return context.run_id
    except dg.DagsterInvariantViolationError:
        return None


class JsonIOManager(dg.ConfigurableIOManager):
    """Stores asset values as JSON (references and figures, never pickles), in a folder or
    an object store: ``<base>/<asset key>/<partition or __all__>.json``, through
    universal-pathlib as Dagster's ``UPathIOManager`` does. (Not a subclass of it: an input
    that spans partitions, a training window, is always a mapping of partition key to
    value here, whatever its size, and the layout stays that of earlier versions.)

    Each value is also kept under the run that produced it
    (``<base>/<asset key>/by_run/<run id>/<partition or __all__>.json``), and a step reads
    the value its own run (or the run it re-executes) produced: runs of one pipeline at
    the same time each register the model they trained, not the one written last. An
    asset the run did not materialise is read from the shared path, as before."""

    base_dir: str | None = Field(
        default=None,
        description="folder or fsspec URL for asset values; default $RISK_ASSETS_OBJECT_STORE/"
        "io, else $RISK_ASSETS_HOME/io",
    )

    def _path(
        self, asset_key: dg.AssetKey, partition: str | None, run_id: str | None = None
    ) -> Any:
        from risk_assets.storage import as_path

        base = as_path(self.base_dir or current_settings().io_location).joinpath(*asset_key.path)
        if run_id is not None:
            base = base / "by_run" / run_id
        return base / f"{partition or '__all__'}.json"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        from risk_assets.storage import write_atomic

        if obj is None:
            return
        partition = context.partition_key if context.has_partition_key else None
        data = json.dumps(obj, sort_keys=True, indent=1).encode("utf-8")
        if (run_id := _run_of(context)) is not None:
            write_atomic(
                self._path(context.asset_key, partition, run_id), lambda out: out.write(data)
            )
        write_atomic(self._path(context.asset_key, partition), lambda out: out.write(data))

    def load_input(self, context: dg.InputContext) -> Any:
        """The upstream value; for an input that spans partitions (a training window), a
        mapping of partition key to value."""
        run_id = _run_of(context.upstream_output)
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) != 1 or not context.has_partition_key or keys[0] != context.partition_key:
                mine = context.partition_key if context.has_partition_key else None
                return {
                    k: self._read(context.asset_key, k, run_id if k == mine else None) for k in keys
                }
            return self._read(context.asset_key, keys[0], run_id)
        return self._read(context.asset_key, None, run_id)

    def _read(self, asset_key: dg.AssetKey, partition: str | None, run_id: str | None) -> Any:
        """The value ``run_id`` produced, else (no such run, or a value written before
        values were kept per run) the latest."""
        from risk_assets.storage import read_bytes

        content = None
        if run_id is not None:
            content = read_bytes(self._path(asset_key, partition, run_id))
        path = self._path(asset_key, partition)
        if content is None:
            content = read_bytes(path)
        if content is None:
            where = f" partition {partition}" if partition else ""
            raise dg.Failure(
                f"no stored value for {asset_key.to_user_string()}{where} at {path}; "
                "materialise it first",
                allow_retries=False,
            )
        return json.loads(content.decode("utf-8"))
