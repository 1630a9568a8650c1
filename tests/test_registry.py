"""Content addresses, the snapshot store and safe model loading."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import yaml

from risk_assets.data import frame_sha256, split_frame
from risk_assets.errors import IntegrityError
from risk_assets.registry import SnapshotStore, load_model_dir, save_model_dir


def test_frame_hash_is_canonical(credit, tmp_path):
    h = frame_sha256(credit)
    assert len(h) == 64 and h == frame_sha256(credit.copy())
    credit.to_parquet(tmp_path / "c.parquet", index=False)
    assert frame_sha256(pd.read_parquet(tmp_path / "c.parquet")) == h  # format independent
    changed = credit.copy()
    changed.loc[500, "age"] += 1
    assert frame_sha256(changed) != h
    assert frame_sha256(credit[list(reversed(credit.columns))]) != h
    assert frame_sha256(credit.iloc[::-1]) != h
    # "ab" + "c" must not hash like "a" + "bc"
    a = pd.DataFrame({"x": ["ab", "c"]})
    b = pd.DataFrame({"x": ["a", "bc"]})
    assert frame_sha256(a) != frame_sha256(b)
    nulls = pd.DataFrame({"x": [1.0, np.nan]})
    zeros = pd.DataFrame({"x": [1.0, 0.0]})
    assert frame_sha256(nulls) != frame_sha256(zeros)


def test_snapshot_store_verifies_on_read(credit, tmp_path):
    store = SnapshotStore(tmp_path)
    ref = store.put(credit)
    assert ref.sha256 == frame_sha256(credit) and ref.rows == 1000
    pd.testing.assert_frame_equal(store.get(ref), credit, check_dtype=False)
    tampered = credit.copy()
    tampered.loc[0, "credit_amount"] = 1
    tampered.to_parquet(ref.path, index=False)
    with pytest.raises(IntegrityError, match="changed"):
        store.get(ref)


@pytest.mark.alibi  # also under pandas 2, where a shallow copy is no copy
def test_a_verified_snapshot_is_read_once_per_process_and_stays_as_read(
    credit, tmp_path, monkeypatch
):
    """The gates of a run read the same snapshots: the second read comes from memory (no
    parquet read, no hash), a copy a gate may change without changing the next gate's; a
    file rewritten since is read and verified again; RISK_ASSETS_SNAPSHOT_CACHE_MB=0 keeps
    none, and a value that is no size is an error naming the variable."""
    from risk_assets.errors import ConfigError
    from risk_assets.registry import _snapshots

    reads = []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: reads.append(a) or real(*a, **k))
    store = SnapshotStore(tmp_path)
    ref = store.put(credit)
    first = store.get(ref)
    first.loc[0, "credit_amount"] = -1  # a gate changing its copy
    second = store.get(ref)
    assert len(reads) == 1
    pd.testing.assert_frame_equal(second, credit, check_dtype=False)
    tampered = credit.copy()
    tampered.loc[0, "credit_amount"] = 1
    tampered.to_parquet(ref.path, index=False)
    with pytest.raises(IntegrityError, match="changed"):
        store.get(ref)
    assert len(reads) == 2
    credit.to_parquet(ref.path, index=False)
    monkeypatch.setenv(_snapshots.CACHE_ENV, "0")
    store.get(ref)
    store.get(ref)
    assert len(reads) == 4
    monkeypatch.setenv(_snapshots.CACHE_ENV, "lots")
    with pytest.raises(ConfigError, match="RISK_ASSETS_SNAPSHOT_CACHE_MB='lots'"):
        store.get(ref)


def test_split_is_seeded_and_stratified(credit):
    a = split_frame(credit, target="risk", test_size=0.25, seed=7, stratify=True)
    b = split_frame(credit, target="risk", test_size=0.25, seed=7, stratify=True)
    assert frame_sha256(a.test) == frame_sha256(b.test) and a.stratified
    assert len(a.test) == 250
    assert a.test["risk"].mean() == pytest.approx(credit["risk"].mean(), abs=0.005)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, credit):
    from sklearn.ensemble import RandomForestClassifier

    from risk_assets.estimator import build_pipeline

    feats = [c for c in credit.columns if c != "risk"]
    cats = ["sex", "housing", "saving_accounts", "checking_account", "purpose", "job"]
    model = build_pipeline(
        class_path="sklearn.ensemble.RandomForestClassifier",
        params={"n_estimators": 5, "random_state": 0},
        numeric=[c for c in feats if c not in cats],
        categorical=cats,
    ).fit(credit[feats], credit["risk"])
    assert isinstance(model[-1], RandomForestClassifier)
    path = tmp_path_factory.mktemp("m") / "model"
    sha = save_model_dir(model, path, X_sample=credit[feats].head(20))
    return path, sha, model, credit[feats]


def test_model_round_trip(saved_model):
    path, sha, model, X = saved_model
    loaded = load_model_dir(path, expected_sha256=sha)
    assert (loaded.predict(X) == model.predict(X)).all()
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    assert "input_example" not in mlmodel["flavors"]["python_function"]
    assert not list(path.glob("input_example*"))  # no data values travel with the model


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_model_refused(saved_model, tmp_path):
    path, sha, _, _ = saved_model
    copy = _copy(path, tmp_path / "m")
    with open(copy / "model.skops", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match="does not match"):
        load_model_dir(copy, expected_sha256=sha)


def test_pickle_and_escaping_paths_refused(saved_model, tmp_path):
    path, sha, model, _ = saved_model
    copy = _copy(path, tmp_path / "m")
    meta = yaml.safe_load((copy / "MLmodel").read_text())
    meta["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    (copy / "model.pkl").write_bytes(pickle.dumps(model))
    meta["flavors"]["sklearn"]["pickled_model"] = "model.pkl"
    (copy / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(IntegrityError, match="only 'skops'"):
        load_model_dir(copy, expected_sha256=sha)
    meta["flavors"]["sklearn"].update(serialization_format="skops", pickled_model="../../etc/x")
    (copy / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(IntegrityError, match="leaves the model folder"):
        load_model_dir(copy, expected_sha256=sha)
    meta["flavors"]["sklearn"].update(pickled_model="model.skops", code="code")
    (copy / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(IntegrityError, match="code paths"):
        load_model_dir(copy, expected_sha256=sha)


def test_untrusted_type_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from risk_assets.registry._models import MODEL_FILE, file_sha256

    folder = tmp_path / "m"
    folder.mkdir()
    sio.dump(FunctionTransformer(func=os.system), folder / MODEL_FILE)
    (folder / "MLmodel").write_text(
        yaml.safe_dump(
            {"flavors": {"sklearn": {"serialization_format": "skops", "pickled_model": MODEL_FILE}}}
        )
    )
    with pytest.raises(IntegrityError, match="untrusted types"):
        load_model_dir(folder, expected_sha256=file_sha256(folder / MODEL_FILE))


def test_settings_follow_environment(tmp_path, monkeypatch):
    from risk_assets.settings import current_settings

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path / "st"))
    s = current_settings()
    assert s.dagster_home == tmp_path / "st" / "dagster"
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'st' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert current_settings().tracking_uri == "http://127.0.0.1:5000"
    assert current_settings().registry_uri == "http://127.0.0.1:5000"


def test_runs_logging_the_same_snapshot_at_once_all_record_it(tmp_path):
    """MLflow's store inserts a new dataset without a lock: of eight runs logging the same
    snapshot at once on a real store, all but one failed on the unique key (a concurrent
    run on production stores crashed on it). Each run now records it, as one dataset."""
    import threading

    from mlflow import MlflowClient

    from risk_assets.registry._mlflow import log_dataset_inputs, snapshot_dataset_input

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("race")
    runs = [client.create_run(experiment).info.run_id for _ in range(8)]
    ref = SnapshotStore(tmp_path / "snapshots").put(pd.DataFrame({"a": [1, 2, 3]}))
    dataset = snapshot_dataset_input(ref, name="race-train", context="training", origin="x.csv")
    start, errors = threading.Barrier(len(runs)), []

    def log(run_id: str) -> None:
        own = MlflowClient(uri)
        start.wait()
        try:
            log_dataset_inputs(own, run_id, [dataset])
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    digests = {
        tuple(d.dataset.digest for d in client.get_run(r).inputs.dataset_inputs) for r in runs
    }
    assert digests == {(ref.sha256[:36],)}
