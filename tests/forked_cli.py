"""Run a Python script (the installed ``risk-assets`` command, tests/crash_points.py) as a
process of its own, forked from one that has already imported the libraries a run needs.

A ``risk-assets run`` spends about 4 s importing Dagster, MLflow, Great Expectations and
scikit-learn before it does anything; the tests start some sixty of them. Here one server
process per test process (``python tests/forked_cli.py --serve``) imports those once and,
for each request, forks a child that becomes the script as ``python SCRIPT ARGS`` would
run it: its own environment, working directory, ``sys.argv`` and ``sys.path[0]``, stdin
from /dev/null, stdout and stderr to files, ``SystemExit`` as the exit status, an uncaught
exception printed by ``sys.excepthook`` (exit 1), non-daemon threads joined and ``atexit``
handlers run before it exits; a signal that kills it is the negative status, as
``subprocess`` reports it.

What a fork cannot give is a fresh interpreter: warnings printed while importing those
libraries go to the server's stderr, not the child's, and state a library fixes at import
time is the server's. The tests of what a user sees on stderr (tests/test_quiet_errors.py,
tests/test_blocked_runs.py) and the shipped pipeline's first run (``clean_run``) therefore
start the real command (``run_cli(..., fresh=True)``), and so does every call when
``RISK_ASSETS_TEST_FRESH_CLI=1``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Set to 1 to start every command as a new interpreter instead (slower, for comparison).
FRESH_ENV = "RISK_ASSETS_TEST_FRESH_CLI"
#: What the server imports before it forks: what ``risk-assets run`` imports on its way.
PRELOAD = (
    "risk_assets.cli",
    "risk_assets.dagster",
    "risk_assets.dagster._runner",
    "risk_assets.registry",
    "risk_assets.audit",
    "mlflow",
    "mlflow.tracking",
    "great_expectations",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.model_selection",
    # imported on the way too, and slow: skops imports every estimator of scikit-learn to
    # list the trusted types; MLflow's SQL stores (the embedded state's) and their migrations
    "skops.io",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "alembic.command",
    "dagster._daemon",
)


# -- the server (runs in its own process) ----------------------------------------------


def _exit_status(code: object) -> int:
    """The status ``python`` exits with for ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _become(request: dict, reply_fd: int) -> None:
    """In the forked child: become ``python SCRIPT ARGS`` and exit; never returns."""
    import atexit
    import io
    import runpy

    status = 1
    try:
        os.close(reply_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        script = os.path.abspath(request["script"])
        sys.argv = [request["script"], *request["args"]]
        sys.path[0] = os.path.dirname(script)
        if request.get("wait_for"):
            while not os.path.exists(request["wait_for"]):
                time.sleep(0.002)
        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = _exit_status(exc.code)
        except BaseException:  # noqa: BLE001 - what the interpreter does with it
            sys.excepthook(*sys.exc_info())
            status = 1
        threading._shutdown()  # type: ignore[attr-defined] - as the interpreter's exit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream has nothing to flush
                pass
        os._exit(status)


def _serve() -> None:
    """Import :data:`PRELOAD`, then fork a child per request line read from stdin; answer
    ``pid N`` once it is forked and ``exit N STATUS`` once it has ended (children run side
    by side)."""
    import importlib

    # the answers have a descriptor of their own; what the imports print goes to stderr
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    for name in PRELOAD:
        importlib.import_module(name)
    fd = sys.stdin.fileno()

    def say(line: str) -> None:
        os.write(reply_fd, (line + "\n").encode())

    say("ready")
    buffer, children, reading = b"", 0, True
    while reading or children:
        ready, _, _ = select.select([fd] if reading else [], [], [], 0.02 if children else None)
        if ready:
            chunk = os.read(fd, 1 << 16)
            reading = bool(chunk)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _become(json.loads(line), reply_fd)
                children += 1
                say(f"pid {pid}")
        while children:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children -= 1
            say(f"exit {pid} {os.waitstatus_to_exitcode(wait_status)}")


# -- the client (runs in the test process) ---------------------------------------------


class _Server:
    """One server process, and the lines it answers with."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ),
        )
        self._buffer = b""
        self._lock = threading.Lock()
        self.ended: dict[int, int] = {}
        line = self._line(timeout=300)
        if line != "ready":
            raise RuntimeError(f"the forking server did not start: {line!r}")

    def _line(self, timeout: float) -> str | None:
        """The next line, or None after ``timeout`` seconds without one."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the forking server exited ({self.proc.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _take(self, line: str | None) -> int | None:
        """Record an ``exit`` line; return the pid of a ``pid`` line."""
        if line is None:
            return None
        kind, *rest = line.split()
        if kind == "exit":
            self.ended[int(rest[0])] = int(rest[1])
            return None
        return int(rest[0])

    def start(self, request: dict) -> int:
        with self._lock:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            while True:
                line = self._line(timeout=60)
                if line is None:
                    raise RuntimeError("the forking server did not fork within 60 s")
                if (pid := self._take(line)) is not None:
                    return pid

    def status(self, pid: int, timeout: float) -> int | None:
        """The exit status of ``pid``, waiting at most ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while pid not in self.ended:
                line = self._line(timeout=max(0.0, deadline - time.monotonic()))
                if line is None:
                    return None
                self._take(line)
            return self.ended.pop(pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_server: _Server | None = None
_server_lock = threading.Lock()


def _the_server() -> _Server:
    global _server
    with _server_lock:
        if _server is None or _server.proc.poll() is not None:
            import atexit

            _server = _Server()
            atexit.register(_server.close)
        return _server


class ForkedProcess:
    """A started script, as much of :class:`subprocess.Popen` (with text pipes for stdout
    and stderr) as the tests use: ``pid``, ``returncode``, :meth:`poll`, :meth:`wait`,
    :meth:`communicate`, :meth:`kill`."""

    def __init__(
        self,
        script: Path,
        args: list[str] | tuple[str, ...],
        *,
        env: dict[str, str],
        cwd: Path | None = None,
        wait_for: Path | None = None,
    ) -> None:
        self.args = [str(script), *args]
        self._tmp = tempfile.TemporaryDirectory(prefix="forked-cli-")
        self._out = Path(self._tmp.name) / "stdout"
        self._err = Path(self._tmp.name) / "stderr"
        self.returncode: int | None = None
        self._server = _the_server()
        self.pid = self._server.start(
            {
                "script": str(script),
                "args": [str(a) for a in args],
                "env": dict(env),
                "cwd": str(cwd or os.getcwd()),
                "stdout": str(self._out),
                "stderr": str(self._err),
                "wait_for": str(wait_for) if wait_for else None,
            }
        )

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.status(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._server.status(self.pid, timeout=timeout or 1e9)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end; then stdout and stderr as text."""
        self.wait(timeout)
        out, err = self._out.read_text(), self._err.read_text()
        self._tmp.cleanup()
        return out, err

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_script(
    script: Path,
    args: list[str] | tuple[str, ...],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
    env=env, cwd=cwd, timeout=timeout)``, in a child forked from the server (see the module's
    docstring); the server starts on first use and stops when the test process exits."""
    proc = ForkedProcess(script, args, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, out, err) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
