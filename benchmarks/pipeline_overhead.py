"""Overhead of the gated pipeline over the bare `read + fit + predict` of the same estimator.

Builds a data set of N rows by resampling the German credit data (numeric columns
jittered so rows are not copies), then measures, each in a fresh process so that its peak
memory is its own:

- bare: pandas.read_csv, the same sklearn Pipeline fit on 75 %, predict on 25 %;
- gated: `risk-assets run` on the same file with the shipped credit_risk register (every
  data and model gate, each bounded by its policy's sample size; snapshot + hash, split,
  fit, evaluation, MLflow logging, registration), in-process, after an untimed warm-up
  run on the same state (imports, store creation, a first champion: the timed run then
  scores the champion, as every retraining does).

The gated run's time is split, from the Dagster run's own records, into:

- start-up: before the Dagster run starts and after it ends (spec, preflight, the
  definitions, the recovery of dead runs, the instance) plus the run's time outside any
  step (Dagster's orchestration);
- registration: the step that registers the candidate (MLflow model version, audit trail,
  aliases);
- steps: every other step, each with its seconds (the data assets, training, every gate).

"fixed" is start-up + registration, which do not grow with rows; the ratio "gated - fixed"
over bare is the issue's target (at most 1.3x at 1M rows, 2x at 100k). Ratios are what to
compare: the machine is noisy. "beyond" is what the gated run adds to its own training
step (gated - fixed - the training step) over bare: the gates and the data versioning,
without the fit whose time varies most between runs. Usage, from the repository root:

    .venv/bin/python benchmarks/pipeline_overhead.py [--repeats R] 10000 100000 1000000

``--repeats R`` measures each size R times (fresh processes and a new state each time)
and prints every run, then a row of the median seconds and memory with the ratios taken
from those; the tables below give the medians.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
REGISTRATION_STEP = "registered_model"


def make_data(n: int, path: Path) -> None:
    base = pd.read_csv(ROOT / "pipelines" / "data" / "german_credit.csv")
    rng = np.random.default_rng(0)
    df = base.sample(n=n, replace=True, random_state=0).reset_index(drop=True)
    df["credit_amount"] = (df["credit_amount"] * rng.uniform(0.95, 1.05, n)).round().astype(int)
    df["duration"] = np.clip(df["duration"] + rng.integers(-2, 3, n), 4, 72)
    df["age"] = np.clip(df["age"] + rng.integers(-1, 2, n), 19, 75)
    df.to_csv(path, index=False)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bare(path: Path, spec: dict) -> dict:
    from sklearn.model_selection import train_test_split

    from risk_assets.estimator import build_pipeline, categorical_columns

    t0 = time.perf_counter()
    df = pd.read_csv(path)
    feats = [c for c in df.columns if c != spec["target"]]
    cats = categorical_columns(df, feats, spec.get("categorical_features"))
    train, test = train_test_split(df, test_size=0.25, random_state=42)
    model = build_pipeline(
        class_path=spec["estimator"]["class"],
        params=spec["estimator"]["params"],
        numeric=[c for c in feats if c not in cats],
        categorical=cats,
    )
    model.fit(train[feats], train[spec["target"]])
    model.predict_proba(test[feats])
    return {"seconds": time.perf_counter() - t0, "peak_mib": _peak_mib()}


def _run_split(run_id: str, wall: float) -> dict:
    """The run's time from Dagster's records: start-up, registration, every other step."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    record = instance.get_run_record_by_id(run_id)
    steps = {
        s.step_key: (s.end_time or 0.0) - (s.start_time or 0.0)
        for s in instance.get_run_step_stats(run_id)
    }
    in_run = (record.end_time or 0.0) - (record.start_time or 0.0)
    registration = sum(v for k, v in steps.items() if REGISTRATION_STEP in k)
    return {
        "startup": (wall - in_run) + (in_run - sum(steps.values())),
        "registration": registration,
        "steps": {k: v for k, v in steps.items() if REGISTRATION_STEP not in k},
    }


