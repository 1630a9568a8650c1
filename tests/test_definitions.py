"""The code location: every spec in pipelines/ becomes assets, gates and a job."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

import risk_assets
from conftest import CREDIT_POLICY, CREDIT_SPEC, PIPELINES, ROOT, make_pipeline
from risk_assets.dagster import build_definitions, definitions_from_folder


def test_code_location_has_assets_gates_and_job():
    defs = definitions_from_folder(PIPELINES)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    keys = {k for k in keys if k.startswith("credit_risk/")}
    assert keys == {
        f"credit_risk/{n}"
        for n in (
            "raw_snapshot",
            "validated_data",
            "train_test_split",
            "candidate_model",
            "registered_model",
        )
    }
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    checks = {c for c in checks if c[0].startswith("credit_risk/")}
    assert checks == {
        ("credit_risk/validated_data", "meets_expectations"),
        ("credit_risk/validated_data", "pii_free"),
        ("credit_risk/validated_data", "no_feature_drift"),
        ("credit_risk/validated_data", "labels_consistent"),
        ("credit_risk/validated_data", "no_outliers_against_reference"),
        ("credit_risk/validated_data", "no_training_serving_skew"),
        ("credit_risk/candidate_model", "meets_metric_thresholds"),
        ("credit_risk/candidate_model", "no_worse_than_champion"),
        ("credit_risk/candidate_model", "performs_across_slices"),
        ("credit_risk/candidate_model", "robust_to_perturbation"),
        ("credit_risk/candidate_model", "robust_to_evasion"),
        ("credit_risk/candidate_model", "valid_under_stress"),
        ("credit_risk/candidate_model", "no_membership_leakage"),
        ("credit_risk/candidate_model", "no_protected_proxy_in_top_features"),
        ("credit_risk/candidate_model", "fair_across_sex"),
        ("credit_risk/candidate_model", "fair_across_age"),
    }
    job = defs.resolve_job_def("credit_risk_job")
    assert job.name == "credit_risk_job"


def test_monthly_code_location_is_partitioned_with_monitoring():
    defs = definitions_from_folder(PIPELINES)
    graph = defs.resolve_asset_graph()
    prefix = "credit_risk_monthly/"
    partitioned = {
        k.to_user_string(): graph.get(k).partitions_def
        for k in graph.get_all_asset_keys()
        if k.to_user_string().startswith(prefix)
    }
    assert set(partitioned) == {
        prefix + n
        for n in (
            "raw_snapshot",
            "validated_data",
            "train_test_split",
            "candidate_model",
            "registered_model",
            "scored_batch",
            "batch_outcomes",
        )
    }
    keys = next(iter(partitioned.values())).get_partition_keys()
    assert keys[0] == "2025-01" and keys[-1] == "2025-12" and len(keys) == 12
    assert all(p is not None and p.get_partition_keys() == keys for p in partitioned.values())
    monitoring = {
        (c.asset_key.to_user_string(), c.name)
        for c in graph.asset_check_keys
        if c.asset_key.to_user_string().startswith(prefix)
        and c.asset_key.path[-1] in ("scored_batch", "batch_outcomes")
    }
    assert monitoring == {
        (prefix + "scored_batch", "no_input_drift"),
        (prefix + "scored_batch", "no_prediction_drift"),
        (prefix + "scored_batch", "decision_volume_stable"),
        (prefix + "scored_batch", "batch_meets_expectations"),
        (prefix + "batch_outcomes", "performs_on_outcomes"),
    }
    for name in ("credit_risk_monthly_job", "credit_risk_monthly_data_job"):
        assert defs.resolve_job_def(name).partitions_def is not None
    assert defs.resolve_job_def("credit_risk_monthly_monitoring_job") is not None
    sensor = defs.resolve_sensor_def("credit_risk_monthly_retraining_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # kinds say what made each asset
    model = graph.get(dg.AssetKey(["credit_risk_monthly", "candidate_model"]))
    assert {"sklearn", "mlflow"} <= set(model.kinds)
    # the spec, policy and suite hashes as the code version: a config change shows
    assert model.code_version and len(model.code_version) == 16
    raw = graph.get(dg.AssetKey(["credit_risk_monthly", "raw_snapshot"]))
    assert raw.code_version == model.code_version


def test_severity_decides_blocking(tmp_path):
    spec = make_pipeline(tmp_path / "p")
    policy = yaml.safe_load(CREDIT_POLICY.read_text())
    next(r for r in policy["risks"] if r["id"] == "PERF-002")["control"]["severity"] = "warn"
    (tmp_path / "p" / "policy.yaml").write_text(yaml.safe_dump(policy))
    defs = build_definitions([spec])
    specs = {s.name: s for c in defs.asset_checks or [] for s in c.check_specs}
    assert specs["meets_metric_thresholds"].blocking is True
    assert specs["no_worse_than_champion"].blocking is False


def test_dropping_a_spec_into_the_folder_adds_a_pipeline(tmp_path):
    folder = tmp_path / "pipelines"
    make_pipeline(folder / "a", name="alpha")
    for f in (folder / "a").iterdir():
        shutil.move(str(f), folder / f.name)
    spec = yaml.safe_load((folder / "alpha.yaml").read_text())
    spec["name"] = "beta"
    spec["registered_model"] = "beta"
    (folder / "beta.yaml").write_text(yaml.safe_dump(spec))
    defs = definitions_from_folder(folder)
    assert {j for j in ("alpha_job", "beta_job") if defs.resolve_job_def(j)} == {
        "alpha_job",
        "beta_job",
    }


def test_two_pipelines_loaded_separately_merge_with_resources_once():
    """Each pipeline's definitions carry no resources and no executor, so any number merge
    with the root's once; merging two complete code locations would define them twice."""
    import dagster as dg

    from risk_assets.dagster import pipeline_definitions, root_definitions

    one = pipeline_definitions(CREDIT_SPEC)
    two = pipeline_definitions(CREDIT_SPEC.parent / "credit_risk_monthly.yaml")
    assert not one.resources and one.executor is None
    defs = dg.Definitions.merge(one, two, root_definitions())
    assert {k.path[0] for k in defs.resolve_all_asset_keys()} == {
        "credit_risk",
        "credit_risk_monthly",
    }
    assert set(defs.resources) == {"mlflow", "snapshots", "alerts", "io_manager", "audit"}
    defs.resolve_job_def("credit_risk_job")
    defs.resolve_job_def("credit_risk_monthly_job")


