"""Fault corpus: catch rates and false-block rates of the whole pipeline, through the CLI.

For each data set: write its base data, ``risk-assets init DATA --target T --protected
...`` with default settings, a first ``risk-assets run SPEC --json`` on the base data
(it must register), then every variant on its own copy of the state left by that first
run: clean variants must register (exit 0), faults must be blocked (exit 3) by a gate of
the right kind. Usage, from the repository root:

    .venv/bin/python -m benchmarks.fault_corpus [--datasets ...] [--faults ...]
        [--jobs N] [--smoke] [--work DIR] [--keep] [--out results.json]

Nothing inside the repository is written: the work folder is a temporary folder, or
``--work DIR``.

Isolation. MLflow's SQLite store records absolute paths (experiment artifact locations,
run artifact URIs, model version sources), and Dagster's event log and asset values do
too, so a plain copy of the state folder would read the champion from, and write new
artifacts into, the baseline's folder. Each variant therefore gets a copy of the whole
baseline folder (spec, suite, policy, data, state) in which every occurrence of the
baseline folder's path is rewritten to the copy's (text columns of every SQLite table,
then VACUUM, and text files); the copy is then scanned byte for byte and refused if the
old path remains anywhere. The baseline folder is made read-only, so a missed reference
that writes fails loudly instead of sharing state.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from benchmarks.fault_corpus.datasets import DATASETS, DEFAULT_DATASETS, DataSet  # noqa: E402
from benchmarks.fault_corpus.faults import (  # noqa: E402
    CLEAN,
    FAULTS,
    SMOKE_DATASET,
    SMOKE_VARIANTS,
    VARIANTS,
    Variant,
    right_gates,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "risk-assets"
_STATE_VARS = ("RISK_ASSETS_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
RUN_TIMEOUT = 1800


@dataclass
class Outcome:
    """One ``risk-assets run`` of one variant on one data set, classified."""

    dataset: str
    role: str
    variant: str
    kind: str  # baseline / clean / fault
    verdict: str  # registered / false_block / right_gate / other_gate / missed / error / n/a
    exit_code: int | None = None
    seconds: float | None = None
    right_gates: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    champion: bool | None = None
    error: str | None = None
    gates: list[dict] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------- state


def _env(state: Path) -> dict[str, str]:
    home = state / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in _STATE_VARS}
    env.update(
        RISK_ASSETS_HOME=str(state),
        DAGSTER_HOME=str(home),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _rewrite_sqlite(path: Path, old: str, new: str) -> int:
    con = sqlite3.connect(path)
    changed = 0
    try:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not r[0].startswith("sqlite_")
        ]
        for t in tables:
            for col in [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]:
                cur = con.execute(
                    f'UPDATE "{t}" SET "{col}" = replace("{col}", ?, ?) '
                    f'WHERE typeof("{col}") = \'text\' AND instr("{col}", ?) > 0',
                    (old, new, old),
                )
                changed += cur.rowcount
        con.commit()
        con.execute("VACUUM")  # no stale copies of the old text left in free pages
    finally:
        con.close()
    return changed


def clone_folder(src: Path, dst: Path) -> int:
    """Copy the baseline folder ``src`` to ``dst`` with every reference to ``src``
    rewritten; return the number of rewritten values. Raises if a reference remains."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for d, _, _ in os.walk(dst):
        os.chmod(d, 0o755)
    old, new = str(src), str(dst)
    changed = 0
    for p in sorted(dst.rglob("*")):
        if not p.is_file():
            continue
        os.chmod(p, 0o644)
        if _is_sqlite(p):
            changed += _rewrite_sqlite(p, old, new)
            continue
        data = p.read_bytes()
        if old.encode() in data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RuntimeError(f"{p}: a binary file refers to {old}; cannot copy") from exc
            p.write_text(text.replace(old, new), encoding="utf-8")
            changed += text.count(old)
    leftovers = [p for p in dst.rglob("*") if p.is_file() and old.encode() in p.read_bytes()]
    if leftovers:
        raise RuntimeError(f"state copy is not isolated: {leftovers} still refer to {old}")
    return changed


def _read_only(folder: Path) -> None:
    for p in folder.rglob("*"):
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    os.chmod(folder, 0o555)


def _writable(folder: Path) -> None:
    if not folder.exists():
        return
    os.chmod(folder, 0o755)
    for p in folder.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


# ---------------------------------------------------------------------------- running


def _new_process(
    cli: Path, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cli), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


#: How a command is started: a new process (the test of the smoke selection forks it from
#: a process with the libraries imported instead).
START = _new_process


