"""Power and false alarms of the drift gate (DRIFT-001) against SciPy and Evidently.

    .venv/bin/python benchmarks/drift_power.py [--trials 100] [--fault-trials 30]

Per data set and trial (seeded): the reference is a random 75 % split of the data set (a
champion's training data); the current frame is another random 75 % split (a retraining on
a re-sample), or a bootstrap of the whole data set, and a fault is injected into one
feature picked at random (seeded) among those it applies to:

- ``shift k sd``: the feature plus k standard deviations (of the whole column),
- ``scale 1.5x``: the feature spread 1.5 times about its median,
- ``category move``: 20 % of the rows of the column's most frequent category moved to
  another of its categories (picked at random),
- ``clean``: no fault (false alarms); ``clean fresh draw`` (generated data only): the
  current frame is a new seeded draw of the generator, no row shared with the reference.

Detection rate = share of trials whose verdict is "drift". Methods:

- ``gate``: ``feature_drift`` with the ``DriftParams`` defaults (the new rule),
- ``gate a=.05``: the same rule at alpha 0.05 (the peers' level), read off the same table,
- ``gate (PSI)``: the earlier rule on the same p-values (Holm-adjusted p < alpha and
  PSI >= 0.1),
- ``scipy``: KS (numbers) / chi-squared (categories), Bonferroni at 0.05,
- ``evidently``: Evidently's ``DataDriftPreset`` with its defaults, read two ways: any
  column drifted (``ev any``) and the preset's data set verdict (drifted share >= 0.5,
  ``ev set``). Run in its own environment (``.venv-evidently``, Evidently needs numpy 2 and
  its own pins) through ``benchmarks/_evidently_drift.py``; skipped, saying why, when that
  environment is absent.

Data sets: ``generated`` (seeded, 4,000 rows: lumpy / mostly-zero counts, log-normal incomes with
missing values, a normal score, whole-month tenures; categoricals with 3, 8 and 30 levels
and skewed shares) and scikit-learn's breast cancer set tune the thresholds; the German
credit data (pipelines/data) and scikit-learn's diabetes set (``sex`` as a category) are
held out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from risk_assets.catalogue._data import drift_against  # noqa: E402
from risk_assets.catalogue.params import DriftParams  # noqa: E402

EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
EVIDENTLY_SCRIPT = Path(__file__).with_name("_evidently_drift.py")

FAULTS = [
    "clean",
    "clean bootstrap",
    "clean fresh draw",
    "shift 0.25 sd",
    "shift 0.5 sd",
    "shift 1 sd",
    "scale 1.5x",
    "category move",
]


# -- data sets ----------------------------------------------------------------------------


def generated(rows: int = 4000, seed: int = 7) -> pd.DataFrame:
    """Seeded mixed data: lumpy, mostly-zero, skewed and many-level columns."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.3, sigma=0.7, size=rows).round(-2)
    income[rng.random(rows) < 0.08] = np.nan
    mostly_zero = np.where(rng.random(rows) < 0.85, 0, rng.poisson(2.0, rows) + 1).astype(float)
    tenure = (rng.integers(1, 9, rows) * 12 - rng.choice([0, 6], rows, p=[0.8, 0.2])).astype(float)
    zipf = 1.0 / np.arange(1, 31) ** 1.1
    return pd.DataFrame(
        {
            "income": income,
            "past_defaults": mostly_zero,
            "tenure_months": tenure,
            "score": rng.normal(600, 50, rows).round(),
            "region": rng.choice(["north", "south", "east"], rows, p=[0.6, 0.3, 0.1]),
            "product": rng.choice(
                [f"p{i}" for i in range(8)], rows, p=np.array([8, 6, 3, 2, 1, 1, 0.5, 0.5]) / 22
            ),
            "branch": rng.choice([f"b{i:02d}" for i in range(30)], rows, p=zipf / zipf.sum()),
        }
    )


