"""Shared fixtures: real data, a throwaway state folder (Dagster home + MLflow SQLite store)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from forked_cli import run_script

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
CREDIT_SPEC = PIPELINES / "credit_risk.yaml"
CREDIT_DATA = PIPELINES / "data" / "german_credit.csv"
CREDIT_SERVING = PIPELINES / "data" / "german_credit_serving.csv"
CREDIT_POLICY = PIPELINES / "policies" / "credit_risk.yaml"
CREDIT_SUITE = ROOT / "expectations" / "credit_risk.json"
CLI = Path(sys.executable).parent / "risk-assets"
#: The model features of the shipped credit_risk spec (sex and age are protected only).
FEATURES = [
    "job",
    "housing",
    "saving_accounts",
    "checking_account",
    "credit_amount",
    "duration",
    "purpose",
]
CATEGORICAL = ["job", "housing", "saving_accounts", "checking_account", "purpose"]

#: Risks whose controls cost seconds per run, left out of the pipelines tests build unless
#: a test asks for them: the evasion attack (about 10 s a run on 2 cores) is exercised by
#: its own tests in test_robustness.py and by every run of the shipped spec.
EXPENSIVE_RISKS = ("ROB-003",)

_STATE_VARS = ("RISK_ASSETS_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

#: The modules that take minutes (their fixtures start services and run whole pipelines;
#: see the suite's durations in benchmarks/README.md), longest first. They are collected
#: before the rest, so that the parallel workers of scripts/test (pytest-xdist, a module
#: to a worker, in collection order) start on them and the short modules fill in after.
SLOW_MODULES = (
    "test_production_dagster.py",
    "test_concurrency.py",
    "test_crash_recovery.py",
    "test_service_failures.py",
    "test_retraining.py",
    "test_fault_corpus_smoke.py",
    "test_celery_executor.py",
    "test_object_store.py",
    "test_daemon_backfill.py",
    "test_production_stores.py",
    "test_quiet_errors.py",
    "test_compliance.py",
    "test_forked_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow modules first (see :data:`SLOW_MODULES`); the order within a module and
    of the other modules is kept."""
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def policy_params(risk_id: str) -> dict:
    """The control parameters of one risk in the shipped credit_risk register."""
    policy = yaml.safe_load(CREDIT_POLICY.read_text())
    return dict(next(r for r in policy["risks"] if r["id"] == risk_id)["control"]["params"])


def state_env(state: Path) -> dict[str, str]:
    """Environment that puts every store of risk-assets under ``state``."""
    home = state / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {"RISK_ASSETS_HOME": str(state), "DAGSTER_HOME": str(home)}


@contextmanager
def using_state(state: Path) -> Iterator[dict[str, str]]:
    """Point this process at ``state`` for the duration (for session-scoped fixtures)."""
    saved = {k: os.environ.get(k) for k in _STATE_VARS}
    for k in _STATE_VARS:
        os.environ.pop(k, None)
    env = state_env(state)
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty state folder for one test; the user's stores are never touched."""
    for k in _STATE_VARS:
        monkeypatch.delenv(k, raising=False)
    st = tmp_path / "state"
    for k, v in state_env(st).items():
        monkeypatch.setenv(k, v)
    return st


@pytest.fixture(scope="session")
def credit() -> pd.DataFrame:
    return pd.read_csv(CREDIT_DATA)


def make_pipeline(
    folder: Path,
    *,
    data: pd.DataFrame | None = None,
    spec: dict | None = None,
    policy: dict | None = None,
    suite: dict | None = None,
    serving: pd.DataFrame | None = None,
    name: str = "credit_risk",
    without: tuple[str, ...] = EXPENSIVE_RISKS,
) -> Path:
    """Copy the credit_risk pipeline into ``folder`` with overrides; return the spec path.

    ``spec`` and ``policy`` are merged into the shipped files (``policy`` may carry
    ``risk_params``: {risk id: params} to replace one control's parameters). The risks in
    ``without`` are left out of the register (by default the evasion attack, see
    :data:`EXPENSIVE_RISKS`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    spec_doc = yaml.safe_load(CREDIT_SPEC.read_text())
    policy_doc = yaml.safe_load(CREDIT_POLICY.read_text())
    suite_doc = json.loads(CREDIT_SUITE.read_text()) if suite is None else suite
    data_path = folder / "data.csv"
    if data is None:
        shutil.copy(CREDIT_DATA, data_path)
    else:
        data.to_csv(data_path, index=False)
    if serving is None:
        shutil.copy(CREDIT_SERVING, folder / "serving.csv")
    else:
        serving.to_csv(folder / "serving.csv", index=False)
    policy_doc["risks"] = [r for r in policy_doc["risks"] if r["id"] not in without]
    policy = dict(policy or {})
    for risk_id, params in policy.pop("risk_params", {}).items():
        risk = next(r for r in policy_doc["risks"] if r["id"] == risk_id)
        risk["control"]["params"] = params
    policy_doc.update(policy)
    spec_doc.update(
        {
            "source": {"path": "data.csv"},
            "serving_source": {"path": "serving.csv"},
            "expectations": "suite.json",
            "policy": "policy.yaml",
            "name": name,
            "registered_model": name,
        }
    )
    spec_doc.update(spec or {})
    (folder / "suite.json").write_text(json.dumps(suite_doc))
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy_doc, sort_keys=False))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec_doc, sort_keys=False))
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, fresh: bool = False
):
    """Run the installed ``risk-assets`` command as a user would, in a process of its own:
    forked from one that has imported the libraries a run needs (tests/forked_cli.py, which
    also decides when a fork could differ and starts a new interpreter then, as it does for
    every command with ``RISK_ASSETS_TEST_FRESH_CLI=1``), or, with ``fresh``, the command
    itself in a new interpreter, for what only that shows (output while importing,
    start-up)."""
    full_env = {k: v for k, v in os.environ.items() if k not in _STATE_VARS}
    full_env.update(env or {})
    if not fresh:
        return run_script(CLI, args, env=full_env, cwd=cwd, timeout=900)
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=900
    )


def mlflow_client():
    from mlflow import MlflowClient

    from risk_assets.settings import current_settings

    s = current_settings()
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)


def registered_versions(client) -> list[tuple[str, str]]:
    return sorted((mv.name, str(mv.version)) for mv in client.search_model_versions())


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory):
    """The shipped credit_risk pipeline run once through the real CLI on a fresh state."""
    state = tmp_path_factory.mktemp("clean") / "state"
    env = state_env(state)
    proc = run_cli("run", str(CREDIT_SPEC), "--json", env=env, fresh=True)
    return {"proc": proc, "state": state, "env": env}


def run_against_champion(state: Path, spec: Path, capsys) -> tuple[int, dict, dict]:
    """Run ``spec`` in-process on ``state`` (which holds a champion); return the exit code,
    the ``--json`` payload and its gates by name. The registry must not change when the
    run is blocked, so that is asserted here for every caller whose run is blocked."""
    from risk_assets.cli import main

    with using_state(state):
        before = registered_versions(mlflow_client())
        code = main(["run", str(spec), "--json"])
        after = registered_versions(mlflow_client())
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if code == 3:
        assert before == after, "a blocked run changed the registry"
    return code, payload, {g["name"]: g for g in payload["gates"]}
