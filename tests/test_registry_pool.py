"""Registration and promotion of one model are serialised across runs: the registration step
is in the model's Dagster concurrency pool, and the embedded instance limits each pool to
one step at a time (runs themselves may go in parallel)."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pytest

from conftest import PIPELINES
from risk_assets.dagster._names import registry_pool
from risk_assets.settings import (
    EMBEDDED_DAGSTER_YAML,
    current_settings,
    ensure_embedded_dagster_home,
)

MONTHLY_SPEC = PIPELINES / "credit_risk_monthly.yaml"


def test_the_registration_step_is_in_the_pool_of_its_model():
    from risk_assets.dagster import build_definitions

    defs = build_definitions([MONTHLY_SPEC])
    job = defs.resolve_job_def("credit_risk_monthly_job")
    pools = {node.name: node.definition.pool for node in job.graph.node_dict.values()}
    registration = next(name for name in pools if name.endswith("registered_model"))
    assert pools[registration] == registry_pool("credit_risk_monthly")
    # only registration: the data steps, training and the gates (checks are steps of the
    # job too) of sibling runs go in parallel
    assert any("champion" in name for name in pools)
    assert [name for name, pool in pools.items() if pool] == [registration]


def _embedded(tmp_path: Path):
    env = {"RISK_ASSETS_HOME": str(tmp_path)}
    return current_settings(env)


def test_the_embedded_instance_limits_each_pool_to_one(tmp_path: Path):
    settings = _embedded(tmp_path)
    assert settings.is_embedded_dagster_home
    config = ensure_embedded_dagster_home(settings)
    assert config == settings.dagster_home / "dagster.yaml"
    assert config.read_text() == EMBEDDED_DAGSTER_YAML
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity.value == "op"
        assert instance.event_log_storage.supports_global_concurrency_limits


def test_an_earlier_embedded_config_is_brought_up_to_date_an_edited_one_is_kept(tmp_path):
    settings = _embedded(tmp_path)
    settings.dagster_home.mkdir(parents=True)
    config = settings.dagster_home / "dagster.yaml"
    config.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote
    ensure_embedded_dagster_home(settings)
    assert config.read_text() == EMBEDDED_DAGSTER_YAML
    edited = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 2\n"
    config.write_text(edited)
    ensure_embedded_dagster_home(settings)
    assert config.read_text() == edited
    moved = current_settings({"RISK_ASSETS_HOME": str(tmp_path), "DAGSTER_HOME": "/elsewhere"})
    assert not moved.is_embedded_dagster_home


def test_a_registration_waits_while_another_run_holds_the_pool(tmp_path: Path):
    """On the embedded instance, a step in a model's pool does not start while another run
    holds the pool's slot, and starts once it is freed (in-process executor, no daemon)."""
    settings = _embedded(tmp_path)
    ensure_embedded_dagster_home(settings)
    pool = registry_pool("some_model")
    started = threading.Event()

    @dg.asset(pool=pool)
    def registered_model() -> None:
        started.set()

    job = dg.define_asset_job("registration", selection=[registered_model])
    defs = dg.Definitions(assets=[registered_model], jobs=[job])
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(pool)
        assert storage.get_concurrency_info(pool).slot_count == 1
        held = storage.claim_concurrency_slot(pool, "sibling-run", "registered_model")
        assert held.is_claimed
        results: list = []
        worker = threading.Thread(
            target=lambda: results.append(
                defs.resolve_job_def("registration").execute_in_process(instance=instance)
            )
        )
        worker.start()
        try:
            assert not started.wait(3), "the step ran while the sibling held the pool"
        finally:
            storage.free_concurrency_slot_for_step("sibling-run", "registered_model")
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert started.is_set() and results and results[0].success
        assert storage.get_concurrency_info(pool).active_slot_count == 0


@pytest.mark.parametrize("model", ["credit_risk", "credit_risk_monthly"])
def test_pools_are_named_per_model(model):
    assert registry_pool(model) == f"risk_assets/registry/{model}"


def test_the_cli_frees_slots_of_runs_that_ended(tmp_path: Path, monkeypatch):
    """A run killed while it registered, later marked failed, keeps its slot; the CLI's
    instance frees it before the next run (no daemon does it for the embedded instance)."""
    from risk_assets.dagster._runner import _instance

    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = _instance()
    pool = registry_pool("some_model")
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(pool)
    ended = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
    instance.report_run_failed(ended)
    assert storage.claim_concurrency_slot(pool, ended.run_id, "registered_model").is_claimed
    assert storage.get_concurrency_info(pool).active_slot_count == 1
    _instance()
    assert storage.get_concurrency_info(pool).active_slot_count == 0
