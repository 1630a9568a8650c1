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
)

from conftest import CREDIT_DATA, PIPELINES, make_pipeline, state_env
from risk_assets.dagster import ASSET_NAMES

CLEAN = "credit_risk"
BLOCKED = "credit_risk_pii"
WORKERS = ["worker1", "worker2"]
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
        backend = mlflow_db.replace("postgresql://", "postgresql+psycopg://")
        with mlflow_server(backend, root / "mlflow") as uri, redis_server(root / "redis") as redis:
            env = {
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("RISK_", "DAGSTER_", "MLFLOW_"))
                },
                **state_env(root / "state"),
                **dagster_postgres_home(dagster_db, root / "dagster_home"),
                "MLFLOW_TRACKING_URI": uri,
                "RISK_ASSETS_EXECUTOR": "celery",
                "RISK_ASSETS_CELERY_BROKER": f"{redis}/0",
                "RISK_ASSETS_CELERY_BACKEND": f"{redis}/1",
                "RISK_ASSETS_PRODUCTION": "1",
                # dagster-celery starts `celery` from the PATH: this environment's
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            with celery_workers(WORKERS, env, root / "workers") as workers:
                yield {"root": root, "env": env, "workers": workers, "uri": uri}


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
