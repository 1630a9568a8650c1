"""Contextual register profiles written by ``init``: lending and healthcare."""

from __future__ import annotations

import json

import yaml

from conftest import CREDIT_DATA
from risk_assets.cli import main


def _run(spec, capsys) -> tuple[int, dict]:
    code = main(["run", str(spec), "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _breast_cancer_csv(path):
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)  # target: 0 = malignant, 1 = benign
    return path


def test_healthcare_profile_holds_recall_on_the_positive_class(state, tmp_path, capsys):
    data = _breast_cancer_csv(tmp_path / "in" / "tumours.csv")
    out = tmp_path / "pipelines"
    assert (
        main(
            [
                "init",
                str(data),
                "--target",
                "target",
                "--positive-label",
                "0",
                "--profile",
                "healthcare",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    policy = yaml.safe_load((out / "policies" / "tumours.yaml").read_text())
    assert policy["tier"] == "high" and policy["promotion"]["auto_promote"] is False
    risks = {r["id"]: r for r in policy["risks"]}
    assert risks["PERF-001"]["control"]["params"]["thresholds"]["recall"] == 0.9
    assert risks["PRIV-002"]["control"]["params"]["max_advantage"] == 0.05
    spec_doc = yaml.safe_load((out / "tumours.yaml").read_text())
    assert spec_doc["positive_label"] == 0
    code, payload = _run(out / "tumours.yaml", capsys)
    # a high tier registers a challenger and waits for approval: no champion
    assert code == 0 and payload["status"] == "registered", payload
    assert (payload["model"], payload["aliases"]) == ("tumours-candidates", ["challenger"])
    assert all(g["passed"] for g in payload["gates"])

    # a model that calls every tumour benign misses every malignant one: blocked on recall
    spec_doc["estimator"] = {
        "class": "sklearn.dummy.DummyClassifier",
        "params": {"strategy": "most_frequent"},
    }
    (out / "tumours.yaml").write_text(yaml.safe_dump(spec_doc, sort_keys=False))
    code, payload = _run(out / "tumours.yaml", capsys)
    gate = {g["name"]: g for g in payload["gates"]}["meets_metric_thresholds"]
    assert code == 3 and gate["passed"] is False and "recall 0.0000 < 0.9000" in gate["summary"]


def test_lending_profile_flags_a_model_that_uses_sex(state, tmp_path, capsys):
    out = tmp_path / "pipelines"
    assert (
        main(
            [
                "init",
                str(CREDIT_DATA),
                "--target",
                "risk",
                "--protected",
                "sex",
                "age",
                "--profile",
                "lending",
                "--name",
                "lending",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    policy = yaml.safe_load((out / "policies" / "lending.yaml").read_text())
    fairness = next(r for r in policy["risks"] if r["id"] == "FAIR-001")["control"]["params"]
    assert fairness == {
        "min_ratio": 0.8,
        "min_label_ratio": 0.8,
        "min_group_size": 20,
        "max_equalized_odds_difference": 0.2,
    }
    # init keeps protected attributes out of the features; a model that is given sex and
    # age anyway has error rates that differ between women and men beyond the bound
    spec_doc = yaml.safe_load((out / "lending.yaml").read_text())
    assert "sex" not in spec_doc["features"] and "age" not in spec_doc["features"]
    spec_doc["features"] += ["sex", "age"]
    (out / "lending.yaml").write_text(yaml.safe_dump(spec_doc, sort_keys=False))
    code, payload = _run(out / "lending.yaml", capsys)
    gates = {g["name"]: g for g in payload["gates"]}
    assert code == 3 and "fair_across_sex" in payload["blocked_by"], payload["blocked_by"]
    assert "equalized odds difference" in gates["fair_across_sex"]["summary"]
    assert payload["version"] is None
