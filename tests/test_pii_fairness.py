"""The PII and fairness gates: injected faults in real data are blocked, clean data passes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CREDIT_POLICY, make_pipeline, mlflow_client, policy_params, registered_versions
from risk_assets.cli import main
from risk_assets.controls._fairness import band, fairness_across
from risk_assets.controls._pii import PII_KINDS, scan_pii


def test_clean_credit_data_has_no_pii(credit):
    params = policy_params("PRIV-001")
    result = scan_pii(credit, max_share=params["max_share"], sample_size=params["sample_size"])
    assert result.passed and result.table == [] and result.sample_size == 1000


def test_each_kind_of_pii_is_found_and_reported_without_values(credit):
    bad = credit.copy()
    n = len(bad)
    bad["contact"] = [f"applicant{i}@example.org" for i in range(n)]
    bad["tel"] = ["+44 20 7946 0958"] * n
    bad["tax_no"] = ["078-05-1120"] * n
    bad["pan"] = ["4111 1111 1111 1111"] * (n // 2) + ["4111 1111 1111 1112"] * (n - n // 2)
    bad["account"] = ["GB82 WEST 1234 5698 7654 32"] * n
    bad["host"] = ["10.1.2.3"] * n
    bad["applicant"] = ["Maria Schmidt"] * n
    result = scan_pii(bad)
    found = {(r["column"], r["kind"]): r["share"] for r in result.table}
    assert found[("contact", "email")] == 1.0
    assert found[("tel", "phone")] == 1.0
    assert found[("tax_no", "us_ssn")] == 1.0
    assert found[("pan", "payment_card")] == 0.5  # the other half fails the Luhn check
    assert found[("account", "iban")] == 1.0
    assert found[("host", "ip_address")] == 1.0
    assert found[("applicant", "person_name")] == 1.0
    assert not result.passed
    rendered = json.dumps(list(result.table)) + result.summary
    for value in (
        "applicant0@example.org",
        "7946",
        "078-05",
        "4111",
        "WEST",
        "10.1.2.3",
        "Schmidt",
    ):
        assert value not in rendered
    assert {r["kind"] for r in result.table} <= set(PII_KINDS)


def test_declared_pii_passes_and_column_names_count(credit):
    bad = credit.assign(email=[f"a{i}@example.org" for i in range(len(credit))])
    assert not scan_pii(bad).passed
    assert scan_pii(bad, allowed={"email": ["email", "column_name"]}).passed
    renamed = credit.rename(columns={"purpose": "customer_name"})
    result = scan_pii(renamed)
    assert not result.passed and result.table[0]["kind"] == "column_name"


def test_sample_size_is_stated(credit):
    big = pd.concat([credit] * 20, ignore_index=True)
    assert scan_pii(big, sample_size=5000).sample_size == 5000


def test_email_column_blocks_the_pipeline(state, tmp_path, credit, capsys):
    bad = credit.assign(contact=[f"applicant{i}@example.org" for i in range(len(credit))])
    features = [c for c in credit.columns if c not in ("risk", "sex", "age")] + ["contact"]
    spec = make_pipeline(tmp_path / "p", data=bad, spec={"features": features})
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gates = {g["name"]: g for g in payload["gates"]}
    assert code == 3 and "pii_free" in payload["blocked_by"]
    assert gates["pii_free"]["risk_id"] == "PRIV-001" and gates["pii_free"]["value"] == 1.0
    assert "contact (email, 100.0%)" in gates["pii_free"]["summary"]
    assert registered_versions(mlflow_client()) == []


def test_band():
    ages = pd.Series([19, 25, 40, np.nan])
    assert band(ages, [25]).tolist() == ["<25", ">=25", ">=25", "missing"]
    assert band(ages, [25, 35]).tolist() == ["<25", "25-35", ">=35", "missing"]


def _biased(credit: pd.DataFrame) -> pd.DataFrame:
    """Labels that deny 70 % of women regardless of their credit: a discriminating target."""
    rng = np.random.default_rng(1)
    out = credit.copy()
    women = out.index[out["sex"] == "female"]
    out.loc[rng.choice(women, size=int(0.7 * len(women)), replace=False), "risk"] = 0
    return out


def test_fairness_control_on_clean_and_biased_predictions(credit):
    params = policy_params("FAIR-001")
    y = credit["risk"]
    fair = fairness_across(
        y,
        y,
        credit["sex"],
        favourable=1,
        min_ratio=params["min_ratio"],
        max_equalized_odds_difference=params["max_equalized_odds_difference"],
    )
    assert fair.passed and fair.figures["equalized_odds_difference"] == 0.0
    unfair_pred = np.where(credit["sex"] == "female", 0, y)
    unfair = fairness_across(
        y, unfair_pred, credit["sex"], favourable=1, min_ratio=params["min_ratio"]
    )
    assert not unfair.passed and unfair.value == 0.0
    tiny = fairness_across(
        y[:30], y[:30], credit["sex"][:30], favourable=1, min_ratio=0.8, min_group_size=20
    )
    assert not tiny.passed and tiny.summary.startswith("could not decide")


def test_fairness_figures_equal_fairlearn_on_every_row(credit):
    """The control weighs (group, truth, decision) cells by their row counts; fairlearn's
    MetricFrame on every row gives the same per-group figures."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    from risk_assets.controls._result import as_groups

    rng = np.random.default_rng(0)
    y = credit["risk"].to_numpy()
    pred = np.where(rng.random(len(y)) < 0.3, 1 - y, y)  # a model that errs on 30 % of rows
    for groups in (credit["sex"], band(credit["age"], [25, 35, 50]), credit["purpose"]):
        result = fairness_across(y, pred, groups, favourable=1, min_ratio=0.0, min_group_size=1)
        frame = MetricFrame(
            metrics={
                "rows": count,
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=as_groups(groups).to_numpy(),
        ).by_group
        assert [r["group"] for r in result.table] == [str(g) for g in frame.index]
        for row in result.table:
            expected = frame.loc[row["group"]]
            assert row["rows"] == expected["rows"]
            for key in ("selection_rate", "tpr", "fpr"):
                assert row[key] == pytest.approx(expected[key], abs=1e-12), (row, key)


def test_model_that_uses_sex_to_discriminate_is_blocked(state, tmp_path, credit, capsys):
    features = [c for c in credit.columns if c not in ("risk", "age")]  # sex is a feature
    spec = make_pipeline(
        tmp_path / "p",
        data=_biased(credit),
        spec={"features": features},
        policy={"risk_params": {"PERF-001": {"thresholds": {"roc_auc": 0.5}}}},
    )
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gates = {g["name"]: g for g in payload["gates"]}
    assert code == 3 and "fair_across_sex" in payload["blocked_by"]
    sex = gates["fair_across_sex"]
    assert sex["passed"] is False and sex["value"] < policy_params("FAIR-001")["min_ratio"]
    assert sex["risk_id"] == "FAIR-001" and "(female)" in sex["summary"]
    assert registered_versions(mlflow_client()) == []


def test_spec_pii_kinds_match_the_control():
    from typing import get_args

    from risk_assets.spec import PiiKind

    assert set(get_args(PiiKind)) == {"*", *PII_KINDS}


def test_fairness_needs_protected_attributes(tmp_path):
    from risk_assets.dagster import build_definitions
    from risk_assets.errors import SpecError

    spec = make_pipeline(tmp_path / "p", spec={"protected_attributes": [], "protected_bands": {}})
    with pytest.raises(SpecError, match="fairness needs protected attributes"):
        build_definitions([spec])


def test_explainability_flags_a_protected_attribute_among_top_features(credit):
    from risk_assets.controls._explain import association, protected_among_top_features
    from risk_assets.data import split_frame
    from risk_assets.estimator import build_pipeline

    policy = yaml.safe_load(CREDIT_POLICY.read_text())
    params = next(r for r in policy["risks"] if r["id"] == "EXPL-001")["control"]["params"]
    kwargs = {"top_k": params["top_k"], "proxy_threshold": params["proxy_threshold"]}
    cats = ["job", "housing", "saving_accounts", "checking_account", "purpose"]
    features = [*cats, "credit_amount", "duration"]
    for data, feats, flagged in [
        (credit, features, False),
        (_biased(credit), ["sex", *features], True),
    ]:
        split = split_frame(data, target="risk", test_size=0.25, seed=42, stratify=True)
        model = build_pipeline(
            class_path="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 1000},
            numeric=["credit_amount", "duration"],
            categorical=[c for c in feats if c not in ("credit_amount", "duration")],
        ).fit(split.train[feats], split.train["risk"])
        result = protected_among_top_features(
            model, split.test[feats], split.test["risk"], split.test[["sex", "age"]], **kwargs
        )
        assert result.passed is not flagged, result.summary
    assert result.summary.startswith("sex (protected) is rank 1")
    # a perfect proxy is recognised whatever the kinds of the columns
    assert association(credit["sex"], credit["sex"].map({"male": 1, "female": 0})) == 1.0
    assert association(credit["age"], credit["age"] * 2) == pytest.approx(1.0)
    assert association(credit["sex"], credit["sex"]) == pytest.approx(1.0)


def test_pii_inside_free_text_and_in_float_columns(credit):
    notes = credit.assign(
        note=[
            f"call me at +44 20 7946 {i:04d} or write to jane{i}@example.org"
            for i in range(len(credit))
        ],
        phone_number_digits=[4915112345678.0] * (len(credit) - 1) + [np.nan],
        card=[f"paid with 4111 1111 1111 1111 on day {i % 28}" for i in range(len(credit))],
    )
    found = {(r["column"], r["kind"]) for r in scan_pii(notes).table}
    assert {("note", "email"), ("note", "phone"), ("card", "payment_card")} <= found
    # a float column of whole numbers is scanned as integers; its name says PII too
    assert ("phone_number_digits", "column_name") in found


def test_groups_with_too_few_positives_cannot_decide_equalized_odds(credit):
    y = credit["risk"].to_numpy()
    groups = credit["sex"].where(~((credit["sex"] == "female") & (credit["risk"] == 0)), "male")
    result = fairness_across(
        y, y, groups, favourable=1, min_ratio=0.5, max_equalized_odds_difference=0.2
    )
    assert not result.passed and "equalized odds" in result.summary


def test_unbanded_numeric_attribute_fails_closed_without_listing_values(state, tmp_path, capsys):
    spec = make_pipeline(tmp_path / "p", spec={"protected_bands": {}})
    code = main(["run", str(spec), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gate = {g["name"]: g for g in payload["gates"]}["fair_across_age"]
    assert code == 3 and gate["passed"] is False
    assert "give it band edges in protected_bands" in gate["summary"]
