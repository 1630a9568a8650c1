"""Where state lives: embedded defaults in a project-local folder, moved by environment.

- ``RISK_ASSETS_HOME``: the state folder (default ``./.risk-assets`` in the working directory).
- ``DAGSTER_HOME``: the Dagster instance (default ``$RISK_ASSETS_HOME/dagster``, whose
  ``dagster.yaml`` is written here: telemetry off, one registration per model at a time).
- ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``: the MLflow stores (default a SQLite
  database ``$RISK_ASSETS_HOME/mlflow/mlflow.db`` with artefacts under
  ``$RISK_ASSETS_HOME/mlflow/artifacts``).
- ``RISK_ASSETS_OBJECT_STORE``: an fsspec URL (``s3://bucket/prefix``) that holds the data
  snapshots, gate evidence and asset values instead of the state folder (shared by every
  machine that runs a step; see :mod:`risk_assets.storage`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMBEDDED_DAGSTER_YAML",
    "Settings",
    "current_settings",
    "current_user",
    "ensure_embedded_dagster_home",
    "store_creation_lock",
]

STATE_ENV = "RISK_ASSETS_HOME"
OBJECT_STORE_ENV = "RISK_ASSETS_OBJECT_STORE"

#: The embedded instance's ``dagster.yaml``. Runs may go in parallel (a backfill launched
#: from the UI runs several partitions at once), but every step in a concurrency pool waits
#: for a slot of that pool, and each pool has one: the registration step of a model is in
#: the pool of that model (``risk_assets/registry/<model>``), so two runs never register or
#: promote one model at the same time. A limit set with ``dagster instance concurrency set``
#: overrides the default for that pool.
EMBEDDED_DAGSTER_YAML = """\
# written by risk-assets for its embedded Dagster instance
telemetry:
  enabled: false
concurrency:
  pools:
    granularity: op
    default_limit: 1
# with the daemon (dagster dev): a run that ended without freeing its pool slot (killed
# mid-step) frees it 30 s later
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 30
"""

#: What earlier versions wrote: brought up to date on use, any other file is left alone.
#: (The first had telemetry only; the second the pools, without run monitoring.)
_EARLIER_DAGSTER_YAML = (
    "telemetry:\n  enabled: false\n",
    EMBEDDED_DAGSTER_YAML[: EMBEDDED_DAGSTER_YAML.index("# with the daemon")],
)


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    dagster_home: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    snapshot_dir: Path
    #: an fsspec URL holding snapshots, evidence and asset values (None: the state folder)
    object_store: str | None = None

    @property
    def snapshot_location(self) -> str:
        """Where data snapshots and gate evidence live: the object store, else a folder."""
        return f"{self.object_store}/snapshots" if self.object_store else str(self.snapshot_dir)

    @property
    def io_location(self) -> str:
        """Where asset values live: the object store, else a folder of the state."""
        return f"{self.object_store}/io" if self.object_store else str(self.state_dir / "io")

    @property
    def is_embedded_dagster_home(self) -> bool:
        """True when the Dagster instance is the project-local default under the state folder."""
        return self.dagster_home == self.state_dir / "dagster"

    def env_lines(self) -> list[str]:
        """Shell lines that make ``dagster dev`` and ``mlflow ui`` open this same state."""
        lines = [
            f"export {STATE_ENV}={_q(str(self.state_dir))}",
            f"export DAGSTER_HOME={_q(str(self.dagster_home))}",
            f"export MLFLOW_TRACKING_URI={_q(self.tracking_uri)}",
            f"export MLFLOW_REGISTRY_URI={_q(self.registry_uri)}",
        ]
        if self.object_store:
            lines.append(f"export {OBJECT_STORE_ENV}={_q(self.object_store)}")
        return lines


#: MLflow's HTTP client retries a failed request 7 times, backing off up to 120 s between
#: tries (about four minutes a request, meant for rate-limited hosted services): a run whose
#: ``mlflow server`` had died took over eight minutes to fail. risk-assets' own default,
#: unless the environment sets these: 5 retries backing off 0, 2, 4, 8 and 16 s, about
#: 30 s a request, enough to ride out a restart of the server.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def bound_mlflow_retries() -> None:
    """Give MLflow's HTTP client :data:`MLFLOW_HTTP_DEFAULTS` where the environment sets
    nothing (MLflow reads them on every request)."""
    for var, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(var, value)


def _q(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def current_settings(environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from the environment (no folders are created here)."""
    env = os.environ if environ is None else environ
    state = Path(env.get(STATE_ENV) or Path.cwd() / ".risk-assets").expanduser().resolve()
    dagster_home = Path(env.get("DAGSTER_HOME") or state / "dagster").expanduser().resolve()
    default_db = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    tracking = env.get("MLFLOW_TRACKING_URI") or default_db
    registry = env.get("MLFLOW_REGISTRY_URI") or tracking
    return Settings(
        state_dir=state,
        dagster_home=dagster_home,
        tracking_uri=tracking,
        registry_uri=registry,
        artifact_root=(state / "mlflow" / "artifacts").as_uri(),
        snapshot_dir=state / "snapshots",
        object_store=(env.get(OBJECT_STORE_ENV) or "").strip().rstrip("/") or None,
    )


def ensure_embedded_dagster_home(settings: Settings) -> Path:
    """Make the embedded Dagster home with its ``dagster.yaml`` (see EMBEDDED_DAGSTER_YAML),
    or bring a ``dagster.yaml`` an earlier version wrote up to date; a file someone edited is
    left as it is. Returns the path of ``dagster.yaml``."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text(encoding="utf-8") in _EARLIER_DAGSTER_YAML:
        tmp = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(EMBEDDED_DAGSTER_YAML, encoding="utf-8")
        os.replace(tmp, config)
    return config


@contextmanager
def store_creation_lock(folder: Path) -> Iterator[None]:
    """Held by a process while it opens the SQLite stores in ``folder`` (the embedded Dagster
    instance, MLflow's SQLite store): their first opening creates the tables and stamps the
    schema version, which two processes doing at once leave broken for good (a second
    alembic head, a table created twice). An exclusive lock on ``folder/.store.lock``; the
    kernel releases it when its holder dies."""
    with exclusive_file_lock(folder / ".store.lock"):
        yield


@contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (made, with its folder, if missing) while the
    block runs; the kernel releases it when its holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def server_user(environ: dict[str, str] | None = None) -> str | None:
    """The MLflow user signed in to an MLflow server (``MLFLOW_TRACKING_USERNAME`` with an
    http(s) ``MLFLOW_TRACKING_URI``): an identity the server authenticates. None otherwise."""
    env = os.environ if environ is None else environ
    user = env.get("MLFLOW_TRACKING_USERNAME")
    uri = env.get("MLFLOW_TRACKING_URI", "")
    return user if user and uri.startswith(("http://", "https://")) else None


def current_user() -> str:
    """Who acts, recorded as "who" on runs, versions and audit records: the MLflow user
    signed in to an MLflow server (:func:`server_user`), else the local user name (with the
    embedded stores, identity is local and anyone can set it)."""
    import getpass

    if user := server_user():
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
