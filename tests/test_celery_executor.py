"""The gated pipeline distributed on Dagster's celery executor: a Redis broker and two
celery workers on loopback (one task process each), the production Dagster instance
(docker/dagster.yaml) on PostgreSQL, an mlflow server on a PostgreSQL database of its own,
and ``RISK_ASSETS_EXECUTOR=celery``. The run is launched by ``dagster job execute`` on the
shipped code location file (pipelines/definitions.py, copied beside a small pipeline);
every step runs in a worker's task process, and the workers share the state folder
(snapshots, stored asset values, audit trail) as they would share a volume.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from celery_services import celery_workers, redis_or_skip, redis_server, worker_stats
from dagster._core.events import DagsterEventType
from services import (
    create_database,
    dagster_postgres_home,
    mlflow_server,
    postgres_cluster,
    s3_server,
)

from conftest import CREDIT_DATA, PIPELINES, make_pipeline, state_env
from risk_assets.dagster import ASSET_NAMES

CLEAN = "credit_risk"
BLOCKED = "credit_risk_pii"
WORKERS = ["worker1", "worker2"]
BUCKET = "risk-assets"
DAGSTER = str(Path(sys.executable).parent / "dagster")


@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment replaced by ``env`` for the duration (to read the stores
    as the workers see them)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    redis_or_skip()  # before a PostgreSQL cluster is started for nothing
    root = tmp_path_factory.mktemp("celery")
    with postgres_cluster() as pg:
        dagster_db = create_database(pg, "dagster")
        mlflow_db = create_database(pg, "mlflow")
        audit_db = create_database(pg, "audit")
        backend = mlflow_db.replace("postgresql://", "postgresql+psycopg://")
        # nothing shared on a disk: files in an S3 API, the audit trail in PostgreSQL
        with (
            s3_server(BUCKET) as s3,
            mlflow_server(backend, root / "mlflow", f"s3://{BUCKET}/mlflow", env=s3) as uri,
            redis_server(root / "redis") as redis,
        ):
            env = {
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("RISK_", "DAGSTER_", "MLFLOW_"))
                },
                **state_env(root / "state"),
                **dagster_postgres_home(dagster_db, root / "dagster_home"),
                **s3,
                "MLFLOW_TRACKING_URI": uri,
                "RISK_ASSETS_OBJECT_STORE": f"s3://{BUCKET}/state",
                "RISK_ASSETS_AUDIT_LOG": audit_db,
                "RISK_ASSETS_EXECUTOR": "celery",
                "RISK_ASSETS_CELERY_BROKER": f"{redis}/0",
                "RISK_ASSETS_CELERY_BACKEND": f"{redis}/1",
                "RISK_ASSETS_PRODUCTION": "1",
                # dagster-celery starts `celery` from the PATH: this environment's
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            # the schema first, as a deployment does (`dagster instance migrate`, or the
            # webserver starting before the workers): workers that open a fresh database at
            # once race to create it (psycopg2 DuplicateObject)
            with environ(env), dg.DagsterInstance.get():
                pass
            with celery_workers(WORKERS, env, root / "workers") as workers:
                yield {"root": root, "env": env, "workers": workers, "uri": uri, "s3": s3}


@dataclass(frozen=True)
class Launched:
    """A run launched by ``dagster job execute`` (the process that orchestrates the run)."""

    name: str
    folder: Path
    spec: Path
    returncode: int
    output: str
    pid: int  # of the launching process


def _launch(cluster: dict, name: str, **overrides) -> Launched:
    """Copy the small credit pipeline as ``name`` beside the shipped code location file and
    execute its training job with the cluster's environment."""
    folder = cluster["root"] / name
    spec = make_pipeline(folder, name=name, **overrides)
    shutil.copyfile(PIPELINES / "definitions.py", folder / "definitions.py")
    cmd = [DAGSTER, "job", "execute", "-f", str(folder / "definitions.py"), "-j", f"{name}_job"]
    proc = subprocess.Popen(
        cmd,
        env=cluster["env"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = proc.communicate(timeout=600)
    return Launched(name, folder, spec, proc.returncode, output, proc.pid)


@pytest.fixture(scope="module")
def clean(cluster) -> Launched:
    return _launch(cluster, CLEAN)


@pytest.fixture(scope="module")
def blocked(cluster) -> Launched:
    """The register on data with an undeclared e-mail column among the features."""
    import pandas as pd

    frame = pd.read_csv(CREDIT_DATA)
    frame["contact"] = [f"applicant{i}@example.org" for i in range(len(frame))]
    features = [c for c in frame.columns if c not in ("risk", "sex", "age")]
    return _launch(cluster, BLOCKED, data=frame, spec={"features": features})


@contextmanager
def instance_of(cluster: dict) -> Iterator[dg.DagsterInstance]:
    """The shared Dagster instance, as the workers open it."""
    with environ(cluster["env"]):
        with dg.DagsterInstance.get() as instance:
            yield instance


def _only_run(instance: dg.DagsterInstance, launched: Launched) -> dg.DagsterRun:
    assert launched.returncode == 0, launched.output[-5000:]
    (run,) = instance.get_runs(dg.RunsFilter(job_name=f"{launched.name}_job"))
    return run


def _where_steps_ran(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[str, int]]:
    """Each step of the run: the celery node that took it (dagster-celery's engine event
    "Executing steps ... in celery worker", written by the task, names the worker) and the
    pid of the process that executed it (on the step's own events)."""
    nodes: dict[str, str] = {}
    pids: dict[str, set[int | None]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.ENGINE_EVENT and (
            "Executing steps " in (event.message or "")
        ):
            nodes[event.step_key] = event.event_specific_data.metadata["Celery worker"].value
        elif event.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
            pids.setdefault(event.step_key, set()).add(event.pid)
    assert pids, "no step started"
    assert set(nodes) == set(pids), (sorted(nodes), sorted(pids))
    took = {}
    for key, seen in pids.items():
        (pid,) = seen  # the step started and succeeded in one process
        assert isinstance(pid, int), (key, seen)
        took[key] = (nodes[key], pid)
    return took


def _assert_ran_on_workers(cluster: dict, launched: Launched, run: dg.DagsterRun, instance):
    took = _where_steps_ran(instance, run.run_id)
    workers = cluster["workers"]
    stats = worker_stats(
        cluster["env"]["RISK_ASSETS_CELERY_BROKER"],
        cluster["env"]["RISK_ASSETS_CELERY_BACKEND"],
        [w.node for w in workers.values()],
    )
    pool = {node: set(s["pool"]["processes"]) for node, s in stats.items()}
    assert set(pool) == {w.node for w in workers.values()}, stats
    by_node = {w.node: w for w in workers.values()}
    for key, (node, pid) in took.items():
        assert pid != launched.pid and pid != os.getpid(), key
        # the task process of the worker that says it took the step, and that worker's own
        # log names the step
        assert pid in pool[node], (key, node, pid, pool)
        assert f"- {pid} - {key} - STEP_START -" in by_node[node].text(), (key, node)
    # the launching process orchestrated (the run's own events are its) and ran no step
    starts = [
        e.dagster_event.pid
        for e in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)
    ]
    assert starts == [launched.pid]
    return took


def _evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        data = entry.dagster_event.event_specific_data
        out[data.check_name] = bool(data.passed)
    return out


def test_every_step_of_the_gated_run_ran_on_the_celery_workers_and_both_took_steps(cluster, clean):
    with instance_of(cluster) as instance:
        run = _only_run(instance, clean)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        took = _assert_ran_on_workers(cluster, clean, run, instance)
    expected = {f"{CLEAN}__{asset}" for asset in ASSET_NAMES}
    assert expected <= set(took), sorted(took)
    nodes = {node for node, _ in took.values()}
    assert nodes == {w.node for w in cluster["workers"].values()}, took


def _mlflow(cluster: dict):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=cluster["uri"], registry_uri=cluster["uri"])


def _checks_of(cluster: dict, launched: Launched) -> set[str]:
    """The gate names of the pipeline, as the code location defines them."""
    from risk_assets.dagster import build_definitions

    with environ(cluster["env"]):
        graph = build_definitions([launched.spec]).resolve_asset_graph()
    return {key.name for key in graph.asset_check_keys}


def _audit(cluster: dict):
    from risk_assets.audit import open_audit_log

    return open_audit_log(cluster["env"]["RISK_ASSETS_AUDIT_LOG"])


def test_the_model_version_is_registered_with_every_gate_verdict(cluster, clean):
    from risk_assets.registry._mlflow import gate_records

    with instance_of(cluster) as instance:
        run = _only_run(instance, clean)
        evaluations = _evaluations(instance, run.run_id)
    gates = _checks_of(cluster, clean)
    # every gate of the register was evaluated on the workers, and passed
    assert set(evaluations) == gates
    assert all(evaluations.values()), evaluations

    client = _mlflow(cluster)
    versions = sorted((mv.name, str(mv.version)) for mv in client.search_model_versions())
    assert [v for v in versions if v[0].startswith(CLEAN + "-") or v[0] == CLEAN] == [
        (CLEAN, "1"),
        (f"{CLEAN}-candidates", "1"),
    ]
    assert client.get_model_version_by_alias(CLEAN, "champion").version == "1"
    candidate = client.get_model_version(f"{CLEAN}-candidates", "1")
    records = gate_records(client.get_run(candidate.run_id))
    # each gate's verdict, written by whichever worker ran it, is on the version's run
    assert set(records) == gates
    assert {name: r.passed for name, r in records.items()} == evaluations
    assert {r.dagster_run_id for r in records.values()} == {run.run_id}
    assert set(candidate.tags["risk_assets.gates_passed"].split(",")) == gates

    # the audit trail, appended by both workers' processes, is one unbroken chain with a
    # verdict of every gate of this run and the registration it anchors
    audit = _audit(cluster)
    assert audit.verify().ok, audit.verify().render()
    verdicts = [r for r in audit.records(action="gate") if r.dagster_run_id == run.run_id]
    assert {r.details["check"]: r.details["passed"] for r in verdicts} == evaluations
    (registration,) = audit.records(action="registration", model=f"{CLEAN}-candidates")
    sha256 = candidate.tags["risk_assets.model_sha256"]
    assert registration.version == "1" and registration.hashes["model_sha256"] == sha256
    assert candidate.tags["risk_assets.audit_seq"] == str(registration.seq)
    (promotion,) = audit.records(action="promotion", model=CLEAN)
    assert promotion.version == "1" and promotion.hashes["model_sha256"] == sha256


def test_a_blocked_run_on_the_workers_registers_nothing_and_records_the_gate(cluster, blocked):
    from risk_assets.dagster._blocking import BLOCKED_BY_TAG, VERDICT_TAG
    from risk_assets.registry import RunVerdict
    from risk_assets.registry._mlflow import gate_records

    with instance_of(cluster) as instance:
        run = _only_run(instance, blocked)
        # a blocked pipeline is a verdict, not a crash: the run succeeded
        assert run.status == dg.DagsterRunStatus.SUCCESS, blocked.output[-5000:]
        assert run.tags[VERDICT_TAG] == "blocked"
        assert "pii_free [PRIV-001] failed" in run.tags[BLOCKED_BY_TAG]
        evaluations = _evaluations(instance, run.run_id)
        assert evaluations["pii_free"] is False
        for asset in ("train_test_split", "candidate_model", "registered_model"):
            key = dg.AssetKey([BLOCKED, asset])
            assert instance.get_latest_materialization_event(key) is None, asset
        took = _assert_ran_on_workers(cluster, blocked, run, instance)
    assert f"{BLOCKED}__validated_data_pii_free" in took

    client = _mlflow(cluster)
    assert not [mv for mv in client.search_model_versions() if mv.name.startswith(BLOCKED)]
    assert not [m for m in client.search_registered_models() if m.name.startswith(BLOCKED)]
    # the refusal run holds the failed gate's record
    experiment = client.get_experiment_by_name(BLOCKED)
    (refusal,) = client.search_runs([experiment.experiment_id])
    assert refusal.data.tags["risk_assets.verdict"] == RunVerdict.REFUSED
    assert gate_records(refusal)["pii_free"].passed is False

    audit = _audit(cluster)
    assert audit.verify().ok, audit.verify().render()
    (pii,) = [
        r
        for r in audit.records(action="gate", model=BLOCKED)
        if r.details["check"] == "pii_free" and r.dagster_run_id == run.run_id
    ]
    assert pii.details["passed"] is False and pii.risk_ids == ("PRIV-001",)
    (refused,) = audit.records(action="refusal", model=BLOCKED)
    assert refused.dagster_run_id == run.run_id and "pii_free [PRIV-001] failed" in refused.reason


def test_nothing_of_the_runs_is_kept_on_a_local_disk(cluster, clean, blocked):
    """The workers share no disk: snapshots, evidence and asset values are in the object
    store, models and gate artefacts behind the mlflow server in the same S3 API, the
    audit trail in PostgreSQL. The local state folder holds none of them."""
    import boto3

    s3 = cluster["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["AWS_ENDPOINT_URL"],
        aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
        region_name=s3["AWS_DEFAULT_REGION"],
    )
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("state/snapshots/frames/") for k in keys)
    assert any(k.startswith(f"state/io/{CLEAN}/registered_model/") for k in keys)
    assert not any(k.startswith(f"state/io/{BLOCKED}/registered_model/") for k in keys)
    assert any(k.startswith("mlflow/") and k.endswith("model.skops") for k in keys)
    state = Path(cluster["env"]["RISK_ASSETS_HOME"])
    for folder in ("snapshots", "io", "audit", "mlflow"):
        assert not (state / folder).exists(), f"{state / folder} was written"


