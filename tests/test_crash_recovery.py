"""SIGKILL at every step of registration and promotion (tests/crash_points.py): no alias ever
points at a version whose evidence is incomplete, registering the same run again completes
it with exactly one version of each model, and the next run cleans up what a dead run left
(its Dagster and MLflow runs failed, its unrecorded versions removed) and says so.

One pipeline is run through the real CLI to a champion, then killed right before its
registration (the run's MLflow run holds all its gate evidence): every crash point starts
from a copy of that state and registers that run, as Dagster's re-execution of the
registration step does.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from forked_cli import run_script

from conftest import ROOT, make_pipeline, mlflow_client, run_cli, state_env, using_state

CRASH = ROOT / "tests" / "crash_points.py"
#: A lean register: a data gate, PII, the metric floor and the champion gate (promotion
#: compares with the champion), so a run costs seconds.
KEEP = {"DQ-001", "PRIV-001", "PERF-001", "PERF-002"}
ALL_RISKS = (
    "DQ-001 PRIV-001 DRIFT-001 INT-001 INT-002 SKEW-001 PERF-001 PERF-002 PERF-003 ROB-001 "
    "ROB-003 ROB-002 PRIV-002 EXPL-001 FAIR-001"
).split()
MODEL = "credit_risk"
CANDIDATES = f"{MODEL}-candidates"


def _crash(point: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # in a process forked from one with the libraries imported (see tests/forked_cli.py)
    proc = run_script(CRASH, [point, *args], env={**_base_env(), **env}, timeout=600)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-3000:])
    return proc


def _base_env() -> dict[str, str]:
    import os

    drop = ("RISK_ASSETS_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="session")
def killed_before_registration(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A champion (credit_risk/1), then a second run killed right before registering."""
    root = tmp_path_factory.mktemp("crash")
    spec = make_pipeline(root / "pipeline", without=tuple(r for r in ALL_RISKS if r not in KEEP))
    state = root / "state"
    env = state_env(state)
    first = run_cli("run", str(spec), "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    _crash("before_registration", env, "cli", "run", str(spec))
    with using_state(state):
        client = mlflow_client()
        runs = client.search_runs([client.get_experiment_by_name(MODEL).experiment_id])
    # its MLflow run finished training and its gates, and has no verdict
    running = [r for r in runs if "risk_assets.verdict" not in r.data.tags]
    assert len(runs) == 2 and len(running) == 1, runs
    return {"spec": spec, "state": state, "run_id": running[0].info.run_id}


def _copy(base: dict, to: Path) -> dict:
    """A copy of the state (the stores are files; MLflow's artefacts stay where they were
    logged, which only reads use)."""
    shutil.copytree(base["state"], to / "state")
    return {**base, "state": to / "state", "env": state_env(to / "state")}


def _registry(client) -> dict[str, list]:
    out: dict[str, list] = {CANDIDATES: [], MODEL: []}
    for mv in client.search_model_versions():
        out.setdefault(mv.name, []).append(mv)
    return out


def _assert_no_alias_on_incomplete_evidence(client, audit) -> None:
    """Every aliased version carries its evidence (model hash, gates) and its audit record,
    anchored; and the champion is the audit trail's last decision about the model."""
    for name, action in ((CANDIDATES, "registration"), (MODEL, "promotion")):
        try:
            aliases = client.get_registered_model(name).aliases or {}
        except Exception:  # noqa: BLE001 - no such model yet: no alias
            continue
        for alias, version in aliases.items():
            mv = client.get_model_version(name, str(version))
            tags = mv.tags
            assert tags.get("risk_assets.model_sha256"), (name, version, tags)
            assert tags.get("risk_assets.gates_passed"), (name, version, tags)
            records = [
                r
                for r in audit.records(model=name, version=str(version))
                if r.action in (action, "rollback")
            ]
            assert records, f"{alias} on {name}/{version}, which the audit trail never recorded"
            assert records[-1].hashes["model_sha256"] == tags["risk_assets.model_sha256"]
    assert audit.verify().ok


def _assert_every_version_recorded(client, audit) -> None:
    for name, action in ((CANDIDATES, "registration"), (MODEL, "promotion")):
        for mv in _registry(client)[name]:
            recorded = [
                r for r in audit.records(model=name, version=str(mv.version)) if r.action == action
            ]
            assert len(recorded) == 1, (name, mv.version, recorded)
            assert mv.tags.get("risk_assets.audit_seq") == str(recorded[0].seq)


POINTS = [
    "after_candidate_version",
    "after_registration_record",
    "after_candidate_anchor",
    "before_challenger_alias",
    "after_challenger_alias",
    "after_production_version",
    "after_promotion_record",
    "after_production_anchor",
    "before_champion_alias",
    "after_champion_alias",
    "after_verdict",
]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_point_is_completed_by_registering_again(
    point: str, killed_before_registration: dict, tmp_path: Path
) -> None:
    from crash_points import register as register_again

    from risk_assets.audit import open_audit_log

    case = _copy(killed_before_registration, tmp_path)
    run_id = case["run_id"]
    _crash(point, case["env"], "register", str(case["spec"]), run_id)
    with using_state(case["state"]):
        client, audit = mlflow_client(), open_audit_log()
        _assert_no_alias_on_incomplete_evidence(client, audit)
        reg = register_again(case["spec"], run_id)
        again = register_again(case["spec"], run_id)  # and once more: nothing changes
        assert replace(again, note=None) == replace(reg, note=None) and again.note is None
        versions = _registry(client)
        mine = {n: [mv for mv in versions[n] if mv.run_id == run_id] for n in versions}
        assert [str(mv.version) for mv in mine[CANDIDATES]] == ["2"], versions
        assert [str(mv.version) for mv in mine[MODEL]] == [reg.version], versions
        assert reg.aliases == ["challenger", "champion"]
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == reg.version
        _assert_no_alias_on_incomplete_evidence(client, audit)
        _assert_every_version_recorded(client, audit)
        run = client.get_run(run_id)
        assert (run.info.status, run.data.tags["risk_assets.verdict"]) == (
            "FINISHED",
            "registered",
        )


@pytest.mark.parametrize(
    "point", ["after_candidate_version", "after_production_version", "before_champion_alias"]
)
def test_the_next_run_cleans_up_what_a_killed_run_left(
    point: str, killed_before_registration: dict, tmp_path: Path
) -> None:
    """A run killed at ``point`` is never re-run: the next ``risk-assets run`` marks its
    Dagster run failed and its MLflow run abandoned, removes the versions it made that the
    audit trail does not record, completes a recorded promotion's alias, says so, and
    registers exactly one version of each model itself."""
    from risk_assets.audit import open_audit_log

    case = _copy(killed_before_registration, tmp_path)
    dead = case["run_id"]
    _crash(point, case["env"], "register", str(case["spec"]), dead)
    with using_state(case["state"]):
        client = mlflow_client()
        before = {n: [str(mv.version) for mv in v] for n, v in _registry(client).items()}
    proc = run_cli("run", str(case["spec"]), "--json", env=case["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    said = " | ".join(outcome["recovered"])
    assert "marked failed" in said and f"MLflow run {dead}" in said, said
    with using_state(case["state"]):
        import dagster as dg

        client, audit = mlflow_client(), open_audit_log()
        instance = dg.DagsterInstance.get()
        dead_run = client.get_run(dead)
        dagster_dead = instance.get_run_by_id(dead_run.data.tags["dagster.run_id"])
        assert dagster_dead.status == dg.DagsterRunStatus.FAILURE
        assert dead_run.info.status == "FAILED"
        assert dead_run.data.tags["risk_assets.verdict"] == "abandoned"
        assert not client.search_runs(
            [dead_run.info.experiment_id], filter_string="attributes.status = 'RUNNING'"
        )
        versions = _registry(client)
        left = {n: [mv for mv in v if mv.run_id == dead] for n, v in versions.items()}
        if point == "after_candidate_version":  # made, never recorded: removed
            assert left[CANDIDATES] == [] and left[MODEL] == []
            assert "removed credit_risk-candidates/2" in said
        if point == "after_production_version":  # the candidate was recorded, kept
            assert [str(mv.version) for mv in left[CANDIDATES]] == ["2"]
            assert left[MODEL] == [] and f"removed {MODEL}/2" in said
        if point == "before_champion_alias":  # the promotion was recorded: completed
            assert [str(mv.version) for mv in left[MODEL]] == ["2"]
            assert f"champion -> {MODEL}/2" in said
        # the next run registered exactly one version of each model, and is champion
        new_versions = {
            n: sorted(set(str(mv.version) for mv in v) - set(before.get(n, [])))
            for n, v in versions.items()
        }
        assert len(new_versions[CANDIDATES]) == 1, new_versions
        assert len(new_versions[MODEL]) == 1, new_versions
        assert outcome["aliases"] == ["champion"]  # the production model's, as every run reports
        assert outcome["version"] == new_versions[MODEL][0]
        _assert_no_alias_on_incomplete_evidence(client, audit)
        _assert_every_version_recorded(client, audit)
        recovery = [r for r in audit.records() if r.action == "recovery"]
        assert recovery, "the clean-up is not in the audit trail"
