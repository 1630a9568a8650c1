"""Regulations mapped to evidence: the clause catalogue, a policy's clauses, and the
compliance report of a registered version (``risk-assets compliance``)."""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import CREDIT_POLICY, ROOT, make_pipeline, mlflow_client, using_state
from risk_assets import compliance
from risk_assets.catalogue import CATALOGUE
from risk_assets.compliance import (
    ACCEPTED,
    FAILED,
    NOT_RUN,
    PASSED,
    WARNING_ONLY,
    ComplianceReport,
    compliance_for_version,
    compliance_markdown,
    compliance_report,
    records_report,
    render_text,
)
from risk_assets.errors import PolicyError, RiskAssetsError
from risk_assets.frameworks import (
    FRAMEWORK_FILES,
    HERE,
    MAPPING_FILE,
    build_catalogue,
    clauses_of,
    load_clause_catalogue,
)
from risk_assets.policy import Policy
from risk_assets.registry._mlflow import GateRecord, gate_records

FRAMEWORKS = ("EU-AI-ACT", "SR-26-2", "NIST-AI-RMF", "ISO-42001", "ISO-23894")


def _policy_doc() -> dict:
    return yaml.safe_load(CREDIT_POLICY.read_text())


def _without(doc: dict, *controls: str) -> Policy:
    """The shipped register without the risks treated by ``controls``."""
    doc = copy.deepcopy(doc)
    doc["risks"] = [r for r in doc["risks"] if (r.get("control") or {}).get("name") not in controls]
    return Policy.model_validate(doc)


def _record(check: str, risk_id: str, *, passed: bool, blocking: bool = True) -> GateRecord:
    return GateRecord(check, risk_id, "candidate_model", blocking, passed, 0.5, 0.8, "s", "a", "b")


def _answers(report: ComplianceReport) -> dict[tuple[str, str | None], set[str]]:
    """(risk id, check) -> the verdicts it has across the report's clauses."""
    out: dict = {}
    for clause in report.clauses():
        for a in clause.controls:
            out.setdefault((a.risk_id, a.check), set()).add(a.verdict)
    return out


# ---------------------------------------------------------------------------- catalogue


def test_the_catalogue_loads_and_every_control_answers_a_clause():
    cat = load_clause_catalogue()
    assert tuple(f.id for f in cat.frameworks) == FRAMEWORKS
    for f in cat.frameworks:
        assert f.clauses, f.id
        assert all(c.id.startswith(f.id + ":") and c.title and c.asks for c in f.clauses)
    assert set(cat.controls) == set(CATALOGUE)
    for name, clauses in cat.controls.items():
        assert clauses and set(clauses) <= set(cat.clauses), name
    process = {p.id for p in cat.process}
    assert {"risk_register", "approval_workflow", "audit_trail", "risk_report"} <= process
    assert set(compliance.IN_FORCE) <= process
    # the clauses the brief names are there
    for clause in (
        "EU-AI-ACT:Art.9",
        "EU-AI-ACT:Art.14",
        "EU-AI-ACT:Art.15",
        "NIST-AI-RMF:MEASURE 2.11",
        "NIST-AI-RMF:MANAGE 4.1",
        "ISO-42001:8.4",
        "ISO-42001:A.7.4",
        "ISO-23894:6.7",
    ):
        assert clause in cat.clauses, clause


def test_the_catalogue_files_ship_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["risk_assets"]
    for name in (*FRAMEWORK_FILES, MAPPING_FILE):
        relative = (HERE / name).relative_to(ROOT / "risk_assets").as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


def test_a_broken_mapping_is_refused_naming_the_key():
    docs = {n: yaml.safe_load((HERE / n).read_text()) for n in FRAMEWORK_FILES}
    mapping = yaml.safe_load((HERE / MAPPING_FILE).read_text())
    missing = copy.deepcopy(mapping)
    del missing["controls"]["evasion"]
    with pytest.raises(RiskAssetsError, match="evasion"):
        build_catalogue(docs, missing, CATALOGUE)
    unknown = copy.deepcopy(mapping)
    unknown["controls"]["pii"] = ["GDPR:Art.5"]
    with pytest.raises(RiskAssetsError, match=r"controls\.pii: unknown clause.*GDPR:Art\.5"):
        build_catalogue(docs, unknown, CATALOGUE)
    misplaced = copy.deepcopy(docs)
    misplaced["sr_26_2.yaml"]["clauses"][0]["id"] = "EU-AI-ACT:Art.99"
    with pytest.raises(RiskAssetsError, match="must start with the framework's 'SR-26-2:'"):
        build_catalogue(misplaced, mapping, CATALOGUE)


