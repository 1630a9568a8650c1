"""The production configuration, chosen by environment alone: which Dagster executor runs
the steps, and production mode, which refuses the embedded SQLite stores.

- ``RISK_ASSETS_EXECUTOR``: ``in_process`` (the default: every step in the run's process,
  as the embedded SQLite instance needs), ``multiprocess`` (a process per step on the run's
  machine, forked from a server that has imported our libraries once, see
  :data:`PRELOADED_MODULES`), ``celery`` (steps on celery workers,
  ``pip install risk-assets[celery]``) or ``k8s`` (a Kubernetes job per step,
  ``pip install risk-assets[k8s]``).
- ``RISK_ASSETS_CELERY_BROKER`` / ``RISK_ASSETS_CELERY_BACKEND``: the celery broker and
  result backend (e.g. ``redis://redis:6379/0``); read where the run executes.
- ``RISK_ASSETS_PRODUCTION``: ``1`` (or ``true``) refuses SQLite for Dagster's storage and
  MLflow's stores: several processes writing one SQLite file is where scheduled runs get
  lost (dagster#2884).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from risk_assets.errors import ConfigError

__all__ = [
    "CELERY_BACKEND_ENV",
    "CELERY_BROKER_ENV",
    "EXECUTOR_ENV",
    "EXECUTORS",
    "PRODUCTION_ENV",
    "check_production_stores",
    "production_mode",
    "resolve_executor",
]

EXECUTOR_ENV = "RISK_ASSETS_EXECUTOR"
CELERY_BROKER_ENV = "RISK_ASSETS_CELERY_BROKER"
CELERY_BACKEND_ENV = "RISK_ASSETS_CELERY_BACKEND"
PRODUCTION_ENV = "RISK_ASSETS_PRODUCTION"
#: The executors RISK_ASSETS_EXECUTOR may name.
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
#: What the multiprocess executor's forkserver imports once, unless the run config chooses
#: another start method: a step process spawned afresh imports pandas, scikit-learn and
#: MLflow again, about 4 s a step on two cores (13 steps a month in the monthly pipeline).
PRELOADED_MODULES = ("dagster", "risk_assets.dagster", "pandas", "sklearn", "mlflow")


def _multiprocess_executor() -> Any:
    """Dagster's multiprocess executor, with the same config schema, whose default start
    method is a forkserver that has imported :data:`PRELOADED_MODULES`."""
    from dagster._core.definitions.executor_definition import (
        MULTI_PROC_CONFIG,
        _core_multiprocess_executor_creation,
        multiple_process_executor_requirements,
    )

    @dg.executor(
        name="multiprocess",
        config_schema=MULTI_PROC_CONFIG,
        requirements=multiple_process_executor_requirements(),
    )
    def multiprocess(init_context: Any) -> Any:
        config = dict(init_context.executor_config)
        if not config.get("start_method"):
            config["start_method"] = {"forkserver": {"preload_modules": list(PRELOADED_MODULES)}}
        return _core_multiprocess_executor_creation(config)

    return multiprocess


def resolve_executor(name: str | None = None) -> Any:
    """The Dagster executor that ``name`` (default ``$RISK_ASSETS_EXECUTOR``, else
    ``in_process``) names.

    Raises:
        ConfigError: an unknown name, or an executor whose extra is not installed.
    """
    raw = name if name is not None else os.environ.get(EXECUTOR_ENV, "")
    choice = raw.strip().lower().replace("-", "_") or "in_process"
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return _multiprocess_executor()
    if choice == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise ConfigError(
                f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install 'risk-assets[celery]'"
            ) from None
        config: dict[str, Any] = {}
        # as env sources, so the value is read where the run executes, never written down
        if os.environ.get(CELERY_BROKER_ENV):
            config["broker"] = {"env": CELERY_BROKER_ENV}
        if os.environ.get(CELERY_BACKEND_ENV):
            config["backend"] = {"env": CELERY_BACKEND_ENV}
        return celery_executor.configured(config, name="celery") if config else celery_executor
    if choice == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ConfigError(
                f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'risk-assets[k8s]'"
            ) from None
        return k8s_job_executor
    raise ConfigError(
        f"{EXECUTOR_ENV}={raw!r} is not an executor risk-assets knows; "
        f"use one of {', '.join(EXECUTORS)}"
    )


def production_mode(environ: dict[str, str] | None = None) -> bool:
    """True when ``$RISK_ASSETS_PRODUCTION`` is set to 1, true or yes."""
    env = os.environ if environ is None else environ
    return env.get(PRODUCTION_ENV, "").strip().lower() in {"1", "true", "yes"}


def _sqlite_parts(instance: dg.DagsterInstance) -> list[str]:
    parts = {
        "run storage": instance.run_storage,
        "event log storage": instance.event_log_storage,
        "schedule storage": instance.schedule_storage,
    }
    return [
        f"{what} ({type(storage).__name__})"
        for what, storage in parts.items()
        if storage is not None and "sqlite" in type(storage).__name__.lower()
    ]


def check_production_stores(
    instance: dg.DagsterInstance | None, tracking_uri: str | None, registry_uri: str | None
) -> None:
    """In production mode, refuse SQLite for the Dagster instance and the MLflow stores;
    outside it, do nothing.

    Raises:
        ConfigError: naming the instance's ``dagster.yaml`` or the MLflow variable at fault.
    """
    if not production_mode():
        return
    faults = []
    if instance is not None and (parts := _sqlite_parts(instance)):
        home = os.environ.get("DAGSTER_HOME") or "(DAGSTER_HOME unset)"
        faults.append(
            f"the Dagster instance at {home}/dagster.yaml keeps its {', '.join(parts)} in "
            "SQLite; configure `storage: postgres:` (see docker/dagster.yaml)"
        )
    for var, uri in (("MLFLOW_TRACKING_URI", tracking_uri), ("MLFLOW_REGISTRY_URI", registry_uri)):
        if uri and uri.startswith("sqlite:"):
            faults.append(
                f"{var} is a SQLite store ({uri}); point it at an mlflow server "
                "(http://...) or a PostgreSQL database (postgresql://...)"
            )
    if faults:
        raise ConfigError(
            f"{PRODUCTION_ENV} is set and SQLite is not a production store "
            "(several processes writing one SQLite file lose runs, dagster#2884): "
            + "; ".join(faults)
        )
