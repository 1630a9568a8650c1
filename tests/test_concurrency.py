"""Runs, promotions and rollbacks of one model at the same time, as separate processes on
shared stores: the embedded state (one RISK_ASSETS_HOME: Dagster's SQLite instance, MLflow's
SQLite store, the JSON Lines audit trail) and the production configuration (Dagster and the
audit trail in PostgreSQL, an ``mlflow server`` on PostgreSQL).

Every process is the real ``risk-assets`` command, started together: each is forked from a
process with the libraries imported (tests/forked_cli.py) and waits for a start file before
it runs the command, so they all begin within milliseconds. After
each burst the stores must agree with each other and with what every process said:

- every process ended with a final status: exit 0, or a refusal (exit 4) whose one line
  says why; no stack trace, no hang;
- every run that passed its gates registered exactly one candidate version, its own (the
  version's MLflow run is the run's Dagster run), with its tags and its audit record, and
  every registration and promotion recorded in the audit trail is in the registry;
- the promotions and rollbacks of a model, in the audit trail's order, form one chain (each
  replaced the champion the one before it made), and ``champion`` is on the version the
  last of them names;
- ``risk-assets audit verify`` passes (every link, every anchor).

The decisions lock (``AuditLog.decisions``: a file lock beside the JSON Lines trail, an
advisory lock in PostgreSQL) is held by the test while approvals and a rollback start: none
of them decides until it is released. Found here and fixed: runs started at once on a new
state broke the embedded Dagster instance for good (two alembic heads) or failed creating
MLflow's tables; concurrent runs registered the model of whichever run wrote the shared
asset value last, and judged their gates on another run's materialisation; two approvers
at once each counted the other's approval out, so neither promoted.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from forked_cli import ForkedProcess
from services import create_database, dagster_postgres_home, mlflow_server, postgres_cluster

from conftest import CLI, make_pipeline, state_env

ALL_RISKS = (
    "DQ-001 PRIV-001 DRIFT-001 INT-001 INT-002 SKEW-001 PERF-001 PERF-002 PERF-003 ROB-001 "
    "ROB-003 ROB-002 PRIV-002 EXPL-001 FAIR-001"
).split()
#: The pipeline of the run bursts: a data gate, PII, the metric floor and the champion gate
#: (promotion compares with the champion), low tier: a run that passes is promoted.
RUN_RISKS = {"DQ-001", "PRIV-001", "PERF-001", "PERF-002"}
MODEL = "credit_risk"
#: The pipeline of the decisions: no champion gate (an approved challenger may replace any
#: champion), tier high: two approvals from two roles promote.
DECIDE_RISKS = {"DQ-001", "PRIV-001", "PERF-001"}
DECIDED = "decided"
APPROVERS = [{"user": "alice", "role": "validation"}, {"user": "bob", "role": "model-risk"}]
MAKER = "maker"
_OURS = ("RISK_ASSETS_", "DAGSTER_", "MLFLOW_")
_USER_VARS = ("LOGNAME", "USER", "LNAME", "USERNAME")


def _spec(folder: Path, risks: set[str], name: str, policy: dict | None = None) -> Path:
    without = tuple(r for r in ALL_RISKS if r not in risks)
    return make_pipeline(folder, name=name, without=without, policy=policy)


def _decided_policy() -> dict:
    return {"tier": "high", "promotion": {"auto_promote": False, "approvers": APPROVERS}}


def _env(extra: dict[str, str], user: str = MAKER) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**env, **extra, **dict.fromkeys(_USER_VARS, user)}


@contextmanager
def pointed_at(extra: dict[str, str], user: str = MAKER) -> Iterator[None]:
    """This process on the stores of ``extra`` (and acting as ``user``) for the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_env(extra, user))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Ended:
    """A process of a burst, once it ended."""

    args: tuple[str, ...]
    user: str
    pid: int
    code: int
    out: str
    err: str

    @property
    def payload(self) -> dict:
        lines = self.out.strip().splitlines()
        assert lines, f"{self}: no output"
        return json.loads(lines[-1])

    def __str__(self) -> str:
        return f"`risk-assets {' '.join(self.args)}` as {self.user} (exit {self.code})"


