"""The production Dagster instance with real services on loopback.

``docker/dagster.yaml`` (unchanged, in a DAGSTER_HOME of its own) keeps Dagster's runs,
events and schedules in a PostgreSQL database; MLflow's ``mlflow server`` keeps its store
in another database of the same cluster (both have a ``runs`` table), and the audit trail
is a table in a third. A gRPC user-code server (``dagster api grpc``) serves a copy of the
monthly pipeline over four months, the last of which carries an undeclared e-mail column;
a real ``dagster-daemon run`` (its backfill daemon looking every 5 s instead of Dagster's
30) and ``dagster-webserver`` load it from there. Every process has
``RISK_ASSETS_EXECUTOR=multiprocess`` (a process per step) and ``RISK_ASSETS_PRODUCTION=1``
(SQLite refused).

An asset backfill of the five training assets over the four months is launched as the UI
launches one (GraphQL ``launchPartitionBackfill``, no tags) and left to the daemon: the
backfill daemon requests one run per month for the data and, once a window's data is
materialised, one per month for its split, candidate and registration; the run queue
daemon launches them through the gRPC server, at most two at a time.

The backfill's final status is Dagster's COMPLETED_FAILED although every run succeeds:
Dagster counts a targeted partition that a successful run did not materialise as failed
(see tests/test_daemon_backfill.py), and here the blocked month's split and candidate and
the registration of every blocked month are withheld on purpose.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest
from dagster_services import (
    dagster_daemon,
    dagster_webserver,
    grpc_code_server,
    grpc_workspace,
    launch_asset_backfill,
)
from services import (
    chromium_or_skip,
    create_database,
    dagster_postgres_home,
    dismiss_dagster_welcome,
    free_port,
    mlflow_server,
    postgres_cluster,
)
from test_retraining import _monthly_copy

from conftest import ROOT, make_pipeline, run_cli, state_env

PIPELINE = "credit_risk_monthly"
LOCATION = "risk_assets_pipelines"
TRAINING_ASSETS = (
    "raw_snapshot",
    "validated_data",
    "train_test_split",
    "candidate_model",
    "registered_model",
)
DATA_ASSETS = TRAINING_ASSETS[:2]
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04"]
#: the last month carries an undeclared e-mail column, so its PII gate blocks it; being
#: the last, it is in no other month's training window
BLOCKED = "2025-04"
#: the registration step of every run of the pipeline is in this pool (one slot)
REGISTRY_POOL = f"risk_assets/registry/{PIPELINE}"
REGISTRATION_STEP = f"{PIPELINE}__registered_model"
#: how often the backfill daemon looks at the backfill (Dagster's own pause is 30 s; see
#: dagster_services.dagster_daemon)
BACKFILL_INTERVAL_S = 5
#: a guard against a hung daemon, not a measure: the backfill takes a few minutes
BACKFILL_TIMEOUT_S = 900
ARTIFACTS = Path(os.environ.get("RISK_ASSETS_TEST_ARTIFACTS") or ROOT / ".test-artifacts")
#: the variables every service gets from the fixture, none from the caller's environment
_OURS = ("RISK_ASSETS_", "DAGSTER_", "MLFLOW_")


def _key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([PIPELINE, asset])


def _add_email_column(folder: Path, month: str) -> None:
    path = folder / f"applications_{month}.csv"
    frame = pd.read_csv(path)
    frame["contact"] = [f"applicant{i}@example.org" for i in range(len(frame))]
    frame.to_csv(path, index=False)


def _wait_for_backfill(instance: dg.DagsterInstance, backfill_id: str):
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES

    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        if backfill is not None and backfill.status in BULK_ACTION_TERMINAL_STATUSES:
            return backfill
        time.sleep(2)
    pytest.fail(f"backfill {backfill_id} has no final status after {BACKFILL_TIMEOUT_S} s")


def _blocking_checks(spec: Path) -> set[dg.AssetCheckKey]:
    """The gates of the training assets (blocking checks), from the definitions the code
    server serves."""
    from risk_assets.dagster import build_definitions

    graph = build_definitions([spec]).resolve_asset_graph()
    training = {_key(a) for a in TRAINING_ASSETS}
    return {
        key
        for key in graph.asset_check_keys
        if key.asset_key in training and graph.get(key).blocking
    }


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("production_dagster")
    spec = _monthly_copy(
        root / "code", partitions={"scheme": "monthly", "start": MONTHS[0], "end": MONTHS[-1]}
    )
    _add_email_column(spec.parent / "data" / "monthly", BLOCKED)
    code = root / "code" / "definitions.py"
    code.write_text(
        "from risk_assets.dagster import build_definitions\n\n"
        f"defs = build_definitions([{str(spec)!r}])\n"
    )
    web_port = free_port()
    with postgres_cluster() as audit_db:
        dagster_db = create_database(audit_db, "dagster")
        mlflow_db = create_database(audit_db, "mlflow")
        backend = mlflow_db.replace("postgresql://", "postgresql+psycopg://")
        with mlflow_server(backend, root / "mlflow") as tracking:
            env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
            env.update(dagster_postgres_home(dagster_db, root / "dagster_home"))
            env.update(
                {
                    "RISK_ASSETS_HOME": str(root / "state"),
                    "RISK_ASSETS_EXECUTOR": "multiprocess",
                    "RISK_ASSETS_PRODUCTION": "1",
                    "RISK_ASSETS_AUDIT_LOG": audit_db,
                    "MLFLOW_TRACKING_URI": tracking,
                    # the links each UI gives to the other
                    "RISK_ASSETS_MLFLOW_UI_URL": tracking,
                    "RISK_ASSETS_DAGSTER_URL": f"http://127.0.0.1:{web_port}",
                }
            )
            with pytest.MonkeyPatch.context() as mp:
                # this process reads the same instance and stores as the services
                for k in [k for k in os.environ if k.startswith(_OURS)]:
                    mp.delenv(k)
                for k, v in env.items():
                    if k.startswith(_OURS):
                        mp.setenv(k, v)
                with grpc_code_server(
                    code, location=LOCATION, env=env, log=root / "grpc.log"
                ) as grpc_port:
                    workspace = grpc_workspace(
                        root / "workspace.yaml", port=grpc_port, location=LOCATION
                    )
                    with (
                        dagster_webserver(
                            workspace, port=web_port, env=env, log=root / "webserver.log"
                        ) as web,
                        dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance,
                    ):
                        # stored before the daemon starts, so its first iteration takes it
                        # up (the backfill daemon then looks every BACKFILL_INTERVAL_S)
                        backfill_id = launch_asset_backfill(
                            web,
                            assets=[[PIPELINE, a] for a in TRAINING_ASSETS],
                            partitions=MONTHS,
                        )
                        with dagster_daemon(
                            workspace,
                            env=env,
                            log=root / "daemon.log",
                            backfill_interval_s=BACKFILL_INTERVAL_S,
                        ):
                            backfill = _wait_for_backfill(instance, backfill_id)
                        yield SimpleNamespace(
                            root=root,
                            spec=spec,
                            env=env,
                            dagster_db=dagster_db,
                            tracking=tracking,
                            web=web,
                            instance=instance,
                            backfill=backfill,
                            runs=_backfill_runs(instance, backfill_id),
                        )


def _backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, dict]:
    """The backfill's runs by kind (``data``: raw snapshot and validated data; ``training``:
    split, candidate, registration) and month."""
    from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG

    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    out: dict[str, dict] = {"data": {}, "training": {}, "all": records}
    for record in records:
        run = record.dagster_run
        kind = "training" if _key("registered_model") in run.asset_selection else "data"
        month = run.tags[PARTITION_NAME_TAG]
        assert month not in out[kind], f"two {kind} runs of {month}"
        out[kind][month] = record
    return out


def _events(instance: dg.DagsterInstance, run_id: str, *types: dg.DagsterEventType) -> list:
    return [e for e in instance.all_logs(run_id, of_type=set(types)) if e.dagster_event]


def _check_rows(dagster_db: str) -> list[dict]:
    """Every row of Dagster's asset_check_executions table, read from PostgreSQL."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dagster_db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT asset_key, check_name, partition, run_id, execution_status,"
            " evaluation_event FROM asset_check_executions"
        ).fetchall()


