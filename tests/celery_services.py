"""A celery broker and celery workers for the tests of Dagster's celery executor: Debian's
``redis-server`` on a loopback port and ``dagster-celery worker start`` processes, each
started, waited for and stopped by the test that needs them. Without ``redis-server`` a
test skips saying so; in CI (``CI=true``) it fails (see ``missing`` in tests/services.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from services import free_port, missing, stop_process

#: The worker configuration: the executor's config block, the broker and result backend
#: read from the environment where the worker starts (as the code location reads them).
WORKER_CONFIG = """\
execution:
  config:
    broker:
      env: RISK_ASSETS_CELERY_BROKER
    backend:
      env: RISK_ASSETS_CELERY_BACKEND
"""


def redis_or_skip() -> str:
    """The path of Debian's ``redis-server``; skip (in CI: fail) when it is missing."""
    exe = shutil.which("redis-server")
    if exe is None:
        missing("the celery tests need Debian's redis-server (apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing("the celery tests need the redis client (pip install 'risk-assets[celery]')")
    return exe


@contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """``redis-server`` on a loopback port, without persistence, for the duration; yields
    its URL (``redis://127.0.0.1:<port>``)."""
    import redis

    exe = redis_or_skip()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "redis.log"
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    cmd += ["no", "--dir", str(root), "--logfile", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"redis-server exited with {proc.returncode}: {text[-3000:]}")
            try:
                if redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping():
                    break
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not answer PING")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class Worker:
    """A started ``dagster-celery worker start`` process group."""

    node: str  # celery's node name, ``<name>@<host>``
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def celery_app(broker: str, backend: str):
    """A celery app on ``broker``, to inspect the workers (not to run tasks)."""
    from celery import Celery

    return Celery("risk-assets-tests", broker=broker, backend=backend)


def worker_stats(broker: str, backend: str, nodes: list[str]) -> dict[str, dict]:
    """celery's ``inspect stats`` of ``nodes``: per node its main ``pid`` and its pool's
    ``processes`` (the processes that run the tasks)."""
    app = celery_app(broker, backend)
    try:
        return app.control.inspect(destination=nodes, timeout=5).stats() or {}
    finally:
        app.close()


@contextmanager
def celery_workers(
    names: list[str], env: Mapping[str, str], root: Path, *, concurrency: int = 1
) -> Iterator[dict[str, Worker]]:
    """One ``dagster-celery worker start`` per name (node ``<name>@<host>``, ``concurrency``
    task processes each) with ``env`` (the broker in ``RISK_ASSETS_CELERY_BROKER``); yields
    them by name once every node answers a ping through the broker. Each worker is the
    leader of its own process group, stopped by its id at the end (celery's warm shutdown,
    then SIGKILL)."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "celery.yaml"
    config.write_text(WORKER_CONFIG)
    exe = str(Path(sys.executable).parent / "dagster-celery")
    host = socket.gethostname()
    workers: dict[str, Worker] = {}
    with ExitStack() as stack:
        for name in names:
            log = root / f"{name}.log"
            cmd = [exe, "worker", "start", "-A", "dagster_celery.app", "-y", str(config)]
            cmd += ["-n", name, "--loglevel", "INFO", "--", "--concurrency", str(concurrency)]
            with log.open("w") as out:  # the child keeps its own descriptor
                proc = subprocess.Popen(
                    cmd,
                    env=dict(env),
                    cwd=root,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            workers[name] = Worker(f"{name}@{host}", proc, log)
            stack.callback(_stop_group, proc)
        _wait_for_nodes(
            workers, env["RISK_ASSETS_CELERY_BROKER"], env["RISK_ASSETS_CELERY_BACKEND"]
        )
        yield workers


def _wait_for_nodes(workers: dict[str, Worker], broker: str, backend: str) -> None:
    app = celery_app(broker, backend)
    nodes = [w.node for w in workers.values()]
    try:
        deadline = time.monotonic() + 120
        while True:
            for w in workers.values():
                if w.process.poll() is not None:
                    pytest.fail(
                        f"celery worker {w.node} exited with {w.process.returncode}: "
                        f"{w.text()[-3000:]}"
                    )
            answered = app.control.inspect(destination=nodes, timeout=2).ping() or {}
            if set(answered) == set(nodes):
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"{w.node}: {w.text()[-1500:]}" for w in workers.values())
                pytest.fail(f"celery workers did not answer (only {sorted(answered)}): {logs}")
            time.sleep(0.5)
    finally:
        app.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the worker's process group (dagster-celery and the celery worker it started):
    SIGTERM (celery's warm shutdown), then SIGKILL to what is left after 60 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc.poll()  # reap the group's leader, which is our child
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