@pytest.mark.parametrize(
    ("target", "named"),
    [
        (["-w", "workspace.yaml"], "risk_assets_pipelines"),
        (["-f", "pipelines/components_definitions.py"], "components_definitions.py"),
    ],
    ids=["workspace", "components"],
)
def test_code_locations_load_with_dagster_cli(tmp_path, target, named):
    """Both code locations (the folder of specs and the same pipelines as components) load
    in Dagster's own CLI, in a fresh process importing the risk_assets under test."""
    source = str(Path(risk_assets.__file__).resolve().parents[1])
    env = {
        "DAGSTER_HOME": str(tmp_path),
        "PATH": str(Path(sys.executable).parent),
        "PYTHONPATH": source,
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", *target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert named in proc.stdout + proc.stderr


def test_cli_help_is_light():
    # --help must not import the heavy libraries (fast start, see benchmarks/)
    code = (
        "import sys; from risk_assets import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'great_expectations', 'sklearn', 'dagster', 'skops') "
        "if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_gate_metadata_is_typed():
    """Figures are floats or Dagster's null, never a string; the evidence is also a typed
    table (numbers, booleans, text) beside its markdown."""
    import dagster as dg

    from risk_assets.catalogue import Check, entry
    from risk_assets.controls import ControlResult
    from risk_assets.dagster._checks import check_metadata
    from risk_assets.policy import Risk

    risk = Risk.model_validate(
        {"id": "D-1", "title": "t", "category": "drift", "control": {"name": "drift"}}
    )
    check = Check("no_feature_drift", risk, entry("drift"), risk.control.params)
    table = [
        {"feature": "age", "p_value": 0.5, "drift": False, "note": None},
        {"feature": "job", "p_value": 0.001, "drift": True, "note": "moved"},
    ]
    result = ControlResult(passed=False, value=None, threshold=0.0, summary="s", table=table)
    md = check_metadata(check, result, extra={})
    assert isinstance(md["risk/value"], dg.NullMetadataValue)
    assert md["risk/threshold"].value == 0.0
    typed = md["risk/evidence_table"].value
    assert [(c.name, c.type) for c in typed.schema.columns] == [
        ("feature", "string"),
        ("p_value", "float"),
        ("drift", "bool"),
        ("note", "string"),
    ]
    assert typed.records[1].data == {
        "feature": "job",
        "p_value": 0.001,
        "drift": True,
        "note": "moved",
    }


def test_resources_show_where_state_lives(tmp_path, monkeypatch):
    """Dagster's Resources page shows each store: an environment variable by name (EnvVar)
    where the environment sets it, else the embedded default's path."""
    from risk_assets.dagster import build_definitions

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RISK_ASSETS_ALERT_WEBHOOK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path / "state"))
    embedded = build_definitions([CREDIT_SPEC]).resources
    mlflow = embedded["mlflow"]
    assert mlflow.tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}"
    assert mlflow.artifact_root == (tmp_path / "state" / "mlflow" / "artifacts").as_uri()
    assert embedded["snapshots"].base_dir == str(tmp_path / "state" / "snapshots")
    assert embedded["io_manager"].base_dir == str(tmp_path / "state" / "io")
    assert embedded["alerts"].url is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("RISK_ASSETS_ALERT_WEBHOOK", "https://hooks.internal/risk")
    served = build_definitions([CREDIT_SPEC]).resources
    assert served["mlflow"].tracking_uri == dg.EnvVar("MLFLOW_TRACKING_URI")
    assert served["mlflow"].artifact_root is None  # an MLflow server decides
    assert served["alerts"].url == dg.EnvVar("RISK_ASSETS_ALERT_WEBHOOK")
    # the value is read where the run executes
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.other:5000")
    with dg.build_resources({"mlflow": served["mlflow"]}) as built:
        assert built.mlflow.resolved_tracking_uri() == "http://mlflow.other:5000"


