"""Bad specs, policies, suites and data fail before anything runs: exit 2, file and key named."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from conftest import CREDIT_SPEC, make_pipeline, run_cli
from risk_assets.cli import main
from risk_assets.errors import PolicyError, SpecError, SuiteError
from risk_assets.policy import load_policy
from risk_assets.spec import load_spec


def _risk(doc: dict, risk_id: str) -> dict:
    return next(r for r in doc["risks"] if r["id"] == risk_id)


def _edit_yaml(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _run_exit(spec, capsys) -> tuple[int, str]:
    code = main(["run", str(spec)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.pop("target"), "target: required key is missing"),
        (lambda d: d.update(estimatr={}), "estimatr: unknown key"),
        (lambda d: d.update(name="Credit Risk"), "name: Value error, expected lower case"),
        (lambda d: d.update(split={"test_size": 1.5}), "split.test_size"),
        (lambda d: d.update(features=["risk", "age"]), "must not contain the target column"),
        (
            lambda d: d.update(source={"path": "data.xlsx"}),
            "source: Value error, cannot infer the format",
        ),
        (lambda d: d.update(policy="missing.yaml"), "policy: file not found"),
    ],
)
def test_bad_spec_names_key(tmp_path, state, capsys, edit, expected):
    spec = make_pipeline(tmp_path / "p")
    _edit_yaml(spec, edit)
    with pytest.raises(SpecError, match="credit_risk.yaml"):
        load_spec(spec)
    code, err = _run_exit(spec, capsys)
    assert code == 2
    assert expected in err and str(spec) in err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["risks"][0]["control"].update(name="crystal_ball"),
            "unknown control 'crystal_ball'",
        ),
        (
            lambda d: _risk(d, "PERF-001")["control"].update(params={}),
            "params.thresholds: required key is missing",
        ),
        (
            lambda d: _risk(d, "PERF-001")["control"].update(params={"thresholds": {"roc_auc": 7}}),
            "must lie in [0, 1]",
        ),
        (
            lambda d: _risk(d, "PERF-001")["control"].update(params={"thresholds": {"vibes": 0.5}}),
            "params.thresholds.vibes",
        ),
        (lambda d: d.update(tier="high"), "auto_promote is only allowed for tier 'low'"),
        (lambda d: d["risks"][2].update(id="DQ-001"), "risk ids must be unique"),
        (
            lambda d: d["risks"][1].update(treatment="accept"),
            "an accepted risk needs 'justification' and 'accepted_by'",
        ),
        (lambda d: d["risks"][1].update(likelihood=9), "risks.1.likelihood"),
        (
            lambda d: _risk(d, "DRIFT-001")["control"]["params"].update(multivariate=True),
            "multivariate: true needs backend: alibi",
        ),
        pytest.param(
            lambda d: _risk(d, "DRIFT-001")["control"]["params"].update(backend="alibi"),
            "pip install 'risk-assets[alibi]'",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("alibi_detect") is not None,
                reason="alibi-detect is installed here",
            ),
        ),
    ],
)
def test_bad_policy_names_key(tmp_path, state, capsys, edit, expected):
    spec = make_pipeline(tmp_path / "p")
    policy = tmp_path / "p" / "policy.yaml"
    _edit_yaml(policy, edit)
    with pytest.raises(PolicyError) as err:
        load_policy(policy)
    assert expected in str(err.value) and str(policy) in str(err.value)
    code, out = _run_exit(spec, capsys)
    assert code == 2 and expected in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "s", "expectations": []}', "'expectations' is missing or empty"),
        ("{not json", "cannot read the expectation suite"),
        ('{"name": "s", "expectations": [{"kwargs": {}}]}', "expectations[0]: expected an object"),
    ],
)
def test_empty_or_unreadable_suite_is_refused(tmp_path, state, capsys, content, expected):
    spec = make_pipeline(tmp_path / "p")
    (tmp_path / "p" / "suite.json").write_text(content)
    code, err = _run_exit(spec, capsys)
    assert code == 2 and expected in err and "suite.json" in err


def test_missing_column_in_data(tmp_path, state, credit, capsys):
    spec = make_pipeline(tmp_path / "p", data=credit.drop(columns=["risk"]))
    code, err = _run_exit(spec, capsys)
    assert code == 2
    assert "target column ['risk'] not found" in err and "data.csv" in err


def test_unreadable_data_file(tmp_path, state, capsys):
    spec = make_pipeline(tmp_path / "p", spec={"source": {"path": "data.parquet"}})
    (tmp_path / "p" / "data.parquet").write_bytes(b"not a parquet file")
    code, err = _run_exit(spec, capsys)
    assert code == 2 and "data.parquet: cannot read as parquet" in err


def test_unknown_estimator_class(tmp_path, state, capsys):
    spec = make_pipeline(tmp_path / "p", spec={"estimator": {"class": "sklearn.linear_model.Nope"}})
    code, err = _run_exit(spec, capsys)
    assert code == 2 and "estimator.class" in err and "'Nope'" in err


def test_cli_exit_code_and_json_for_a_bad_spec(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: [unclosed\n")
    proc = run_cli("run", str(spec), "--json", env={"RISK_ASSETS_HOME": str(tmp_path / "st")})
    assert proc.returncode == 2
    payload = json.loads(proc.stdout)
    assert payload["status"] == "error" and "not valid YAML" in payload["error"]
    assert not (tmp_path / "st").exists()  # nothing was written for a bad spec


def test_shipped_spec_loads():
    loaded = load_spec(CREDIT_SPEC)
    assert loaded.spec.protected_attributes == ["sex", "age"]
    assert loaded.suite_path.is_file() and loaded.policy_path.is_file()


def test_load_pipeline_rejects_a_policy_without_the_suite_control(tmp_path):
    from risk_assets.dagster import load_pipeline

    spec = make_pipeline(tmp_path / "p")
    _edit_yaml(tmp_path / "p" / "policy.yaml", lambda d: d["risks"].pop(0))
    with pytest.raises(SpecError, match="no risk uses the 'expectations' control"):
        load_pipeline(spec)


def test_suite_loader_direct(tmp_path):
    from risk_assets.controls import load_suite

    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "none.json")
