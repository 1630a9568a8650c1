"""Real services for the tests, started and removed by fixtures: a throwaway PostgreSQL
cluster and Debian's chromium (both installed by ``scripts/test``). Without the service a
test skips saying what is missing; in CI (``CI=true``) it fails."""

from __future__ import annotations

import contextlib
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


def _as_postgres() -> list[str]:
    """The prefix that runs a PostgreSQL command as the ``postgres`` user when we are root
    (the server refuses root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _cluster_options(root: Path, port: int) -> str:
    """The server options of a cluster of :func:`postgres_cluster` (``pg_ctl -o``)."""
    return f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"


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
    as_user = _as_postgres()
    if as_user:
        shutil.chown(root, "postgres", "postgres")
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
    opts = _cluster_options(root, port)
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


class PostgresControl:
    """Stop, start and restart the server of a cluster :func:`postgres_cluster` made (an
    outage of the database), with the options it was started with. ``command`` gives the
    same as a command line, for another process to run at a point of its own."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        import psycopg

        with psycopg.connect(url) as conn:
            self.data = Path(conn.execute("SHOW data_directory").fetchone()[0])
        self.port = urlsplit(url).port
        self._pg_ctl = str(postgres_bin() / "pg_ctl")

    def command(self, action: str) -> list[str]:
        """``pg_ctl`` for ``action``: ``stop`` (fast: sessions are disconnected), ``start``
        or ``restart``; each waits until it is done. A server started here logs to the
        cluster's log file: with its output on a pipe, whoever reads the pipe would wait for
        the server to end."""
        base = [*_as_postgres(), self._pg_ctl, "-D", str(self.data), "-w", "-m", "fast"]
        if action == "stop":
            return [*base, "stop"]
        root = self.data.parent
        return [*base, "-o", _cluster_options(root, self.port), "-l", str(root / "log"), action]

    def _run(self, action: str) -> None:
        subprocess.run(self.command(action), check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._run("stop")

    def start(self) -> None:
        self._run("start")

    def restart(self) -> None:
        self._run("restart")


class MlflowServer:
    """``mlflow server`` on a loopback port with ``backend_store_uri`` and artefacts it
    serves itself (``--serve-artifacts``) from ``artifacts_destination`` (default a folder
    of ``root``; an ``s3://`` URL with ``MLFLOW_S3_ENDPOINT_URL`` set, in ``env`` or the
    process's environment). The command runs the server in a child process, so it is
    started in a process group of its own: :meth:`kill` kills the server as a crash would
    (SIGKILL to the group), and :meth:`start` starts it again on the same port and stores."""

    def __init__(
        self,
        backend_store_uri: str,
        root: Path,
        artifacts_destination: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.log = root / "mlflow-server.log"
        root.mkdir(parents=True, exist_ok=True)
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", "1"]
        cmd += ["--backend-store-uri", backend_store_uri]
        destination = artifacts_destination or str(root / "artifacts")
        self._cmd = [*cmd, "--serve-artifacts", "--artifacts-destination", destination]
        self._env = {**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server and wait until it answers (fail, with its log, if it does not)."""
        import urllib.request

        with self.log.open("a") as out:  # the child keeps its own descriptor
            self.proc = proc = subprocess.Popen(
                self._cmd,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer: {self.log.read_text()[-3000:]}")
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL the server and its children (its process group)."""
        import signal

        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop it (the command passes SIGTERM on to the server); what is left of the group
        is killed."""
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)
        self.kill()


@contextmanager
def mlflow_server(
    backend_store_uri: str,
    root: Path,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """An :class:`MlflowServer` for the duration; yields its URL."""
    server = MlflowServer(backend_store_uri, root, artifacts_destination, env)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


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