def _verdicts(rows: list[dict]) -> dict[tuple[str, str], dict[str, bool]]:
    """(asset, month) -> {check: passed} from the evaluated rows."""
    out: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for row in rows:
        if row["execution_status"] in ("SUCCEEDED", "FAILED"):
            asset = json.loads(row["asset_key"])[-1]
            out[asset, row["partition"]][row["check_name"]] = row["execution_status"] == (
                "SUCCEEDED"
            )
    return out


def test_the_backfill_daemon_looked_every_few_seconds(production):
    """The daemon ran with the shorter pause (dagster_services.dagster_daemon sets a
    constant of Dagster's; had Dagster stopped reading it, the pause would be 30 s): from
    the times of its iterations in its own log."""
    import re
    from datetime import datetime

    log = (production.root / "daemon.log").read_text(errors="replace")
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)  # its colours
    stamps = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        for m in re.finditer(
            r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) [+-]\d{4} - dagster\.daemon\.BackfillDaemon"
            r" - INFO - Evaluating asset backfill",
            log,
        )
    ]
    assert len(stamps) >= 3, log[-3000:]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) < 20, gaps


def test_every_run_of_the_daemon_backfill_succeeds(production):
    """Four months, two runs each (the data, then the window's training), all launched by the
    daemon through the gRPC server and all successful, the blocked months too."""
    p = production
    assert sorted(p.runs["data"]) == MONTHS
    assert sorted(p.runs["training"]) == MONTHS
    assert len(p.runs["all"]) == 2 * len(MONTHS)
    statuses = {
        (kind, month): record.dagster_run.status
        for kind in ("data", "training")
        for month, record in p.runs[kind].items()
    }
    assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, statuses
    for record in p.runs["all"]:
        run = record.dagster_run
        # the daemon launched it from the queue, through the code server, with the
        # executor the environment names (a process per step)
        assert run.job_name == "__ASSET_JOB"
        assert run.remote_job_origin.location_name == LOCATION
        # no run config: the executor's defaults (a forkserver with our libraries
        # imported once, risk_assets.dagster._production.PRELOADED_MODULES)
        assert not run.run_config.get("execution"), run.run_config
        engine = [
            e.message
            for e in _events(p.instance, run.run_id, dg.DagsterEventType.ENGINE_EVENT)
            if (e.message or "").startswith("Executing steps using multiprocess executor")
        ]
        assert engine, f"run {run.run_id} did not use the multiprocess executor"

    materialised = {
        a: sorted(p.instance.get_materialized_partitions(_key(a))) for a in TRAINING_ASSETS
    }
    clean = [m for m in MONTHS if m != BLOCKED]
    assert materialised["raw_snapshot"] == MONTHS
    assert materialised["validated_data"] == MONTHS
    # the blocked month's split withheld itself, so nothing after it was built
    assert materialised["train_test_split"] == clean
    assert materialised["candidate_model"] == clean


