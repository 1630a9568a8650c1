"""What MLflow and Dagster show about a run tells the truth: one tag per risk over all its
checks, a verdict (registered, awaiting approval, blocked, refused) with MLflow's status and
description, a refusal run for data a blocking data gate stopped, links between the UIs,
and monitoring checks that say they do not block."""

from __future__ import annotations

import json
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest

from conftest import (
    PIPELINES,
    make_pipeline,
    mlflow_client,
    registered_versions,
    run_cli,
    using_state,
)
from risk_assets.registry import GateRecord, RunLineage, RunVerdict, log_gate, risk_summary
from risk_assets.registry._mlflow import gate_records

MLFLOW_UI = "http://mlflow.example:5000"
DAGSTER_UI = "http://dagster.example:3000"


def _record(check: str, passed: bool, *, risk_id: str = "FAIR-001") -> GateRecord:
    return GateRecord(
        check=check,
        risk_id=risk_id,
        asset="candidate_model",
        blocking=True,
        passed=passed,
        value=0.9 if passed else 0.5,
        threshold=0.8,
        summary=f"{check} {'passed' if passed else 'failed'}",
        subject_sha256="9" * 64,
        policy_sha256="1" * 64,
    )


def test_the_risk_tag_summarises_every_check_of_the_risk(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment(
        "credit_risk", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    run_id = client.create_run(experiment_id).info.run_id

    def tag() -> str:
        return client.get_run(run_id).data.tags["risk_assets.risk.FAIR-001"]

    log_gate(client, run_id, _record("fair_across_age", False))
    assert tag() == "FAILED: fair_across_age"
    # the check logged last passed: the risk still failed, and the tag names the failed check
    log_gate(client, run_id, _record("fair_across_sex", True))
    assert tag() == "FAILED: fair_across_age; passed: fair_across_sex"
    log_gate(client, run_id, _record("pii_free", True, risk_id="PRIV-001"))
    assert tag() == "FAILED: fair_across_age; passed: fair_across_sex"
    assert client.get_run(run_id).data.tags["risk_assets.risk.PRIV-001"] == "passed: pii_free"
    # the same check evaluated again (a later run of the check) replaces its own record only
    log_gate(client, run_id, _record("fair_across_age", True))
    assert tag() == "passed: fair_across_age, fair_across_sex"
    records = gate_records(client.get_run(run_id))
    assert risk_summary(records, "FAIR-001") == tag()
    assert risk_summary(records, "NONE-001") is None
    # an audit query finds runs where a risk failed by the tag's first word
    log_gate(client, run_id, _record("fair_across_sex", False))
    found = client.search_runs(
        [experiment_id], filter_string="tags.`risk_assets.risk.FAIR-001` LIKE 'FAILED%'"
    )
    assert [r.info.run_id for r in found] == [run_id]
    assert tag() == "FAILED: fair_across_sex; passed: fair_across_age"


def _execute(spec) -> dg.ExecuteInProcessResult:
    from risk_assets.dagster import build_definitions

    job = build_definitions([spec]).resolve_job_def("credit_risk_job")
    return job.execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False)


def _runs(client) -> list:
    experiment = client.get_experiment_by_name("credit_risk")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def _links(monkeypatch) -> None:
    monkeypatch.setenv("RISK_ASSETS_MLFLOW_UI_URL", MLFLOW_UI + "/")
    monkeypatch.setenv("RISK_ASSETS_DAGSTER_URL", DAGSTER_UI)


def _materialization_metadata(result, asset: str) -> dict:
    (mat,) = [
        m.materialization
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["credit_risk", asset])
    ]
    return dict(mat.metadata)


