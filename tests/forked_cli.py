"""Run a Python script (the installed ``risk-assets`` command, tests/crash_points.py) as a
process of its own, forked from one that has already imported the libraries a run needs.

A ``risk-assets run`` spends about 4 s importing Dagster, MLflow, Great Expectations and
scikit-learn before it does anything; the tests start some seventy of them. Here one server
process per test process (``python tests/forked_cli.py --serve``) imports those once and,
for each request, forks a child that becomes the script as ``python SCRIPT ARGS`` would
run it: its own environment, working directory, ``sys.argv``, ``sys.path[0]`` and
``__main__`` module, stdin from /dev/null, stdout and stderr to files; the script's end
is the interpreter's own (``SystemExit``, an uncaught exception's trace and status 1, a
``KeyboardInterrupt``, threads joined, ``atexit`` handlers, finalisation); a signal that
kills it is the negative status, as ``subprocess`` reports it.

What a fork cannot give is a fresh interpreter, and where that could show it does not
fork:

- The server imports with a fixed environment: the caller's, without the variables that
  point risk-assets, Dagster and MLflow at a state, and with
  ``MLFLOW_CONFIGURE_LOGGING=false``, as ``risk-assets`` sets before it imports MLflow (so
  MLflow's loggers are configured as in the real command). A request whose environment
  differs from it in a variable read at start-up or import (:func:`_read_at_import`:
  ``PYTHON*``, the locale, thread counts, scikit-learn's and pandas' options, MLflow's
  logging) starts a new interpreter instead.
- ``RISK_ASSETS_TEST_FRESH_CLI=1`` starts every command as a new interpreter.
- Output a library writes while it is imported (at C level, or by ``print``) is the
  server's, and every child shares the server's string hash seed; the children's random
  generators (Python's, numpy's) and multiprocessing's key are their own.
- A grandchild left holding stdout does not delay the end (the output is a file, not a
  pipe).

The refusals of tests/test_quiet_errors.py, tests/test_blocked_runs.py and the
executable's refusals in tests/test_bad_inputs.py, the shipped pipeline's first run
(``clean_run``) and one of each other command (tests/test_forked_cli.py, which also
compares the logging set-up forked and fresh) start a new interpreter every time.
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
#: Left out of the server's environment: what points a process at a state, and pytest's.
_NOT_THE_SERVERS = ("RISK_ASSETS_", "DAGSTER_", "MLFLOW_", "PYTEST_")
#: Variables read when the interpreter starts or a library is imported.
_AT_IMPORT_PREFIXES = (
    "PYTHON",
    "LC_",
    "OMP_",
    "OPENBLAS_",
    "MKL_",
    "NUMEXPR_",
    "SKLEARN_",
    "PANDAS_",
    "JOBLIB_",
    "GX_",
)
_AT_IMPORT_NAMES = ("LANG", "LANGUAGE", "TZ", "MLFLOW_CONFIGURE_LOGGING", "MLFLOW_LOGGING_LEVEL")
#: The environment variable risk-assets sets (if unset) before it imports MLflow.
_CLI_DEFAULTS = {"MLFLOW_CONFIGURE_LOGGING": "false"}


def _read_at_import(env: dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` read at start-up or import, with risk-assets' defaults."""
    out = {**_CLI_DEFAULTS}
    out.update(
        {k: v for k, v in env.items() if k.startswith(_AT_IMPORT_PREFIXES) or k in _AT_IMPORT_NAMES}
    )
    return out


def server_env(caller: dict[str, str]) -> dict[str, str]:
    """The environment the server imports with (see the module's docstring)."""
    env = {k: v for k, v in caller.items() if not k.startswith(_NOT_THE_SERVERS)}
    return {**env, **_CLI_DEFAULTS}


# -- the server (runs in its own process) ----------------------------------------------


def _become(request: dict, set_by_imports: dict[str, str]) -> None:
    """In the forked child: set up the process as ``python SCRIPT ARGS`` would be, then
    run the script; its end (return, exception, ``SystemExit``) is the interpreter's."""
    import builtins
    import importlib.machinery
    import io
    import multiprocessing.process
    import random
    import types

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({**set_by_imports, **request["env"]})
    # what a new interpreter would not share with its siblings
    multiprocessing.process.ORIGINAL_DIR = os.getcwd()
    multiprocessing.current_process().authkey = os.urandom(32)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    script = os.path.abspath(request["script"])
    sys.argv = [request["script"], *request["args"]]
    sys.path[0] = os.path.dirname(script)
    if request.get("wait_for"):
        parent = os.getppid()
        while not os.path.exists(request["wait_for"]):
            if os.getppid() != parent:  # the server is gone: nobody will start it
                os._exit(1)
            time.sleep(0.002)
    try:
        source = Path(script).read_bytes()
    except OSError as exc:
        print(f"{sys.executable}: can't open file {script!r}: {exc}", file=sys.stderr)
        sys.exit(2)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __loader__=importlib.machinery.SourceFileLoader("__main__", script),
        __annotations__={},
        __builtins__=builtins,
        __file__=script,
        __cached__=None,
    )
    sys.modules["__main__"] = main
    try:
        exec(compile(source, script, "exec"), main.__dict__)  # noqa: S102 - the script to run
    finally:  # as the interpreter does once a script has run (atexit handlers see it)
        main.__dict__.pop("__file__", None)
        main.__dict__.pop("__cached__", None)