class Burst:
    """Commands started together: each is a process of its own (forked from one with the
    libraries imported, tests/forked_cli.py) that waits for the start file before it runs
    the command; those added before :meth:`go` wait for it, one added after it starts at
    once."""

    def __init__(self, folder: Path, extra: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.signal = folder / f"go-{time.monotonic_ns()}"
        self.extra = extra
        self.started: list[tuple[tuple[str, ...], str, ForkedProcess]] = []

    def add(self, *args: str, user: str = MAKER) -> None:
        proc = ForkedProcess(CLI, args, env=_env(self.extra, user), wait_for=self.signal)
        self.started.append((args, user, proc))

    @property
    def pids(self) -> list[int]:
        return [proc.pid for _, _, proc in self.started]

    def go(self) -> None:
        self.signal.touch()

    def running(self) -> None:
        """Fail naming any process that has already ended."""
        for args, user, proc in self.started:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"{Ended(args, user, proc.pid, proc.returncode, out, err)}: {err}")

    def finish(self, timeout: float = 600) -> list[Ended]:
        """Every process's end; a process still running after ``timeout`` is a hang."""
        deadline = time.monotonic() + timeout
        ended = []
        for args, user, proc in self.started:
            try:
                out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for _, _, other in self.started:
                    other.kill()
                pytest.fail(f"`risk-assets {' '.join(args)}` still running after {timeout} s")
            ended.append(Ended(args, user, proc.pid, proc.returncode, out, err))
        return ended


def _assert_final(ended: Ended, allowed: tuple[int, ...] = (0,)) -> None:
    """A final status: an exit code the contract allows; a refusal says why in one line."""
    assert ended.code in allowed, f"{ended}:\n{ended.err[-3000:]}"
    assert "Traceback" not in ended.err, f"{ended}:\n{ended.err[-3000:]}"
    if ended.code != 0:
        first = ended.err.strip().splitlines()[0]
        assert first.startswith("risk-assets: error: "), f"{ended}: {ended.err[-2000:]}"
        assert ended.payload["error"], ended.payload


def _clients():
    from mlflow import MlflowClient

    from risk_assets.audit import open_audit_log
    from risk_assets.settings import current_settings

    s = current_settings()
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri), open_audit_log()


def _versions(client, name: str) -> dict[str, object]:
    from mlflow.exceptions import MlflowException

    try:
        return {str(mv.version): mv for mv in client.search_model_versions(f"name='{name}'")}
    except MlflowException:
        return {}


def _champion(client, name: str) -> str | None:
    from risk_assets.registry._mlflow import find_champion

    mv = find_champion(client, name)
    return None if mv is None else str(mv.version)


def _snapshot(extra: dict[str, str], model: str) -> dict:
    with pointed_at(extra):
        client, _ = _clients()
        return {
            "candidates": set(_versions(client, f"{model}-candidates")),
            "production": set(_versions(client, model)),
            "champion": _champion(client, model),
        }


def _assert_chain_of_decisions(client, audit, model: str) -> list:
    """The promotions and rollbacks of ``model`` in the audit trail's order each replaced
    the champion the one before made; ``champion`` is where the last one put it. Every
    production version is recorded once (anchored), every record names a version."""
    decisions = [r for r in audit.records(model=model) if r.action in ("promotion", "rollback")]
    champion = None
    for r in decisions:
        if r.action == "promotion":
            replaced = "none" if champion is None else f"{model}/{champion}"
            assert r.details["replaced"] == replaced, (r.seq, r.details, champion)
        else:
            assert r.details["from"] == champion, (r.seq, r.details, champion)
        champion = r.version
    assert _champion(client, model) == champion, (decisions, champion)
    production = _versions(client, model)
    promoted = [r for r in decisions if r.action == "promotion"]
    assert sorted(r.version for r in promoted) == sorted(production), (promoted, production)
    for r in promoted:
        assert production[r.version].tags["risk_assets.audit_seq"] == str(r.seq)
    sources = [r.details["from"] for r in promoted]
    assert len(sources) == len(set(sources)), f"a challenger promoted twice: {sources}"
    return decisions