def _cli(args: list[str], *, cwd: Path, state: Path) -> subprocess.CompletedProcess:
    return START(CLI, args, cwd=cwd, env=_env(state), timeout=RUN_TIMEOUT)


def _write_data(df, path: Path) -> None:
    df.to_csv(path, index=False)


def run_spec(folder: Path, spec_name: str) -> tuple[int, dict | None, float, str]:
    """``risk-assets run SPEC --json`` in ``folder`` on ``folder/state``: exit code,
    the JSON object it printed, wall seconds, stderr's tail."""
    t0 = time.perf_counter()
    proc = _cli(["run", spec_name, "--json"], cwd=folder, state=folder / "state")
    secs = time.perf_counter() - t0
    (folder / "run.stdout").write_text(proc.stdout)
    (folder / "run.stderr").write_text(proc.stderr)
    payload = None
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                pass
            break
    return proc.returncode, payload, secs, proc.stderr[-2000:]


def _gates(payload: dict | None) -> list[dict]:
    keep = ("name", "passed", "blocking", "value", "threshold", "summary", "seconds")
    return [{k: g.get(k) for k in keep} for g in (payload or {}).get("gates", [])]


def classify(
    *,
    ds: DataSet,
    variant: str,
    kind: str,
    right: tuple[str, ...],
    code: int,
    payload: dict | None,
    secs: float,
    stderr: str,
) -> Outcome:
    gates = _gates(payload)
    failed = [g["name"] for g in gates if g["blocking"] and g["passed"] is False]
    o = Outcome(
        dataset=ds.name,
        role=ds.role,
        variant=variant,
        kind=kind,
        verdict="error",
        exit_code=code,
        seconds=round(secs, 2),
        right_gates=list(right),
        blocked_by=failed or list((payload or {}).get("blocked_by") or []),
        champion=("champion" in ((payload or {}).get("aliases") or [])) if payload else None,
        gates=gates,
    )
    if code not in (0, 3):
        o.error = (payload or {}).get("error") or stderr.strip().splitlines()[-1:] or "no output"
        if isinstance(o.error, list):
            o.error = o.error[0] if o.error else "no output"
        return o
    if kind in ("baseline", "clean"):
        o.verdict = "registered" if code == 0 else "false_block"
    elif code == 0:
        o.verdict = "missed"
    else:
        o.verdict = "right_gate" if any(g in failed for g in right) else "other_gate"
    return o


