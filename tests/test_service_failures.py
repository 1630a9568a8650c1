"""Services failing in the middle of a run, with real services on loopback and no mocks, in
the production configuration: the Dagster instance of ``docker/dagster.yaml`` on PostgreSQL,
an ``mlflow server`` on PostgreSQL, the audit trail in PostgreSQL, ``RISK_ASSETS_PRODUCTION=1``.

1. **The MLflow server killed** (SIGKILL to its process group) by a run of the gated
   pipeline right after the run's registration created its candidate version, before the
   registration was recorded: the run fails in bounded time (exit 1, one line on stderr
   naming the server, no trace; the Dagster run FAILURE), nothing was promoted and no alias
   moved, every version carries its evidence, the audit trail verifies. The run could not
   give its MLflow run a verdict (the server was gone); the next run, on the server
   restarted on the same database, does: it marks that run abandoned (FAILED), removes the
   half-made version the audit trail never recorded, and registers exactly one version.
2. **PostgreSQL restarted and stopped during a backfill** (``risk-assets backfill``: the
   partitions one after another in one process, on the PostgreSQL instance; the daemon is
   not driven here): a restart (``pg_ctl restart``) while a registration holds the audit
   trail's decisions lock, then a stop right after a month's candidate was trained, kept
   until the backfill has given up. The restart is ridden out; the stop fails the backfill
   with one line naming the database server. The project sets no Dagster retry policy and
   no run retries (a refused registration even raises ``Failure(allow_retries=False)``):
   what retries is dagster-postgres's connection retry (about 6 s) and MLflow's HTTP client
   (:data:`risk_assets.settings.MLFLOW_HTTP_DEFAULTS`). No record written before the stop
   is lost in any of the three databases; the run the outage left STARTED is marked failed
   by the next run, which re-runs the failed partitions to success.

Faults are injected at fixed points of the CLI's own process (as tests/crash_points.py
does), by running this file: ``python tests/test_service_failures.py ARGS`` runs
``risk-assets ARGS`` with the faults named in ``$RISK_ASSETS_TEST_FAULTS`` (JSON).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

#: The faults this file injects when run as a script (see _install_faults).
FAULTS_ENV = "RISK_ASSETS_TEST_FAULTS"
#: A guard against a hang, not a measure: a run fails in well under a minute here.
RUN_TIMEOUT_S = 300
#: The variables every CLI run gets from the fixture, none from the caller's environment
#: (MLflow's retry settings included: the project's defaults are what is tested).
_OURS = ("RISK_ASSETS_", "DAGSTER_", "MLFLOW_")
#: A lean register: a data gate, PII, the metric floor and the champion gate.
KEEP = {"DQ-001", "PRIV-001", "PERF-001", "PERF-002"}
MODEL = "credit_risk"
CANDIDATES = f"{MODEL}-candidates"
MONTHLY = "credit_risk_monthly"
MONTHS = ["2025-01", "2025-02", "2025-03"]
#: the month whose run PostgreSQL stops under, right after its candidate was trained
STOPPED = "2025-02"
IN_PROGRESS = ("NOT_STARTED", "STARTING", "STARTED", "QUEUED", "CANCELING")
EVIDENCE_TAGS = ("risk_assets.model_sha256", "risk_assets.policy_sha256", "risk_assets.run_id")


# ----------------------------------------------------------------------- the faults


def _wait_until_closed(port: int) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)


def _install_faults(faults: dict[str, Any]) -> None:
    """Wrap the functions of a run at the points ``faults`` names:

    - ``kill_mlflow`` ``{pgid, port}``: SIGKILL the MLflow server's process group right
      after a candidate version was created (its registration not yet recorded);
    - ``restart_postgres`` (a command): restart PostgreSQL right after the first promotion
      record, while the registration holds the audit trail's decisions lock;
    - ``stop_postgres`` ``{partition, command, records, databases}``: once the candidate of
      ``partition`` is trained, keep what the databases hold (:func:`_records`) in the file
      ``records``, then stop PostgreSQL.
    """
    if kill := faults.get("kill_mlflow"):
        import risk_assets.registry._mlflow as reg

        create_version = reg._create_version

        def killing(client: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            mv = create_version(client, name, *args, **kwargs)
            if name.endswith("-candidates"):
                os.killpg(kill["pgid"], signal.SIGKILL)
                _wait_until_closed(kill["port"])
            return mv

        reg._create_version = killing
    if restart := faults.get("restart_postgres"):
        from risk_assets.audit import AuditLog

        append, done = AuditLog.append, []

        def restarting(self: Any, action: str, **kwargs: Any) -> Any:
            record = append(self, action, **kwargs)
            if action == "promotion" and not done:
                done.append(record.seq)
                subprocess.run(restart, check=True, capture_output=True, timeout=120)
            return record

        AuditLog.append = restarting
    if stop := faults.get("stop_postgres"):
        import risk_assets.dagster._assets as assets

        fit_and_log = assets.fit_and_log

        def stopping(context: Any, *args: Any, **kwargs: Any) -> Any:
            out = fit_and_log(context, *args, **kwargs)
            if context.partition_key == stop["partition"]:
                records = _records(stop["databases"])
                Path(stop["records"]).write_text(json.dumps(records))
                subprocess.run(stop["command"], check=True, capture_output=True, timeout=120)
            return out

        assets.fit_and_log = stopping


def _records(databases: dict[str, str]) -> dict[str, list[list]]:
    """What the three databases hold, as rows of keys (and statuses): Dagster's runs, event
    log and check executions, MLflow's runs and model versions, the audit trail."""
    import psycopg

    queries = {
        "dagster": {
            "runs": "SELECT run_id, status FROM runs",
            "events": "SELECT id FROM event_logs",
            "checks": "SELECT id, run_id, check_name, partition, execution_status"
            " FROM asset_check_executions",
        },
        "mlflow": {
            "mlflow_runs": "SELECT run_uuid, status FROM runs",
            "versions": "SELECT name, version FROM model_versions",
        },
        "audit": {"audit": "SELECT seq, hash FROM risk_assets_audit"},
    }
    out: dict[str, list[list]] = {}
    for db, tables in queries.items():
        with psycopg.connect(databases[db]) as conn:
            for name, sql in tables.items():
                out[name] = [list(row) for row in conn.execute(sql).fetchall()]
    return out


