"""The training/serving skew gate: a category that vanished at scoring blocks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from conftest import (
    CREDIT_SERVING,
    make_pipeline,
    mlflow_client,
    policy_params,
    registered_versions,
)
from risk_assets.cli import main
from risk_assets.controls._skew import training_serving_skew

NUMERIC = ["credit_amount", "duration"]
CATEGORICAL = ["job", "housing", "saving_accounts", "checking_account", "purpose"]


def _params() -> dict:
    return policy_params("SKEW-001")


def _check(credit, serving):
    return training_serving_skew(
        credit, serving, numeric=NUMERIC, categorical=CATEGORICAL, **_params()
    )


def test_shipped_serving_sample_matches_training(credit):
    result = _check(credit, pd.read_csv(CREDIT_SERVING))
    assert result.passed and result.sample_size == 300


def test_each_kind_of_skew(credit):
    serving = pd.read_csv(CREDIT_SERVING)
    vanished = _check(credit, serving[serving["purpose"] != "car"])
    assert not vanished.passed and "purpose: 1 training category vanished" in vanished.summary
    unseen = _check(credit, serving.assign(housing="houseboat"))
    assert not unseen.passed and "housing: 100.0% of serving rows have unseen" in unseen.summary
    wide = serving.copy()
    wide.loc[wide.index[:30], "credit_amount"] = 10**6
    out = _check(credit, wide)
    assert not out.passed and "credit_amount: 10.0% of serving values outside" in out.summary
    missing = _check(credit, serving.drop(columns=["duration"]))
    assert not missing.passed and "duration: missing at serving" in missing.summary
    gappy = serving.astype({"job": "float64"})
    gappy.loc[gappy.index[0], "job"] = np.nan  # 2.0 is still the category 2
    assert not _check(credit, gappy).passed  # "missing" is unseen in training


def test_vanished_category_blocks_the_pipeline(state, tmp_path, capsys):
    serving = pd.read_csv(CREDIT_SERVING)
    spec = make_pipeline(tmp_path / "p", serving=serving[serving["purpose"] != "car"])
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gate = {g["name"]: g for g in payload["gates"]}["no_training_serving_skew"]
    assert code == 3 and payload["blocked_by"] == ["no_training_serving_skew"]
    assert gate["risk_id"] == "SKEW-001" and "purpose" in gate["summary"]
    assert registered_versions(mlflow_client()) == []
