"""The risk report (model card) of a registered version, on the real MLflow store of the
shipped credit_risk pipeline's clean run (``clean_run``: ``credit_risk/1``).

What it shows must be what MLflow recorded (every gate, its figure and verdict; the
lineage hashes), the HTML must stand alone (no request leaves it) and escape what it
shows, and a person must see the register, the verdicts and the plots in a browser
(Debian's chromium through Playwright; skipped without it, a failure in CI).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from services import chromium_or_skip

from conftest import CREDIT_POLICY, CREDIT_SPEC, ROOT, mlflow_client, using_state
from risk_assets.registry import RunLineage, VersionTags
from risk_assets.registry._mlflow import gate_records
from risk_assets.report import (
    FAIL,
    PASS,
    REPORT_ARTIFACTS,
    WARN,
    GateRow,
    ReportData,
    add_parser,
    collect_report,
    log_report,
    render_html,
    render_markdown,
    run,
)

ARTIFACTS = Path(os.environ.get("RISK_ASSETS_TEST_ARTIFACTS") or ROOT / ".test-artifacts")
PNG = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert('report')</script>"
HISTORY = [
    {
        "timestamp": 1767225600,
        "actor": "risk-officer",
        "action": "approval",
        "reason": "gates reviewed",
        "version": "credit_risk-candidates/1",
    }
]


@pytest.fixture(scope="module")
def reported(clean_run) -> dict:
    """The report of credit_risk/1 with its run and version, collected once."""
    assert clean_run["proc"].returncode == 0, clean_run["proc"].stderr[-2000:]
    with using_state(clean_run["state"]):
        client = mlflow_client()
        data = collect_report(client, "credit_risk/1")
        mv = client.get_model_version("credit_risk", "1")
        run_ = client.get_run(mv.run_id)
    return {"data": data, "mv": mv, "run": run_, "state": clean_run["state"]}


def _expected_verdict(record) -> str:
    return PASS if record.passed else FAIL if record.blocking else WARN


def test_the_report_shows_every_gate_record_of_the_run_with_its_figure_and_verdict(reported):
    data: ReportData = reported["data"]
    records = gate_records(reported["run"])
    shown = {g.check: g for g in data.gates}
    assert set(shown) == set(records) and len(data.gates) == len(records)
    for check, record in records.items():
        gate = shown[check]
        assert (gate.risk_id, gate.value, gate.threshold) == (
            record.risk_id,
            record.value,
            record.threshold,
        ), check
        assert gate.verdict == _expected_verdict(record) == PASS, check
        assert gate.summary == record.summary
    assert data.verdict == PASS
    # the register is the policy's, in its order, titles and owners included
    policy = yaml.safe_load(CREDIT_POLICY.read_text())
    assert [r.id for r in data.risks] == [r["id"] for r in policy["risks"]]
    titles = {r["id"]: (r["title"], r["owner"]) for r in policy["risks"]}
    assert all((r.title, r.owner) == titles[r.id] for r in data.risks)
    assert {r.id: r.verdict for r in data.risks} == {r["id"]: PASS for r in policy["risks"]}


def test_the_report_carries_the_runs_lineage_hashes_and_the_specs_intended_use(reported):
    data: ReportData = reported["data"]
    recorded = RunLineage.from_tags(reported["run"].data.tags)
    lineage = dict(data.lineage)
    for label, value in (
        ("Raw snapshot SHA-256", recorded.raw_snapshot_sha256),
        ("Validated snapshot SHA-256", recorded.snapshot_sha256),
        ("Training split SHA-256", recorded.train_sha256),
        ("Test split SHA-256", recorded.test_sha256),
        ("Expectation suite SHA-256", recorded.suite_sha256),
        ("Policy SHA-256", recorded.policy_sha256),
        ("Spec SHA-256", recorded.spec_sha256),
        ("Code version", recorded.code_version),
        ("Dagster run id", recorded.dagster_run_id),
        ("Data source", recorded.source),
    ):
        assert value and lineage[label] == value, label
    assert data.model_sha256 == VersionTags.from_tags(reported["mv"].tags).model_sha256
    assert data.model_sha256 == recorded.model_sha256
    spec = yaml.safe_load(CREDIT_SPEC.read_text())
    assert (data.intended_use, data.owner) == (spec["description"], spec["owner"])
    assert "champion" in data.aliases and data.run_verdict == "registered"
    assert any("spec file" in n and "matches its recorded SHA-256" in n for n in data.notes)
    assert any("policy file" in n and "matches its recorded SHA-256" in n for n in data.notes)
    assert any("model artefact" in n and "matches" in n for n in data.notes)
    # nothing accepted, no warning failed, every control evaluated
    assert data.limitations == ()


def test_the_plots_are_the_runs_gate_pngs(reported):
    data: ReportData = reported["data"]
    with using_state(reported["state"]):
        listed = {a.path for a in mlflow_client().list_artifacts(data.run_id, "gates")}
    assert {p.path for p in data.plots} == {p for p in listed if p.endswith(".png")}
    assert data.plots and all(p.png.startswith(PNG) for p in data.plots)
    assert all(p.check in p.caption and PASS in p.caption for p in data.plots)


def test_a_candidates_version_and_an_alias_name_the_same_run(reported):
    with using_state(reported["state"]):
        client = mlflow_client()
        candidate = collect_report(client, "credit_risk-candidates/1")
        champion = collect_report(client, "credit_risk@champion")
    assert candidate.run_id == champion.run_id == reported["data"].run_id
    assert (candidate.model, candidate.aliases) == ("credit_risk-candidates", ("challenger",))
    assert candidate.gates == reported["data"].gates


class _Resources(HTMLParser):
    """Every tag name and every src/href/srcset/poster/data attribute value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action"):
                self.links.append((tag, name, value or ""))


