"""End to end: the gated pipeline on a real Dagster instance, MLflow store and GX."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import (
    CREDIT_POLICY,
    CREDIT_SPEC,
    make_pipeline,
    mlflow_client,
    registered_versions,
    run_cli,
    using_state,
)
from risk_assets.cli import main
from risk_assets.registry import RunLineage


def _run_json(spec, capsys) -> tuple[int, dict]:
    code = main(["run", str(spec), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def _gates(payload: dict) -> dict[str, dict]:
    return {g["name"]: g for g in payload["gates"]}


def _register(client, run_id, spec, **overrides):
    """Register ``run_id`` through the library's API under the policy and suite of ``spec``."""
    from risk_assets.dagster import load_pipeline
    from risk_assets.registry import register_candidate

    loaded = load_pipeline(spec)
    kwargs = {
        "model_name": "credit_risk",
        "policy": loaded.policy.policy,
        "policy_sha256": loaded.policy.sha256,
        "suite_sha256": loaded.suite_sha256,
        **overrides,
    }
    return register_candidate(client, run_id, **kwargs)


def test_clean_credit_run_registers_champion(clean_run):
    proc = clean_run["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["status"] == "registered"
    assert (payload["model"], payload["version"], payload["aliases"]) == (
        "credit_risk",
        "1",
        ["champion"],
    )
    assert payload["candidate"] == {
        "model": "credit_risk-candidates",
        "version": "1",
        "aliases": ["challenger"],
    }
    policy = yaml.safe_load(CREDIT_POLICY.read_text())
    expected = {r["id"] for r in policy["risks"]}
    gates = _gates(payload)
    assert {g["risk_id"] for g in gates.values()} == expected
    assert all(g["passed"] is True for g in gates.values())
    severity = {r["id"]: r["control"]["severity"] for r in policy["risks"]}
    assert all(g["blocking"] is (severity[g["risk_id"]] == "error") for g in gates.values())
    assert gates["no_protected_proxy_in_top_features"]["blocking"] is False
    assert gates["meets_expectations"]["value"] == 1.0
    perf = next(r for r in policy["risks"] if r["id"] == "PERF-001")
    thresholds = perf["control"]["params"]["thresholds"]
    assert gates["meets_metric_thresholds"]["threshold"] == min(thresholds.values())
    assert (
        gates["meets_metric_thresholds"]["value"] >= gates["meets_metric_thresholds"]["threshold"]
    )
    assert "no champion" in gates["no_worse_than_champion"]["summary"]


def test_lineage_answers_from_mlflow(clean_run):
    proc = run_cli("lineage", "credit_risk@champion", "--json", env=clean_run["env"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    import pandas as pd

    from conftest import CREDIT_DATA, CREDIT_SUITE
    from risk_assets.data import frame_sha256
    from risk_assets.registry import file_sha256

    assert info["data"]["raw_snapshot_sha256"] == frame_sha256(pd.read_csv(CREDIT_DATA))
    assert info["suite_sha256"] == file_sha256(CREDIT_SUITE)
    assert info["policy_sha256"] == file_sha256(CREDIT_POLICY)
    assert info["spec_sha256"] == file_sha256(CREDIT_SPEC)
    assert info["candidate_version"] == "credit_risk-candidates/1"
    assert {g["name"] for g in info["gates"]} == {
        "meets_expectations",
        "pii_free",
        "no_feature_drift",
        "labels_consistent",
        "no_outliers_against_reference",
        "no_training_serving_skew",
        "meets_metric_thresholds",
        "no_worse_than_champion",
        "performs_across_slices",
        "robust_to_perturbation",
        "robust_to_evasion",
        "valid_under_stress",
        "no_membership_leakage",
        "no_protected_proxy_in_top_features",
        "fair_across_sex",
        "fair_across_age",
    }
    assert all(g["passed"] for g in info["gates"])
    assert {d["context"] for d in info["data"]["datasets"]} == {"source", "training", "testing"}
    for d in info["data"]["datasets"]:
        assert len(d["sha256"]) == 64 and d["digest"] == d["sha256"][:36]
    assert info["data"]["split"]["seed"] == "42"
    assert info["run"]["dagster_run_id"] and info["code_version"]
    assert info["registered_by"] and info["promoted_by"]
    human = run_cli("lineage", "credit_risk/1", env=clean_run["env"])
    assert human.returncode == 0 and "meets_metric_thresholds" in human.stdout
    assert info["model_sha256"] in human.stdout


def test_out_of_range_values_blocked_by_expectations(state, tmp_path, credit, capsys):
    bad = credit.copy()
    rows = bad.sample(frac=0.1, random_state=0).index
    bad.loc[rows, "age"] = 500  # impossible ages in 10 % of rows
    spec = make_pipeline(tmp_path / "p", data=bad)
    code, payload = _run_json(spec, capsys)
    assert code == 3 and payload["status"] == "blocked"
    gates = _gates(payload)
    assert gates["meets_expectations"]["passed"] is False
    assert gates["meets_expectations"]["risk_id"] == "DQ-001"
    assert payload["version"] is None and payload["blocked_by"] == ["meets_expectations"]
    # downstream of a failed blocking data gate nothing ran, nothing was registered
    assert gates["meets_metric_thresholds"]["passed"] is None
    assert registered_versions(mlflow_client()) == []
    # no candidate was trained: MLflow holds the refusal run only (test_mlflow_verdicts.py)
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name("credit_risk").experiment_id])
    assert [r.data.tags["risk_assets.verdict"] for r in runs] == ["refused"]
    assert "risk_assets.model_sha256" not in runs[0].data.tags


def test_a_dropped_feature_column_is_blocked_by_the_expectation_suite(
    state, tmp_path, credit, capsys
):
    """The source lost a column the spec lists as a feature: the suite's gate blocks, with
    evidence, instead of the run ending on a data error before any gate."""
    spec = make_pipeline(tmp_path / "p", data=credit.drop(columns=["duration"]))
    code, payload = _run_json(spec, capsys)
    assert code == 3 and payload["blocked_by"] == ["meets_expectations"], payload
    assert "duration" in _gates(payload)["meets_expectations"]["summary"]
    assert registered_versions(mlflow_client()) == []


def test_impossible_threshold_blocked_and_evidence_refuses_registration(state, tmp_path, capsys):
    policy_thr = {"thresholds": {"roc_auc": 0.99, "accuracy": 0.70}}
    spec = make_pipeline(tmp_path / "p", policy={"risk_params": {"PERF-001": policy_thr}})
    code, payload = _run_json(spec, capsys)
    assert code == 3 and payload["blocked_by"] == ["meets_metric_thresholds"], json.dumps(payload)
    gate = _gates(payload)["meets_metric_thresholds"]
    assert gate["passed"] is False and gate["threshold"] == 0.99 and gate["value"] < 0.99
    client = mlflow_client()
    assert registered_versions(client) == []

    # The blocked candidate's run carries the failed evidence; registering it through the
    # library's API, or by materialising registered_model in a later run, is refused.
    from risk_assets.errors import GateEvidenceError

    (run,) = client.search_runs(client.get_experiment_by_name("credit_risk").experiment_id)
    tags = run.data.tags
    assert json.loads(tags["risk_assets.gate.meets_metric_thresholds"])["passed"] is False
    assert run.data.metrics["gate.meets_metric_thresholds.passed"] == 0.0
    with pytest.raises(GateEvidenceError) as err:
        _register(client, run.info.run_id, spec)
    assert err.value.gates == ["meets_metric_thresholds"]

    import dagster as dg

    from risk_assets.dagster import build_definitions

    job = build_definitions([spec]).resolve_job_def("credit_risk_job")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
        asset_selection=[dg.AssetKey(["credit_risk", "registered_model"])],
    )
    # a verdict, not a crash: registered_model withholds itself, naming the failed gate
    assert result.success and not [e for e in result.all_events if e.is_step_failure]
    assert not result.get_asset_materialization_events()
    (observation,) = result.get_asset_observation_events()
    described = observation.asset_observation_data.asset_observation.description
    assert "candidate_model: meets_metric_thresholds [PERF-001] failed" in described
    assert registered_versions(client) == []