def test_a_run_blocked_by_a_model_gate_says_so_and_links_both_ways(state, tmp_path, monkeypatch):
    """Without band edges for age, fair_across_age (and the slices over age) fail closed,
    while fair_across_sex passes: FAIR-001 failed, and the run says it was blocked."""
    _links(monkeypatch)
    spec = make_pipeline(tmp_path / "p", spec={"protected_bands": {}})
    result = _execute(spec)
    assert result.success  # blocked is a verdict: the Dagster run does not fail
    client = mlflow_client()
    (run,) = _runs(client)
    tags = run.data.tags
    assert tags["risk_assets.risk.FAIR-001"] == "FAILED: fair_across_age; passed: fair_across_sex"
    verdict = RunVerdict.from_tags(tags)
    assert verdict.verdict == "blocked"
    assert verdict.failed_gates == ("fair_across_age", "performs_across_slices")
    assert verdict.description.startswith("**Blocked**: 2 blocking gates failed")
    assert "`fair_across_age` (FAIR-001): could not decide" in verdict.description
    assert run.info.status == "FAILED"
    assert registered_versions(client) == []
    # MLflow links back to the Dagster run, and Dagster's metadata links to the MLflow run
    dagster_url = f"{DAGSTER_UI}/runs/{result.run_id}"
    assert RunLineage.from_tags(tags).dagster_run_url == dagster_url
    assert tags["risk_assets.dagster_run_url"] == dagster_url
    run_url = f"{MLFLOW_UI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    candidate = _materialization_metadata(result, "candidate_model")
    assert candidate["mlflow_run"] == dg.MetadataValue.url(run_url)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    for name in ("fair_across_age", "fair_across_sex", "meets_metric_thresholds"):
        assert evaluations[name].metadata["mlflow_run"] == dg.MetadataValue.url(run_url)
    # every check's execution history has its summary as description
    for ev in evaluations.values():
        assert ev.description and ev.description == ev.metadata["risk/summary"].value
    # a passing data gate has no MLflow run of its own to link to (its evidence travels
    # with the candidate)
    assert "mlflow_run" not in evaluations["pii_free"].metadata


def test_a_data_gate_refusal_leaves_a_refusal_run(state, tmp_path, credit, monkeypatch):
    from risk_assets.data import frame_sha256
    from risk_assets.registry import file_sha256
    from risk_assets.registry._mlflow import find_refusal_run, refusal_run

    _links(monkeypatch)
    bad = credit.assign(contact=[f"applicant{i}@example.org" for i in range(len(credit))])
    features = [c for c in credit.columns if c not in ("risk", "sex", "age")] + ["contact"]
    folder = tmp_path / "p"
    spec = make_pipeline(folder, data=bad, spec={"features": features})
    result = _execute(spec)
    assert result.success  # blocked is a verdict: the Dagster run does not fail
    client = mlflow_client()
    (run,) = _runs(client)  # one refusal run, however many data gates failed; no candidate
    tags = run.data.tags
    verdict = RunVerdict.from_tags(tags)
    assert verdict.verdict == "refused" and run.info.status == "FAILED"
    assert "pii_free" in verdict.failed_gates
    assert verdict.description.startswith("**Refused**:")
    assert "`pii_free` (PRIV-001): undeclared PII: contact (email, 100.0%)" in (verdict.description)
    assert tags["risk_assets.risk.PRIV-001"] == "FAILED: pii_free"
    # the lineage it has: the data, suite, policy and spec, and the Dagster run
    lineage = RunLineage.from_tags(tags)
    validated = _materialization_metadata(result, "validated_data")
    assert lineage.snapshot_sha256 == validated["risk/snapshot_sha256"].value
    assert lineage.raw_snapshot_sha256 == frame_sha256(pd.read_csv(folder / "data.csv"))
    assert lineage.source == str(folder / "data.csv")
    assert lineage.suite_sha256 == file_sha256(folder / "suite.json")
    assert lineage.policy_sha256 == file_sha256(folder / "policy.yaml")
    assert lineage.spec_sha256 == file_sha256(spec)
    assert lineage.dagster_run_id == result.run_id and lineage.dagster_partition == "none"
    assert lineage.dagster_run_url == f"{DAGSTER_UI}/runs/{result.run_id}"
    assert lineage.model_sha256 is None and lineage.train_sha256 is None
    # every data gate this Dagster run evaluated, passed or failed, with its record
    records = gate_records(run)
    assert set(records) == {
        "meets_expectations",
        "pii_free",
        "no_feature_drift",
        "labels_consistent",
        "no_outliers_against_reference",
        "no_training_serving_skew",
    }
    pii = records["pii_free"]
    assert not pii.passed and pii.value == 1.0 and pii.risk_id == "PRIV-001"
    assert pii.subject_sha256 == lineage.snapshot_sha256
    assert {r.dagster_run_id for r in records.values()} == {result.run_id}
    assert set(verdict.failed_gates) == {
        name for name, r in records.items() if r.blocking and not r.passed
    }
    assert run.data.metrics["gate.pii_free.passed"] == 0.0
    (dataset,) = run.inputs.dataset_inputs
    assert json.loads(dataset.dataset.source)["sha256"] == lineage.snapshot_sha256
    # no raw value of the PII column reached MLflow
    assert "example.org" not in json.dumps(tags)
    # Dagster's check links to it
    run_url = f"{MLFLOW_UI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["pii_free"].metadata["mlflow_run"] == dg.MetadataValue.url(run_url)
    # once per Dagster run and snapshot: found by its tags, not made twice
    assert refusal_run(client, run.info.experiment_id, lineage, run_name="again") == (
        run.info.run_id,
        False,
    )
    assert (
        find_refusal_run(
            client,
            run.info.experiment_id,
            dagster_run_id="another-run",
            snapshot_sha256=lineage.snapshot_sha256,
        )
        is None
    )
    assert len(_runs(client)) == 1
    assert registered_versions(client) == []