def test_a_sampled_gate_states_what_its_sample_can_show():
    """Every gate that looked at a sample names its size and its power: the margin of a
    share measured on it, and the smallest fault share it finds with 95 % probability."""
    import math

    from risk_assets.catalogue import Check, entry
    from risk_assets.controls import ControlResult
    from risk_assets.controls._result import sampling_power
    from risk_assets.dagster._checks import check_metadata
    from risk_assets.policy import Risk

    risk = Risk.model_validate(
        {"id": "P-1", "title": "t", "category": "data_privacy", "control": {"name": "pii"}}
    )
    check = Check("pii_free", risk, entry("pii"), risk.control.params)
    result = ControlResult(passed=True, value=0.0, threshold=0.0, summary="s", sample_size=10_000)
    md = check_metadata(check, result, extra={})
    assert md["risk/sample_size"].value == 10_000
    assert md["risk/sample_power"] == (
        "10,000 rows: a share measured on them is within ±1.0% (95 %, worst case); a fault in "
        "0.03% of rows or more is among them with 95 % probability"
    )
    power = sampling_power(10_000)
    # the detection floor: (1 - p) ** n = 0.05 at that share
    assert math.isclose((1 - power["detectable_share_95"]) ** 10_000, 0.05)
    assert sampling_power(0) == {}
