"""Generate the monthly demo batches for the `credit_risk_monthly` pipeline.

Run from anywhere, no arguments:

    python pipelines/data/make_monthly.py

Reads ``german_credit.csv`` next to this script and (re)writes ``monthly/``:

* ``applications_2025-MM.csv``: ``application_id`` plus every source column except
  ``risk`` -- the applications that arrive in month MM to be scored;
* ``outcomes_2025-MM.csv``: ``application_id``, ``risk`` -- the delayed labels.

The 1,000 rows are shuffled with ``numpy.random.default_rng(SEED)``, numbered
``A00001`` ... ``A01000`` in shuffled order and split into 12 consecutive batches
(2025-01 ... 2025-12; 84 rows for the first four months, 83 for the rest).

Synthetic drift (applications only, outcomes unchanged) in DRIFT_MONTHS:
larger loans over longer terms -- ``credit_amount * CREDIT_FACTOR`` rounded to an int,
``duration + DURATION_SHIFT`` months capped at ``DURATION_CAP``.

Deterministic: pure pandas/numpy, no clock, fixed seed; running it twice gives the
same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 2025
YEAR = 2025
N_MONTHS = 12
DRIFT_MONTHS = ("2025-10", "2025-11", "2025-12")
CREDIT_FACTOR = 3.0
DURATION_SHIFT = 24
DURATION_CAP = 72

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "german_credit.csv"
OUT_DIR = HERE / "monthly"


def apply_drift(apps: pd.DataFrame) -> pd.DataFrame:
    """Larger loans over longer terms; keeps the integer dtypes of the source."""
    out = apps.copy()
    out["credit_amount"] = np.rint(out["credit_amount"].to_numpy() * CREDIT_FACTOR).astype("int64")
    out["duration"] = np.minimum(out["duration"].to_numpy() + DURATION_SHIFT, DURATION_CAP).astype(
        "int64"
    )
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n")


def main() -> None:
    data = pd.read_csv(SOURCE)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(data))
    data = data.iloc[order].reset_index(drop=True)
    data.insert(0, "application_id", [f"A{i:05d}" for i in range(1, len(data) + 1)])

    feature_cols = [c for c in data.columns if c not in ("application_id", "risk")]
    OUT_DIR.mkdir(exist_ok=True)
    for m, idx in enumerate(np.array_split(np.arange(len(data)), N_MONTHS), start=1):
        month = f"{YEAR}-{m:02d}"
        batch = data.iloc[idx]
        apps = batch[["application_id", *feature_cols]]
        if month in DRIFT_MONTHS:
            apps = apply_drift(apps)
        _write_csv(apps, OUT_DIR / f"applications_{month}.csv")
        _write_csv(batch[["application_id", "risk"]], OUT_DIR / f"outcomes_{month}.csv")
        print(f"{month}: {len(batch)} rows{' (drifted)' if month in DRIFT_MONTHS else ''}")


if __name__ == "__main__":
    main()
