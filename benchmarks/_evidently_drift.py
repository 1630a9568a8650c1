"""Evidently's data-drift preset on (reference, current) pairs, for drift_power.py.

Runs in its own environment (Evidently needs its own pins, e.g. pandas < 3):

    .venv-evidently/bin/python benchmarks/_evidently_drift.py jobs.json verdicts.json

``jobs.json`` lists {reference, current (parquet paths), numeric, categorical}; the output
lists, per job, whether any column drifted (``any_column``) and the preset's data set
verdict (drifted share >= 0.5, ``dataset``), with Evidently's default tests and thresholds.

The full ``Report([DataDriftPreset()])`` takes 1 to 5 s a pair here (it renders a widget per
column), too slow for hundreds of trials on two cores. The default path calls what the
preset calls per column instead: Evidently's own default-test choice
(``get_stattest(..., None)``: KS / chi-squared / Z for up to 1,000 reference rows,
Wasserstein / Jensen-Shannon above) with its default thresholds, on the non-missing
values. ``--report`` runs the full preset, to check that both agree.
"""

from __future__ import annotations

import json
import sys
import warnings

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def verdict(job: dict) -> dict:
    definition = DataDefinition(
        numerical_columns=job["numeric"], categorical_columns=job["categorical"]
    )
    columns = [*job["numeric"], *job["categorical"]]
    ref = pd.read_parquet(job["reference"])[columns]
    cur = pd.read_parquet(job["current"])[columns]
    for col in job["categorical"]:
        ref[col], cur[col] = ref[col].astype(str), cur[col].astype(str)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    counted = next(
        m for m in snapshot.dict()["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")
    )
    return {
        "any_column": counted["value"]["count"] >= 1,
        "dataset": counted["value"]["share"] >= counted["config"]["drift_share"],
    }


def column_tests(job: dict) -> dict:
    """The preset's per-column verdicts through Evidently's stattest registry."""
    import numpy as np
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    ref = pd.read_parquet(job["reference"])
    cur = pd.read_parquet(job["current"])
    drifted = []
    for col, kind in [(c, ColumnType.Numerical) for c in job["numeric"]] + [
        (c, ColumnType.Categorical) for c in job["categorical"]
    ]:
        r, c = ref[col], cur[col]
        if kind == ColumnType.Categorical:
            r, c = r.astype(str), c.astype(str)
        else:
            r = r.replace([-np.inf, np.inf], np.nan).dropna()
            c = c.replace([-np.inf, np.inf], np.nan).dropna()
        test = get_stattest(r, c, kind, None)
        drifted.append(bool(test(r, c, kind, None).drifted))
    return {"any_column": any(drifted), "dataset": float(np.mean(drifted)) >= 0.5}


def main() -> None:
    full = "--report" in sys.argv
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    jobs = json.loads(open(paths[0]).read())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = [(verdict if full else column_tests)(job) for job in jobs]
    with open(paths[1], "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
