"""Human decisions on a challenger, against real MLflow stores and the audit trail:
maker-checker, two approvals from two roles, an approval refused when the evidence
changed or the artefact was replaced, promotion once approved, rollback, and the audit
trail catching tampering that MLflow's tags cannot show."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import make_pipeline, mlflow_client, using_state
from risk_assets.audit import open_audit_log
from risk_assets.cli import main
from risk_assets.registry import RunLineage

APPROVERS = [
    {"user": "alice", "role": "validation"},
    {"user": "carol", "role": "validation"},
    {"user": "bob", "role": "model-risk"},
]


def _as(monkeypatch, user: str) -> None:
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, user)


def _cli(capsys, *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {"stderr": out.err}


@pytest.fixture(scope="module")
def high_tier(tmp_path_factory):
    """A tier-high pipeline (two approvals, two roles) trained once by user 'maker'."""
    root = tmp_path_factory.mktemp("approvals")
    policy = {
        "tier": "high",
        "promotion": {"auto_promote": False, "approvers": APPROVERS},
    }
    with using_state(root / "state"), pytest.MonkeyPatch.context() as mp:
        _as(mp, "maker")
        spec = make_pipeline(root / "p", policy=policy)
        assert main(["run", str(spec)]) == 0
        yield {"state": root / "state", "spec": spec}


def _lineage(capsys) -> tuple[int, dict]:
    code = main(["lineage", "credit_risk@champion", "--json"])
    return code, json.loads(capsys.readouterr().out)


def _logged_model_file(client, run_id: str) -> Path:
    lineage = RunLineage.from_tags(client.get_run(run_id).data.tags)
    location = client.get_logged_model(lineage.logged_model_id).artifact_location
    return Path(urlparse(location).path) / "model.skops"


def test_a_high_tier_challenger_needs_two_approvers_from_two_roles(high_tier, monkeypatch, capsys):
    from risk_assets.registry._mlflow import find_champion

    with using_state(high_tier["state"]):
        client = mlflow_client()
        code, listed = _cli(capsys, "pending")
        assert code == 0
        (waiting,) = listed["pending"]
        assert waiting["model"] == "credit_risk-candidates" and waiting["version"] == "1"
        assert waiting["maker"] == "maker" and waiting["required"] == 2
        assert "pii_free" in waiting["gates_passed"]

        _as(monkeypatch, "maker")  # maker-checker
        code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "mine")
        assert code == 4 and "maker-checker" in out["error"]

        _as(monkeypatch, "mallory")  # not an approver of this policy
        code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "why not")
        assert code == 4 and "not an approver" in out["error"]

        _as(monkeypatch, "alice")
        code, out = _cli(
            capsys,
            "approve",
            "credit_risk",
            "1",
            "--reason",
            "validated",
            "--evidence",
            waiting["evidence"],
        )
        assert code == 0 and out["action"] == "approval", out
        assert (out["approvals"], out["required"]) == (1, 2)
        assert "advisory" in out["advisory"]  # the embedded stores cannot vouch for alice
        assert find_champion(client, "credit_risk") is None  # one approval is not enough

        code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "again")
        assert code == 4 and "approved this version already" in out["error"]
        _as(monkeypatch, "carol")  # the second approval must come from another role
        code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "me too")
        assert code == 4 and "another role" in out["error"]


def test_an_approval_is_refused_when_the_evidence_changed(high_tier, monkeypatch, capsys):
    with using_state(high_tier["state"]):
        client = mlflow_client()
        mv = client.get_model_version("credit_risk-candidates", "1")
        key = "risk_assets.gate.meets_metric_thresholds"
        original = client.get_run(mv.run_id).data.tags[key]
        edited = json.loads(original)
        edited["summary"] = "all metrics far above threshold"  # still 'passed'
        client.set_tag(mv.run_id, key, json.dumps(edited))
        try:
            _as(monkeypatch, "bob")
            code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "looks fine")
            assert code == 4 and "evidence changed since alice approved" in out["error"]
        finally:
            client.set_tag(mv.run_id, key, original)

        model_file = _logged_model_file(client, mv.run_id)
        saved = model_file.read_bytes()
        model_file.write_bytes(saved + b"\0")  # the artefact replaced
        try:
            code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "looks fine")
            assert code == 4 and "SHA-256" in out["error"]
        finally:
            model_file.write_bytes(saved)


def test_the_second_approval_promotes_and_rollback_restores(high_tier, monkeypatch, capsys):
    from risk_assets.registry._mlflow import find_champion

    with using_state(high_tier["state"]):
        client = mlflow_client()
        _as(monkeypatch, "bob")
        code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "risk accepted")
        assert code == 0 and out["action"] == "promotion", out
        assert out["production_version"] == "credit_risk/1"
        champion = find_champion(client, "credit_risk")
        assert str(champion.version) == "1"
        assert champion.tags["risk_assets.promoted_by"] == "alice, bob"
        assert (
            "approved by alice (validated), bob (risk accepted)"
            in champion.tags["risk_assets.promotion_reason"]
        )
        code, listed = _cli(capsys, "pending")
        assert listed["pending"] == []
        code, out = _cli(capsys, "reject", "credit_risk", "1", "--reason", "too late")
        assert code == 4 and "in production already" in out["error"], out

        # a second candidate, approved by both: champion; then rolled back to the first
        _as(monkeypatch, "maker")
        assert main(["run", str(high_tier["spec"])]) == 0
        capsys.readouterr()
        for user in ("alice", "bob"):
            _as(monkeypatch, user)
            code, out = _cli(capsys, "approve", "credit_risk", "2", "--reason", "ok")
            assert code == 0, out
        assert str(find_champion(client, "credit_risk").version) == "2"
        _as(monkeypatch, "bob")
        code, out = _cli(capsys, "rollback", "credit_risk", "--reason", "incident 42")
        assert code == 0 and out["version"] == "1", out
        assert str(find_champion(client, "credit_risk").version) == "1"

        code, out = _cli(capsys, "audit", "verify")
        assert code == 0 and out["ok"], out
        code, shown = _cli(capsys, "audit", "show", "credit_risk")
        actions = [r["action"] for r in shown["records"] if r["action"] != "gate"]
        assert actions == [
            "registration",
            "approval",
            "approval",
            "promotion",
            "registration",
            "approval",
            "approval",
            "promotion",
            "rollback",
        ]


def test_a_rejected_challenger_cannot_be_approved(state, tmp_path, monkeypatch, capsys):
    _as(monkeypatch, "maker")
    spec = make_pipeline(tmp_path / "p", policy={"tier": "medium", "promotion": {}})
    assert main(["run", str(spec)]) == 0
    _as(monkeypatch, "dana")
    code, out = _cli(capsys, "reject", "credit_risk", "1", "--reason", "wrong population")
    assert code == 0 and out["action"] == "rejection"
    code, out = _cli(capsys, "approve", "credit_risk", "1", "--reason", "changed my mind")
    assert code == 4 and "was rejected" in out["error"]
    code, listed = _cli(capsys, "pending")
    assert listed["pending"] == []


def test_edited_gate_tags_of_a_blocked_candidate_are_refused_by_the_audit_trail(state, tmp_path):
    """MLflow's tags said the failed gate passed; the audit trail says otherwise."""
    from risk_assets.errors import IntegrityError
    from risk_assets.pipeline import load_pipeline
    from risk_assets.registry._mlflow import register_candidate

    thresholds = {"thresholds": {"roc_auc": 0.99, "accuracy": 0.70}}
    spec = make_pipeline(tmp_path / "p", policy={"risk_params": {"PERF-001": thresholds}})
    assert main(["run", str(spec)]) == 3
    client = mlflow_client()
    (run,) = client.search_runs(client.get_experiment_by_name("credit_risk").experiment_id)
    key = "risk_assets.gate.meets_metric_thresholds"
    forged = json.loads(run.data.tags[key]) | {"passed": True}
    client.set_tag(run.info.run_id, key, json.dumps(forged))
    pipeline = load_pipeline(spec)
    with pytest.raises(IntegrityError, match="disagree with the audit trail") as err:
        register_candidate(
            client,
            run.info.run_id,
            model_name="credit_risk",
            policy=pipeline.policy.policy,
            policy_sha256=pipeline.policy.sha256,
            suite_sha256=pipeline.suite_sha256,
            audit=open_audit_log(),
        )
    assert "meets_metric_thresholds (PERF-001): the audit trail says failed" in str(err.value)
    assert client.search_model_versions() == []


