"""Real services for the tests, started and removed by fixtures: a throwaway PostgreSQL
cluster and Debian's chromium (both installed by ``scripts/test``). Without the service a
test skips saying what is missing; in CI (``CI=true``) it fails."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: the repository (its docker/ folder holds the production configuration)
REPO = Path(__file__).resolve().parents[1]


def missing(reason: str) -> None:
    """Skip, or in CI fail: a service the tests need is part of the set-up there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; scripts/test installs what the tests need in CI")
    pytest.skip(reason)


def chromium_or_skip() -> str:
    """Debian's chromium and Playwright, for the tests of what a person sees; skip (in CI:
    fail) saying which is missing."""
    chromium = os.environ.get("RISK_ASSETS_CHROMIUM") or shutil.which("chromium") or ""
    lacking = []
    if not chromium or not Path(chromium).is_file():
        lacking.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        lacking.append("playwright (the 'test' extra)")
    if lacking:
        missing(f"browser tests need {' and '.join(lacking)}")
    return chromium


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a service's process: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def dismiss_dagster_welcome(page: object) -> None:
    """Dagster's first-visit dialog (community links) covers the page until skipped; it may
    open a moment after the page has loaded."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.wait_for(timeout=3_000)
    except Exception:  # noqa: BLE001 - no dialog this time
        return
    skip.first.click()
    skip.first.wait_for(state="hidden", timeout=10_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The bin folder of the newest PostgreSQL installed from Debian's packages."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A PostgreSQL cluster on a loopback port for the duration; yields the URL of an empty
    database. As root, the server runs as the ``postgres`` user (it refuses root)."""
    bindir = postgres_bin()
    if bindir is None:
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg
    except ImportError:
        missing("psycopg is not installed (the 'test' extra)")
    root = Path(tempfile.mkdtemp(prefix="risk-assets-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "risk",
        "--no-locale",
        "-E",
        "UTF8",
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
    try:
        admin = f"postgresql://risk@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE risk_assets")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"postgresql://risk@127.0.0.1:{port}/risk_assets"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mlflow_server(
    backend_store_uri: str,
    root: Path,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``mlflow server`` on a loopback port with ``backend_store_uri`` and artefacts it
    serves itself (``--serve-artifacts``) from ``artifacts_destination`` (default a folder
    of ``root``; an ``s3://`` URL with ``MLFLOW_S3_ENDPOINT_URL`` set, in ``env`` or the
    process's environment); yields its URL."""
    import sys
    import urllib.request

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--backend-store-uri", backend_store_uri]
    destination = artifacts_destination or str(root / "artifacts")
    cmd += ["--serve-artifacts", "--artifacts-destination", destination]
    env = {**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = root / "mlflow-server.log"
    with log.open("w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def create_database(url: str, name: str) -> str:
    """A new empty database ``name`` on the server of ``url``; returns its URL (Dagster and
    MLflow each need one of their own: both have a table called ``runs``)."""
    import psycopg

    base, _, _ = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def dagster_postgres_home(url: str, home: Path) -> dict[str, str]:
    """A ``DAGSTER_HOME`` whose ``dagster.yaml`` is the production one (docker/dagster.yaml,
    unchanged) with its storage in the database of ``url``; returns the environment that
    points Dagster at it (``DAGSTER_HOME`` and the ``DAGSTER_PG_*`` variables the file
    reads)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "docker" / "dagster.yaml", home / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }


@contextmanager
def s3_server(bucket: str = "risk-assets") -> Iterator[dict[str, str]]:
    """An S3 API on a loopback port (moto's server, a separate process) with an empty
    ``bucket``; yields the environment that points boto3, s3fs and MLflow at it."""
    import sys
    import urllib.request

    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        missing("moto's server is not installed (the 'test' extra: moto[server])")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="risk-assets-s3-"))
    log = root / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "risk-assets-test",
        "AWS_SECRET_ACCESS_KEY": "risk-assets-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        ).create_bucket(Bucket=bucket)
        yield env
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)