def datasets() -> dict[str, tuple[pd.DataFrame, list[str], list[str], str]]:
    """name -> (frame, numeric, categorical, role)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    gen = generated()
    cancer = load_breast_cancer(as_frame=True).data
    diabetes = load_diabetes(as_frame=True, scaled=False).data
    diabetes["sex"] = diabetes["sex"].astype(int).astype(str)
    credit = pd.read_csv(ROOT / "pipelines" / "data" / "german_credit.csv").drop(columns="risk")
    credit_cat = ["sex", "job", "housing", "saving_accounts", "checking_account", "purpose"]
    return {
        "generated": (gen, ["income", "past_defaults", "tenure_months", "score"],
                      ["region", "product", "branch"], "tuned"),
        "breast_cancer": (cancer, list(cancer.columns), [], "tuned"),
        "german_credit": (credit, ["credit_amount", "duration", "age"], credit_cat, "held out"),
        "diabetes": (diabetes, [c for c in diabetes.columns if c != "sex"], ["sex"], "held out"),
    }  # fmt: skip


# -- faults -------------------------------------------------------------------------------


def trial(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    fault: str,
    seed: int,
    *,
    fresh: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """(reference, current, faulted column) of one seeded trial; None if the fault does not
    apply to the data set (no categorical column; no generator for a fresh draw)."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    reference = frame.iloc[rng.permutation(n)[: int(0.75 * n)]].reset_index(drop=True)
    if fault == "clean fresh draw":
        # rows the reference has never seen, from the same population: p-values are not
        # helped by shared rows, as they are in the re-samples
        if not fresh:
            return None
        return reference, generated(rows=len(reference), seed=10_000 + seed), ""
    if fault == "clean bootstrap":
        return reference, frame.iloc[rng.integers(0, n, n)].reset_index(drop=True), ""
    current = frame.iloc[rng.permutation(n)[: int(0.75 * n)]].reset_index(drop=True)
    if fault == "clean":
        return reference, current, ""
    if fault == "category move":
        if not categorical:
            return None
        col = categorical[rng.integers(len(categorical))]
        counts = frame[col].value_counts()
        top = counts.index[0]
        to = counts.index[1:][rng.integers(len(counts) - 1)]
        rows = np.flatnonzero((current[col] == top).to_numpy())
        moved = rng.choice(rows, size=round(0.2 * len(rows)), replace=False)
        current.loc[moved, col] = to
        return reference, current, col
    col = numeric[rng.integers(len(numeric))]
    values = current[col].astype(float)
    if fault.startswith("shift"):
        current[col] = values + float(fault.split()[1]) * frame[col].std()
    elif fault == "scale 1.5x":
        median = frame[col].median()
        current[col] = median + 1.5 * (values - median)
    else:
        raise ValueError(fault)
    return reference, current, col


# -- methods ------------------------------------------------------------------------------


def gate_verdicts(ref, cur, numeric, categorical, params: DriftParams) -> dict[str, bool]:
    """The new rule (defaults) and the earlier PSI rule read off the same table."""
    # the gate's own call, as the pipeline makes it
    result = drift_against(params, ref, cur, [*numeric, *categorical], list(categorical), seed=0)
    psi_rule = any(r["p_adjusted"] < params.alpha and r["psi"] >= 0.1 for r in result.table)
    at_05 = any(
        r["p_adjusted"] < 0.05 and r["effect"] >= r["effect_threshold"] for r in result.table
    )
    return {"gate": not result.passed, "gate a=.05": at_05, "gate (PSI)": psi_rule}