def _audit_verifies(extra: dict[str, str]) -> dict:
    """``risk-assets audit verify`` (in this process): every link of the chain, and every
    anchor the registry's versions hold."""
    from risk_assets.cli import main

    printed = io.StringIO()
    with pointed_at(extra), redirect_stdout(printed):
        code = main(["audit", "verify", "--json"])
    out = json.loads(printed.getvalue().strip().splitlines()[-1])
    assert code == 0 and out["ok"], out
    return out


def _assert_runs_consistent(extra: dict[str, str], ended: list[Ended], model: str, before: dict):
    """After a burst of runs of ``model``: see the module. Returns the new candidate and
    production versions."""
    import dagster as dg

    from risk_assets.registry._lineage import RunLineage, RunVerdict, VersionTags

    for e in ended:
        _assert_final(e)
    payloads = [e.payload for e in ended]
    assert all(p["status"] == "registered" for p in payloads), payloads
    # no run took a sibling in progress for a dead one and cleaned up after it
    assert all(p["recovered"] == [] for p in payloads), payloads
    cand = f"{model}-candidates"
    with pointed_at(extra):
        client, audit = _clients()
        candidates = _versions(client, cand)
        new = sorted(set(candidates) - before["candidates"], key=int)
        # one version per run, each its own: the version's MLflow run is the run's
        assert len(new) == len(ended), (new, payloads)
        claimed = {p["candidate"]["version"]: p["dagster_run_id"] for p in payloads}
        assert sorted(claimed, key=int) == new, (claimed, new)
        for version in new:
            mv = candidates[version]
            run = client.get_run(mv.run_id)
            lineage = RunLineage.from_tags(run.data.tags)
            assert lineage.dagster_run_id == claimed[version], (version, lineage, claimed)
            tags = VersionTags.from_tags(mv.tags)
            assert tags.model_sha256 == lineage.model_sha256 and tags.gates_passed, mv.tags
            (record,) = audit.records(model=cand, version=version, action="registration")
            assert mv.tags["risk_assets.audit_seq"] == str(record.seq)
            assert record.hashes["model_sha256"] == tags.model_sha256
            verdict = RunVerdict.from_tags(run.data.tags).verdict
            assert verdict in (RunVerdict.REGISTERED, RunVerdict.AWAITING_APPROVAL), verdict
        recorded = {r.version for r in audit.records(model=cand, action="registration")}
        assert recorded == set(candidates), (recorded, set(candidates))
        # production: promotions chain, the champion is the last decision's
        decisions = _assert_chain_of_decisions(client, audit, model)
        production = _versions(client, model)
        made = sorted(set(production) - before["production"], key=int)
        for version in made:
            source = VersionTags.from_tags(production[version].tags).candidate_version
            assert source in {f"{cand}/{v}" for v in new}, (version, source)
        champion = _champion(client, model)
        assert champion in {*made, before["champion"]}, (champion, made, before)
        for p in payloads:
            if "champion" in p["aliases"]:
                mv = production[p["version"]]
                assert VersionTags.from_tags(mv.tags).candidate_version == (
                    f"{cand}/{p['candidate']['version']}"
                )
        # nothing half-done: every MLflow run of the experiment has a verdict
        exp = client.get_experiment_by_name(model)
        for run in client.search_runs([exp.experiment_id]):
            assert RunVerdict.from_tags(run.data.tags).verdict, run.info
            assert run.info.status != "RUNNING", run.info
        # the runs overlapped, and each succeeded in Dagster
        instance = dg.DagsterInstance.get()
        spans = []
        for p in payloads:
            assert instance.get_run_by_id(p["dagster_run_id"]).status == (
                dg.DagsterRunStatus.SUCCESS
            )
            stats = instance.get_run_stats(p["dagster_run_id"])
            spans.append((stats.start_time, stats.end_time))
        assert max(s for s, _ in spans) < min(e for _, e in spans), f"no overlap: {spans}"
    verified = _audit_verifies(extra)
    print(  # what the burst did, for whoever reads the output (-rP)
        f"{len(ended)} runs of {model} at once: candidates {new}, production {made}, "
        f"champion {champion}; audit trail {verified['records']} records, intact"
    )
    return {"candidates": new, "production": made, "champion": champion, "decisions": decisions}