def test_every_planned_check_evaluation_is_in_postgresql(production):
    """Every check a run planned has its row in Dagster's PostgreSQL database: evaluated
    (passed or failed) in every run, except the model gates of the month the PII gate
    blocked, which were never evaluated (their asset was not built)."""
    p = production
    rows = _check_rows(p.dagster_db)
    recorded = {
        (row["run_id"], json.loads(row["asset_key"])[-1], row["check_name"], row["partition"])
        for row in rows
    }
    planned = set()
    for kind in ("data", "training"):
        for month, record in p.runs[kind].items():
            events = _events(
                p.instance,
                record.dagster_run.run_id,
                dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
            )
            assert events, f"the {kind} run of {month} planned no check"
            for event in events:
                data = event.dagster_event.event_specific_data
                planned.add((event.run_id, data.asset_key.path[-1], data.check_name, month))
    assert planned == recorded

    blocking = _blocking_checks(p.spec)
    data_gates = {k.name for k in blocking if k.asset_key == _key("validated_data")}
    model_gates = {k.name for k in blocking if k.asset_key == _key("candidate_model")}
    assert {"pii_free", "meets_expectations"} <= data_gates
    assert {"meets_metric_thresholds", "no_worse_than_champion"} <= model_gates

    not_evaluated = {
        (r["run_id"], json.loads(r["asset_key"])[-1], r["check_name"])
        for r in rows
        if r["execution_status"] == "PLANNED"
    }
    blocked_training = p.runs["training"][BLOCKED].dagster_run.run_id
    assert not_evaluated == {
        (blocked_training, "candidate_model", name)
        for (run_id, asset, name, _) in planned
        if run_id == blocked_training and asset == "candidate_model"
    }
    assert {name for (_, _, name) in not_evaluated} >= model_gates
    verdicts = _verdicts(rows)
    for month in MONTHS:
        data = verdicts["validated_data", month]
        assert data_gates <= set(data), (month, data)
        assert data["pii_free"] is (month != BLOCKED), (month, data)
    for month in (m for m in MONTHS if m != BLOCKED):
        assert model_gates <= set(verdicts["candidate_model", month]), month