def _hooked_cli(argv: list[str]) -> int:
    _install_faults(json.loads(os.environ[FAULTS_ENV]))
    from risk_assets.cli import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(_hooked_cli(sys.argv[1:]))


# ----------------------------------------------------------------------- the services

from forked_cli import run_script  # noqa: E402 - the script above needs none of these
from services import (  # noqa: E402 - the script above needs none of these
    MlflowServer,
    PostgresControl,
    create_database,
    dagster_postgres_home,
    postgres_cluster,
)

from conftest import CREDIT_POLICY, make_pipeline  # noqa: E402


def _all_but(policy: Path, keep: set[str]) -> tuple[str, ...]:
    """The risks of a register but those in ``keep``."""
    return tuple(
        r["id"] for r in yaml.safe_load(policy.read_text())["risks"] if r["id"] not in keep
    )


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory):
    """One PostgreSQL cluster (databases for Dagster, MLflow and the audit trail) and one
    ``mlflow server`` on it, for the module; the environment of every CLI run."""
    root = tmp_path_factory.mktemp("service_failures")
    with postgres_cluster() as audit_db:
        databases = {
            "dagster": create_database(audit_db, "dagster"),
            "mlflow": create_database(audit_db, "mlflow"),
            "audit": audit_db,
        }
        server = MlflowServer(
            databases["mlflow"].replace("postgresql://", "postgresql+psycopg://"),
            root / "mlflow",
        )
        try:
            server.start()
            env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
            env.update(dagster_postgres_home(databases["dagster"], root / "dagster_home"))
            env.update(
                {
                    "RISK_ASSETS_HOME": str(root / "state"),
                    "RISK_ASSETS_PRODUCTION": "1",
                    "RISK_ASSETS_AUDIT_LOG": audit_db,
                    "MLFLOW_TRACKING_URI": server.url,
                }
            )
            yield SimpleNamespace(
                root=root,
                env=env,
                server=server,
                databases=databases,
                postgres=PostgresControl(audit_db),
            )
        finally:
            server.stop()