def _run_burst(root: Path, extra: dict[str, str], spec: Path, runs: int) -> list[Ended]:
    burst = Burst(root, extra)
    for _ in range(runs):
        burst.add("run", str(spec), "--json")
    burst.go()
    return burst.finish()


# ------------------------------------------------------------------ the embedded stores


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One state folder shared by every process; nothing in it before the first burst."""
    root = tmp_path_factory.mktemp("concurrent")
    extra = state_env(root / "state")
    return {
        "root": root,
        "extra": extra,
        "kind": "file",
        "runs": _spec(root / "runs", RUN_RISKS, MODEL),
        "decided": _spec(root / "decided", DECIDE_RISKS, DECIDED, _decided_policy()),
    }


@pytest.fixture(scope="module")
def two_first_runs(embedded: dict) -> dict:
    """Two runs of the decisions pipeline at once on the new state: the first use of every
    store happens in both at the same time."""
    before = {"candidates": set(), "production": set(), "champion": None}
    started = time.monotonic()
    ended = _run_burst(embedded["root"], embedded["extra"], embedded["decided"], 2)
    seconds = time.monotonic() - started
    return {"ended": ended, "before": before, "seconds": seconds}


def test_two_runs_at_once_on_a_new_state(embedded: dict, two_first_runs: dict) -> None:
    """Both runs register their own challenger; the tier asks for approvals, so neither is
    champion."""
    out = _assert_runs_consistent(
        embedded["extra"], two_first_runs["ended"], DECIDED, two_first_runs["before"]
    )
    assert out["candidates"] == ["1", "2"] and out["production"] == [], out
    assert out["champion"] is None
    for e in two_first_runs["ended"]:
        assert e.payload["aliases"] == ["challenger"], e.payload


def test_three_runs_at_once_promote_one_chain(embedded: dict, two_first_runs: dict) -> None:
    """Three runs of a low-tier pipeline with a champion gate at once: three challengers;
    a run promotes only while the champion is still the one its gate compared with, so the
    champion is one of them and the promotions chain."""
    before = _snapshot(embedded["extra"], MODEL)
    ended = _run_burst(embedded["root"], embedded["extra"], embedded["runs"], 3)
    out = _assert_runs_consistent(embedded["extra"], ended, MODEL, before)
    assert len(out["candidates"]) == 3 and out["production"], out
    promoted = [e.payload for e in ended if "champion" in e.payload["aliases"]]
    assert len(promoted) == len(out["production"]) >= 1, (promoted, out)
    stale = [e.payload for e in ended if "champion" not in e.payload["aliases"]]
    assert all(p["aliases"] == ["challenger"] for p in stale), stale


def test_each_run_judges_its_own_gates(embedded: dict, two_first_runs: dict) -> None:
    """Another run that materialised the model after this one, with a gate that failed, does
    not block this run's registration, nor the other way round: the step after a gated
    asset reads the verdicts of the checks its own run made on its own materialisation
    (Dagster's latest materialisation and latest verdict may be another run's)."""
    import dagster as dg

    from risk_assets.cli import main
    from risk_assets.dagster._blocking import blocked_by
    from risk_assets.pipeline import load_pipeline

    strict = make_pipeline(
        embedded["root"] / "decided-strict",
        name=DECIDED,
        without=tuple(r for r in ALL_RISKS if r not in DECIDE_RISKS),
        policy={
            **_decided_policy(),
            "risk_params": {"PERF-001": {"thresholds": {"roc_auc": 0.99, "accuracy": 0.70}}},
        },
    )
    with pointed_at(embedded["extra"]):
        assert main(["run", str(strict)]) == 3  # blocked by the metric floor
        instance = dg.DagsterInstance.get()
        (blocked,) = instance.get_runs(limit=1)
        # the blocked run materialised the model last, and its gate failed
        pipeline = load_pipeline(embedded["decided"])
        for e in two_first_runs["ended"]:
            mine = e.payload["dagster_run_id"]
            assert blocked_by(instance, pipeline, "candidate_model", [None], run_id=mine) == []
        reasons = blocked_by(
            instance, load_pipeline(strict), "candidate_model", [None], run_id=blocked.run_id
        )
        assert reasons == ["candidate_model: meets_metric_thresholds [PERF-001] failed"]


# ---------------------------------------------------------------- the production stores


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Dagster's instance (docker/dagster.yaml) and the audit trail in PostgreSQL, MLflow
    behind an ``mlflow server`` on PostgreSQL; SQLite refused (RISK_ASSETS_PRODUCTION). The
    databases are new: the first runs create the schemas."""
    root = tmp_path_factory.mktemp("concurrent-production")
    with postgres_cluster() as pg:
        dagster_db = create_database(pg, "dagster")
        mlflow_db = create_database(pg, "mlflow")
        backend = mlflow_db.replace("postgresql://", "postgresql+psycopg://")
        with mlflow_server(backend, root / "mlflow") as uri:
            extra = {
                **state_env(root / "state"),
                **dagster_postgres_home(dagster_db, root / "dagster_home"),
                "MLFLOW_TRACKING_URI": uri,
                "RISK_ASSETS_AUDIT_LOG": pg,
                "RISK_ASSETS_PRODUCTION": "1",
            }
            yield {
                "root": root,
                "extra": extra,
                "kind": "postgres",
                "pg": pg,
                "runs": _spec(root / "runs", RUN_RISKS, MODEL),
                "decided": _spec(root / "decided", DECIDE_RISKS, DECIDED, _decided_policy()),
            }


