"""Identifier and high-cardinality columns: refused at load and fit, left out by init.

A 100k-row file with an applicant reference of 100k distinct values once went to a dense
one-hot encoder (``Unable to allocate 41.9 GiB``, exit 1). The file here is the German
credit data repeated to 100k rows plus such a reference: a few MB on disk, and the run
must stop before anything is encoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import (
    CATEGORICAL,
    CREDIT_DATA,
    CREDIT_SUITE,
    EXPENSIVE_RISKS,
    FEATURES,
    make_pipeline,
    run_cli,
    state_env,
)
from risk_assets.errors import DataError
from risk_assets.estimator import (
    MAX_CATEGORIES,
    build_pipeline,
    categorical_columns,
    identifier_reason,
    refuse_identifiers,
)
from risk_assets.profiling import identifier_columns

ROWS = 100_000


def with_reference(credit: pd.DataFrame, rows: int = ROWS) -> pd.DataFrame:
    """The credit data repeated to ``rows`` rows, with a distinct applicant reference each."""
    frame = credit.iloc[np.arange(rows) % len(credit)].reset_index(drop=True)
    frame.insert(0, "applicant_ref", [f"APP-{i:07d}" for i in range(rows)])
    return frame


@pytest.fixture(scope="module")
def big(credit: pd.DataFrame) -> pd.DataFrame:
    return with_reference(credit)


def test_identifier_rule_on_credit_data(credit: pd.DataFrame, big: pd.DataFrame) -> None:
    """The categories of the credit data, and of a bootstrap re-sample, are categories;
    the reference is not, and the reason gives its count."""
    for frame in (credit, credit.sample(frac=1.0, replace=True, random_state=7)):
        assert categorical_columns(frame, FEATURES, ["job"]) == CATEGORICAL
        refuse_identifiers(frame, CATEGORICAL)
        assert identifier_columns(frame, [c for c in frame.columns if c != "risk"]) == {}
    reason = identifier_reason(big["applicant_ref"])
    assert reason is not None and "100,000 distinct values in 100,000 rows" in reason


def test_the_reference_is_refused_naming_column_count_and_key(big: pd.DataFrame) -> None:
    with pytest.raises(DataError) as err:
        refuse_identifiers(big, [*CATEGORICAL, "applicant_ref"])
    message = str(err.value)
    assert "'applicant_ref'" in message
    assert "100,000 distinct values" in message
    assert "`features`" in message and "source.id_column" in message


def test_too_many_categories_refused_even_when_rows_repeat() -> None:
    """More than MAX_CATEGORIES values is a key or free text even at 10 % of the rows."""
    n = (MAX_CATEGORIES + 1) * 10
    frame = pd.DataFrame({"code": [f"c{i % (MAX_CATEGORIES + 1)}" for i in range(n)]})
    with pytest.raises(DataError, match=rf"'code' has {MAX_CATEGORIES + 1:,} distinct"):
        refuse_identifiers(frame, ["code"])
    # one value fewer, each still 10 times: categories
    refuse_identifiers(frame[frame["code"] != f"c{MAX_CATEGORIES}"], ["code"])


def test_fit_refuses_the_reference_before_encoding(big: pd.DataFrame) -> None:
    """Whoever builds the Pipeline directly gets the same refusal from fit, before the
    one-hot encoder runs (a dense encoding here would need about 75 GiB)."""
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 200},
        numeric=["credit_amount", "duration"],
        categorical=[*CATEGORICAL, "applicant_ref"],
    )
    with pytest.raises(DataError, match="'applicant_ref' has 100,000 distinct values"):
        model.fit(big[[*FEATURES, "applicant_ref"]], big["risk"])


def _wide(rows: int = 4000, width: int = 1500, seed: int = 0) -> pd.DataFrame:
    """``width`` categories over ``rows`` rows (each about ``rows / width`` times)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "code": [f"c{i % width}" for i in range(rows)],
            "amount": rng.normal(size=rows),
            "y": rng.integers(0, 2, rows),
        }
    )


def test_one_hot_is_sparse_when_wide_and_the_estimator_accepts_it(credit) -> None:
    """LogisticRegression accepts sparse input: a wide one-hot stays sparse; the credit
    data's narrow one-hot stays dense, as before."""
    import scipy.sparse as sp

    frame = _wide()
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 200},
        numeric=["amount"],
        categorical=["code"],
    ).fit(frame[["code", "amount"]], frame["y"])
    assert sp.issparse(model[:-1].transform(frame[["code", "amount"]]))
    assert model.predict_proba(frame[["code", "amount"]].head()).shape == (5, 2)
    narrow = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=["credit_amount", "duration"],
        categorical=CATEGORICAL,
    ).fit(credit[FEATURES], credit["risk"])
    assert isinstance(narrow[:-1].transform(credit[FEATURES].head()), np.ndarray)


