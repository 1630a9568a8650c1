"""The forked processes of tests/forked_cli.py behave as ``python SCRIPT ARGS`` does: the
same script run both ways gives the same exit status, stdout and stderr, the same logging
set-up under risk-assets' own, and random generators of its own; a command whose
environment the server's imports could not have seen starts a new interpreter. And each
command of ``risk-assets`` the other tests mostly fork is started once as a new
interpreter here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from forked_cli import FRESH_ENV, ForkedProcess, forks, run_script

from conftest import CREDIT_DATA, CREDIT_SPEC, run_cli

SCRIPTS = {
    "prints_its_world": (
        "import os, sys\n"
        "print(sys.argv[1:], os.getcwd(), os.environ.get('FORKED_CLI_PROBE'))\n"
        "print(sys.path[0] == os.path.dirname(os.path.abspath(__file__)))\n"
        "print(__name__, sys.stdin.read() == '')\n"
    ),
    "exits_3": "import sys\nsys.exit(3)\n",
    "exits_with_a_message": "import sys\nsys.exit('risk-assets: error: no')\n",
    "raises": "raise ValueError('broken')\n",
    "runs_atexit_and_joins_threads": (
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "t = threading.Thread(target=lambda: (time.sleep(0.2), print('thread ended')))\n"
        "t.start()\n"
    ),
    "killed": (
        "import os, signal\nprint('before', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    ),
    "writes_to_the_descriptors": "import os\nos.write(1, b'fd1\\n')\nos.write(2, b'fd2\\n')\n",
    "interrupted": "raise KeyboardInterrupt\n",
    "main_module_stays": (
        "import atexit, sys\n"
        "main = sys.modules['__main__']\n"
        "atexit.register(lambda: print(sys.modules['__main__'] is main, vars(main).keys()))\n"
    ),
    # what risk-assets' logging set-up leaves on the loggers of MLflow and its stores
    "logging_as_the_cli_sets_it": (
        "import logging\n"
        "from risk_assets.cli import _logging\n"
        "with _logging(verbose=False):\n"
        "    import mlflow.store.tracking.sqlalchemy_store\n"
        "    for name in ('', 'mlflow', 'sqlalchemy.engine', 'alembic', 'huey'):\n"
        "        log = logging.getLogger(name)\n"
        "        kinds = sorted(type(h).__name__ for h in log.handlers)\n"
        "        print(name, kinds, log.propagate, log.level)\n"
    ),
}


def _both(script: Path, tmp_path: Path, *args: str) -> tuple:
    env = {**os.environ, "FORKED_CLI_PROBE": "probe", "RISK_ASSETS_HOME": str(tmp_path / "s")}
    assert forks(env) or os.environ.get(FRESH_ENV) == "1"
    real = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    forked = run_script(script, args, env=env, cwd=tmp_path, timeout=60)
    return real, forked


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_forked_script_ends_as_a_new_interpreter_would(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(SCRIPTS[name])
    real, forked = _both(script, tmp_path, "a", "b c")
    assert forked.returncode == real.returncode, (real, forked)
    assert forked.stdout == real.stdout, (real, forked)
    # a traceback names the same file and line in both; the frames of the machinery
    # (runpy in the forked child) differ
    if name in ("raises", "interrupted"):
        assert real.stderr.splitlines()[-1] == forked.stderr.splitlines()[-1]
        assert f'File "{script}", line 1' in forked.stderr
    else:
        assert forked.stderr == real.stderr, (real, forked)


def test_a_script_that_overruns_its_timeout_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "sleeps.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        run_script(script, [], env=dict(os.environ), timeout=2)
    assert caught.value.output == "started\n"


def test_processes_started_together_wait_for_the_start_file(tmp_path: Path) -> None:
    script = tmp_path / "stamp.py"
    script.write_text("import os, time\nprint(os.getpid(), time.time())\n")
    go = tmp_path / "go"
    procs = [ForkedProcess(script, [], env=dict(os.environ), wait_for=go) for _ in range(3)]
    assert [p.poll() for p in procs] == [None, None, None]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        pid, _ = out.split()
        assert int(pid) == proc.pid


def test_a_missing_script_is_exit_2_as_python_says(tmp_path: Path) -> None:
    real, forked = _both(tmp_path / "absent.py", tmp_path)
    assert real.returncode == forked.returncode == 2
    assert "can't open file" in real.stderr and "can't open file" in forked.stderr


def test_each_forked_process_has_random_generators_and_a_key_of_its_own(tmp_path: Path):
    script = tmp_path / "draws.py"
    script.write_text(
        "import multiprocessing, os, random, numpy\n"
        "from multiprocessing import process\n"
        "print(random.random(), numpy.random.random(), multiprocessing.current_process()"
        ".authkey.hex(), process.ORIGINAL_DIR == os.getcwd())\n"
    )
    draws = [run_script(script, [], env=dict(os.environ), cwd=tmp_path) for _ in range(2)]
    first, second = (d.stdout.split() for d in draws)
    assert first[3] == second[3] == "True"
    assert first[0] != second[0] and first[1] != second[1] and first[2] != second[2]


def test_an_environment_read_at_start_up_gets_a_new_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "encoding.py"
    script.write_text("import sys\nprint(sys.stdout.encoding)\n")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    assert not forks(env)
    proc = ForkedProcess(script, [], env=env)
    out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "ascii\n")


def test_a_running_process_polls_as_running_and_can_be_killed(tmp_path: Path) -> None:
    script = tmp_path / "sleeps.py"
    script.write_text("import time\ntime.sleep(600)\n")
    proc = ForkedProcess(script, [], env=dict(os.environ))
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -9


#: One command of each kind, on the state of the shipped pipeline's first run.
FRESH_COMMANDS = {
    "lineage": ["lineage", "credit_risk@champion", "--json"],
    "policy": ["policy", "show", str(CREDIT_SPEC), "--json"],
    "pending": ["pending", "credit_risk", "--json"],
    "audit": ["audit", "verify", "--json"],
    "compliance": ["compliance", "credit_risk/1", "--json"],
    "report": ["report", "credit_risk/1", "--out", "{tmp}", "--format", "md"],
    "init": ["init", str(CREDIT_DATA), "--target", "risk", "--name", "fresh_init"],
}


@pytest.mark.parametrize("command", sorted(FRESH_COMMANDS))
def test_each_command_runs_in_a_new_interpreter(command: str, clean_run, tmp_path: Path):
    """The commands the other tests fork, started as a user starts them: exit 0, nothing
    on stderr, stdout as the command prints it."""
    assert clean_run["proc"].returncode == 0, clean_run["proc"].stderr[-2000:]
    args = [a.replace("{tmp}", str(tmp_path)) for a in FRESH_COMMANDS[command]]
    proc = run_cli(*args, env=clean_run["env"], cwd=tmp_path, fresh=True)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert proc.stderr == "", proc.stderr[-3000:]
    if "--json" in args:
        assert isinstance(json.loads(proc.stdout), dict)
    else:
        assert proc.stdout.strip(), command