def test_lineage_shows_the_decisions_and_warns_where_mlflow_disagrees(high_tier, capsys):
    """After the rollback credit_risk/1 is champion: lineage lists its approvals; moving the
    alias by hand, or marking a gate failed in MLflow's tags, is called out."""
    with using_state(high_tier["state"]):
        client = mlflow_client()
        code, info = _lineage(capsys)
        assert code == 0, info
        audit = info["audit"]
        assert audit["warnings"] == [], audit
        assert info["report"].endswith("/report/risk_report.html")
        actions = [(d["action"], d["by"]) for d in audit["decisions"]]
        assert ("approval", "alice") in actions and ("approval", "bob") in actions
        assert ("rollback", "bob") in actions

        client.set_registered_model_alias("credit_risk", "champion", "2")  # by hand
        mv = client.get_model_version("credit_risk", "2")
        key = "risk_assets.gate.fair_across_sex"
        original = client.get_run(mv.run_id).data.tags[key]
        client.set_tag(mv.run_id, key, json.dumps(json.loads(original) | {"passed": False}))
        try:
            code, info = _lineage(capsys)
            warnings = "\n".join(info["audit"]["warnings"])
            assert "gate fair_across_sex: MLflow says failed, the audit trail says passed" in (
                warnings
            )
            human = main(["lineage", "credit_risk@champion"])
            text = capsys.readouterr().out
            assert human == 0 and "WARNING: gate fair_across_sex" in text
            assert "promoted by  alice, bob" in text
        finally:
            client.set_tag(mv.run_id, key, original)
            client.set_registered_model_alias("credit_risk", "champion", "1")

        # a production version made and made champion outside risk-assets
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _use_tracking_uri(client.tracking_uri):
            by_hand = client.copy_model_version("models:/credit_risk-candidates/1", "credit_risk")
        client.set_registered_model_alias("credit_risk", "champion", str(by_hand.version))
        try:
            code, info = _lineage(capsys)
            warnings = "\n".join(info["audit"]["warnings"])
            assert "no registration or promotion of this version" in warnings
            assert "the alias was moved outside risk-assets" in warnings
        finally:
            client.set_registered_model_alias("credit_risk", "champion", "1")
            client.delete_model_version("credit_risk", str(by_hand.version))