def gated(spec_path: Path, state: Path, *, timed: bool = True) -> dict:
    from risk_assets.dagster._runner import run_pipeline

    os.environ["RISK_ASSETS_HOME"] = str(state)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    outcome = run_pipeline(spec_path, log_to_console=False)
    secs = time.perf_counter() - t0
    if outcome.status != "registered":
        raise SystemExit(f"gated run did not register: {json.dumps(outcome.to_json())}")
    if not timed:
        return {}
    return {
        "seconds": secs,
        "peak_mib": _peak_mib(),
        "gates": {g.name: g.seconds for g in outcome.gates},
        **_run_split(outcome.dagster_run_id, secs),
    }


def suite_full_vs_sampled(path: Path) -> dict:
    """The expectation suite on every row against the policy's sample, on the clean data
    and with 0.1 % of the rows given a category the suite does not allow: seconds and
    verdicts."""
    from risk_assets.controls._expectations import load_suite, run_expectation_suite
    from risk_assets.policy import load_policy

    policy = load_policy(ROOT / "pipelines" / "policies" / "credit_risk.yaml").policy
    sample = next(
        r.control.params.sample_size
        for r in policy.risks
        if r.control is not None and r.control.name == "expectations"
    )
    suite = load_suite(ROOT / "expectations" / "credit_risk.json")
    clean = pd.read_csv(path)
    faulty = clean.copy()
    faulty.loc[faulty.sample(frac=0.001, random_state=3).index, "housing"] = "castle"
    out: dict = {"sample_size": sample}
    run_expectation_suite(clean.head(1000), suite)  # not timed: imports GX, builds a context
    for name, frame in (("clean", clean), ("0.1% faulty", faulty)):
        for mode, size in (("every row", None), ("sampled", sample)):
            t0 = time.perf_counter()
            result = run_expectation_suite(frame, suite, sample_size=size, seed=0)
            out[f"{name}, {mode}"] = [time.perf_counter() - t0, result.passed]
    return out


def _child(argv: list[str]) -> None:
    """``--child bare DATA SPEC`` or ``--child gated SPEC STATE``: one measurement, as JSON."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    kind, a, b = argv
    if kind == "bare":
        out = bare(Path(a), yaml.safe_load(Path(b).read_text()))
    elif kind == "suite":
        out = suite_full_vs_sampled(Path(a))
    else:
        gated(Path(a), Path(b), timed=False)
        out = gated(Path(a), Path(b))
    print("RESULT " + json.dumps(out))


def _measure(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(
            f"measurement {args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _one_size(n: int, spec: dict, *, suite: bool = False) -> tuple[dict, dict, dict | None]:
    work = Path(tempfile.mkdtemp(prefix="ra-bench-"))
    try:
        data = work / "data.csv"
        make_data(n, data)
        s = dict(
            spec,
            source={"path": str(data)},
            serving_source={"path": str(ROOT / "pipelines" / "data" / "german_credit_serving.csv")},
            expectations=str(ROOT / "expectations" / "credit_risk.json"),
            policy=str(ROOT / "pipelines" / "policies" / "credit_risk.yaml"),
        )
        spec_path = work / "credit_risk.yaml"
        spec_path.write_text(yaml.safe_dump(s))
        return (
            _measure("bare", str(data), str(spec_path)),
            _measure("gated", str(spec_path), str(work / "state")),
            _measure("suite", str(data), "-") if suite else None,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _table(title: str, rows: dict[str, list[float]], sizes: list[int]) -> None:
    print(f"\n{title}")
    print(f"{'':<44}" + "".join(f"{n:>10}" for n in sizes))
    for name, values in rows.items():
        print(f"{name:<44}" + "".join(f"{v:>10.2f}" for v in values))


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _training(g: dict) -> float:
    """Seconds of the training step (fit, evaluation, logging): the bare run's work."""
    return sum(v for k, v in g["steps"].items() if k.endswith("__candidate_model"))