def test_a_registered_run_carries_its_verdict(clean_run):
    assert clean_run["proc"].returncode == 0, clean_run["proc"].stderr[-2000:]
    proc = run_cli("lineage", "credit_risk@champion", "--json", env=clean_run["env"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["run"]["verdict"] == "registered" and info["run"]["status"] == "FINISHED"
    dagster_run = info["run"]["dagster_run_id"]
    assert info["run"]["dagster_run_url"].endswith(f"/runs/{dagster_run}")
    with using_state(clean_run["state"]):
        tags = mlflow_client().get_run(info["run"]["run_id"]).data.tags
    verdict = RunVerdict.from_tags(tags)
    assert verdict.verdict == "registered" and verdict.failed_gates == ()
    assert verdict.description == (
        "**Registered** as `credit_risk-candidates/1` (challenger), in production as "
        "`credit_risk/1` (champion)."
    )
    risk_tags = {k: v for k, v in tags.items() if k.startswith("risk_assets.risk.")}
    assert risk_tags and all(v.startswith("passed: ") for v in risk_tags.values())
    assert risk_tags["risk_assets.risk.FAIR-001"] == "passed: fair_across_age, fair_across_sex"
    human = run_cli("lineage", "credit_risk/1", env=clean_run["env"])
    assert human.returncode == 0 and info["model_sha256"] in human.stdout


def test_the_model_is_an_mlflow_logged_model_and_the_datasets_have_schemas(clean_run):
    """The experiment's Models tab shows the candidate as an MLflow 3 LoggedModel with the
    run's model hash, verdict and test metrics, and is the source of its registered version;
    the dataset drawer reads
    each dataset's column types."""
    from mlflow.entities import LoggedModelStatus

    with using_state(clean_run["state"]):
        client = mlflow_client()
        # the run of credit_risk/1 (other tests add runs to this shared state)
        run = client.get_run(client.get_model_version("credit_risk-candidates", "1").run_id)
        lineage = RunLineage.from_tags(run.data.tags)
        logged = client.get_logged_model(lineage.logged_model_id)
        assert logged.status == LoggedModelStatus.READY
        assert logged.source_run_id == run.info.run_id
        assert logged.experiment_id == run.info.experiment_id
        assert logged.tags["risk_assets.model_sha256"] == lineage.model_sha256
        assert logged.tags["risk_assets.verdict"] == "registered"
        assert logged.params["estimator"].endswith("LogisticRegression")
        assert {f.path for f in client.list_logged_model_artifacts(logged.model_id)} >= {
            "model.skops",
            "MLmodel",
        }
        assert not client.list_artifacts(run.info.run_id, "model")  # one copy, verified
        metrics = {m.key: m for m in logged.metrics}
        assert metrics["test.roc_auc"].value == run.data.metrics["test.roc_auc"]
        assert metrics["test.roc_auc"].dataset_name == "credit_risk-test"
        version = client.get_model_version("credit_risk-candidates", "1")
        assert version.source == f"models:/{logged.model_id}"
        assert version.run_id == run.info.run_id
        # MLflow's UI lists the versions made from it: the candidate and its production copy
        listed = json.loads(logged.tags["mlflow.modelVersions"])
        assert listed == [
            {"name": "credit_risk-candidates", "version": "1"},
            {"name": "credit_risk", "version": "1"},
        ]
        inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    train = json.loads(inputs["credit_risk-train"].schema)["mlflow_colspec"]
    types = {c["name"]: c["type"] for c in train}
    assert types["age"] == "long" and types["housing"] == "string"
    assert set(types) == set(pd.read_csv(PIPELINES / "data" / "german_credit.csv").columns)


def test_a_challenger_without_automatic_promotion_awaits_approval(state, tmp_path, capsys):
    from risk_assets.cli import main

    spec = make_pipeline(tmp_path / "p", policy={"promotion": {"auto_promote": False}})
    assert main(["run", str(spec), "--json"]) == 0
    capsys.readouterr()
    client = mlflow_client()
    (run,) = _runs(client)
    verdict = RunVerdict.from_tags(run.data.tags)
    assert verdict.verdict == "awaiting approval" and run.info.status == "FINISHED"
    assert verdict.description == (
        "**Awaiting approval**: registered as `credit_risk-candidates/1` (challenger); "
        "not in production yet."
    )
    assert registered_versions(client) == [("credit_risk-candidates", "1")]
    # registered_model links to the version in the MLflow UI
    import dagster as dg

    event = dg.DagsterInstance.get().get_latest_materialization_event(
        dg.AssetKey(["credit_risk", "registered_model"])
    )
    links = event.asset_materialization.metadata
    assert links["mlflow_candidate_version"].value.endswith(
        "/#/models/credit_risk-candidates/versions/1"
    )
    assert "mlflow_model_version" not in links  # not in production yet
    note = client.get_experiment_by_name("credit_risk").tags["mlflow.note.content"]
    assert "gated pipeline **credit_risk**" in note and "risk_assets.verdict" in note


def test_verdict_tags_round_trip_and_refuse_unknown_verdicts():
    verdict = RunVerdict(
        verdict=RunVerdict.BLOCKED, failed_gates=["a", "b"], description="**Blocked**"
    )
    assert verdict.to_tags() == {
        "risk_assets.verdict": "blocked",
        "risk_assets.failed_gates": "a,b",
        "mlflow.note.content": "**Blocked**",
    }
    assert RunVerdict.from_tags(verdict.to_tags()) == verdict
    assert verdict.run_status == "FAILED"
    assert RunVerdict(verdict=RunVerdict.REFUSED).run_status == "FAILED"
    assert RunVerdict(verdict=RunVerdict.REGISTERED).run_status == "FINISHED"
    assert RunVerdict(verdict=RunVerdict.AWAITING_APPROVAL).run_status == "FINISHED"
    assert RunVerdict.from_tags({}) == RunVerdict() and RunVerdict().run_status is None
    # a new verdict clears the failed gates of an old one
    assert RunVerdict(verdict="registered").to_tags()["risk_assets.failed_gates"] == ""
    with pytest.raises(ValueError, match="unknown verdict 'passed'"):
        RunVerdict(verdict="passed").to_tags()
    # read tolerantly: a verdict a later version writes reads as stored
    assert RunVerdict.from_tags({"risk_assets.verdict": "withdrawn"}).verdict == "withdrawn"


def test_ui_urls_come_from_the_resource_then_the_environment(monkeypatch):
    from risk_assets.dagster._resources import MlflowResource

    monkeypatch.delenv("RISK_ASSETS_MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("RISK_ASSETS_DAGSTER_URL", raising=False)
    local = MlflowResource(tracking_uri="sqlite:///x.db")
    assert local.run_url("1", "abc") == "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    assert local.dagster_run_url("r-1") == "http://127.0.0.1:3000/runs/r-1"
    assert local.model_version_url("credit risk", 3) == (
        "http://127.0.0.1:5000/#/models/credit%20risk/versions/3"
    )
    server = MlflowResource(tracking_uri="http://mlflow.internal:5000/")
    assert server.run_url("1", "abc") == "http://mlflow.internal:5000/#/experiments/1/runs/abc"
    monkeypatch.setenv("RISK_ASSETS_MLFLOW_UI_URL", "https://mlflow.example.org/")
    monkeypatch.setenv("RISK_ASSETS_DAGSTER_URL", "https://dagster.example.org/")
    assert server.run_url("1", "abc") == "https://mlflow.example.org/#/experiments/1/runs/abc"
    assert local.dagster_run_url("r-1") == "https://dagster.example.org/runs/r-1"
    pinned = MlflowResource(ui_url="http://ui:1", dagster_ui_url="http://dg:2")
    assert pinned.run_url("1", "abc") == "http://ui:1/#/experiments/1/runs/abc"
    assert pinned.dagster_run_url("r") == "http://dg:2/runs/r"


def test_monitoring_checks_say_they_do_not_block():
    """Dagster runs monitoring checks non-blocking (a scored batch still gets its outcomes
    measured); their description and metadata say so, and severity error is what drives
    retraining. The gate record keeps ``blocking`` as the severity, as before."""
    from risk_assets.catalogue import MONITORING_ASSETS, checks_of
    from risk_assets.controls._result import ControlResult
    from risk_assets.dagster import build_definitions, load_pipeline
    from risk_assets.dagster._checks import check_metadata, evaluate_gate

    spec_path = PIPELINES / "credit_risk_monthly.yaml"
    defs = build_definitions([spec_path])
    specs = {s.name: s for c in defs.asset_checks or [] for s in c.check_specs}
    loaded = load_pipeline(spec_path)
    spec, policy = loaded.spec.spec, loaded.policy.policy
    monitoring = checks_of(policy, spec.protected_attributes, assets=MONITORING_ASSETS)
    assert {c.blocking for c in monitoring} == {True, False}  # both severities are covered
    result = ControlResult(passed=False, value=0.3, threshold=0.1, summary="drifted")
    for check in monitoring:
        check_spec = specs[check.name]
        assert check_spec.blocking is False
        assert "blocking" not in check_spec.description
        md = check_metadata(check, result, extra={}, monitoring=True)
        assert md["risk/blocking"] is False
        assert md["risk/drives_retraining"] is check.blocking
        assert md["risk/severity"] == ("error" if check.blocking else "warn")
        if check.blocking:
            assert check_spec.description.endswith(
                "(severity error: drives retraining; monitoring)"
            )
        else:
            assert check_spec.description.endswith("(severity warn: reported only; monitoring)")
        # the record the retraining evidence keeps: blocking is the severity, unchanged
        context = SimpleNamespace(
            log=SimpleNamespace(error=lambda *_: None), run=SimpleNamespace(run_id="r")
        )
        inputs = SimpleNamespace(extra={}, suite_sha256=None)  # the control fails closed
        _, record = evaluate_gate(context, check, inputs, subject="s", policy_sha256="p")
        assert record.blocking is check.blocking and record.passed is False
    training = checks_of(
        policy, spec.protected_attributes, assets=("validated_data", "candidate_model")
    )
    for check in training:
        md = check_metadata(check, result, extra={})
        assert md["risk/blocking"] is check.blocking and "risk/drives_retraining" not in md
        kind = "(blocking)" if check.blocking else "(warning)"
        assert specs[check.name].description.endswith(kind)


def test_policy_show_reads_refusal_runs_made_after_the_latest_candidate(tmp_path):
    """A refusal run holds data gates only: each risk's last result is its latest record,
    a model gate's still the candidate's."""
    from mlflow import MlflowClient

    from risk_assets.registry._mlflow import latest_gate_results

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment(
        "credit_risk", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    older = client.create_run(experiment_id, start_time=1_000).info.run_id
    log_gate(client, older, _record("pii_free", False, risk_id="PRIV-001"))
    candidate = client.create_run(experiment_id, start_time=2_000).info.run_id
    log_gate(client, candidate, _record("pii_free", True, risk_id="PRIV-001"))
    log_gate(client, candidate, _record("fair_across_sex", True))
    refused = client.create_run(
        experiment_id, start_time=3_000, tags=RunVerdict(verdict="refused").to_tags()
    ).info.run_id
    log_gate(client, refused, _record("pii_free", False, risk_id="PRIV-001"))
    run_id, results = latest_gate_results(client, "credit_risk")
    assert run_id == refused
    assert results["pii_free"].passed is False and results["fair_across_sex"].passed is True
    assert set(results) == {"pii_free", "fair_across_sex"}
    assert latest_gate_results(client, "no_such_experiment") == (None, {})