def test_an_unknown_clause_in_a_policy_is_refused_at_load(tmp_path, capsys):
    spec = make_pipeline(tmp_path / "p")
    policy_path = spec.parent / "policy.yaml"
    doc = yaml.safe_load(policy_path.read_text())
    index = next(i for i, r in enumerate(doc["risks"]) if r["id"] == "PRIV-002")
    doc["risks"][index]["clauses"] = ["NIST-AI-RMF:MEASURE 2.10", "EU-AI-ACT:Art.99"]
    policy_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    from risk_assets.cli import main
    from risk_assets.pipeline import load_pipeline

    with pytest.raises(PolicyError) as err:
        load_pipeline(spec)
    message = str(err.value)
    assert str(policy_path) in message and f"risks.{index}.clauses" in message
    assert "PRIV-002" in message and "'EU-AI-ACT:Art.99'" in message
    assert "MEASURE 2.10" not in message  # the known clause is not blamed
    assert "EU-AI-ACT:Art.15" in message  # the framework's clauses are named
    assert main(["policy", "show", str(spec)]) == 2
    assert "risk-assets: error:" in capsys.readouterr().err


def test_a_risk_s_own_clauses_replace_its_control_s_defaults():
    doc = _policy_doc()
    risk = next(r for r in doc["risks"] if r["id"] == "PRIV-002")
    risk["clauses"] = ["EU-AI-ACT:Art.15"]
    policy = Policy.model_validate(doc)
    priv = next(r for r in policy.risks if r.id == "PRIV-002")
    assert clauses_of(priv) == ("EU-AI-ACT:Art.15",)
    pii = next(r for r in policy.risks if r.id == "PRIV-001")
    assert clauses_of(pii) == load_clause_catalogue().controls["pii"]
    report = compliance_report(policy, {})
    with_priv = {c.id for c in report.clauses() if any(a.risk_id == "PRIV-002" for a in c.controls)}
    assert with_priv == {"EU-AI-ACT:Art.15"}


# ---------------------------------------------------------------------------- pure report


def test_each_verdict_on_synthetic_gate_records():
    doc = _policy_doc()
    accepted = next(r for r in doc["risks"] if r["id"] == "ROB-001")
    accepted.update(treatment="accept", justification="budgets under review", accepted_by="cro")
    accepted["control"]["severity"] = "warn"
    policy = Policy.model_validate(doc)
    records = {
        "meets_metric_thresholds": _record("meets_metric_thresholds", "PERF-001", passed=True),
        "fair_across_sex": _record("fair_across_sex", "FAIR-001", passed=False),
        "no_protected_proxy_in_top_features": _record(
            "no_protected_proxy_in_top_features", "EXPL-001", passed=False, blocking=False
        ),
        "robust_to_perturbation": _record(
            "robust_to_perturbation", "ROB-001", passed=False, blocking=False
        ),
    }
    report = compliance_report(
        policy,
        records,
        run_id="r1",
        protected_attributes=["sex", "age"],
        frameworks=["nist-ai-rmf"],
    )
    assert [f.id for f in report.frameworks] == ["NIST-AI-RMF"]
    verdicts = _answers(report)
    assert verdicts[("PERF-001", "meets_metric_thresholds")] == {PASSED}
    assert verdicts[("FAIR-001", "fair_across_sex")] == {FAILED}
    assert verdicts[("FAIR-001", "fair_across_age")] == {NOT_RUN}
    assert verdicts[("EXPL-001", "no_protected_proxy_in_top_features")] == {WARNING_ONLY}
    assert verdicts[("ROB-001", "robust_to_perturbation")] == {ACCEPTED}
    assert verdicts[("PRIV-002", "no_membership_leakage")] == {NOT_RUN}
    answer = next(
        a
        for c in report.clauses()
        for a in c.controls
        if a.check == "fair_across_sex" and c.id == "NIST-AI-RMF:MEASURE 2.11"
    )
    assert (answer.run_id, answer.gate_record, answer.passed) == (
        "r1",
        "risk_assets.gate.fair_across_sex",
        False,
    )
    # warning-only and accepted checks say what their records found, for people
    text = render_text(report)
    assert "warning-only (failed)" in text and "accepted risk (failed)" in text


def test_process_evidence_is_listed_apart_and_never_a_passed_gate():
    policy = Policy.model_validate(_policy_doc())  # tier low, automatic promotion
    report = compliance_report(policy, {})
    art14 = next(c for c in report.clauses() if c.id == "EU-AI-ACT:Art.14")
    assert not art14.controls and [p.id for p in art14.process] == ["approval_workflow"]
    assert art14.process[0].in_force is False and art14.coverage == "none"
    art12 = next(c for c in report.clauses() if c.id == "EU-AI-ACT:Art.12")
    assert art12.coverage == "process" and "EU-AI-ACT:Art.12" in report.process_only
    assert all(a.verdict == NOT_RUN for c in report.clauses() for a in c.controls)
    doc = report.to_json()
    flags = [
        p["counts_as_gate"] for f in doc["frameworks"] for c in f["clauses"] for p in c["process"]
    ]
    assert flags and not any(flags)
    # a tier that asks for an approval puts the approval workflow in force
    medium = _policy_doc()
    medium.update(tier="medium", promotion={"auto_promote": False})
    report = compliance_report(Policy.model_validate(medium), {})
    art14 = next(c for c in report.clauses() if c.id == "EU-AI-ACT:Art.14")
    assert art14.coverage == "process" and "EU-AI-ACT:Art.14" not in report.uncovered