def _cli(stores: SimpleNamespace, *args: str, faults: dict | None = None):
    """``risk-assets ARGS`` in a process of its own (with ``faults`` injected), bounded by
    RUN_TIMEOUT_S; returns the finished process with ``seconds`` it took. The process is
    forked from one with the libraries imported (tests/forked_cli.py)."""
    env = dict(stores.env)
    if faults is None:
        script = Path(sys.executable).parent / "risk-assets"
    else:
        script = Path(__file__)
        env[FAULTS_ENV] = json.dumps(faults)
    started = time.monotonic()
    proc = run_script(script, args, env=env, timeout=RUN_TIMEOUT_S)
    proc.seconds = time.monotonic() - started
    return proc


def _payload(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _no_trace(proc) -> None:
    for trace in ("Traceback", 'File "'):
        assert trace not in proc.stderr, proc.stderr[-3000:]


def _client(stores: SimpleNamespace):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stores.server.url, registry_uri=stores.server.url)


def _versions(client, name: str) -> dict[str, Any]:
    return {str(mv.version): mv for mv in client.search_model_versions(f"name='{name}'")}


def _aliases(client, name: str) -> dict[str, str]:
    return {a: str(v) for a, v in (client.get_registered_model(name).aliases or {}).items()}


def _dagster_run_status(stores: SimpleNamespace, run_id: str) -> str:
    import psycopg

    with psycopg.connect(stores.databases["dagster"]) as conn:
        (status,) = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    return status


def _audit_verify(stores: SimpleNamespace) -> dict:
    proc = _cli(stores, "audit", "verify", "--json")
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    return _payload(proc)


def _every_version_has_its_evidence(client, audit_log, model: str = MODEL) -> None:
    """Every version of ``model`` and its candidates carries its evidence tags; every alias
    is on a version whose registration or promotion the audit trail records, with the same
    model hash."""
    for name, action in ((f"{model}-candidates", "registration"), (model, "promotion")):
        versions = _versions(client, name)
        for version, mv in versions.items():
            missing = [t for t in EVIDENCE_TAGS if not mv.tags.get(t)]
            assert not missing, (name, version, missing)
            assert "risk_assets.gates_passed" in mv.tags, (name, version)
        for alias, version in _aliases(client, name).items():
            records = [
                r
                for r in audit_log.records(model=name, version=version)
                if r.action in (action, "rollback")
            ]
            assert records, f"{alias} on {name}/{version}, which the audit trail never recorded"
            sha = versions[version].tags["risk_assets.model_sha256"]
            assert records[-1].hashes["model_sha256"] == sha


# ----------------------------------------------------- 1. the MLflow server killed