def prepare(
    ds: DataSet, work: Path, init_options: tuple[str, ...] = ()
) -> tuple[Outcome, Path, str]:
    """Base data, ``init`` with defaults (plus ``init_options``), the first run. Returns the
    baseline outcome, the baseline folder and the spec's file name."""
    base = work / ds.name / "base"
    base.mkdir(parents=True)
    df = ds.frame()
    _write_data(df, base / "data.csv")
    args = ["init", "data.csv", "--target", ds.target, "--name", ds.name, "--out", "."]
    if ds.protected:
        args += ["--protected", *ds.protected]
    args += list(init_options)
    proc = _cli(args, cwd=base, state=base / "state")
    spec_name = f"{ds.name}.yaml"
    if proc.returncode != 0:
        o = Outcome(ds.name, ds.role, "baseline", "baseline", "error", proc.returncode)
        o.error = "init: " + (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return o, base, spec_name
    code, payload, secs, err = run_spec(base, spec_name)
    o = classify(
        ds=ds,
        variant="baseline",
        kind="baseline",
        right=(),
        code=code,
        payload=payload,
        secs=secs,
        stderr=err,
    )
    return o, base, spec_name


def run_variant(ds: DataSet, v: Variant, base: Path, spec_name: str, *, keep: bool) -> Outcome:
    df = ds.frame()  # deterministic: the same frame the base data was written from
    data = v.apply(df, ds)
    right = right_gates(v, df, ds) if v.kind == "fault" else ()
    if data is None or (v.kind == "fault" and not right):
        return Outcome(ds.name, ds.role, v.name, v.kind, "n/a", note="does not apply")
    folder = base.parent / "variants" / v.name
    folder.parent.mkdir(exist_ok=True)
    try:
        rewritten = clone_folder(base, folder)
        _write_data(data, folder / "data.csv")
        if v.edit_spec is not None:
            spec_path = folder / spec_name
            spec_path.write_text(
                yaml.safe_dump(v.edit_spec(yaml.safe_load(spec_path.read_text())), sort_keys=False)
            )
        code, payload, secs, err = run_spec(folder, spec_name)
        o = classify(
            ds=ds,
            variant=v.name,
            kind=v.kind,
            right=right,
            code=code,
            payload=payload,
            secs=secs,
            stderr=err,
        )
        o.note = f"{len(data)} rows; {rewritten} state references rewritten"
        return o
    except Exception as exc:  # a harness failure is recorded, never counted as a catch
        return Outcome(
            ds.name, ds.role, v.name, v.kind, "error", error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def run_corpus(
    *,
    datasets: list[str],
    variants: list[str],
    work: Path,
    jobs: int = 1,
    keep: bool = False,
    progress=print,
    init_options: tuple[str, ...] = (),
) -> list[Outcome]:
    """Run the corpus; return every outcome (baselines first)."""
    sets = [DATASETS[d] for d in datasets]
    chosen = [VARIANTS[v] for v in variants]
    results: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        prepared = list(pool.map(lambda ds: (ds, *prepare(ds, work, init_options)), sets))
        for _ds, o, base, _ in prepared:
            progress(_line(o))
            results.append(o)
            _read_only(base)
        tasks = [
            (ds, v, base, spec_name)
            for ds, o, base, spec_name in prepared
            if not (o.verdict == "error" and o.error and o.error.startswith("init:"))
            for v in chosen
        ]

        def one(t):
            o = run_variant(t[0], t[1], t[2], t[3], keep=keep)
            progress(_line(o))
            return o

        results.extend(pool.map(one, tasks))
    if not keep:
        for _ds, _, base, _ in prepared:
            _writable(base)
    return results


def _line(o: Outcome) -> str:
    extra = ""
    if o.verdict in ("false_block", "other_gate", "right_gate"):
        extra = f" by {', '.join(o.blocked_by)}"
    elif o.verdict == "missed":
        extra = f" (champion: {o.champion})"
    elif o.verdict == "error":
        extra = f": {o.error}"
    secs = f"{o.seconds:6.1f}s" if o.seconds is not None else "      -"
    return f"{secs}  {o.dataset:<22} {o.variant:<26} {o.verdict}{extra}"


# ---------------------------------------------------------------------------- report


_CELL = {"right_gate": "right", "other_gate": "other", "missed": "MISSED", "error": "error"}


def _cell(o: Outcome | None) -> str:
    if o is None:
        return ""
    if o.verdict == "n/a":
        return "n/a"
    if o.verdict == "right_gate":
        return "right (" + ", ".join(g for g in o.blocked_by if g in o.right_gates) + ")"
    if o.verdict == "other_gate":
        return "other (" + ", ".join(o.blocked_by) + ")"
    if o.verdict == "missed":
        return "MISSED" + (", champion" if o.champion else "")
    if o.verdict == "registered":
        return "registered"
    if o.verdict == "false_block":
        return "FALSE BLOCK (" + ", ".join(o.blocked_by) + ")"
    return f"error (exit {o.exit_code})"


def report(results: list[Outcome]) -> str:
    names = list(dict.fromkeys(o.dataset for o in results))
    role = {o.dataset: o.role for o in results}
    by = {(o.dataset, o.variant): o for o in results}
    out = []
    head = "| variant | " + " | ".join(f"{n} ({role[n]})" for n in names) + " |"
    sep = "|---|" + "---|" * len(names)
    for title, kinds in (
        ("Clean variants (must register)", ("baseline", "clean")),
        ("Faults (must be blocked by the right gate)", ("fault",)),
    ):
        rows = list(dict.fromkeys(o.variant for o in results if o.kind in kinds))
        if not rows:
            continue
        out += [f"**{title}**", "", head, sep]
        for v in rows:
            out.append(f"| {v} | " + " | ".join(_cell(by.get((n, v))) for n in names) + " |")
        out.append("")
    faults = [o for o in results if o.kind == "fault" and o.verdict != "n/a"]
    cleans = [o for o in results if o.kind in ("baseline", "clean")]
    out += [
        "| faults | right gate | other gate only | missed (became champion) | error |",
        "|---|---|---|---|---|",
    ]
    for label, sel in (
        ("tuned", [o for o in faults if o.role == "tuned"]),
        ("held-out", [o for o in faults if o.role == "held-out"]),
        ("overall", faults),
    ):
        n = len(sel)
        if not n:
            continue
        c = {
            k: sum(o.verdict == k for o in sel)
            for k in ("right_gate", "other_gate", "missed", "error")
        }
        champ = sum(o.verdict == "missed" and bool(o.champion) for o in sel)
        out.append(
            f"| {label} ({n}) | {c['right_gate']} ({c['right_gate'] / n:.0%}) | "
            f"{c['other_gate']} ({c['other_gate'] / n:.0%}) | {c['missed']} ({champ}) | "
            f"{c['error']} |"
        )
    out.append("")
    fb = [o for o in cleans if o.verdict == "false_block"]
    errs = [o for o in cleans if o.verdict == "error"]
    if cleans:
        out.append(
            f"False blocks: {len(fb)} of {len(cleans)} clean runs "
            f"({len(fb) / len(cleans):.0%}); errors: {len(errs)}."
        )
        for label in ("tuned", "held-out"):
            sel = [o for o in cleans if o.role == label]
            if sel:
                k = sum(o.verdict == "false_block" for o in sel)
                out.append(f"- {label}: {k} of {len(sel)}")
        gates: dict[str, int] = {}
        for o in fb:
            for g in o.blocked_by:
                gates[g] = gates.get(g, 0) + 1
        if gates:
            out.append(
                "- blocking gates: "
                + ", ".join(f"{g} ×{k}" for g, k in sorted(gates.items(), key=lambda x: -x[1]))
            )
    secs = [o.seconds for o in results if o.seconds is not None]
    if secs:
        out.append("")
        med = {
            n: statistics.median(
                [o.seconds for o in results if o.dataset == n and o.seconds is not None]
                or [float("nan")]
            )
            for n in names
        }
        per = ", ".join(f"{n} {m:.1f}" for n, m in med.items())
        out.append(
            f"Seconds per run (median): {statistics.median(secs):.1f} over {len(secs)} runs "
            f"(per data set: {per}); total {sum(secs) / 60:.1f} min."
        )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in (
        "risk-assets",
        "dagster",
        "mlflow",
        "great_expectations",
        "scikit-learn",
        "pandas",
        "numpy",
        "fairlearn",
        "adversarial-robustness-toolbox",
        "scipy",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "risk_assets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "uncommitted_library_files": len(dirty),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit or None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fault_corpus", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        help=f"default: {' '.join(DEFAULT_DATASETS)}",
    )
    p.add_argument(
        "--faults",
        nargs="+",
        choices=sorted(VARIANTS),
        metavar="VARIANT",
        help="variants to run (clean ones too); default: all: " + " ".join(VARIANTS),
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs in parallel, each in its own process and state folder",
    )
    p.add_argument(
        "--smoke", action="store_true", help=f"{SMOKE_DATASET}, and {', '.join(SMOKE_VARIANTS)}"
    )
    p.add_argument("--work", type=Path, help="work folder (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep every variant's folder")
    p.add_argument(
        "--auto-promote",
        action="store_true",
        help="init --auto-promote: the first run becomes champion, so clean variants meet "
        "the champion gate and a missed fault would become champion",
    )
    p.add_argument("--out", type=Path, help="results JSON (default: WORK/results.json)")
    p.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS",
        help="print the tables of an earlier run's results JSON (roles as datasets.py has "
        "them now) and exit",
    )
    args = p.parse_args(argv)
    if args.report is not None:
        doc = json.loads(args.report.read_text())
        results = [Outcome(**r) for r in doc["results"]]
        for o in results:
            if o.dataset in DATASETS:
                o.role = DATASETS[o.dataset].role
        print(report(results))
        return 0
    datasets = args.datasets or ([SMOKE_DATASET] if args.smoke else list(DEFAULT_DATASETS))
    variants = args.faults or (
        list(SMOKE_VARIANTS) if args.smoke else [v.name for v in CLEAN + FAULTS]
    )
    work = (args.work or Path(tempfile.mkdtemp(prefix="ra-fault-corpus-"))).resolve()
    if work.is_relative_to(ROOT):
        p.error(f"--work {work}: must be outside the repository")
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or work / "results.json"
    info = machine()
    print(
        f"work folder: {work}\nmachine: {info['cores']} cores, {info['cpu']}, "
        f"python {info['python']}",
        flush=True,
    )
    t0 = time.perf_counter()
    results = run_corpus(
        datasets=datasets,
        variants=variants,
        work=work,
        jobs=args.jobs,
        keep=args.keep,
        progress=lambda s: print(s, flush=True),
        init_options=("--auto-promote",) if args.auto_promote else (),
    )
    doc = {
        "machine": info,
        "command": " ".join(
            ["python -m benchmarks.fault_corpus", *(argv if argv is not None else sys.argv[1:])]
        ),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "datasets": {
            d: {"role": DATASETS[d].role, "description": DATASETS[d].description} for d in datasets
        },
        "variants": {v: {"kind": VARIANTS[v].kind, "what": VARIANTS[v].what} for v in variants},
        "results": [o.to_json() for o in results],
    }
    out.write_text(json.dumps(doc, indent=1, default=str))
    print()
    print(report(results))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
