"""A backfill of the monthly pipeline on the production configuration, executor by
executor: throughput and per-run orchestration overhead, as ratios in one run.

Each mode runs the same thing on fresh stores: the 12 months of ``credit_risk_monthly``
(pipelines/credit_risk_monthly.yaml, every training asset) launched as the Dagster UI
launches a backfill (GraphQL ``launchPartitionBackfill``), the runs queued and launched by
a real ``dagster-daemon`` through a gRPC code server, on the production Dagster instance
(docker/dagster.yaml on PostgreSQL: at most two runs of a backfill at a time), with an
``mlflow server`` on PostgreSQL, snapshots and asset values in an S3 API (moto's server)
and the audit trail in PostgreSQL. Only the executor differs:

- ``in_process``: every step of a run in the run's process;
- ``multiprocess``: a process per step, forked from a server with our libraries imported;
- ``celery``: every step on two celery workers (concurrency 1 each) through Redis.

Figures per mode: the wall time from launch to the backfill's final status, months per
minute, and per run its duration, the time inside steps (the union of step intervals)
and the rest, the orchestration overhead (launching the run, starting step processes or
celery tasks, events). The ratios are to ``in_process``.

Needs the test environment (``pip install -e '.[test]'``), PostgreSQL 15 and Redis from
Debian's packages (``scripts/_services.sh`` installs them with RISK_ASSETS_INSTALL_SERVICES=1).
Run from the repository root (about 15 minutes on two cores):

    .venv/bin/python benchmarks/backfill.py [--modes in_process,multiprocess,celery]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PIPELINE = "credit_risk_monthly"
LOCATION = "risk_assets_pipelines"
ASSETS = ["raw_snapshot", "validated_data", "train_test_split", "candidate_model"]
ASSETS += ["registered_model"]
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]
MODES = ("in_process", "multiprocess", "celery")
TIMEOUT_S = 3600
_OURS = ("RISK_ASSETS_", "DAGSTER_", "MLFLOW_", "AWS_")


def _code(root: Path, months: list[str]) -> Path:
    """A copy of the monthly pipeline over ``months`` and its code location file under
    ``root`` (a backfill of the first months of a longer range would also target the later
    months whose training window holds them)."""
    folder = root / "pipelines"
    shutil.copytree(ROOT / "pipelines" / "data" / "monthly", folder / "data" / "monthly")
    shutil.copytree(ROOT / "pipelines" / "policies", folder / "policies")
    shutil.copytree(ROOT / "expectations", root / "expectations")
    spec = yaml.safe_load((ROOT / "pipelines" / f"{PIPELINE}.yaml").read_text())
    spec["source"]["partitions"].update({"start": months[0], "end": months[-1]})
    path = folder / f"{PIPELINE}.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = folder / "definitions.py"
    code.write_text(
        "from risk_assets.dagster import build_definitions\n\n"
        f"defs = build_definitions([{str(path)!r}])\n"
    )
    return code


def _intervals_union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _run_figures(instance, backfill_id: str) -> list[dict]:
    import dagster as dg
    from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG

    done = {
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SKIPPED,
    }
    out = []
    for record in instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})):
        run = record.dagster_run
        starts, spans = {}, []
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type in done and event.step_key in starts:
                spans.append((starts.pop(event.step_key), entry.timestamp))
        duration = (record.end_time or 0) - (record.start_time or 0)
        in_steps = _intervals_union(spans)
        kind = (
            "training"
            if dg.AssetKey([PIPELINE, "registered_model"]) in (run.asset_selection or set())
            else "data"
        )
        out.append(
            {
                "month": run.tags.get(PARTITION_NAME_TAG),
                "kind": kind,
                "status": run.status.value,
                "queued_s": (record.start_time or 0) - record.create_timestamp.timestamp(),
                "duration_s": duration,
                "in_steps_s": in_steps,
                "overhead_s": duration - in_steps,
                "steps": len(spans),
            }
        )
    return out


def _measure(mode: str, root: Path, pg: str, s3: dict[str, str], months: list[str]) -> dict:
    import dagster as dg
    from celery_services import celery_workers, redis_server
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES
    from dagster_services import (
        dagster_daemon,
        dagster_webserver,
        grpc_code_server,
        grpc_workspace,
        launch_asset_backfill,
    )
    from services import create_database, dagster_postgres_home, free_port, mlflow_server

    root.mkdir(parents=True)
    code = _code(root / "code", months)
    dagster_db = create_database(pg, f"dagster_{mode}")
    mlflow_db = create_database(pg, f"mlflow_{mode}")
    audit_db = create_database(pg, f"audit_{mode}")
    backend = mlflow_db.replace("postgresql://", "postgresql+psycopg://")
    with ExitStack() as stack:
        tracking = stack.enter_context(
            mlflow_server(backend, root / "mlflow", f"s3://risk-assets/{mode}/mlflow", env=s3)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        env.update(dagster_postgres_home(dagster_db, root / "dagster_home"))
        env.update(s3)
        env.update(
            {
                "RISK_ASSETS_HOME": str(root / "state"),
                "RISK_ASSETS_OBJECT_STORE": f"s3://risk-assets/{mode}/state",
                "RISK_ASSETS_AUDIT_LOG": audit_db,
                "RISK_ASSETS_EXECUTOR": mode,
                "RISK_ASSETS_PRODUCTION": "1",
                "MLFLOW_TRACKING_URI": tracking,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        # this process reads the same instance and stores as the services
        for key in [k for k in os.environ if k.startswith(_OURS)]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith(_OURS)})
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):
            pass  # the schema, before any worker opens the database
        if mode == "celery":
            redis = stack.enter_context(redis_server(root / "redis"))
            env["RISK_ASSETS_CELERY_BROKER"] = f"{redis}/0"
            env["RISK_ASSETS_CELERY_BACKEND"] = f"{redis}/1"
            stack.enter_context(celery_workers(["worker1", "worker2"], env, root / "workers"))
        port = stack.enter_context(
            grpc_code_server(code, location=LOCATION, env=env, log=root / "grpc.log")
        )
        workspace = grpc_workspace(root / "workspace.yaml", port=port, location=LOCATION)
        web = stack.enter_context(
            dagster_webserver(workspace, port=free_port(), env=env, log=root / "web.log")
        )
        instance = stack.enter_context(dg.DagsterInstance.from_config(env["DAGSTER_HOME"]))
        backfill_id = launch_asset_backfill(
            web, assets=[[PIPELINE, a] for a in ASSETS], partitions=months
        )
        stack.enter_context(dagster_daemon(workspace, env=env, log=root / "daemon.log"))
        # the clock starts once the daemon is up (the backfill was stored before it)
        started = time.monotonic()
        while True:
            backfill = instance.get_backfill(backfill_id)
            if backfill.status in BULK_ACTION_TERMINAL_STATUSES:
                break
            if time.monotonic() - started > TIMEOUT_S:
                raise SystemExit(f"{mode}: the backfill did not finish in {TIMEOUT_S} s")
            time.sleep(1)
        wall = time.monotonic() - started
        runs = _run_figures(instance, backfill_id)
        return {
            "mode": mode,
            "months": len(months),
            "wall_s": wall,
            "status": backfill.status.value,
            "runs": runs,
        }


def _summary(result: dict) -> dict:
    runs = result["runs"]
    per = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    training = [r for r in runs if r["kind"] == "training"]
    return {
        "mode": result["mode"],
        "wall_s": result["wall_s"],
        "months_per_min": result["months"] / result["wall_s"] * 60,
        "runs": len(runs),
        "succeeded": sum(r["status"] == "SUCCESS" for r in runs),
        "run_s": per("duration_s"),
        "in_steps_s": per("in_steps_s"),
        "overhead_s": per("overhead_s"),
        "queued_s": per("queued_s"),
        "training_run_s": statistics.median(r["duration_s"] for r in training) if training else 0,
    }


def main(argv: list[str] | None = None) -> int:
    from services import postgres_cluster, s3_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument(
        "--months", type=int, default=len(MONTHS), help="backfill the first N months (12)"
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    months = MONTHS[: max(1, min(args.months, len(MONTHS)))]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}; {len(months)} months of {PIPELINE}, "
        "two runs of the backfill at a time",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="risk-assets-backfill-"))
    results = []
    try:
        with postgres_cluster() as pg, s3_server("risk-assets") as s3:
            for mode in modes:
                t0 = time.monotonic()
                results.append(_measure(mode, root / mode, pg, s3, months))
                print(f"  {mode}: done in {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [_summary(r) for r in results]
    base = next((r for r in rows if r["mode"] == "in_process"), rows[0])
    head = (
        f"{'mode':<13}{'wall s':>8}{'months/min':>11}{'x wall':>8}{'runs ok':>9}"
        f"{'run s':>8}{'in steps':>9}{'overhead':>9}{'x ovh':>7}{'queued':>8}"
    )
    print("\nmedians per run; ratios to " + base["mode"])
    print(head)
    for r in rows:
        print(
            f"{r['mode']:<13}{r['wall_s']:>8.0f}{r['months_per_min']:>11.2f}"
            f"{r['wall_s'] / base['wall_s']:>8.2f}{r['succeeded']:>5}/{r['runs']:<3}"
            f"{r['run_s']:>8.1f}{r['in_steps_s']:>9.1f}{r['overhead_s']:>9.1f}"
            f"{r['overhead_s'] / base['overhead_s']:>7.2f}{r['queued_s']:>8.1f}"
        )
    if args.out:
        args.out.write_text(json.dumps({"summary": rows, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