@pytest.fixture(scope="module")
def mlflow_killed(stores: SimpleNamespace):
    """A champion (credit_risk/1); a run that kills the MLflow server once its candidate
    version is made; what that left, read once the server is restarted on the same
    database; then the next run."""
    from risk_assets.audit import open_audit_log

    spec = make_pipeline(stores.root / "single", without=_all_but(CREDIT_POLICY, KEEP))
    first = _cli(stores, "run", str(spec), "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (_payload(first)["version"], _payload(first)["aliases"]) == ("1", ["champion"])

    server = stores.server
    killed = _cli(
        stores,
        "run",
        str(spec),
        "--json",
        faults={"kill_mlflow": {"pgid": server.proc.pid, "port": server.port}},
    )
    assert server.proc.poll() is not None, "the fault did not kill the MLflow server"
    server.start()  # the same port, the same database and artefacts
    client, audit_log = _client(stores), open_audit_log(stores.databases["audit"])
    outcome = _payload(killed)
    dead = {
        "dagster_status": _dagster_run_status(stores, outcome["dagster_run_id"]),
        "mlflow_runs": [
            r
            for r in client.search_runs([client.get_experiment_by_name(MODEL).experiment_id])
            if r.data.tags.get("dagster.run_id") == outcome["dagster_run_id"]
        ],
        "candidates": _versions(client, CANDIDATES),
        "production": _versions(client, MODEL),
        "aliases": {name: _aliases(client, name) for name in (CANDIDATES, MODEL)},
    }
    _every_version_has_its_evidence(client, audit_log)
    verified = _audit_verify(stores)

    after = _cli(stores, "run", str(spec), "--json")
    return SimpleNamespace(
        first=first,
        killed=killed,
        outcome=outcome,
        dead=dead,
        verified=verified,
        after=after,
        client=client,
        audit_log=audit_log,
    )


def test_a_run_whose_mlflow_server_dies_fails_fast_with_one_line(mlflow_killed, stores):
    """Exit 1 within two minutes more than the same run took with the server up (MLflow's
    client gives up after about 30 s of retries, where its own defaults wait four minutes
    a request: the run took over eight), the Dagster run FAILURE, one line on stderr
    naming the step and the server's URL, no trace."""
    k = mlflow_killed.killed
    assert k.returncode == 1, (k.returncode, k.stderr[-3000:])
    assert k.seconds < mlflow_killed.first.seconds + 120, (k.seconds, mlflow_killed.first.seconds)
    _no_trace(k)
    assert all(line.startswith("risk-assets: ") for line in k.stderr.splitlines()), k.stderr
    errors = [line for line in k.stderr.splitlines() if line.startswith("risk-assets: error: ")]
    assert len(errors) == 1, k.stderr
    assert f"the MLflow server at {stores.server.url} failed" in errors[0], errors
    assert "registered_model" in errors[0], errors
    assert mlflow_killed.outcome["status"] == "error"
    assert mlflow_killed.outcome["version"] is None
    assert mlflow_killed.dead["dagster_status"] == "FAILURE"


def test_nothing_was_promoted_and_no_alias_moved(mlflow_killed):
    """The server died between the candidate version and its audit record: that version
    exists with its evidence tags and no alias; the champion and challenger are where the
    first run put them, no production version was made, and the trail verifies."""
    d = mlflow_killed.dead
    assert d["aliases"] == {CANDIDATES: {"challenger": "1"}, MODEL: {"champion": "1"}}
    assert sorted(d["production"]) == ["1"]
    assert sorted(d["candidates"]) == ["1", "2"]
    half_made = d["candidates"]["2"]
    assert not half_made.aliases and "risk_assets.audit_seq" not in half_made.tags
    assert not mlflow_killed.audit_log.records(model=CANDIDATES, version="2")
    assert mlflow_killed.verified["ok"], mlflow_killed.verified


def test_the_dead_run_could_not_end_its_mlflow_run_so_the_next_run_does(mlflow_killed):
    """The killed run's MLflow run kept no verdict (the server was gone when the run would
    have written it); the next run, with the server back, marks it abandoned (FAILED),
    removes the version the trail never recorded, says so, and records the removal."""
    (dead_run,) = mlflow_killed.dead["mlflow_runs"]
    assert "risk_assets.verdict" not in dead_run.data.tags
    after = mlflow_killed.after
    assert after.returncode == 0, after.stderr[-3000:]
    said = " | ".join(_payload(after)["recovered"])
    assert f"MLflow run {dead_run.info.run_id}" in said, said
    assert f"removed {CANDIDATES}/2" in said, said
    assert "recovered MLflow run" in after.stderr  # the warning the user sees
    run = mlflow_killed.client.get_run(dead_run.info.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["risk_assets.verdict"] == "abandoned"
    (removal,) = [
        r
        for r in mlflow_killed.audit_log.records(action="recovery")
        if r.run_id == dead_run.info.run_id
    ]
    assert removal.details["removed"] == [f"{CANDIDATES}/2"]


def test_the_next_run_registers_exactly_one_version(mlflow_killed):
    """One new version of each model, made by the next run and champion; every version
    keeps its evidence and every alias its audit record; the trail verifies."""
    client = mlflow_killed.client
    outcome = _payload(mlflow_killed.after)
    assert outcome["aliases"] == ["champion"], outcome
    candidates, production = _versions(client, CANDIDATES), _versions(client, MODEL)
    assert sorted(candidates) == ["1", "3"], sorted(candidates)  # 2 removed, never reused
    assert sorted(production) == ["1", "2"]
    assert outcome["version"] == "2" and outcome["candidate"]["version"] == "3"
    assert (
        candidates["3"].run_id
        == production["2"].run_id
        != mlflow_killed.dead["candidates"]["2"].run_id
    )
    assert _aliases(client, MODEL) == {"champion": "2"}
    assert _aliases(client, CANDIDATES) == {"challenger": "3"}
    _every_version_has_its_evidence(client, mlflow_killed.audit_log)
    assert mlflow_killed.audit_log.verify().ok


# ------------------------------------------- 2. PostgreSQL restarted during a backfill


def _training_runs(stores: SimpleNamespace) -> dict[str, list[tuple[str, str]]]:
    """The monthly pipeline's training runs per month, oldest first: (run id, status)."""
    import psycopg

    with psycopg.connect(stores.databases["dagster"]) as conn:
        rows = conn.execute(
            "SELECT r.run_id, r.status, t.value FROM runs r JOIN run_tags t"
            " ON t.run_id = r.run_id AND t.key = 'dagster/partition'"
            " WHERE r.pipeline_name = %s ORDER BY r.create_timestamp",
            (f"{MONTHLY}_job",),
        ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for run_id, status, month in rows:
        out.setdefault(month, []).append((run_id, status))
    return out


def _postgres_answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="module")
def postgres_outage(stores: SimpleNamespace):
    """A backfill of three months on the PostgreSQL instance: PostgreSQL restarted while the
    first month's registration holds the decisions lock, then stopped once the second
    month's candidate is trained, until the backfill has given up; started again, and the
    months without a successful run backfilled again."""
    from test_retraining import _monthly_copy

    spec = _monthly_copy(
        stores.root / "monthly",
        partitions={"scheme": "monthly", "start": MONTHS[0], "end": MONTHS[-1]},
    )
    policy = spec.parent / "policies" / f"{MONTHLY}.yaml"
    doc = yaml.safe_load(policy.read_text())
    doc["risks"] = [r for r in doc["risks"] if r["id"] in KEEP]
    floor = next(r for r in doc["risks"] if r["id"] == "PERF-001")
    # every month's window then passes its gates: a re-run registers, not only succeeds
    floor["control"]["params"]["thresholds"] = {"roc_auc": 0.6, "accuracy": 0.6}
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))

    pg, records = stores.postgres, stores.root / "records-before-the-stop.json"
    faults = {
        "restart_postgres": pg.command("restart"),
        "stop_postgres": {
            "partition": STOPPED,
            "command": pg.command("stop"),
            "records": str(records),
            "databases": stores.databases,
        },
    }
    args = ("backfill", str(spec), "--from", MONTHS[0], "--to", MONTHS[-1], "--json")
    backfill = _cli(stores, *args, faults=faults)
    was_down = not _postgres_answers(stores.databases["audit"])
    pg.start()
    client = _client(stores)
    left = SimpleNamespace(
        records=_records(stores.databases),
        runs=_training_runs(stores),
        versions=_versions(client, MONTHLY),
        champion=_aliases(client, MONTHLY).get("champion"),
    )
    failed = [m for m in MONTHS if not any(s == "SUCCESS" for _, s in left.runs.get(m, []))]
    rerun = _cli(stores, "backfill", str(spec), "--from", failed[0], "--to", failed[-1], "--json")
    return SimpleNamespace(
        backfill=backfill,
        was_down=was_down,
        before=json.loads(records.read_text()),
        left=left,
        failed=failed,
        rerun=rerun,
        after=SimpleNamespace(records=_records(stores.databases), runs=_training_runs(stores)),
        client=client,
    )