def test_worse_challenger_blocked_by_champion_gate(clean_run, tmp_path, capsys):
    assert clean_run["proc"].returncode == 0
    spec = make_pipeline(
        tmp_path / "worse",
        spec={
            "estimator": {"class": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
        },
        # only the champion gate is meant to stop it: the other model gates are relaxed
        policy={
            "risk_params": {
                "PERF-001": {"thresholds": {"roc_auc": 0.5, "accuracy": 0.6}},
                "PERF-003": {"metric": "accuracy", "min_value": 0.0},
            }
        },
    )
    with using_state(clean_run["state"]):
        client = mlflow_client()
        before = registered_versions(client)
        code, payload = _run_json(spec, capsys)
        after = registered_versions(client)
    assert code == 3 and payload["blocked_by"] == ["no_worse_than_champion"]
    gates = _gates(payload)
    assert gates["meets_metric_thresholds"]["passed"] is True
    champ = gates["no_worse_than_champion"]
    assert champ["passed"] is False and champ["threshold"] == -0.02
    assert champ["value"] < -0.2  # a constant scorer has ROC AUC 0.5 against the champion's ~0.77
    assert "credit_risk/1" in champ["summary"]
    assert before == after and ("credit_risk", "1") in after


def test_registration_refuses_tampered_model_and_other_policy(clean_run, tmp_path):
    from risk_assets.errors import GateEvidenceError, IntegrityError
    from risk_assets.registry._mlflow import candidates_name

    with using_state(clean_run["state"]):
        client = mlflow_client()
        mv = client.get_model_version_by_alias(candidates_name("credit_risk"), "challenger")
        # The same candidate under another policy: its evidence does not count.
        other = make_pipeline(
            tmp_path / "p",
            policy={"risk_params": {"PERF-002": {"metric": "roc_auc", "tolerance": 0.05}}},
        )
        with pytest.raises(GateEvidenceError, match="not the policy in force"):
            _register(client, mv.run_id, other)
        # A changed model artefact is refused by its hash.
        run = client.get_run(mv.run_id)
        from pathlib import Path
        from urllib.parse import urlparse

        lineage = RunLineage.from_tags(run.data.tags)
        location = client.get_logged_model(lineage.logged_model_id).artifact_location
        model_file = Path(urlparse(location).path) / "model.skops"
        original = model_file.read_bytes()
        try:
            model_file.write_bytes(original + b"\0")
            with pytest.raises(IntegrityError, match="SHA-256"):
                _register(client, mv.run_id, CREDIT_SPEC)
        finally:
            model_file.write_bytes(original)
        # Unchanged, the same call is idempotent: it returns the existing versions.
        reg = _register(client, mv.run_id, CREDIT_SPEC)
        assert (reg.candidate_version, reg.version) == (str(mv.version), "1")


def test_champion_that_cannot_score_fails_closed(clean_run, tmp_path, capsys):
    spec = make_pipeline(
        tmp_path / "fewer",
        spec={
            "features": ["duration", "credit_amount", "age"],
            "categorical_features": [],
            "slices": [],
        },
    )
    suite = json.loads((tmp_path / "fewer" / "suite.json").read_text())
    suite["expectations"] = [
        e
        for e in suite["expectations"]
        if e["type"] != "expect_table_columns_to_match_set"
        and e["kwargs"].get("column") in (None, "risk", "duration", "credit_amount", "age")
    ]
    (tmp_path / "fewer" / "suite.json").write_text(json.dumps(suite))
    with using_state(clean_run["state"]):
        code, payload = _run_json(spec, capsys)
    gate = _gates(payload)["no_worse_than_champion"]
    assert code == 3 and gate["passed"] is False
    assert gate["summary"].startswith("could not decide")


def test_init_on_unseen_csv_produces_a_pipeline_that_runs(state, tmp_path, capsys):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    rng = np.random.default_rng(0)
    df["sex"] = rng.choice(["female", "male"], size=len(df))
    data = tmp_path / "incoming" / "tumours.csv"
    data.parent.mkdir()
    df.to_csv(data, index=False)
    out = tmp_path / "pipelines"
    code = main(["init", str(data), "--target", "target", "--protected", "sex", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "risk-assets run" in text
    spec = out / "tumours.yaml"
    assert spec.is_file() and (out / "expectations" / "tumours.json").is_file()
    suite = json.loads((out / "expectations" / "tumours.json").read_text())
    kinds = {e["type"] for e in suite["expectations"]}
    assert {
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_null",
    } <= kinds
    code, payload = _run_json(spec, capsys)
    assert code == 0 and payload["status"] == "registered", payload
    # the default tier registers a challenger that waits for approval: no champion yet
    assert (payload["model"], payload["version"]) == ("tumours-candidates", "1")
    assert payload["aliases"] == ["challenger"]
    # the default register init writes covers the catalogue, and every gate ran and passed
    assert {g["name"] for g in payload["gates"]} == {
        "meets_expectations",
        "pii_free",
        "no_feature_drift",
        "labels_consistent",
        "no_outliers_against_reference",
        "meets_metric_thresholds",
        "no_worse_than_champion",
        "valid_under_stress",
        "robust_to_perturbation",
        "robust_to_evasion",
        "no_membership_leakage",
        "performs_across_slices",
        "fair_across_sex",
    }
    assert all(g["passed"] for g in payload["gates"])
    # init refuses to overwrite what it wrote
    assert main(["init", str(data), "--target", "target", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_promotion_only_past_the_champion_the_gate_compared_with(state, tmp_path, capsys):
    """A candidate gated against champion v1 is not promoted once v2 has become champion."""
    import dagster as dg

    from risk_assets.dagster import build_definitions

    spec = make_pipeline(tmp_path / "p")
    assert _run_json(spec, capsys)[0] == 0  # champion credit_risk/1
    job = build_definitions([spec]).resolve_job_def("credit_risk_job")
    upto_candidate = [
        dg.AssetKey(["credit_risk", n])
        for n in ("raw_snapshot", "validated_data", "train_test_split", "candidate_model")
    ]
    partial = job.execute_in_process(
        instance=dg.DagsterInstance.get(), asset_selection=upto_candidate
    )
    evaluations = {e.check_name: e for e in partial.get_asset_check_evaluations()}
    assert evaluations["no_worse_than_champion"].passed
    client = mlflow_client()
    (late_run,) = [
        r
        for r in client.search_runs(client.get_experiment_by_name("credit_risk").experiment_id)
        if r.data.tags.get("dagster.run_id") == partial.run_id
    ]
    assert _run_json(spec, capsys)[0] == 0  # champion moves on to credit_risk/2
    assert str(client.get_model_version_by_alias("credit_risk", "champion").version) == "2"
    reg = _register(client, late_run.info.run_id, spec)
    assert reg.version is None and reg.aliases == ["challenger"]
    assert "compared with credit_risk/1" in reg.note and "credit_risk/2" in reg.note
    assert str(client.get_model_version_by_alias("credit_risk", "champion").version) == "2"


def test_stale_suite_evidence_does_not_count(state, tmp_path, capsys):
    """Data-gate evidence made under another suite is not carried into a new candidate."""
    from risk_assets.errors import GateEvidenceError

    spec = make_pipeline(
        tmp_path / "p", policy={"risk_params": {"PERF-001": {"thresholds": {"roc_auc": 0.99}}}}
    )
    assert _run_json(spec, capsys)[0] == 3  # blocked: only to get a gated run on record
    client = mlflow_client()
    (run,) = client.search_runs(client.get_experiment_by_name("credit_risk").experiment_id)
    with pytest.raises(GateEvidenceError, match="not the suite in force"):
        _register(client, run.info.run_id, spec, suite_sha256="0" * 64)


def test_unreachable_registry_is_not_no_champion(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from risk_assets.registry import find_champion

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    client = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with pytest.raises(MlflowException):
        find_champion(client, "credit_risk")


def test_policy_show_lists_the_register_with_last_results(state, tmp_path, capsys):
    spec = make_pipeline(tmp_path / "p")
    assert main(["policy", "show", str(spec), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["last_run"] is None
    assert {r["last_result"] for r in before["risks"]} == {None}
    assert _run_json(spec, capsys)[0] == 0
    assert main(["policy", "show", str(spec), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    policy = yaml.safe_load((tmp_path / "p" / "policy.yaml").read_text())
    assert [r["id"] for r in doc["risks"]] == [r["id"] for r in policy["risks"]]
    fair = next(r for r in doc["risks"] if r["id"] == "FAIR-001")
    assert fair["checks"] == ["fair_across_sex", "fair_across_age"]
    assert fair["score"] == fair["likelihood"] * fair["impact"] and fair["rating"] == "high"
    assert all(r["last_result"] == "passed" for r in doc["risks"]) and doc["last_run"]
    assert main(["policy", "show", str(spec)]) == 0
    human = capsys.readouterr().out
    assert "FAIR-001" in human and "never run" not in human
