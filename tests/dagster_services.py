"""Dagster's own processes for the tests of the production configuration: a gRPC user-code
server, ``dagster-daemon run`` and ``dagster-webserver``, each started in a process group of
its own (its children, the runs and their step processes, go with it) and stopped by that
process group's id; and the GraphQL calls the Dagster UI makes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from services import free_port

BIN = Path(sys.executable).parent
#: how long a server may take to answer (cold imports on two busy cores)
START_TIMEOUT_S = 180


def _tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen) -> None:
    """End a process started by :func:`started` and every process of its group (by the
    group id, which is the process's own id)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    # what is left of the group (runs and step processes of a server that has exited)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=30)


@contextmanager
def started(
    cmd: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    ready: Callable[[], bool],
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in a new process group until the block ends; wait until ``ready()`` is
    true (fail, with the log's end, when the process exits or START_TIMEOUT_S passes)."""
    with log.open("w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd,
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"{Path(cmd[0]).name} exited with {proc.returncode}: {_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"{Path(cmd[0]).name} was not ready: {_tail(log)}")
            time.sleep(0.5)
        yield proc
    finally:
        stop(proc)


def _http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    return ready


@contextmanager
def grpc_code_server(
    code: Path, *, location: str, env: Mapping[str, str], log: Path
) -> Iterator[int]:
    """``dagster api grpc`` serving the definitions in ``code`` on a loopback port; yields
    the port. Runs launched by the instance's DefaultRunLauncher are its subprocesses."""
    from dagster._grpc.client import DagsterGrpcClient

    port = free_port()
    client = DagsterGrpcClient(port=port, host="127.0.0.1")

    def ready() -> bool:
        try:
            client.ping("ready")
        except Exception:  # noqa: BLE001 - not listening yet
            return False
        return True

    cmd = [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port)]
    cmd += ["-f", str(code), "-d", str(code.parent), "--location-name", location]
    with started(cmd, env=env, log=log, ready=ready, cwd=code.parent):
        yield port


def grpc_workspace(path: Path, *, port: int, location: str) -> Path:
    """A workspace.yaml that loads the code location from the gRPC server on ``port``."""
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {location}\n"
    )
    return path


#: ``dagster-daemon``'s own entry point with the pause between two iterations of the
#: backfill daemon (``DEFAULT_DAEMON_INTERVAL_SECONDS``, 30 s, not a setting of the
#: instance) set from the first argument: a test's backfill then waits seconds, not half a
#: minute, between the runs it requests. The same constant is the asset daemon's pause
#: before sensors in its old mode (not used here); nothing else of the daemon changes. The
#: backfill daemon reads the constant when its loop starts (dagster/_daemon/backfill.py);
#: tests/test_production_dagster.py checks from the daemon's log that it took effect.
_DAEMON_WITH_INTERVAL = """
import sys
import dagster._daemon.controller as controller
assert isinstance(controller.DEFAULT_DAEMON_INTERVAL_SECONDS, int | float), "renamed?"
controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(sys.argv.pop(1))
from dagster._daemon.cli import main
sys.argv[0] = "dagster-daemon"
sys.exit(main())
"""


@contextmanager
def dagster_daemon(
    workspace: Path,
    *,
    env: Mapping[str, str],
    log: Path,
    backfill_interval_s: float | None = None,
) -> Iterator[None]:
    """``dagster-daemon run`` on ``workspace``, ready once every daemon the instance needs
    has sent a heartbeat (read from the instance's storage); with ``backfill_interval_s``,
    the backfill daemon looks that often instead of every 30 s (see
    :data:`_DAEMON_WITH_INTERVAL`)."""
    import dagster as dg
    from dagster._daemon.controller import all_daemons_healthy

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])

    def ready() -> bool:
        try:
            return all_daemons_healthy(instance)
        except Exception:  # noqa: BLE001 - tables being made by the daemon's first start
            return False

    cmd = [str(BIN / "dagster-daemon")]
    if backfill_interval_s is not None:
        # -P: the working directory is not put on sys.path (the console script's is not)
        cmd = [sys.executable, "-P", "-c", _DAEMON_WITH_INTERVAL, str(backfill_interval_s)]
    cmd += ["run", "-w", str(workspace)]
    try:
        with started(cmd, env=env, log=log, ready=ready, cwd=workspace.parent):
            yield
    finally:
        instance.dispose()


@contextmanager
def dagster_webserver(
    workspace: Path, *, port: int, env: Mapping[str, str], log: Path
) -> Iterator[str]:
    """``dagster-webserver`` on ``workspace`` on a loopback ``port``; yields its URL."""
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    cmd += ["-w", str(workspace)]
    with started(cmd, env=env, log=log, ready=_http_ok(f"{url}/server_info"), cwd=workspace.parent):
        yield url


def graphql(url: str, query: str, variables: Mapping[str, object] | None = None) -> dict:
    """One GraphQL request to the webserver, as the UI sends it; returns ``data`` (fails
    on GraphQL errors)."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        payload = json.loads(answer.read())
    if payload.get("errors"):
        pytest.fail(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


def launch_asset_backfill(
    url: str,
    *,
    assets: list[list[str]],
    partitions: list[str],
    tags: Mapping[str, str] | None = None,
    run_config: Mapping[str, object] | None = None,
) -> str:
    """What the UI's "Materialize" over partitions of selected assets sends
    (``launchPartitionBackfill`` with ``assetSelection`` and ``partitionNames``); returns
    the backfill's id."""
    params = {
        "assetSelection": [{"path": path} for path in assets],
        "partitionNames": partitions,
        "fromFailure": False,
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
    }
    if run_config is not None:
        params["runConfigData"] = dict(run_config)
    result = graphql(url, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        pytest.fail(f"launchPartitionBackfill answered {result}")
    return result["backfillId"]