def test_the_stopped_database_fails_the_backfill_with_one_line(postgres_outage, stores):
    """The backfill gives up in bounded time, exit 1, with one line naming the database
    server it could not reach (Dagster prints one line of its own when it cannot write a
    log message), no trace; PostgreSQL was still down when it ended."""
    b, rerun = postgres_outage.backfill, postgres_outage.rerun
    assert postgres_outage.was_down
    assert b.returncode == 1, (b.returncode, b.stdout[-2000:], b.stderr[-3000:])
    # a month and a half against the re-run's two months: about 25 s of retries more
    assert b.seconds < rerun.seconds + 120, (b.seconds, rerun.seconds)
    _no_trace(b)
    errors = [line for line in b.stderr.splitlines() if line.startswith("risk-assets: error: ")]
    assert len(errors) == 1, b.stderr
    assert f'"127.0.0.1", port {stores.postgres.port} failed' in errors[0], errors
    others = [
        line
        for line in b.stderr.splitlines()
        if not line.startswith("risk-assets: ")
        and not line.startswith("Exception while writing logger call to event log: ")
    ]
    assert others == [], b.stderr
    assert json.loads(b.stdout.strip().splitlines()[-1])["status"] == "error"


def test_a_restart_during_a_registration_is_ridden_out(postgres_outage):
    """PostgreSQL restarted while the first month's registration held the audit trail's
    decisions lock (right after its promotion record): the lock went with its connection,
    which the user is told, and the run succeeds, its version champion and anchored in the
    audit trail. (Its release raised, failing a promotion carried out and recorded, whose
    MLflow run the next run then marked abandoned: fixed in PostgresAuditLog.)"""
    left = postgres_outage.left
    ((_, status),) = left.runs[MONTHS[0]]
    assert status == "SUCCESS", status
    assert "decisions lock dropped" in postgres_outage.backfill.stderr
    (version,) = left.versions.values()
    assert version.tags["risk_assets.partition"] == MONTHS[0]
    assert "risk_assets.audit_seq" in version.tags, version.tags
    assert left.champion == str(version.version)
    assert postgres_outage.failed == MONTHS[1:], postgres_outage.failed


