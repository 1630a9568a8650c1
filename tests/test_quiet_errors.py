"""Errors and verdicts reach the user as one clear message, never as a stack trace: a bad
spec, policy or data file is one ``risk-assets: error:`` line on stderr (exit 2), a blocked
run is its gate table on stdout (exit 3). The traces and the Dagster run's log go to
``$RISK_ASSETS_HOME/logs/risk-assets.log``; ``-v`` or ``RISK_ASSETS_DEBUG=1`` shows them.

The refusals before a run start the command in a new interpreter; the four runs that get
as far as their gates are forked from a process with the libraries imported
(tests/forked_cli.py), whose logging set-up is the command's own (tests/test_forked_cli.py
compares it with a new interpreter's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PIPELINES, make_pipeline, run_cli, state_env

LOG = ("logs", "risk-assets.log")


def _monthly_copy(tmp: Path) -> Path:
    """The shipped monthly pipeline with its data, policies and suites under ``tmp``."""
    folder = tmp / "pipelines"
    shutil.copytree(PIPELINES / "data" / "monthly", folder / "data" / "monthly")
    shutil.copytree(PIPELINES / "policies", folder / "policies")
    shutil.copytree(PIPELINES.parent / "expectations", tmp / "expectations")
    shutil.copy(PIPELINES / "credit_risk_monthly.yaml", folder / "credit_risk_monthly.yaml")
    return folder / "credit_risk_monthly.yaml"


def _quiet(proc, code: int, *named: str) -> None:
    """Exit ``code``; no stack trace anywhere; stderr holds only risk-assets' own lines;
    the message names each of ``named``."""
    said = proc.stdout + proc.stderr
    assert proc.returncode == code, said[-3000:]
    for trace in ("Traceback", "Stack Trace", 'File "'):
        assert trace not in said, said[-3000:]
    for line in proc.stderr.splitlines():
        assert line.startswith("risk-assets: ") or line.startswith("  "), proc.stderr
    for name in named:
        assert name in said, (name, said[-3000:])


def _log(state) -> str:
    return state.joinpath(*LOG).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def credit_frame():
    import pandas as pd

    from conftest import CREDIT_DATA

    return pd.read_csv(CREDIT_DATA)


def test_a_feature_missing_from_the_data_is_the_suites_finding(tmp_path, credit_frame):
    spec = make_pipeline(tmp_path / "p", data=credit_frame.drop(columns=["duration"]))
    proc = run_cli("run", str(spec), env=state_env(tmp_path / "state"))
    _quiet(proc, 3, "meets_expectations", "duration")
    assert proc.stderr == ""
    # the run's own log (its warning about the column) is in the log file
    assert "feature column(s) ['duration'] not found" in _log(tmp_path / "state")


def test_an_undeclared_email_column_is_blocked_by_pii_free(tmp_path, credit_frame):
    emails = [f"applicant{i}@example.org" for i in range(len(credit_frame))]
    spec = make_pipeline(tmp_path / "p", data=credit_frame.assign(contact=emails))
    proc = run_cli("run", str(spec), env=state_env(tmp_path / "state"))
    _quiet(proc, 3, "pii_free", "contact (email, 100.0%)")
    assert proc.stderr == ""
    (blocked,) = [line for line in proc.stdout.splitlines() if line.startswith("BLOCKED by")]
    assert "pii_free" in blocked


def test_a_missing_data_file_is_one_line_and_its_trace_is_in_the_log(tmp_path):
    spec = make_pipeline(tmp_path / "p")
    (tmp_path / "p" / "data.csv").unlink()
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), env=state_env(state), fresh=True)
    _quiet(proc, 2, str(spec), "source.path", "data.csv")
    assert proc.stderr.startswith("risk-assets: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" in _log(state) and "file not found" in _log(state)

    # shown on stderr on request, by flag (after or before the command) or by environment
    for args, env in (
        (("run", str(spec), "-v"), {}),
        (("--verbose", "run", str(spec)), {}),
        (("run", str(spec)), {"RISK_ASSETS_DEBUG": "1"}),
    ):
        loud = run_cli(*args, env={**state_env(state), **env}, fresh=True)
        assert loud.returncode == 2, loud.stderr
        assert loud.stderr.startswith("risk-assets: error: ")
        assert "Traceback" in loud.stderr, (args, env, loud.stderr)


def test_a_bad_policy_key_is_named(tmp_path):
    spec = make_pipeline(tmp_path / "p", policy={"bogus_key": 1})
    proc = run_cli("run", str(spec), env=state_env(tmp_path / "state"), fresh=True)
    _quiet(proc, 2, str(tmp_path / "p" / "policy.yaml"), "bogus_key: unknown key")


def test_a_failed_model_gate_is_a_verdict_without_a_trace(tmp_path):
    spec = make_pipeline(
        tmp_path / "p", policy={"risk_params": {"PERF-001": {"thresholds": {"roc_auc": 0.99}}}}
    )
    proc = run_cli("run", str(spec), "--json", env=state_env(tmp_path / "state"))
    _quiet(proc, 3, "meets_metric_thresholds")
    assert proc.stderr == ""
    # the run's log is in the file, with the step that withheld itself
    assert "not built: blocked by candidate_model" in _log(tmp_path / "state")


def test_a_data_error_inside_a_step_is_one_line(tmp_path, credit_frame):
    """A DataError raised by a step (here: a protected attribute holding people's names,
    found at run time) fails the Dagster step; the user still sees one line."""
    names = ["Maria Schmidt", "John Smith", "Anna Lee", "Peter Brown", "Linda Jones"]
    data = credit_frame.assign(applicant=[names[i % 5] for i in range(len(credit_frame))])
    spec = make_pipeline(
        tmp_path / "p", data=data, spec={"protected_attributes": ["sex", "age", "applicant"]}
    )
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), env=state_env(state))
    _quiet(proc, 2, "protected_attributes: 'applicant'", "person_name")
    assert proc.stderr.startswith("risk-assets: error: ")
    assert "DataError" not in proc.stderr  # the message, not the class path before it
    # the step's failure with its trace is in the log file
    assert "Stack Trace" in _log(state) or "Traceback" in _log(state)


@pytest.fixture(scope="module")
def monthly_broken(tmp_path_factory):
    """The monthly pipeline with a broken month: 2025-02 has lost its id column, 2025-03
    is not UTF-8."""
    import pandas as pd

    tmp = tmp_path_factory.mktemp("monthly_broken")
    spec = _monthly_copy(tmp)
    folder = spec.parent / "data" / "monthly"
    feb = folder / "applications_2025-02.csv"
    pd.read_csv(feb).drop(columns=["application_id"]).to_csv(feb, index=False)
    (folder / "applications_2025-03.csv").write_bytes(b"\xff\xfe\x00\x81garbage,\x9c\n\x80,2\n")
    return spec, tmp / "state"


def test_a_backfill_over_a_broken_month_names_the_file_and_column(monthly_broken):
    spec, state = monthly_broken
    proc = run_cli(
        "backfill",
        str(spec),
        "--from",
        "2025-02",
        "--to",
        "2025-03",
        env=state_env(state),
        fresh=True,
    )
    _quiet(proc, 2, "applications_2025-02.csv", "application_id")


def test_monitoring_a_broken_month_names_the_file(monthly_broken):
    spec, state = monthly_broken
    for args in (
        ("backfill", str(spec), "--from", "2025-03", "--to", "2025-03", "--monitor"),
        ("run", str(spec), "--partition", "2025-03", "--monitor"),
    ):
        proc = run_cli(*args, env=state_env(state), fresh=True)
        _quiet(proc, 2, "applications_2025-03.csv", "cannot read")
