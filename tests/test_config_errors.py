"""Bad specs, policies and suites are refused by their loaders, with the error class and
the file and key named. Through the command line (exit 2, nothing registered or
half-written) these and the bad data files are cases of tests/test_bad_inputs.py."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from conftest import CREDIT_SPEC, make_pipeline
from risk_assets.errors import PolicyError, SpecError, SuiteError
from risk_assets.policy import load_policy
from risk_assets.spec import load_spec


def _risk(doc: dict, risk_id: str) -> dict:
    return next(r for r in doc["risks"] if r["id"] == risk_id)


def _edit_yaml(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


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
def test_bad_spec_names_key(tmp_path, edit, expected):
    spec = make_pipeline(tmp_path / "p")
    _edit_yaml(spec, edit)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert expected in str(err.value) and str(spec) in str(err.value)


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
def test_bad_policy_names_key(tmp_path, edit, expected):
    make_pipeline(tmp_path / "p")
    policy = tmp_path / "p" / "policy.yaml"
    _edit_yaml(policy, edit)
    with pytest.raises(PolicyError) as err:
        load_policy(policy)
    assert expected in str(err.value) and str(policy) in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "s", "expectations": []}', "'expectations' is missing or empty"),
        ("{not json", "cannot read the expectation suite"),
        ('{"name": "s", "expectations": [{"kwargs": {}}]}', "expectations[0]: expected an object"),
    ],
)
def test_empty_or_unreadable_suite_is_refused(tmp_path, content, expected):
    from risk_assets.controls import load_suite

    suite = tmp_path / "suite.json"
    suite.write_text(content)
    with pytest.raises(SuiteError) as err:
        load_suite(suite)
    assert expected in str(err.value) and str(suite) in str(err.value)


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