def test_the_html_is_self_contained(reported):
    data: ReportData = reported["data"]
    page = render_html(data)
    parsed = _Resources()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert "@import" not in page and "url(" not in page
    images = [value for tag, name, value in parsed.links if tag == "img" and name == "src"]
    assert len(images) == len(data.plots) >= 1
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1], validate=True).startswith(PNG)
    loads = [(t, n, v) for t, n, v in parsed.links if not v.startswith("data:")]
    assert not loads, f"the page loads resources: {loads}"
    assert "default-src 'none'" in page  # and the browser is told to refuse any request
    for value in (data.model_sha256, data.generated_at, "risk-register", "PASS"):
        assert value in page


def test_every_value_is_escaped_in_html_and_markdown(reported):
    data: ReportData = reported["data"]
    risks = list(data.risks)
    risks[0] = dataclasses.replace(risks[0], title=HOSTILE + " | pipe", owner='"><img src=x>')
    hostile = dataclasses.replace(
        data,
        risks=tuple(risks),
        lineage=(*data.lineage, ("Data source", HOSTILE)),
        history=({**HISTORY[0], "reason": HOSTILE},),
        sections=(
            (HOSTILE, f"## Compliance\n\n| clause | risk |\n|---|---|\n| {HOSTILE} | DQ-001 |"),
        ),
    )
    page = render_html(hostile)
    parsed = _Resources()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert [v for t, n, v in parsed.links if t == "img" and not v.startswith("data:")] == []
    assert "&lt;script&gt;alert(&#x27;report&#x27;)&lt;/script&gt;" in page
    assert "<table><thead><tr><th>clause</th>" in page  # the section's table, rendered
    md = render_markdown(hostile)
    assert not re.search(r"(?<!\\)<(script|img)", md) and "\\<script>" in md
    assert "\\<script>alert('report')\\</script> \\| pipe" in md  # one cell, not two


def test_the_markdown_has_the_register_table_and_names_the_plots(reported):
    data: ReportData = reported["data"]
    md = render_markdown(data)
    assert (
        "| Risk | Title | Owner | Treatment | Control (check) | Figure | Threshold | Verdict |"
        in md
    )
    rows = [line for line in md.splitlines() if line.startswith("| ") and " | PASS | " in line]
    assert len(rows) == len(data.gates)
    for gate in data.gates:
        assert any(line.startswith(f"| {gate.risk_id} |") and gate.check in line for line in rows)
    assert all(f"`{p.path}`" in md for p in data.plots) and "data:image" not in md
    assert data.lineage and all(str(v) in md for k, v in data.lineage if "SHA-256" in k and v)


def test_the_approval_history_is_rendered_as_given_or_said_to_be_missing(reported):
    data: ReportData = reported["data"]
    assert data.history == ()
    assert "No approval recorded." in render_markdown(data)
    assert "No approval recorded." in render_html(data)
    approved = dataclasses.replace(data, history=tuple(HISTORY))
    md, page = render_markdown(approved), render_html(approved)
    for text in ("2026-01-01T00:00:00Z", "risk-officer", "approval", "gates reviewed"):
        assert text in md and text in page
    assert "No approval recorded" not in md + page


