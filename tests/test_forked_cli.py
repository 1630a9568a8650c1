"""The forked processes of tests/forked_cli.py behave as ``python SCRIPT ARGS`` does: the
same script run both ways gives the same exit status, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from forked_cli import ForkedProcess, run_script

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
}


def _both(script: Path, tmp_path: Path, *args: str) -> tuple:
    env = {**os.environ, "FORKED_CLI_PROBE": "probe"}
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
    if name == "raises":
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
