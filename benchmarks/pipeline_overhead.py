"""Overhead of the gated pipeline over the bare `read + fit + predict` of the same estimator.

Builds a data set of N rows by resampling the German credit data (numeric columns
jittered so rows are not copies), then times in one process, one after the other:

- bare: pandas.read_csv, the same sklearn Pipeline fit on 75 %, predict on 25 %;
- gated: `risk-assets run` on the same file with the shipped credit_risk register (every
  data and model gate, each bounded by its policy's sample size; snapshot + hash, split,
  fit, evaluation, MLflow logging, registration), in-process.

Ratios are what to compare (the machine is noisy). Usage, from the repository root:

    .venv/bin/python benchmarks/pipeline_overhead.py 100000 1000000
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int, path: Path) -> None:
    base = pd.read_csv(ROOT / "pipelines" / "data" / "german_credit.csv")
    rng = np.random.default_rng(0)
    df = base.sample(n=n, replace=True, random_state=0).reset_index(drop=True)
    df["credit_amount"] = (df["credit_amount"] * rng.uniform(0.95, 1.05, n)).round().astype(int)
    df["duration"] = np.clip(df["duration"] + rng.integers(-2, 3, n), 4, 72)
    df["age"] = np.clip(df["age"] + rng.integers(-1, 2, n), 19, 75)
    df.to_csv(path, index=False)


def bare(path: Path, spec: dict) -> float:
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
    return time.perf_counter() - t0


def gated(spec_path: Path, state: Path, gate_seconds: dict | None = None) -> float:
    from risk_assets.dagster._runner import run_pipeline

    os.environ["RISK_ASSETS_HOME"] = str(state)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    outcome = run_pipeline(spec_path, log_to_console=False)
    secs = time.perf_counter() - t0
    if outcome.status != "registered":
        raise SystemExit(f"gated run did not register: {json.dumps(outcome.to_json())}")
    if gate_seconds is not None:
        gate_seconds.update({g.name: g.seconds for g in outcome.gates})
    return secs


def main(sizes: list[int]) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    spec = yaml.safe_load((ROOT / "pipelines" / "credit_risk.yaml").read_text())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"{'rows':>9} {'bare s':>8} {'gated s':>8} {'ratio':>6}")
    per_gate: list[tuple[int, dict]] = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="ra-bench-"))
        try:
            data = work / "data.csv"
            make_data(n, data)
            s = dict(
                spec,
                source={"path": str(data)},
                serving_source={
                    "path": str(ROOT / "pipelines" / "data" / "german_credit_serving.csv")
                },
                expectations=str(ROOT / "expectations" / "credit_risk.json"),
                policy=str(ROOT / "pipelines" / "policies" / "credit_risk.yaml"),
            )
            spec_path = work / "credit_risk.yaml"
            spec_path.write_text(yaml.safe_dump(s))
            # a warm-up (imports, MLflow store creation, a first champion), not timed; the
            # timed run then also scores the champion, as every retraining does
            gated(spec_path, work / "state")
            b = bare(data, s)
            seconds: dict = {}
            g = gated(spec_path, work / "state", seconds)
            print(f"{n:>9} {b:>8.2f} {g:>8.2f} {g / b:>6.2f}", flush=True)
            per_gate.append((n, seconds))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print("\nseconds per gate (the control alone, from the check metadata):")
    print(f"{'check':<36}" + "".join(f"{n:>10}" for n, _ in per_gate))
    for check in per_gate[0][1] if per_gate else []:
        print(
            f"{check:<36}"
            + "".join(f"{(secs.get(check) or float('nan')):>10.2f}" for _, secs in per_gate)
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000])
