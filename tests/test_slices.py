"""The slices gate: a segment whose accuracy collapses blocks; the clean model passes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from conftest import make_pipeline, mlflow_client, policy_params, registered_versions
from risk_assets.cli import main
from risk_assets.controls._slices import performs_across_slices


def _params() -> dict:
    return policy_params("PERF-003")


def test_control_judges_segments_and_gap():
    y = np.array([1] * 50 + [0] * 50)
    seg = pd.Series(["a"] * 50 + ["b"] * 50)
    perfect = performs_across_slices(
        y, y, {"s": seg}, metric="accuracy", min_value=0.6, max_gap=0.1, min_slice_size=20
    )
    assert perfect.passed and perfect.value == 1.0
    pred = y.copy()
    pred[50:80] = 1  # segment b: 20 of 50 right
    bad = performs_across_slices(
        y, pred, {"s": seg}, metric="accuracy", min_value=0.6, max_gap=0.1, min_slice_size=20
    )
    assert not bad.passed and bad.value == 0.4
    assert "s=b accuracy 0.400 < 0.600" in bad.summary and "gap 0.600 > 0.100" in bad.summary
    small = performs_across_slices(
        y, pred, {"s": seg}, metric="accuracy", min_value=0.6, max_gap=None, min_slice_size=60
    )
    assert not small.passed and small.summary.startswith("could not decide")


def test_segment_collapse_blocks_the_pipeline(state, tmp_path, credit, capsys):
    # For renters the labels follow the opposite of the book-wide relation (longer loans
    # marked good): a linear model fitted on the whole book gets renters mostly wrong.
    bad = credit.copy()
    renters = bad["housing"] == "rent"
    bad.loc[renters, "risk"] = (bad.loc[renters, "duration"] > 18).astype(int)
    spec = make_pipeline(tmp_path / "p", data=bad)
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gate = {g["name"]: g for g in payload["gates"]}["performs_across_slices"]
    assert code == 3 and "performs_across_slices" in payload["blocked_by"], payload["blocked_by"]
    assert gate["risk_id"] == "PERF-003" and gate["value"] < _params()["min_value"]
    assert "housing=rent accuracy" in gate["summary"]
    assert registered_versions(mlflow_client()) == []