def test_one_model_version_per_month_whose_gates_passed(production):
    """MLflow holds one candidate version for each month whose every gate (its data gates
    and its window candidate's model gates) passed, and none for the others: no month was
    trained or registered twice."""
    from mlflow import MlflowClient

    from risk_assets.dagster._blocking import BLOCKED_BY_TAG, VERDICT_TAG
    from risk_assets.registry._lineage import VersionTags

    p = production
    blocking = _blocking_checks(p.spec)
    verdicts = _verdicts(_check_rows(p.dagster_db))

    def gates_passed(month: str) -> bool:
        return all(
            verdicts[key.asset_key.path[-1], month].get(key.name) is True for key in blocking
        )

    passed = sorted(m for m in MONTHS if gates_passed(m))
    client = MlflowClient(tracking_uri=p.tracking)
    candidates = client.search_model_versions(f"name='{PIPELINE}-candidates'")
    by_month = [VersionTags.from_tags(mv.tags).partition for mv in candidates]
    assert sorted(by_month) == passed, (by_month, passed)
    assert passed, "no month passed its gates: the registry path was not exercised"
    assert passed == sorted(p.instance.get_materialized_partitions(_key("registered_model")))
    # one candidate run in MLflow per window the backfill trained (the blocked month trained
    # none), so no month was retrained
    experiment = client.get_experiment_by_name(PIPELINE)
    trained = [
        r.data.tags.get("dagster.partition")
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if r.data.tags.get("dagster.partition") and "risk_assets.logged_model_id" in r.data.tags
    ]
    assert sorted(trained) == [m for m in MONTHS if m != BLOCKED], trained

    for month in MONTHS:
        tags = p.runs["training"][month].dagster_run.tags
        if month in passed:
            assert VERDICT_TAG not in tags, (month, tags)
        else:
            assert tags[VERDICT_TAG] == "blocked", (month, tags)
            gate = "validated_data" if month == BLOCKED else "candidate_model"
            assert tags[BLOCKED_BY_TAG].startswith(f"{gate} of {month}: "), tags

    # auto_promote (tier low): each candidate was copied into the production model once,
    # unless the champion it was compared with had moved by the time it was registered
    production_versions = client.search_model_versions(f"name='{PIPELINE}'")
    copied = [VersionTags.from_tags(mv.tags).candidate_version for mv in production_versions]
    assert len(copied) == len(set(copied)) and set(copied) <= {
        f"{mv.name}/{mv.version}" for mv in candidates
    }, copied
    assert production_versions, "no candidate was promoted"


def test_promotions_of_the_model_never_overlapped(production):
    """The registration step of every training run is in the model's pool, whose one slot
    makes them take turns across runs and processes: no two overlapped."""
    p = production
    spans = []
    for month, record in p.runs["training"].items():
        run_id = record.dagster_run.run_id
        events = _events(
            p.instance,
            run_id,
            dg.DagsterEventType.STEP_START,
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        )
        times = {
            e.dagster_event.event_type: e.timestamp
            for e in events
            if e.dagster_event.step_key == REGISTRATION_STEP
        }
        if month == BLOCKED:  # its candidate was never built, so neither was this step
            assert times == {}, times
            continue
        assert set(times) == {
            dg.DagsterEventType.STEP_START,
            dg.DagsterEventType.STEP_SUCCESS,
        }, (month, times)
        spans.append(
            (times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS], month)
        )
    assert len(spans) == len(MONTHS) - 1
    spans.sort()
    for (_, end, month), (start, _, later) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"the registrations of {month} and {later} overlapped"

    # the pool the steps were in: one slot (the instance's default_limit), none still held
    pool = p.instance.event_log_storage.get_concurrency_info(REGISTRY_POOL)
    assert pool.limit == 1, pool
    assert pool.claimed_slots == [] and pool.pending_steps == [], pool