#: The key columns of each table of _records: the rest is a status.
_KEYS = {"runs": 1, "events": 1, "checks": 4, "mlflow_runs": 1, "versions": 2, "audit": 2}


def _assert_kept(before: dict[str, list[list]], now: dict[str, list[list]], *, ended: bool) -> None:
    """Every row ``before`` holds is still there, with the same status; once the next run
    has ended what the outage left (``ended``), except the statuses it ends: a Dagster run
    in progress, a check evaluation it planned, an MLflow run now FAILED (abandoned)."""
    for table, rows in before.items():
        n = _KEYS[table]
        found = {tuple(row[:n]): row[n:] for row in now[table]}
        for row in rows:
            key, status = tuple(row[:n]), row[n:]
            assert key in found, f"{table}: {key} was lost"
            if found[key] == status or not ended:
                assert found[key] == status, (table, key, status, found[key])
            elif table == "runs":
                assert status[0] in IN_PROGRESS, (table, key, status, found[key])
            elif table == "checks":
                assert status == ["PLANNED"], (table, key, status, found[key])
            else:
                assert table == "mlflow_runs" and found[key] == ["FAILED"], (table, key)


def test_no_record_written_before_the_stop_is_lost(postgres_outage):
    """Every row of Dagster's runs, event log and check executions, of MLflow's runs and
    model versions and of the audit trail that existed when PostgreSQL stopped is there
    after it started again, and after the re-run; ended runs and evaluated checks keep
    their status."""
    before = postgres_outage.before
    assert before["runs"] and before["checks"] and before["audit"] and before["versions"]
    _assert_kept(before, postgres_outage.left.records, ended=False)
    _assert_kept(before, postgres_outage.after.records, ended=True)


def test_every_run_ends_and_the_failed_months_rerun_to_success(postgres_outage, stores):
    """The month PostgreSQL stopped under was left STARTED (its process could not record its
    end); the re-run marks it failed and says so, and its MLflow run abandoned; every
    month then has a successful run and a registered version, no run is in progress, and
    the audit trail verifies."""
    from risk_assets.audit import open_audit_log

    left, after = postgres_outage.left, postgres_outage.after
    ((stuck, status),) = left.runs[STOPPED]
    assert status == "STARTED", status
    assert MONTHS[2] not in left.runs  # the backfill gave up before it

    rerun = postgres_outage.rerun
    assert rerun.returncode == 0, (rerun.stdout[-2000:], rerun.stderr[-3000:])
    assert f"Dagster run {stuck} marked failed" in rerun.stderr, rerun.stderr
    report = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert [p["partition"] for p in report["partitions"]] == MONTHS[1:]
    assert {p["status"] for p in report["partitions"]} == {"registered"}, report

    statuses = {run_id: status for runs in after.runs.values() for run_id, status in runs}
    assert statuses[stuck] == "FAILURE"
    in_progress = [r for r in after.records["runs"] if r[1] in IN_PROGRESS]
    assert in_progress == [], in_progress
    for month in MONTHS:
        assert after.runs[month][-1][1] == "SUCCESS", (month, after.runs[month])

    client = postgres_outage.client
    experiment = client.get_experiment_by_name(MONTHLY).experiment_id
    (dead,) = [
        r for r in client.search_runs([experiment]) if r.data.tags.get("dagster.run_id") == stuck
    ]
    assert (dead.info.status, dead.data.tags.get("risk_assets.verdict")) == ("FAILED", "abandoned")
    registered = sorted(
        mv.tags.get("risk_assets.partition")
        for mv in client.search_model_versions(f"name='{MONTHLY}-candidates'")
    )
    assert registered == MONTHS, registered
    _every_version_has_its_evidence(client, open_audit_log(stores.databases["audit"]), MONTHLY)
    assert _audit_verify(stores)["ok"]
