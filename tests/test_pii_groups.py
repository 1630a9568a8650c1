"""Personal data never becomes evidence or storage by the back door.

- A column declared personal (``pii_allowed``) is refused as a protected attribute or a
  slice when the spec loads: its values would be the group labels of the fairness and slice
  evidence. A group column the PII scan finds personal at run time is refused the same way.
- The raw snapshot stores only the columns the spec declares; a column it does not declare
  is scanned for PII before it is dropped, so pii_free still blocks on it, and its values
  never reach the snapshot store.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import (
    make_pipeline,
    mlflow_client,
    registered_versions,
    run_cli,
    state_env,
    using_state,
)
from risk_assets.errors import SpecError
from risk_assets.pipeline import load_pipeline

NAMES = ["Maria Schmidt", "John Smith", "Anna Lee", "Peter Brown", "Linda Jones"]


@pytest.fixture(scope="module")
def credit_frame():
    from conftest import CREDIT_DATA

    return pd.read_csv(CREDIT_DATA)


def _with_names(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(applicant=[NAMES[i % len(NAMES)] for i in range(len(frame))])


def _evidence_text(state) -> str:
    """Every MLflow tag, param and metric name, and every Dagster metadata value, of every
    run on ``state``, as one string."""
    import dagster as dg

    parts: list[str] = []
    with using_state(state):
        client = mlflow_client()
        for exp in client.search_experiments():
            for run in client.search_runs([exp.experiment_id]):
                parts += [f"{k}={v}" for k, v in run.data.tags.items()]
                parts += [f"{k}={v}" for k, v in run.data.params.items()]
                parts += list(run.data.metrics)
        for mv in client.search_model_versions():
            parts += [f"{k}={v}" for k, v in mv.tags.items()]
        instance = dg.DagsterInstance.get()
        for run in instance.get_runs():
            parts += [f"{k}={v}" for k, v in run.tags.items()]
            for entry in instance.all_logs(run.run_id):
                parts.append(entry.message or "")
                event = entry.dagster_event
                data = getattr(event, "event_specific_data", None) if event else None
                for holder in (data, getattr(data, "materialization", None)):
                    metadata = getattr(holder, "metadata", None) or {}
                    parts += [f"{k}={getattr(v, 'value', v)}" for k, v in metadata.items()]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("key", "spec_changes"),
    [
        ("protected_attributes", {"protected_attributes": ["sex", "age", "applicant"]}),
        ("slices", {"slices": ["housing", "applicant"]}),
    ],
)
def test_a_declared_personal_column_is_refused_as_a_group(
    tmp_path, credit_frame, key, spec_changes
):
    changes = {"pii_allowed": {"applicant": ["person_name"]}, **spec_changes}
    if key == "slices":  # a slice must be a feature or a protected attribute
        from conftest import FEATURES

        changes["features"] = [*FEATURES, "applicant"]
    spec = make_pipeline(tmp_path / "p", data=_with_names(credit_frame), spec=changes)
    with pytest.raises(SpecError, match=rf"{key}: 'applicant' is declared personal"):
        load_pipeline(spec)

    state = tmp_path / "state"
    proc = run_cli("run", str(spec), env=state_env(state))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith("risk-assets: error: ")
    assert str(spec) in proc.stderr and f"{key}: 'applicant'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(name in proc.stdout + proc.stderr for name in NAMES)
    with using_state(state):
        assert registered_versions(mlflow_client()) == []


def test_an_undeclared_personal_group_column_is_refused_at_run_time(tmp_path, credit_frame):
    spec = make_pipeline(
        tmp_path / "p",
        data=_with_names(credit_frame),
        spec={"protected_attributes": ["sex", "age", "applicant"]},
    )
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), env=state_env(state))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "protected_attributes: 'applicant' (person_name" in proc.stderr
    with using_state(state):
        assert registered_versions(mlflow_client()) == []
    evidence = _evidence_text(state)
    assert not [name for name in NAMES if name in evidence]


def test_a_declared_personal_column_kept_out_of_groups_runs_and_never_shows(tmp_path, credit_frame):
    """The allowed use: the names column is declared and stored, but no group: the run
    registers a model, and no name is in MLflow or Dagster."""
    spec = make_pipeline(
        tmp_path / "p",
        data=_with_names(credit_frame),
        spec={"pii_allowed": {"applicant": ["person_name"]}},
    )
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), env=state_env(state))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    evidence = _evidence_text(state)
    assert "fair_across_sex" in evidence  # the scan above did read the gates' evidence
    assert not [name for name in NAMES if name in evidence]
    assert not any(name in proc.stdout for name in NAMES)


def test_an_undeclared_column_is_scanned_but_never_stored(tmp_path, credit_frame):
    emails = [f"applicant{i}@example.org" for i in range(len(credit_frame))]
    spec = make_pipeline(tmp_path / "p", data=credit_frame.assign(contact=emails))
    state = tmp_path / "state"
    proc = run_cli("run", str(spec), "--json", env=state_env(state))
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "pii_free" in proc.stdout and "contact (email, 100.0%)" in proc.stdout

    parquets = sorted((state / "snapshots").rglob("*.parquet"))
    assert parquets, "the run stored no snapshot"
    for path in parquets:
        frame = pd.read_parquet(path)
        assert "contact" not in frame.columns, path
        cells = frame.astype(str).to_numpy().ravel()
        assert not any("@example.org" in c for c in cells), path
        assert b"@example.org" not in path.read_bytes(), path
    # nor in any other file of the state folder but the MLflow and Dagster databases'
    # evidence, which holds names and shares only
    assert not [e for e in emails[:50] if e in _evidence_text(state)]