def test_at_most_two_runs_of_the_pipeline_were_in_progress_at_once(production):
    """The run queue limits each backfill (as each pipeline) to two runs in progress: from
    the runs' start and end times in the run storage, never more than two, and two for a
    while (the queue held more than that)."""
    p = production
    edges = []
    for record in p.runs["all"]:
        assert record.start_time is not None and record.end_time is not None, record
        edges += [(record.start_time, 1), (record.end_time, -1)]
    in_progress, most = 0, 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
        in_progress += step
        most = max(most, in_progress)
    assert most == 2, most


def test_the_backfill_ends_failed_listing_only_the_withheld_partitions(production):
    """Dagster's final status for the backfill is COMPLETED_FAILED, although no run failed:
    a partition that a successful run left unmaterialised (a gate withheld it) has no
    state of its own in Dagster's asset backfill, so the daemon marks it failed once every
    run has ended. The partitions it marks are exactly the withheld ones."""
    from dagster._core.execution.backfill import BulkActionStatus

    from risk_assets.dagster import build_definitions

    p = production
    assert p.backfill.status == BulkActionStatus.COMPLETED_FAILED, p.backfill.status
    assert p.backfill.error is None, p.backfill.error
    data = p.backfill.get_asset_backfill_data(build_definitions([p.spec]).resolve_asset_graph())
    failed = {
        key.path[-1]: sorted(subset.get_partition_keys())
        for key, subset in data.failed_and_downstream_subset.partitions_subsets_by_asset_key.items()
    }
    withheld = {
        a: sorted(set(MONTHS) - set(p.instance.get_materialized_partitions(_key(a))))
        for a in TRAINING_ASSETS
    }
    assert failed == {a: months for a, months in withheld.items() if months}, failed
    assert failed["train_test_split"] == [BLOCKED]


def test_the_dagster_ui_shows_the_failed_gate(production):
    """The asset's checks page in the Dagster UI of this instance, in chromium: the PII
    gate of the blocked month reads failed."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    url = (
        f"{production.web}/assets/{PIPELINE}/validated_data"
        f"?view=checks&checkDetail=pii_free&partition={BLOCKED}"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="networkidle")
            dismiss_dagster_welcome(page)
            page.get_by_text("undeclared PII").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dagster-production-pii-gate.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert "Failed" in text, shot
    assert BLOCKED in text, shot  # the partition of the latest execution
    assert "PRIV-001" in text, shot
    assert "contact" in text, shot  # the column named
    assert "applicant0@example.org" not in text, shot  # shares, never values


def test_production_mode_refuses_an_embedded_sqlite_instance(production, tmp_path):
    """``risk-assets run`` with RISK_ASSETS_PRODUCTION=1 and a DAGSTER_HOME on SQLite exits
    2 naming the dagster.yaml and SQLite, before anything runs: no Dagster run in that
    home, nothing in MLflow."""
    from mlflow import MlflowClient

    name = "credit_risk_sqlite"
    spec = make_pipeline(tmp_path / "p", name=name)
    env = {
        **state_env(tmp_path / "state"),
        "RISK_ASSETS_PRODUCTION": "1",
        "MLFLOW_TRACKING_URI": production.tracking,
    }
    proc = run_cli("run", str(spec), env=env)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-3000:])
    said = proc.stdout + proc.stderr
    assert f"{env['DAGSTER_HOME']}/dagster.yaml" in said, said[-2000:]
    assert "SQLite" in said and "RISK_ASSETS_PRODUCTION" in said, said[-2000:]

    client = MlflowClient(tracking_uri=production.tracking)
    assert client.get_experiment_by_name(name) is None
    assert client.search_model_versions(f"name='{name}'") == []
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as sqlite_instance:
        assert sqlite_instance.get_runs() == []
