"""The production configuration chosen by environment alone: the executor
(``RISK_ASSETS_EXECUTOR``), production mode refusing SQLite stores
(``RISK_ASSETS_PRODUCTION``) and the object store in the settings. The services
themselves are exercised in test_production_dagster, test_celery_executor and
test_object_store."""

from __future__ import annotations

import dagster as dg
import pytest

from conftest import make_pipeline, mlflow_client, run_cli, state_env, using_state
from risk_assets.dagster import build_definitions
from risk_assets.dagster._production import (
    check_production_stores,
    production_mode,
    resolve_executor,
)
from risk_assets.errors import ConfigError
from risk_assets.settings import current_settings


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("", "in_process"),
        ("in_process", "in_process"),
        ("multiprocess", "multiprocess"),
        ("Multiprocess", "multiprocess"),
        ("celery", "celery"),
        ("k8s", "k8s"),
    ],
)
def test_the_executor_is_chosen_by_the_environment(monkeypatch, value, name):
    if name == "k8s":
        pytest.importorskip("dagster_k8s", reason="the k8s extra is not installed here")
    monkeypatch.setenv("RISK_ASSETS_EXECUTOR", value)
    assert resolve_executor().name == name


def test_the_celery_broker_is_configured_only_when_the_environment_names_one(monkeypatch):
    from dagster_celery import celery_executor

    monkeypatch.delenv("RISK_ASSETS_CELERY_BROKER", raising=False)
    monkeypatch.delenv("RISK_ASSETS_CELERY_BACKEND", raising=False)
    assert resolve_executor("celery") is celery_executor  # run config may set the broker
    monkeypatch.setenv("RISK_ASSETS_CELERY_BROKER", "redis://127.0.0.1:6399/0")
    executor = resolve_executor("celery")
    assert executor is not celery_executor and executor.name == "celery"


def test_an_unknown_executor_is_a_clear_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("RISK_ASSETS_EXECUTOR", "threads")
    with pytest.raises(ConfigError, match="RISK_ASSETS_EXECUTOR='threads'.*in_process"):
        resolve_executor()


def test_the_code_location_uses_the_configured_executor(tmp_path, monkeypatch):
    spec = make_pipeline(tmp_path / "p")
    with using_state(tmp_path / "state"):
        monkeypatch.setenv("RISK_ASSETS_EXECUTOR", "multiprocess")
        defs = build_definitions([spec])
        job = defs.resolve_job_def("credit_risk_job")
        assert job.executor_def.name == "multiprocess"
        monkeypatch.delenv("RISK_ASSETS_EXECUTOR")
        job = build_definitions([spec]).resolve_job_def("credit_risk_job")
        assert job.executor_def is dg.in_process_executor


def test_production_mode_refuses_sqlite_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ASSETS_PRODUCTION", "1")
    assert production_mode()
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster2").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        with pytest.raises(ConfigError) as info:
            check_production_stores(instance, "sqlite:///x/mlflow.db", None)
    message = str(info.value)
    assert "RISK_ASSETS_PRODUCTION" in message and "dagster.yaml" in message
    assert "MLFLOW_TRACKING_URI is a SQLite store (sqlite:///x/mlflow.db)" in message
    # a server and no instance to judge: nothing to refuse
    check_production_stores(None, "http://mlflow:5000", "http://mlflow:5000")
    monkeypatch.setenv("RISK_ASSETS_PRODUCTION", "0")
    assert not production_mode()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster2")) as instance:
        check_production_stores(instance, "sqlite:///x/mlflow.db", None)


def test_the_cli_in_production_mode_on_embedded_stores_exits_2_and_registers_nothing(tmp_path):
    spec = make_pipeline(tmp_path / "p")
    env = {**state_env(tmp_path / "state"), "RISK_ASSETS_PRODUCTION": "1"}
    run = run_cli("run", str(spec), env=env)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "SQLite" in run.stderr and "dagster.yaml" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    with using_state(tmp_path / "state"):
        assert mlflow_client().search_registered_models() == []


def test_the_object_store_moves_snapshots_and_asset_values(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("RISK_ASSETS_OBJECT_STORE", raising=False)
    local = current_settings()
    assert local.snapshot_location == str(tmp_path / "state" / "snapshots")
    assert local.io_location == str(tmp_path / "state" / "io")
    monkeypatch.setenv("RISK_ASSETS_OBJECT_STORE", "s3://bucket/prefix/")
    remote = current_settings()
    assert remote.snapshot_location == "s3://bucket/prefix/snapshots"
    assert remote.io_location == "s3://bucket/prefix/io"
    assert "export RISK_ASSETS_OBJECT_STORE='s3://bucket/prefix'" in remote.env_lines()


def test_multiprocess_steps_fork_from_a_server_with_our_libraries_imported():
    """A step process spawned afresh imports pandas, scikit-learn and MLflow again; by
    default the multiprocess executor forks steps from a server that imported them once.
    A start method chosen in the run config still wins."""
    from types import SimpleNamespace

    from risk_assets.dagster._production import PRELOADED_MODULES

    make = resolve_executor("multiprocess").executor_creation_fn
    base = {"max_concurrent": None, "retries": {"enabled": {}}}
    default = make(SimpleNamespace(executor_config=base))
    assert default._start_method == "forkserver"  # noqa: SLF001
    assert default._explicit_forkserver_preload == list(PRELOADED_MODULES)  # noqa: SLF001
    chosen = make(SimpleNamespace(executor_config={**base, "start_method": {"spawn": {}}}))
    assert chosen._start_method == "spawn"  # noqa: SLF001
