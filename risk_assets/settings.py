"""Where state lives: embedded defaults in a project-local folder, moved by environment.

- ``RISK_ASSETS_HOME``: the state folder (default ``./.risk-assets`` in the working directory).
- ``DAGSTER_HOME``: the Dagster instance (default ``$RISK_ASSETS_HOME/dagster``).
- ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``: the MLflow stores (default a SQLite
  database ``$RISK_ASSETS_HOME/mlflow/mlflow.db`` with artefacts under
  ``$RISK_ASSETS_HOME/mlflow/artifacts``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "current_settings", "current_user"]

STATE_ENV = "RISK_ASSETS_HOME"


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    dagster_home: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    snapshot_dir: Path

    def env_lines(self) -> list[str]:
        """Shell lines that make ``dagster dev`` and ``mlflow ui`` open this same state."""
        return [
            f"export {STATE_ENV}={_q(str(self.state_dir))}",
            f"export DAGSTER_HOME={_q(str(self.dagster_home))}",
            f"export MLFLOW_TRACKING_URI={_q(self.tracking_uri)}",
            f"export MLFLOW_REGISTRY_URI={_q(self.registry_uri)}",
        ]


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
    )


def current_user() -> str:
    """The local user name recorded as "who" (with the embedded store, identity is local)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