def test_a_failed_warning_and_a_failed_gate_read_as_such_in_text_and_colour(reported):
    data: ReportData = reported["data"]
    gate = data.gates[0]
    warned = dataclasses.replace(gate, verdict=WARN, blocking=False)
    failed = dataclasses.replace(gate, verdict=FAIL)
    risks = (
        dataclasses.replace(data.risks[0], gates=(warned,)),
        dataclasses.replace(data.risks[1], gates=(failed,)),
    )
    page = render_html(dataclasses.replace(data, risks=risks))
    assert 'class="verdict verdict-warn">⚠ WARN<' in page
    assert 'class="verdict verdict-fail">✘ FAIL<' in page
    assert isinstance(warned, GateRow) and dataclasses.replace(data, risks=risks).verdict == FAIL


def test_a_changed_spec_or_policy_is_not_used_and_the_report_says_so(reported, tmp_path):
    from risk_assets.report import _read_policy, _read_spec

    recorded = RunLineage.from_tags(reported["run"].data.tags)
    policy = tmp_path / "policy.yaml"
    doc = yaml.safe_load(CREDIT_POLICY.read_text())
    doc["risks"][0]["title"] = HOSTILE
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = tmp_path / "spec.yaml"
    spec.write_text(CREDIT_SPEC.read_text().replace("policies/credit_risk.yaml", str(policy)))
    found, policy_path, note = _read_spec(dataclasses.replace(recorded, spec_path=str(spec)))
    assert found is None and policy_path == policy and "changed since training" in note
    used, note = _read_policy(policy_path, recorded.policy_sha256)
    assert used is None and "changed since training" in note and "gate records alone" in note
    missing = _read_spec(dataclasses.replace(recorded, spec_path=str(tmp_path / "gone.yaml")))
    assert missing[0] is None and "cannot be read" in missing[2]


def test_log_report_puts_both_files_on_the_run_and_replaces_them(reported, tmp_path):
    data: ReportData = reported["data"]
    with using_state(reported["state"]):
        client = mlflow_client()
        assert log_report(client, data.run_id, data) == REPORT_ARTIFACTS
        approved = dataclasses.replace(data, history=tuple(HISTORY))
        paths = log_report(client, data.run_id, approved)  # re-generated on approval
        listed = sorted(a.path for a in client.list_artifacts(data.run_id, "report"))
        local = client.download_artifacts(data.run_id, paths["html"], str(tmp_path))
        md = client.download_artifacts(data.run_id, paths["md"], str(tmp_path))
    assert listed == sorted(REPORT_ARTIFACTS.values())
    assert Path(local).read_text(encoding="utf-8") == render_html(approved)
    assert "risk-officer" in Path(md).read_text(encoding="utf-8")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="risk-assets")
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(argv))


def test_the_report_command_writes_the_files_and_names_an_unknown_version(
    reported, tmp_path, capsys
):
    with using_state(reported["state"]):
        assert _cli(["report", "credit_risk@champion", "--out", str(tmp_path)]) == 0
        out = capsys.readouterr().out.split()
        assert _cli(["report", "credit_risk/99"]) == 2
        err = capsys.readouterr().err
        assert _cli(["report", "no_such_model", "--format", "md"]) == 2
        err_model = capsys.readouterr().err
    assert sorted(Path(p).suffix for p in out) == [".html", ".md"]
    assert all(Path(p).is_file() and Path(p).parent == tmp_path for p in out)
    assert err.startswith("risk-assets: error: ") and "'credit_risk/99'" in err
    assert "'no_such_model'" in err_model


def test_a_person_sees_the_register_verdicts_plots_and_hashes_in_a_browser(reported, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    data: ReportData = reported["data"]
    path = tmp_path / "risk_report.html"
    path.write_text(render_html(data), encoding="utf-8")
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(path.as_uri(), wait_until="load")
            register = page.locator("#risk-register")
            register.wait_for(state="visible")
            rows = register.locator("tbody tr")
            assert rows.count() == len(data.gates)
            text = register.inner_text()
            assert text.count("PASS") == len(data.gates)
            assert all(risk.id in text for risk in data.risks)
            widths = page.eval_on_selector_all("figure img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            lineage = page.locator("#lineage-table").inner_text()
            for label, value in data.lineage:
                if "SHA-256" in label and value:
                    assert value in lineage, label
            assert "PASS" in page.locator("#verdict").inner_text()
            assert data.model_sha256 in page.locator("header").inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "risk-report.png"), full_page=True)
        finally:
            browser.close()
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
