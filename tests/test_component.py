"""Pipelines as Dagster components: a defs.yaml per pipeline, resources once at the root."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.component_scaffolding import scaffold_object

from conftest import PIPELINES, ROOT, make_pipeline
from risk_assets.dagster import (
    RiskAssetsPipeline,
    build_definitions,
    default_resources,
    definitions_from_defs_folder,
)
from risk_assets.errors import SpecError

TYPE = "risk_assets.dagster.RiskAssetsPipeline"


def _write_defs_yaml(folder: Path, spec: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "defs.yaml"
    path.write_text(yaml.safe_dump({"type": TYPE, "attributes": {"spec": spec}}))
    return path


def _two_specs(root: Path) -> tuple[Path, Path]:
    """Specs ``alpha`` and ``beta`` side by side in ``root`` (one policy, suite and data)."""
    make_pipeline(root / "a", name="alpha")
    for f in (root / "a").iterdir():
        shutil.move(str(f), root / f.name)
    spec = yaml.safe_load((root / "alpha.yaml").read_text())
    spec["name"] = "beta"
    spec["registered_model"] = "beta"
    (root / "beta.yaml").write_text(yaml.safe_dump(spec))
    return root / "alpha.yaml", root / "beta.yaml"


def _summary(defs: dg.Definitions) -> dict[str, set]:
    graph = defs.resolve_asset_graph()
    return {
        "assets": {k.to_user_string() for k in graph.get_all_asset_keys()},
        "checks": {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys},
        "jobs": {j.name for j in defs.resolve_all_job_defs()},
        "sensors": {s.name for s in defs.sensors or []},
        "schedules": {s.name for s in defs.schedules or []},
    }


def test_example_defs_folder_matches_the_code_location():
    components = definitions_from_defs_folder(PIPELINES / "defs")
    classic = runpy.run_path(str(PIPELINES / "definitions.py"))["defs"]
    mine, theirs = _summary(components), _summary(classic)
    assert mine == theirs
    assert {"credit_risk_job", "credit_risk_monthly_job"} <= mine["jobs"]
    assert ("credit_risk/candidate_model", "fair_across_sex") in mine["checks"]
    assert set(components.resources or {}) == set(default_resources())
    assert components.executor is dg.in_process_executor
    components.get_repository_def()  # every resource an asset or check needs is there


def test_two_pipelines_side_by_side_define_resources_once(tmp_path):
    alpha, beta = _two_specs(tmp_path)
    _write_defs_yaml(tmp_path / "defs" / "alpha", "../../alpha.yaml")
    _write_defs_yaml(tmp_path / "defs" / "beta", "../../beta.yaml")
    defs = definitions_from_defs_folder(tmp_path / "defs")
    summary = _summary(defs)
    assert {"alpha_job", "beta_job"} <= summary["jobs"]
    assert "alpha/raw_snapshot" in summary["assets"] and "beta/raw_snapshot" in summary["assets"]
    assert set(defs.resources or {}) == set(default_resources())
    defs.get_repository_def()

    # each component alone carries no resources and no executor, so they merge with one root
    single = [dg.build_defs_for_component(RiskAssetsPipeline(spec=str(p))) for p in (alpha, beta)]
    assert all(not d.resources and d.executor is None for d in single)
    root = dg.Definitions(resources=default_resources(), executor=dg.in_process_executor)
    merged = dg.Definitions.merge(*single, root)
    assert {"alpha_job", "beta_job"} <= _summary(merged)["jobs"]
    merged.get_repository_def()

    # what the root avoids: two definitions that each bring their own resources collide
    with pytest.raises(dg.DagsterInvariantViolationError, match="different resources"):
        dg.Definitions.merge(build_definitions([alpha]), build_definitions([beta]))


def test_assets_link_back_to_their_spec(tmp_path):
    alpha, beta = _two_specs(tmp_path)
    _write_defs_yaml(tmp_path / "defs" / "alpha", "../../alpha.yaml")
    _write_defs_yaml(tmp_path / "defs" / "beta", "../../beta.yaml")
    defs = definitions_from_defs_folder(tmp_path / "defs")
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) == 10
    for key in keys:
        refs = graph.get(key).metadata["dagster/code_references"].code_references
        spec = alpha if key.path[0] == "alpha" else beta
        files = {(r.file_path, r.line_number) for r in refs}
        assert (str(spec.resolve()), 1) in files, key
        # dagster's own link to the defs.yaml that declares the component
        assert str(tmp_path / "defs" / key.path[0] / "defs.yaml") in {f for f, _ in files}


def test_a_bad_spec_path_fails_at_load_naming_the_defs_yaml(tmp_path):
    _two_specs(tmp_path)
    defs_yaml = _write_defs_yaml(tmp_path / "defs" / "alpha", "../../nope.yaml")
    with pytest.raises(SpecError) as err:
        definitions_from_defs_folder(tmp_path / "defs")
    message = str(err.value)
    assert str(defs_yaml) in message and str((tmp_path / "nope.yaml").resolve()) in message

    # a spec that is there but names a missing policy: the spec's error, and which defs.yaml
    (tmp_path / "policy.yaml").unlink()
    defs_yaml = _write_defs_yaml(tmp_path / "defs" / "alpha", "../../alpha.yaml")
    with pytest.raises(SpecError, match="policy: file not found") as err:
        definitions_from_defs_folder(tmp_path / "defs")
    assert str(defs_yaml) in str(err.value)


def test_scaffolder_writes_a_loadable_defs_yaml(tmp_path):
    _two_specs(tmp_path)
    target = tmp_path / "defs" / "alpha"
    # what `dg scaffold defs risk_assets.dagster.RiskAssetsPipeline alpha --spec ...` calls
    scaffold_object(
        target, TYPE, json.dumps({"spec": "../../alpha.yaml"}), "yaml", project_root=None
    )
    assert yaml.safe_load((target / "defs.yaml").read_text()) == {
        "type": TYPE,
        "attributes": {"spec": "../../alpha.yaml"},
    }
    assert "alpha_job" in _summary(definitions_from_defs_folder(tmp_path / "defs"))["jobs"]

    with pytest.raises(SpecError, match="risk-assets init"):
        scaffold_object(
            tmp_path / "defs" / "gamma",
            TYPE,
            json.dumps({"spec": "../../gamma.yaml"}),
            "yaml",
            project_root=None,
        )
    assert not (tmp_path / "defs" / "gamma" / "defs.yaml").exists()


def test_init_writes_the_component_beside_the_spec(tmp_path, capsys):
    """`risk-assets init --defs DIR` doubles as the component's scaffolder."""
    from conftest import CREDIT_DATA
    from risk_assets.cli import main

    out, defs = tmp_path / "pipelines", tmp_path / "pipelines" / "defs"
    code = main(
        ["init", str(CREDIT_DATA), "--target", "risk", "--name", "loans", "--out", str(out)]
        + ["--protected", "sex", "--defs", str(defs)]
    )
    assert code == 0 and f"wrote {defs / 'loans' / 'defs.yaml'}" in capsys.readouterr().out
    assert yaml.safe_load((defs / "loans" / "defs.yaml").read_text()) == {
        "type": TYPE,
        "attributes": {"spec": "../../loans.yaml"},
    }
    assert "loans_job" in _summary(definitions_from_defs_folder(defs))["jobs"]


def test_components_code_location_is_light():
    code = (
        "import runpy, sys\n"
        "runpy.run_path('pipelines/components_definitions.py')\n"
        "heavy = [m for m in ('mlflow', 'great_expectations', 'sklearn', 'skops', 'art', "
        "'fairlearn', 'numpy', 'pandas', 'pyarrow') if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]
