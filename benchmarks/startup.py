"""Start-up costs: `risk-assets --help` and loading the code location (pipelines/definitions.py,
and the same pipelines as Dagster components: pipelines/components_definitions.py).

Targets: --help under 1 s, the code location under 3 s. Each command runs in a fresh
process, REPEAT times; the median is reported. Run from the repository root:

    .venv/bin/python benchmarks/startup.py
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEAT = 5
BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    load = (
        "import runpy; runpy.run_path('pipelines/definitions.py')['defs']"
        ".resolve_job_def('credit_risk_job')"
    )
    rows = [
        ("python -c pass (interpreter floor)", timed([sys.executable, "-c", "pass"])),
        ("risk-assets --help", timed([str(BIN / "risk-assets"), "--help"])),
        ("load code location pipelines/definitions.py", timed([sys.executable, "-c", load])),
        (
            "load code location pipelines/components_definitions.py (Dagster components)",
            timed(
                [sys.executable, "-c", load.replace("definitions.py", "components_definitions.py")]
            ),
        ),
    ]
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"python {platform.python_version()}, median of {REPEAT}"
    )
    for name, secs in rows:
        print(f"{secs:8.3f} s  {name}")


if __name__ == "__main__":
    main()