def test_monitoring_controls_and_risks_without_a_control():
    doc = yaml.safe_load((CREDIT_POLICY.parent / "credit_risk_monthly.yaml").read_text())
    doc["risks"].append(
        {
            "id": "OPS-001",
            "title": "The scoring vendor fails",
            "category": "operational",
            "treatment": "transfer",
            "clauses": ["EU-AI-ACT:Art.12"],
        }
    )
    report = compliance_report(Policy.model_validate(doc), {}, protected_attributes=["sex"])
    # the monthly pipeline monitors its scored batches: the monitoring clauses are answered
    monitoring = next(c for c in report.clauses() if c.id == "NIST-AI-RMF:MEASURE 2.4")
    assert monitoring.coverage == "control" and "NIST-AI-RMF:MEASURE 2.4" not in report.uncovered
    assert all(a.monitoring and a.verdict == NOT_RUN and a.note for a in monitoring.controls)
    assert "not run (monitoring check)" in render_text(report)
    # a risk without a control is listed, but answers nothing: no gate stands behind it
    art12 = next(c for c in report.clauses() if c.id == "EU-AI-ACT:Art.12")
    ops = next(a for a in art12.controls if a.risk_id == "OPS-001")
    assert ops.check is None and ops.verdict == NOT_RUN and "transfer" in ops.note
    assert art12.coverage == "process"


# ---------------------------------------------------------------------------- a version


@pytest.fixture(scope="module")
def version_one(clean_run):
    """credit_risk/1 as the clean run registered it: its report and its run's records."""
    assert clean_run["proc"].returncode == 0, clean_run["proc"].stderr[-2000:]
    with using_state(clean_run["state"]):
        client = mlflow_client()
        report = compliance_for_version(client, "credit_risk/1")
        mv = client.get_model_version("credit_risk", "1")
        records = gate_records(client.get_run(mv.run_id))
    return {"report": report, "run_id": mv.run_id, "records": records}


def test_the_report_of_a_version_gives_each_check_its_recorded_verdict(version_one):
    report, records = version_one["report"], version_one["records"]
    assert (report.model, report.version, report.run_id) == (
        "credit_risk",
        "1",
        version_one["run_id"],
    )
    assert report.basis == "policy" and report.policy_name == "credit_risk"
    assert "matches the one the run recorded" in report.notes[0]
    assert [f.id for f in report.frameworks] == list(FRAMEWORKS)
    assert records, "the clean run left no gate records"
    seen = set()
    for clause in report.clauses():
        for a in clause.controls:
            record = records.get(a.check)
            if record is None:
                assert a.verdict == NOT_RUN and a.gate_record is None, a
                continue
            seen.add(a.check)
            assert a.risk_id == record.risk_id and a.passed == record.passed
            assert a.run_id == version_one["run_id"] and a.gate_record.endswith(a.check)
            expected = (PASSED if record.passed else FAILED) if record.blocking else WARNING_ONLY
            assert a.verdict == expected, a
    assert seen == set(records), "every gate of the run answers some clause"
    # a registered version: every blocking gate passed; the example's warning stays one
    assert {a.verdict for c in report.clauses() for a in c.controls} <= {PASSED, WARNING_ONLY}
    assert _answers(report)[("EXPL-001", "no_protected_proxy_in_top_features")] == {WARNING_ONLY}


def test_the_example_pipeline_leaves_only_monitoring_and_oversight_uncovered(version_one):
    report = version_one["report"]
    cat = load_clause_catalogue()
    policy = Policy.model_validate(_policy_doc())
    answered = {c for r in policy.risks for c in clauses_of(r)}
    assert not set(report.uncovered) & answered
    # the example has no monitoring controls and promotes automatically (tier low)
    for clause in ("NIST-AI-RMF:MEASURE 2.4", "ISO-42001:9.1", "EU-AI-ACT:Art.14"):
        assert clause in report.uncovered, clause
    monitoring = {c for n, e in CATALOGUE.items() if e.monitoring for c in cat.controls[n]}
    approval = next(p for p in cat.process if p.id == "approval_workflow")
    assert set(report.uncovered) <= monitoring | set(approval.clauses)