def test_dense_only_estimator_refuses_what_cannot_fit(monkeypatch) -> None:
    """HistGradientBoostingClassifier refuses sparse input: the encoding is dense, and a
    one-hot beyond the dense bound is refused at fit, naming the columns and the sizes."""
    import risk_assets.estimator as estimator

    frame = _wide(rows=1500, width=600)
    make = dict(
        class_path="sklearn.ensemble.HistGradientBoostingClassifier",
        params={"max_iter": 2},
        numeric=["amount"],
        categorical=["code"],
    )
    fitted = build_pipeline(**make).fit(frame[["code", "amount"]], frame["y"])
    assert isinstance(fitted[:-1].transform(frame[["code", "amount"]]), np.ndarray)
    # the bound is read when the Pipeline is built: shrink it below this frame's 6.9 MiB
    monkeypatch.setattr(estimator, "MAX_DENSE_BYTES", 2**20)
    with pytest.raises(
        DataError,
        match=r"\['code'\] one-hot encode to 600 columns over 1,500 rows \(6.9 MiB dense\), "
        r"more than 1.0 MiB",
    ):
        build_pipeline(**make).fit(frame[["code", "amount"]], frame["y"])


def test_run_refuses_the_reference_with_exit_2(
    tmp_path: Path, big: pd.DataFrame, credit: pd.DataFrame
) -> None:
    """The real CLI on the 100k-row file: the data gates pass (the suite knows the column),
    then training refuses it before encoding: exit 2, one message naming the column, its
    count and the spec key, nothing registered. (With the skew gate in the register, the
    serving rows' references, all unseen in training, block the run first, naming the
    column too.)"""
    suite = json.loads(CREDIT_SUITE.read_text())
    suite["expectations"][0]["kwargs"]["column_set"].append("applicant_ref")
    spec = make_pipeline(
        tmp_path / "p",
        data=big,
        suite=suite,
        spec={"features": [*FEATURES, "applicant_ref"]},
        without=(*EXPENSIVE_RISKS, "SKEW-001"),
    )
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), "--json", env=state_env(state))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    # refused when the training split (75 % of the rows) is fitted
    assert (
        "categorical feature 'applicant_ref' has 75,000 distinct values in 75,000 rows "
        "(more than 50% of them): it identifies rows" in payload["error"]
    )
    assert "`features`" in payload["error"]
    assert "Unable to allocate" not in proc.stdout + proc.stderr
    assert "MemoryError" not in proc.stdout + proc.stderr
    assert _registered(state) == []


def _registered(state: Path) -> list:
    from conftest import mlflow_client, registered_versions, using_state

    with using_state(state):
        return registered_versions(mlflow_client())


def test_init_leaves_the_reference_out(tmp_path: Path, big: pd.DataFrame) -> None:
    """init on the 100k-row file writes no feature for the reference and says why; a row
    number column is left out too."""
    data = tmp_path / "applicants.csv"
    frame = big.copy()
    frame.insert(1, "row", np.arange(len(frame)))
    frame.to_csv(data, index=False)
    out = tmp_path / "out"
    proc = run_cli(
        "init",
        str(data),
        "--target",
        "risk",
        "--protected",
        "sex",
        "age",
        "--out",
        str(out),
        env=state_env(tmp_path / "state"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = yaml.safe_load((out / "applicants.yaml").read_text())
    assert "applicant_ref" not in spec["features"]
    assert "row" not in spec["features"]
    assert set(spec["features"]) == set(FEATURES)
    assert "column 'applicant_ref' left out of the features: 100,000 distinct values" in (
        proc.stdout
    )
    assert "column 'row' left out of the features: 100,000 distinct consecutive" in proc.stdout
    suite = json.loads((out / "expectations" / "applicants.json").read_text())
    columns = {e["kwargs"].get("column") for e in suite["expectations"]}
    assert "applicant_ref" not in columns


def test_init_on_the_credit_data_keeps_every_feature(tmp_path: Path) -> None:
    """The bound refuses nothing of the clean credit data."""
    out = tmp_path / "out"
    proc = run_cli(
        "init",
        str(CREDIT_DATA),
        "--target",
        "risk",
        "--protected",
        "sex",
        "age",
        "--out",
        str(out),
        env=state_env(tmp_path / "state"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left out of the features" not in proc.stdout
    spec = yaml.safe_load((out / "german_credit.yaml").read_text())
    assert set(spec["features"]) == set(FEATURES)


def test_privacy_attack_decides_on_a_sparse_pipeline() -> None:
    """The membership-inference control preprocesses only its sampled rows and makes them
    dense; a model whose one-hot is sparse is attacked like any other."""
    from risk_assets.controls._privacy import membership_inference_advantage

    frame = _wide(rows=1200, width=300)
    X, y = frame[["code", "amount"]], frame["y"]
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 200},
        numeric=["amount"],
        categorical=["code"],
    ).fit(X.iloc[:800], y.iloc[:800])
    result = membership_inference_advantage(
        model,
        X.iloc[:800],
        y.iloc[:800],
        X.iloc[800:],
        y.iloc[800:],
        max_advantage=1.0,
        sample_size=200,
    )
    assert result.value is not None and -1.0 <= result.value <= 1.0
    assert result.sample_size == 4 * 200