def main(sizes: list[int], repeats: int = 1) -> None:
    spec = yaml.safe_load((ROOT / "pipelines" / "credit_risk.yaml").read_text())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
        + (f"; each size {repeats} times, medians below the runs" if repeats > 1 else "")
    )
    head = (
        "rows",
        "bare s",
        "gated s",
        "fixed s",
        "ratio",
        "-fixed",
        "beyond",
        "bare MiB",
        "gated MiB",
        "mem x",
    )
    print("".join(f"{h:>10}" for h in head))
    runs: dict[int, list[tuple[dict, dict]]] = {}
    suite = None
    for n in sizes:
        for i in range(repeats):
            b, g, compared = _one_size(n, spec, suite=n == max(sizes) and i == 0)
            suite = compared or suite
            runs.setdefault(n, []).append((b, g))
            _row(n, b, g)
    # per size, the median of every figure over its runs
    results = [
        (n, _median_of([b for b, _ in runs[n]]), _median_of([g for _, g in runs[n]])) for n in sizes
    ]
    if repeats > 1:
        print("medians:")
        for n, b, g in results:
            _row(n, b, g)
    print(
        "\n-fixed: (gated - fixed) / bare, the issue's target; beyond: what the gated run adds "
        "to its training step (gated - fixed - training step) / bare"
    )
    if len(results) > 1:
        print("\ngrowth between consecutive sizes (time at the larger over time at the smaller):")
        for (n0, b0, g0), (n1, b1, g1) in zip(results, results[1:], strict=False):
            f0, f1 = (g0["startup"] + g0["registration"]), (g1["startup"] + g1["registration"])
            print(
                f"  {n0} -> {n1} rows ({n1 / n0:.0f}x): bare {b1['seconds'] / b0['seconds']:.2f}x,"
                f" gated {g1['seconds'] / g0['seconds']:.2f}x,"
                f" gated - fixed {(g1['seconds'] - f1) / (g0['seconds'] - f0):.2f}x"
            )
    _table(
        "fixed seconds:",
        {
            "start-up and orchestration": [g["startup"] for _, _, g in results],
            "registration step": [g["registration"] for _, _, g in results],
        },
        sizes,
    )
    steps = results[0][2]["steps"]
    _table(
        "seconds per step (Dagster's step records; a gate's step includes loading its inputs):",
        {k: [g["steps"].get(k, float("nan")) for _, _, g in results] for k in steps},
        sizes,
    )
    if suite:
        print(
            f"\nthe expectation suite at {max(sizes)} rows, every row against the policy's "
            f"sample of {suite.pop('sample_size')} rows (seconds, passed):"
        )
        for name, (secs, passed) in suite.items():
            print(f"  {name:<28}{secs:>8.2f}  {'passed' if passed else 'blocked'}")
    _table(
        "seconds per gate (the control alone, from the check metadata):",
        {
            k: [g["gates"].get(k) or float("nan") for _, _, g in results]
            for k in results[0][2]["gates"]
        },
        sizes,
    )


def _median_of(measured: list[dict]) -> dict:
    """One measurement whose every number is the median over ``measured`` (nested dicts
    of seconds alike)."""
    first = measured[0]
    out: dict = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = _median_of([m.get(key, {}) for m in measured])
        elif isinstance(value, (int, float)):
            out[key] = _median([m[key] for m in measured if m.get(key) is not None])
        else:
            out[key] = value
    return out


def _row(n: int, b: dict, g: dict) -> None:
    fixed = g["startup"] + g["registration"]
    cells = (
        b["seconds"],
        g["seconds"],
        fixed,
        g["seconds"] / b["seconds"],
        (g["seconds"] - fixed) / b["seconds"],
        (g["seconds"] - fixed - _training(g)) / b["seconds"],
        b["peak_mib"],
        g["peak_mib"],
        g["peak_mib"] / b["peak_mib"],
    )
    print(f"{n:>10}" + "".join(f"{c:>10.2f}" for c in cells), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    else:
        args = sys.argv[1:]
        repeats = 1
        if "--repeats" in args:
            at = args.index("--repeats")
            repeats = int(args[at + 1])
            del args[at : at + 2]
        main([int(a) for a in args] or [10_000, 100_000, 1_000_000], repeats)