def test_registration_leaves_the_process_tracking_uri_as_it_found_it(monkeypatch):
    """A worker's task process runs step after step: registering a candidate must leave
    MLFLOW_TRACKING_URI set (MLflow's ``_use_tracking_uri`` unsets it on leaving when the
    process never called ``mlflow.set_tracking_uri``), or the next step in that process
    falls back to the embedded SQLite store. Needs no service."""
    from types import SimpleNamespace

    from risk_assets.registry import _mlflow

    uri = "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    seen = []

    class Client:
        tracking_uri = uri

        def create_model_version(self, name, **kwargs):
            seen.append((name, os.environ.get("MLFLOW_TRACKING_URI")))
            return SimpleNamespace(version="7")

    monkeypatch.setattr(_mlflow, "_wait_ready", lambda c, n, v: SimpleNamespace(version=v))
    monkeypatch.setattr(_mlflow, "_link_logged_model", lambda *args: None)
    info = SimpleNamespace(run_id="r1", artifact_uri="mlflow-artifacts:/1/r1/artifacts")
    run = SimpleNamespace(info=info, data=SimpleNamespace(tags={}))
    evidence = SimpleNamespace(to_tags=lambda: {})

    mv = _mlflow._new_candidate_version(Client(), "m-candidates", run, evidence)
    assert mv.version == "7" and seen == [("m-candidates", uri)]
    assert os.environ["MLFLOW_TRACKING_URI"] == uri