def _serve() -> dict | None:
    """Import :data:`PRELOAD`, then fork a child per request line read from stdin; answer
    ``pid N`` once it is forked and ``exit N STATUS`` once it has ended (children run side
    by side). Returns in a child (its request), or in the server at the end of its input,
    after killing any child still running."""
    import importlib

    # the answers have a descriptor of their own; what the imports print goes to stderr
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    before = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    fd = sys.stdin.fileno()

    def say(line: str) -> None:
        try:
            os.write(reply_fd, (line + "\n").encode())
        except BrokenPipeError:  # the test process has gone: nobody asks any more
            pass

    say("ready")
    buffer, children, reading = b"", set(), True
    while reading or children:
        ready, _, _ = select.select([fd] if reading else [], [], [], 0.02 if children else None)
        if ready:
            chunk = os.read(fd, 1 << 16)
            reading = bool(chunk)
            if not reading:  # the test process is done: nothing still running is wanted
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    os.close(reply_fd)
                    return {"request": json.loads(line), "set_by_imports": set_by_imports}
                children.add(pid)
                say(f"pid {pid}")
        while children:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            say(f"exit {pid} {os.waitstatus_to_exitcode(wait_status)}")
    return None


# -- the client (runs in the test process) ---------------------------------------------


class _Server:
    """One server process, and the lines it answers with."""

    def __init__(self) -> None:
        self.env = server_env(dict(os.environ))
        self._log_dir = tempfile.TemporaryDirectory(prefix="forked-cli-server-")
        self.log = Path(self._log_dir.name) / "server.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
                cwd=Path(__file__).parent,
            )
        self._buffer = b""
        self._lock = threading.Lock()
        self.ended: dict[int, int] = {}
        if self._line(timeout=300) != "ready":
            raise self._gone("did not start")

    def _gone(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace")[-3000:]
        return RuntimeError(f"the forking server {what} ({self.proc.poll()}): {tail}")

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
                raise self._gone("exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _take(self, line: str) -> int | None:
        """Record an ``exit`` line; return the pid of a ``pid`` line."""
        kind, *rest = line.split()
        pid = int(rest[0])
        if kind == "exit":
            self.ended[pid] = int(rest[1])
            return None
        self.ended.pop(pid, None)  # a status left by an earlier process with this pid
        return pid

    def start(self, request: dict) -> int:
        with self._lock:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            deadline = time.monotonic() + 60
            while (left := deadline - time.monotonic()) > 0:
                line = self._line(timeout=left)
                if line is not None and (pid := self._take(line)) is not None:
                    return pid
            raise self._gone("did not fork within 60 s")

    def status(self, pid: int, timeout: float) -> int | None:
        """The exit status of ``pid``, waiting at most ``timeout`` seconds for it (the lock
        is let go between reads, so other threads can start and wait meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if pid in self.ended:
                    return self.ended.pop(pid)
                left = deadline - time.monotonic()
                line = self._line(timeout=min(max(0.0, left), 0.05))
                if line is not None:
                    self._take(line)
                    continue
            if left <= 0:
                return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_dir.cleanup()


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


def forks(env: dict[str, str]) -> bool:
    """Whether a command with ``env`` is forked (else it starts a new interpreter)."""
    if os.environ.get(FRESH_ENV) == "1":
        return False
    return _read_at_import(env) == _read_at_import(_the_server().env)


#: For a new interpreter started with the others of a burst: wait for the start file (if
#: any), then become ``python SCRIPT ARGS`` (the same pid).
_WAIT_THEN_EXEC = (
    "import os, sys, time\n"
    "while sys.argv[1] and not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.002)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


class ForkedProcess:
    """A started script, as much of :class:`subprocess.Popen` (with text pipes for stdout
    and stderr) as the tests use: ``pid``, ``returncode``, :meth:`poll`, :meth:`wait`,
    :meth:`communicate`, :meth:`kill`. Forked from the server, or a new interpreter where
    :func:`forks` says so; with ``wait_for``, the script starts once that file exists."""

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
        self.returncode: int | None = None
        self._popen: subprocess.Popen | None = None
        if not forks(env):
            self._popen = subprocess.Popen(
                [sys.executable, "-c", _WAIT_THEN_EXEC, str(wait_for or ""), *self.args],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.pid = self._popen.pid
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="forked-cli-")
        self._out = Path(self._tmp.name) / "stdout"
        self._err = Path(self._tmp.name) / "stderr"
        self._server = _the_server()
        self.pid = self._server.start(
            {
                "script": str(script),
                "args": [str(a) for a in args],
                "env": {str(k): str(v) for k, v in env.items()},
                "cwd": str(cwd or os.getcwd()),
                "stdout": str(self._out),
                "stderr": str(self._err),
                "wait_for": str(wait_for) if wait_for else None,
            }
        )

    def poll(self) -> int | None:
        if self._popen is not None:
            self.returncode = self._popen.poll()
        elif self.returncode is None:
            self.returncode = self._server.status(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            self.returncode = self._popen.wait(timeout)
        elif self.returncode is None:
            self.returncode = self._server.status(self.pid, 1e9 if timeout is None else timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end; then stdout and stderr as text."""
        if self._popen is not None:
            out, err = self._popen.communicate(timeout=timeout)
            self.returncode = self._popen.returncode
            return out, err
        self.wait(timeout)
        # a child killed before it opened them has written neither
        out, err = (p.read_text() if p.exists() else "" for p in (self._out, self._err))
        self._tmp.cleanup()
        return out, err

    def kill(self) -> None:
        if self._popen is not None:
            self._popen.kill()
            return
        try:
            ended = self.poll() is not None
        except RuntimeError:  # the server is gone; the child may not be
            ended = False
        if not ended:
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
    _child = _serve()
    if _child is not None:
        _become(_child["request"], _child["set_by_imports"])