def test_a_replaced_champion_artefact_with_a_rewritten_hash_tag_is_refused_at_load(high_tier):
    from risk_assets.errors import IntegrityError
    from risk_assets.registry._mlflow import load_version_model
    from risk_assets.registry._models import file_sha256

    with using_state(high_tier["state"]):
        client = mlflow_client()
        mv = client.get_model_version("credit_risk", "1")
        model_file = _logged_model_file(client, mv.run_id)
        saved, tag = model_file.read_bytes(), mv.tags["risk_assets.model_sha256"]
        other = _logged_model_file(
            client, client.get_model_version("credit_risk", "2").run_id
        ).read_bytes()
        model_file.write_bytes(other)  # a different model in its place...
        client.set_model_version_tag(
            "credit_risk", "1", "risk_assets.model_sha256", file_sha256(model_file)
        )  # ...and its hash in the tag
        try:
            with pytest.raises(IntegrityError, match="the tag was rewritten"):
                load_version_model(client, client.get_model_version("credit_risk", "1"))
        finally:
            model_file.write_bytes(saved)
            client.set_model_version_tag("credit_risk", "1", "risk_assets.model_sha256", tag)
        assert load_version_model(client, client.get_model_version("credit_risk", "1"))


def test_the_risk_report_carries_the_decisions(high_tier, tmp_path):
    with using_state(high_tier["state"]):
        client = mlflow_client()
        mv = client.get_model_version("credit_risk-candidates", "1")
        files = {f.path for f in client.list_artifacts(mv.run_id, "report")}
        assert files == {"report/risk_report.html", "report/risk_report.md"}
        local = client.download_artifacts(mv.run_id, "report/risk_report.md", str(tmp_path))
        text = Path(local).read_text()
        for who in ("maker", "alice", "bob"):
            assert who in text, who
        assert "validated" in text and "risk accepted" in text  # their reasons
        assert main(["report", "credit_risk/1", "--out", str(tmp_path / "out")]) == 0
        assert (tmp_path / "out" / "credit_risk-v1-risk-report.html").is_file()


def test_an_approver_decides_from_the_dagster_ui_job(state, tmp_path, monkeypatch):
    """The decision job is what the UI launches: run config in, an audit record out."""
    import dagster as dg

    from risk_assets.dagster import build_definitions
    from risk_assets.registry._mlflow import find_champion

    _as(monkeypatch, "maker")
    spec = make_pipeline(tmp_path / "p", policy={"tier": "medium", "promotion": {}})
    assert main(["run", str(spec)]) == 0
    job = build_definitions([spec]).resolve_job_def("risk_assets_decision")

    def decide(approver: str) -> dg.ExecuteInProcessResult:
        config = {
            "decision": "approve",
            "model": "credit_risk",
            "version": "1",
            "approver": approver,
            "reason": "reviewed in the UI",
        }
        return job.execute_in_process(
            run_config={"ops": {"decide": {"config": config}}},
            instance=dg.DagsterInstance.get(),
            raise_on_error=False,
        )

    refused = decide("maker")
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "maker-checker" in failure.step_failure_data.error.to_string()
    approved = decide("erin")
    assert approved.success
    assert str(find_champion(mlflow_client(), "credit_risk").version) == "1"
    (promotion,) = open_audit_log().records(action="promotion")
    assert promotion.reason == "approved by erin (reviewed in the UI)"