def test_removing_controls_from_the_policy_uncovers_their_clauses(version_one):
    records, run_id = version_one["records"], version_one["run_id"]
    full = compliance_report(Policy.model_validate(_policy_doc()), records, run_id=run_id)
    assert "NIST-AI-RMF:MEASURE 2.10" not in full.uncovered
    # membership inference alone: the privacy clause is still answered by the PII scan
    no_mia = compliance_report(_without(_policy_doc(), "membership_inference"), records)
    privacy = next(c for c in no_mia.clauses() if c.id == "NIST-AI-RMF:MEASURE 2.10")
    assert [a.risk_id for a in privacy.controls] == ["PRIV-001"]
    # with the PII scan gone too, nothing answers it
    neither = compliance_report(_without(_policy_doc(), "membership_inference", "pii"), records)
    assert "NIST-AI-RMF:MEASURE 2.10" in neither.uncovered
    assert set(neither.uncovered) > set(full.uncovered)


def test_without_its_policy_the_report_falls_back_to_the_gate_records(version_one, tmp_path):
    from risk_assets.registry._lineage import RunLineage

    records, run_id = version_one["records"], version_one["run_id"]
    spec = make_pipeline(tmp_path / "changed")
    lineage = RunLineage.from_tags(
        {
            "risk_assets.spec_path": str(spec),
            "risk_assets.policy_sha256": "0" * 64,
            "risk_assets.policy_name": "credit_risk",
        }
    )
    loaded, why = compliance._gated_policy(lineage)
    assert loaded is None and "has changed since the run" in why
    gone, why_gone = compliance._gated_policy(
        RunLineage.from_tags({"risk_assets.spec_path": str(tmp_path / "gone.yaml"),
                              "risk_assets.policy_sha256": "0" * 64})
    )  # fmt: skip
    assert gone is None and "cannot be read" in why_gone
    fallback = records_report(records, run_id=run_id, reason=why)
    assert fallback.basis == "gate records" and "has changed since the run" in fallback.notes[0]
    full = _answers(version_one["report"])
    for key, verdicts in _answers(fallback).items():
        assert verdicts <= full[key] | {WARNING_ONLY}, key  # never a verdict the run lacks


# ---------------------------------------------------------------------------- rendering, CLI


def test_the_json_round_trips_and_the_markdown_has_a_table(version_one):
    report = version_one["report"]
    doc = json.loads(json.dumps(report.to_json()))
    assert ComplianceReport.from_json(doc) == report
    assert doc["uncovered"] == report.uncovered
    markdown = compliance_markdown(report, heading_level=3)
    assert markdown.startswith("### Regulations and standards")
    assert "| Clause | Title | Answered by | Check | Verdict | Evidence |" in markdown
    assert "|---|---|---|---|---|---|" in markdown
    for f in report.frameworks:
        assert f"#### {f.name}" in markdown
    assert f"run `{version_one['run_id']}`, tag `risk_assets.gate.meets_metric_thresholds`" in (
        markdown
    )


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="risk-assets")
    compliance.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["compliance", *argv])


def test_the_command_prints_the_report_of_a_version(clean_run, capsys):
    with using_state(clean_run["state"]):
        assert compliance.run(_parse("credit_risk/1", "--json")) == 0
        doc = json.loads(capsys.readouterr().out)
        assert ComplianceReport.from_json(doc).to_json() == doc
        assert (doc["model"], doc["version"]) == ("credit_risk", "1")
        assert compliance.run(_parse("credit_risk@champion", "--framework", "eu-ai-act")) == 0
        text = capsys.readouterr().out
    assert "credit_risk version 1" in text and "EU-AI-ACT" in text and "NIST-AI-RMF" not in text
    assert "Art.15" in text and "meets_metric_thresholds" in text and "passed" in text
    assert "uncovered (nothing answers): EU-AI-ACT:Art.14" in text


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("credit_risk/1", "--framework", "GDPR"), "unknown framework 'GDPR'"),
        (("no_such_model",), "no_such_model"),
        (("credit_risk/99",), "credit_risk/99"),
        (("credit_risk@nobody", "--json"), "credit_risk@nobody"),
    ],
)
def test_the_command_refuses_bad_input_with_exit_2(clean_run, capsys, argv, named):
    with using_state(clean_run["state"]):
        assert compliance.run(_parse(*argv)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("risk-assets: error:") and named in captured.err
    if "--json" in argv:
        assert json.loads(captured.out)["exit_code"] == 2


def test_the_parser_adds_the_command_without_heavy_imports():
    import subprocess
    import sys

    code = (
        "import argparse, sys; from risk_assets import compliance; "
        "p = argparse.ArgumentParser(); compliance.add_parser(p.add_subparsers()); "
        "heavy = ('mlflow', 'dagster', 'risk_assets.catalogue'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert Path(compliance.__file__).parent == ROOT / "risk_assets"