def scipy_verdict(ref, cur, numeric, categorical, alpha: float = 0.05) -> bool:
    """KS / chi-squared per feature, Bonferroni over the features."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful")
        p = [stats.ks_2samp(ref[c].dropna(), cur[c].dropna()).pvalue for c in numeric]
    for c in categorical:
        table = pd.crosstab(
            np.r_[np.zeros(len(ref)), np.ones(len(cur))],
            np.r_[ref[c].astype(str), cur[c].astype(str)],
        )
        p.append(stats.chi2_contingency(table.to_numpy())[1])
    return bool(min(p) * len(p) < alpha)


def evidently_verdicts(jobs: list[dict], workdir: Path) -> list[dict] | str:
    """Evidently's verdicts for a list of jobs, or why it was skipped."""
    if not EVIDENTLY_PYTHON.exists():
        return (
            "Evidently skipped: no .venv-evidently (python3.11 -m venv .venv-evidently && "
            ".venv-evidently/bin/pip install evidently 'pandas<3' scikit-learn pyarrow)"
        )
    manifest = workdir / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    out = workdir / "verdicts.json"
    proc = subprocess.run(
        [str(EVIDENTLY_PYTHON), str(EVIDENTLY_SCRIPT), str(manifest), str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return f"Evidently failed: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(out.read_text())


# -- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per clean scenario")
    parser.add_argument("--fault-trials", type=int, default=30, help="trials per fault")
    parser.add_argument("--no-evidently", action="store_true")
    args = parser.parse_args()
    params = DriftParams()
    started = time.perf_counter()
    rates: dict[tuple[str, str], dict[str, list[bool]]] = {}
    jobs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, (frame, numeric, categorical, _role) in datasets().items():
            for fault in FAULTS:
                n = args.trials if fault.startswith("clean") else args.fault_trials
                cell = rates.setdefault((name, fault), {})
                print(f"{time.perf_counter() - started:5.0f} s  {name}: {fault}", file=sys.stderr)
                for t in range(n):
                    made = trial(
                        frame,
                        numeric,
                        categorical,
                        fault,
                        seed=1000 * t + 17,
                        fresh=name == "generated",
                    )
                    if made is None:
                        break
                    ref, cur, _ = made
                    for method, drift in gate_verdicts(
                        ref, cur, numeric, categorical, params
                    ).items():
                        cell.setdefault(method, []).append(drift)
                    cell.setdefault("scipy", []).append(
                        scipy_verdict(ref, cur, numeric, categorical)
                    )
                    if not args.no_evidently:
                        stem = workdir / f"{len(jobs)}"
                        ref.to_parquet(f"{stem}-ref.parquet")
                        cur.to_parquet(f"{stem}-cur.parquet")
                        jobs.append(
                            {
                                "reference": f"{stem}-ref.parquet",
                                "current": f"{stem}-cur.parquet",
                                "numeric": numeric,
                                "categorical": categorical,
                                "cell": [name, fault],
                            }
                        )
        ours = time.perf_counter() - started
        note = "Evidently skipped: --no-evidently"
        if not args.no_evidently:
            got = evidently_verdicts(jobs, workdir)
            if isinstance(got, str):
                note = got
            else:
                note = ""
                for job, verdict in zip(jobs, got, strict=True):
                    cell = rates[tuple(job["cell"])]
                    cell.setdefault("ev any", []).append(verdict["any_column"])
                    cell.setdefault("ev set", []).append(verdict["dataset"])
    total = time.perf_counter() - started
    methods = ["gate", "gate a=.05", "gate (PSI)", "scipy", "ev any", "ev set"]
    roles = {name: role for name, (*_, role) in datasets().items()}
    print(
        f"drift gate defaults: alpha {params.alpha}, min_numeric_distance "
        f"{params.min_numeric_distance} (KS), min_category_distance "
        f"{params.min_category_distance} (TV)"
    )
    print(f"trials: {args.trials} per clean scenario, {args.fault_trials} per fault")
    for role in ("tuned", "held out"):
        print(f"\n### {role}\n")
        print("| data set | fault | N | " + " | ".join(methods) + " |")
        print("|---|---|---:|" + "---:|" * len(methods))
        for (name, fault), cell in rates.items():
            if roles[name] != role or not cell:
                continue
            n = len(cell["gate"])
            shown = [f"{100 * np.mean(cell[m]):.0f} %" if m in cell else "-" for m in methods]
            print(f"| {name} | {fault} | {n} | " + " | ".join(shown) + " |")
    if note:
        print(f"\n{note}")
    print(
        f"\nrun time {total:.0f} s (gate and scipy {ours:.0f} s) on {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
