"""Shared object storage: an S3 API on loopback (moto's server, a process of its own)
holds what is a file on the embedded defaults: the data snapshots, the gate evidence
beside them, the asset values (``RISK_ASSETS_OBJECT_STORE=s3://...``) and MLflow's
artefacts (an ``mlflow server --artifacts-destination s3://...``). Nothing of a run is
then kept on the machine that ran it but scratch."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from services import mlflow_server, s3_server

from conftest import make_pipeline, run_cli, state_env
from risk_assets.errors import IntegrityError
from risk_assets.registry import SnapshotStore
from risk_assets.storage import StorageError

BUCKET = "risk-assets"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server(BUCKET) as env:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            yield env


def _client(env):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])


def _keys(env, prefix: str) -> list[str]:
    pages = _client(env).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_snapshots_and_evidence_round_trip_through_s3_and_are_verified(s3, credit):
    store = SnapshotStore(f"s3://{BUCKET}/unit/snapshots")
    frame = credit.head(200)
    ref = store.put(frame)
    assert ref.path.startswith(f"s3://{BUCKET}/unit/snapshots/frames/")
    pd.testing.assert_frame_equal(store.get(ref), frame.reset_index(drop=True))
    store.put_evidence(ref.sha256, "pii_free", {"passed": True})
    assert store.get_evidence(ref.sha256, "pii_free") == {"passed": True}
    assert store.get_evidence(ref.sha256, "no_such_gate") is None

    # a snapshot changed behind the store's back is refused when read
    key = ref.path[len(f"s3://{BUCKET}/") :]
    _client(s3).put_object(Bucket=BUCKET, Key=key, Body=b"not the snapshot")
    with pytest.raises((IntegrityError, OSError, ValueError)) as info:
        SnapshotStore(f"s3://{BUCKET}/unit/snapshots").get(ref)
    assert ref.sha256 in str(info.value) or "parquet" in str(info.value).lower()


def test_a_missing_bucket_is_a_clear_error_naming_the_location(s3, credit):
    store = SnapshotStore("s3://no-such-bucket/state/snapshots")
    with pytest.raises(StorageError) as info:
        store.put(credit.head(5))
    message = str(info.value)
    assert "s3://no-such-bucket/state/snapshots" in message
    assert "RISK_ASSETS_OBJECT_STORE" in message


def test_the_pipeline_keeps_its_files_in_the_object_store(s3, tmp_path):
    """The whole gated pipeline with every file of a run in S3: snapshots, evidence and asset
    values through RISK_ASSETS_OBJECT_STORE; the model and gate artefacts through the
    mlflow server's S3 destination."""
    with mlflow_server(
        f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlflow", f"s3://{BUCKET}/mlflow"
    ) as uri:
        env = {
            **state_env(tmp_path / "state"),
            **s3,
            "MLFLOW_TRACKING_URI": uri,
            "RISK_ASSETS_OBJECT_STORE": f"s3://{BUCKET}/state",
        }
        spec = make_pipeline(tmp_path / "p")
        run = run_cli("run", str(spec), "--json", env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        outcome = json.loads(run.stdout.splitlines()[-1])
        assert outcome["aliases"] == ["champion"]
        assert all(g["passed"] for g in outcome["gates"] if g["blocking"]), outcome["gates"]

        snapshots = _keys(s3, "state/snapshots/frames/")
        evidence = _keys(s3, "state/snapshots/evidence/")
        values = _keys(s3, "state/io/")
        assert len(snapshots) >= 2  # the raw and the validated snapshot
        assert any(k.endswith("/pii_free.json") for k in evidence), evidence
        assert any("/registered_model/" in k for k in values), values
        assert any(k.endswith("model.skops") for k in _keys(s3, "mlflow/")), "model not in S3"

        # the CLI finds everything again through the server and the store
        lineage = run_cli("lineage", "credit_risk@champion", "--json", env=env)
        assert lineage.returncode == 0, lineage.stderr[-3000:]
        info = json.loads(lineage.stdout)
        assert info["audit"]["warnings"] == [], info["audit"]

    state = tmp_path / "state"
    assert not (state / "snapshots").exists() and not (state / "io").exists()
    assert not (tmp_path / "mlflow" / "artifacts").exists()