def test_two_runs_at_once_on_the_production_stores(production: dict) -> None:
    before = _snapshot(production["extra"], MODEL)
    ended = _run_burst(production["root"], production["extra"], production["runs"], 2)
    out = _assert_runs_consistent(production["extra"], ended, MODEL, before)
    assert len(out["candidates"]) == 2 and out["champion"] in out["production"], out
    assert not (production["root"] / "state" / "mlflow").exists()  # all behind the server


# ------------------------------------------------------------------------ the decisions


@pytest.fixture(scope="module")
def decided_embedded(embedded: dict, two_first_runs: dict) -> dict:
    """The two challengers the first burst registered."""
    return embedded


@pytest.fixture(scope="module")
def decided_production(production: dict) -> dict:
    """Two challengers, registered one after the other in this process."""
    from risk_assets.cli import main

    with pointed_at(production["extra"]):
        for _ in range(2):
            assert main(["run", str(production["decided"])]) == 0
    return production


def _waiting(burst: Burst, stores: dict) -> int:
    """How many processes of the burst wait for a lock of the audit trail: a file lock
    (``->`` in /proc/locks), or an advisory lock in PostgreSQL not granted yet."""
    if stores["kind"] == "file":
        pids, waiting = set(burst.pids), set()
        for line in Path("/proc/locks").read_text().splitlines():
            if "->" in line and "FLOCK" in line:
                pid = int(line.split("->", 1)[1].split()[3])
                waiting.update({pid} & pids)
        return len(waiting)
    import psycopg

    with psycopg.connect(stores["pg"], autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return conn.execute(query).fetchone()[0]


def _until_all_wait(burst: Burst, stores: dict, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _waiting(burst, stores) < len(burst.pids):
        burst.running()
        assert time.monotonic() < deadline, "the processes never all waited for the lock"
        time.sleep(0.1)


@pytest.mark.parametrize("stores_name", ["decided_embedded", "decided_production"])
def test_approvals_and_a_rollback_at_once_decide_one_at_a_time(
    stores_name: str, request: pytest.FixtureRequest
) -> None:
    """Two approvers approve one challenger at once (tier high: the second approval
    promotes), while appends to the audit trail are held: the approval that comes second
    counts the first, and promotes once. Then an approval that promotes and a rollback
    start while the decisions lock is held: neither records or moves anything until it is
    released, and the champion ends where the last recorded decision says."""
    from risk_assets.approvals import approve
    from risk_assets.registry._mlflow import lineage

    stores = request.getfixturevalue(stores_name)
    extra, cand = stores["extra"], f"{DECIDED}-candidates"
    folder = stores["root"] / "decisions"

    # 1. alice and bob approve decided-candidates/1 at once
    both = Burst(folder, extra)
    for user in ("alice", "bob"):
        both.add("approve", DECIDED, "1", "--reason", f"{user} validated", "--json", user=user)
    with pointed_at(extra):
        _, audit = _clients()
        with audit._locked():  # noqa: SLF001 - the append lock, held while they start
            both.go()
            _until_all_wait(both, stores)
    ended = both.finish()
    for e in ended:
        _assert_final(e)
    assert sorted(e.payload["action"] for e in ended) == ["approval", "promotion"], [
        e.payload for e in ended
    ]
    with pointed_at(extra):
        client, audit = _clients()
        approvals = audit.records(model=cand, version="1", action="approval")
        assert sorted(r.actor for r in approvals) == ["alice", "bob"]
        assert [r.details["approval"] for r in approvals] == [1, 2]
        (promotion,) = audit.records(model=DECIDED, action="promotion")
        assert promotion.details["from"] == f"{cand}/1"
        assert _champion(client, DECIDED) == promotion.version
        _assert_chain_of_decisions(client, audit, DECIDED)
        first_champion = promotion.version
        approve(client, audit, DECIDED, "2", actor="alice", reason="validated")

    # 2. bob's approval of decided-candidates/2 (it promotes) and dana's rollback at once;
    # the rollback starts once the approval waits (it would else be first in line, having
    # no evidence to verify before it asks for the lock)
    race = Burst(folder, extra)
    race.add("approve", DECIDED, "2", "--reason", "risk accepted", "--json", user="bob")
    with pointed_at(extra):
        client, audit = _clients()
        records = len(audit.records())
        with audit.decisions():
            race.go()
            _until_all_wait(race, stores)
            race.add("rollback", DECIDED, "--reason", "incident 7", "--json", user="dana")
            _until_all_wait(race, stores)
            # nothing recorded, nothing moved while another decision holds the lock
            assert len(audit.records()) == records
            assert _champion(client, DECIDED) == first_champion
    approved, rolled = race.finish()
    _assert_final(approved)
    assert approved.payload["action"] == "promotion", approved.payload
    _assert_final(rolled, allowed=(0, 4))
    with pointed_at(extra):
        client, audit = _clients()
        decisions = _assert_chain_of_decisions(client, audit, DECIDED)
        promoted_second = audit.records(model=DECIDED, action="promotion")[-1].version
        if rolled.code == 4:  # it went first: nothing to roll back to yet
            assert "has no earlier champion" in rolled.payload["error"], rolled.payload
            assert [d.action for d in decisions] == ["promotion", "promotion"]
            assert _champion(client, DECIDED) == promoted_second
        else:  # it went second: back to the first champion
            assert [d.action for d in decisions] == ["promotion", "promotion", "rollback"]
            assert rolled.payload["version"] == first_champion
            assert _champion(client, DECIDED) == first_champion
        info = lineage(client, f"{DECIDED}@champion", audit=audit)
        assert info["audit"]["warnings"] == [], info["audit"]
    verified = _audit_verifies(extra)
    print(
        f"{stores['kind']}: decided in the order "
        f"{[(d.action, d.version) for d in decisions]}, rollback exit {rolled.code}; "
        f"audit trail {verified['records']} records, intact"
    )
