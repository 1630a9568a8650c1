"""Labels resolved in one place, what init writes for data it has never seen, and the
champion compared on rows neither model trained on. Real data: German credit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CATEGORICAL, CREDIT_DATA, EXPENSIVE_RISKS, FEATURES
from risk_assets.cli import main
from risk_assets.errors import DataError
from risk_assets.labels import resolve_labels, suggest_labels

# -- labels ------------------------------------------------------------------------------


def test_string_target_labels_resolve_and_are_refused_when_absent():
    values = pd.Series(["good", "bad", "good"])
    labels = resolve_labels(values, positive="good", favourable="good", target="risk")
    assert (labels.positive, labels.favourable) == ("good", "good")
    # an unset favourable label of a string target is never guessed at run time
    unset = resolve_labels(values, target="risk")
    assert unset.favourable is None and unset.positive == "good"
    with pytest.raises(DataError, match=r"favourable_label is not set .*\['bad', 'good'\]"):
        unset.require_favourable(target="risk", where="spec.yaml")
    with pytest.raises(DataError, match=r"favourable_label 1 does not occur.*\['bad', 'good'\]"):
        resolve_labels(values, favourable=1, target="risk", where="spec.yaml")


def test_numeric_labels_match_across_types():
    # YAML writes 1; a target read with a gap is float; a model's classes are numpy ints
    assert resolve_labels(pd.Series([0.0, 1.0]), positive=1).positive == 1.0
    assert resolve_labels(np.array([0, 1]), favourable="1").favourable == 1
    # plain Python values, equal to the data's own (messages read 1, not np.int64(1))
    assert resolve_labels(pd.Series([True, False])).favourable is True
    labels = resolve_labels(np.array([0, 1], dtype=np.int64))
    assert labels.classes == (0, 1) and type(labels.positive) is int
    assert suggest_labels(pd.Series(["no", "yes", "no"]), target="subscribed")[0] == "yes"
    assert suggest_labels(pd.Series(["approved", "denied"]))[0] == "approved"
    # a yes or a 1 that names an adverse event is not the favourable decision
    assert suggest_labels(pd.Series(["no", "yes"]), target="readmitted")[0] == "no"
    assert suggest_labels(pd.Series([0, 1]), target="loan_default")[0] == 0
    assert suggest_labels(pd.Series([0, 1]), target="risk")[0] == 1
    guess, reason, sure = suggest_labels(pd.Series(["A", "B"]))
    assert guess == "B" and reason.startswith("a guess") and not sure


# -- init on data it has never seen ------------------------------------------------------


def _string_credit(tmp_path, **extra) -> str:
    df = pd.read_csv(CREDIT_DATA)
    df["risk"] = df["risk"].map({1: "good", 0: "bad"})
    for col, values in extra.items():
        df[col] = values
    path = tmp_path / "applications.csv"
    df.to_csv(path, index=False)
    return str(path)


def _init(capsys, *args) -> str:
    assert main(["init", *args]) == 0
    return capsys.readouterr().out


def _without_expensive(policy_path) -> None:
    doc = yaml.safe_load(policy_path.read_text())
    doc["risks"] = [r for r in doc["risks"] if r["id"] not in (*EXPENSIVE_RISKS, "PRIV-002")]
    policy_path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_init_on_a_string_target_writes_labels_and_fairness_passes(state, tmp_path, capsys):
    data = _string_credit(tmp_path)
    out = tmp_path / "p"
    # --protected twice keeps both (it kept only the last one)
    printed = _init(
        capsys, data, "--target", "risk", "--protected", "sex", "--protected", "age",
        "--out", str(out),
    )  # fmt: skip
    spec = yaml.safe_load((out / "applications.yaml").read_text())
    assert spec["positive_label"] == "good" and spec["favourable_label"] == "good"
    assert spec["protected_attributes"] == ["sex", "age"]
    assert "sex" not in spec["features"] and "age" not in spec["features"]
    assert "favourable_label 'good' ('good' reads as the favourable outcome" in printed
    policy = yaml.safe_load((out / "policies" / "applications.yaml").read_text())
    # no model is promoted the moment it passes, and the output says what the tier means
    assert policy["tier"] == "medium" and policy["promotion"]["auto_promote"] is False
    assert "waits for a person's approval" in printed
    controls = {r["control"]["name"] for r in policy["risks"]}
    assert {"expectations", "pii", "drift", "label_noise", "outliers"} <= controls
    _without_expensive(out / "policies" / "applications.yaml")

    assert main(["run", str(out / "applications.yaml"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gates = {g["name"]: g for g in payload["gates"]}
    sex = gates["fair_across_sex"]
    # the bug: "selection rate 0.000 (g) vs 0.000 (g): ratio 0.000 < 0.800"
    assert sex["passed"] and "0.000 (" not in sex["summary"], sex["summary"]
    assert "(female)" in sex["summary"] and "(male)" in sex["summary"]
    assert payload["status"] == "registered" and payload["aliases"] == ["challenger"]


def test_a_label_that_never_occurs_is_refused_naming_the_values(state, tmp_path, capsys):
    data = _string_credit(tmp_path)
    out = tmp_path / "p"
    _init(capsys, data, "--target", "risk", "--protected", "sex", "--out", str(out))
    path = out / "applications.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["favourable_label"] = 1  # what init used to assume
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "favourable_label 1 does not occur in target 'risk'" in err
    assert "['bad', 'good']" in err and str(path) in err
    with pytest.raises(SystemExit):
        main(["init", data, "--target", "risk", "--favourable-label"])
    assert (
        main(
            [
                "init",
                data,
                "--target",
                "risk",
                "--favourable-label",
                "ok",
                "--out",
                str(out),
                "--force",
            ]
        )  # fmt: skip
        == 2
    )
    assert "--favourable-label 'ok': the target 'risk' has ['bad', 'good']" in (
        capsys.readouterr().err
    )


def test_init_leaves_pii_out_and_points_out_sentinels(tmp_path, capsys):
    df = pd.read_csv(CREDIT_DATA)
    df["credit_amount"] = df["credit_amount"].astype(float)
    df.loc[7, "credit_amount"] = 999999.375  # a placeholder that inflated the budget
    df["contact"] = [f"applicant{i}@example.org" for i in range(len(df))]
    df["guarantor"] = df["housing"] == "own"  # a boolean column is a category, not a number
    data = tmp_path / "credit.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "p"
    printed = _init(capsys, str(data), "--target", "risk", "--out", str(out))
    spec = yaml.safe_load((out / "credit.yaml").read_text())
    assert "contact" not in spec["features"]
    assert "column 'contact' holds PII (email 100%)" in printed
    assert "decide before the first run" in printed
    assert "'credit_amount': 1 value(s) of 999999.375 far beyond the rest" in printed
    policy = yaml.safe_load((out / "policies" / "credit.yaml").read_text())
    budget = next(r for r in policy["risks"] if r["id"] == "ROB-001")["control"]["params"]
    amounts = df["credit_amount"].drop(index=7)
    # 5 % of the robust spread: not inflated by the placeholder (std would give ~1600)
    assert budget["budgets"]["credit_amount"] < 0.05 * amounts.std()
    assert "guarantor" not in budget["budgets"] and "guarantor" in spec["features"]
    suite = json.loads((out / "expectations" / "credit.json").read_text())
    assert not any(e.get("kwargs", {}).get("column") == "contact" for e in suite["expectations"])


# -- champion vs challenger ---------------------------------------------------------------


@pytest.fixture(scope="module")
def forests(credit):
    """A champion trained on one split of German credit, candidates on 90 % re-samples: a
    random forest remembers its training rows, which is what biased the old comparison."""
    from risk_assets.data import split_frame
    from risk_assets.estimator import build_pipeline

    cat = [c for c in CATEGORICAL if c != "job"]
    num = [c for c in FEATURES if c not in cat]
    frame = credit[["risk", *FEATURES]]

    def fit(train, y=None):
        model = build_pipeline(
            class_path="sklearn.ensemble.RandomForestClassifier",
            params={"random_state": 0, "n_estimators": 60},
            numeric=num,
            categorical=cat,
        )
        return model.fit(train[FEATURES], train["risk"] if y is None else y)

    base = split_frame(frame, target="risk", test_size=0.25, seed=42, stratify=True)
    champion = fit(base.train)
    runs = []
    for seed in range(3):
        sub = frame.sample(frac=0.9, random_state=seed)
        split = split_frame(sub, target="risk", test_size=0.25, seed=42, stratify=True)
        runs.append((split, fit(split.train)))
    labels = runs[0][0].train["risk"].to_numpy()
    noise = np.random.default_rng(0).permutation(labels)
    return {
        "base": base,
        "champion": champion,
        "runs": runs,
        "junk": fit(runs[0][0].train, noise),
        # trained on the opposite labels: worse than the champion beyond doubt, on the few
        # rows (under a hundred) a 90 % re-sample leaves unseen by both models
        "inverted": fit(runs[0][0].train, 1 - labels),
    }


def _compare(forests, split, candidate, **kw):
    from risk_assets.controls._champion import compare_on_unseen_rows

    return compare_on_unseen_rows(
        candidate,
        forests["champion"],
        split.test,
        features=FEATURES,
        target="risk",
        trained_on=[forests["base"].train, split.train],
        also_held_out=[forests["base"].test],
        metric="roc_auc",
        tolerance=0.02,
        positive_label=1,
        champion_ref="credit_risk/1",
        **kw,
    )


def test_champion_comparison_uses_rows_neither_model_trained_on(forests):
    from risk_assets.controls._performance import evaluate_classifier

    for split, candidate in forests["runs"]:
        test = split.test
        # the old comparison: the champion scored on rows it had mostly trained on
        old = evaluate_classifier(candidate, test[FEATURES], test["risk"], positive_label=1)
        old_champ = evaluate_classifier(
            forests["champion"], test[FEATURES], test["risk"], positive_label=1
        )
        assert old["roc_auc"] - old_champ["roc_auc"] < -0.1  # a clean re-sample "blocked"
        result = _compare(forests, split, candidate)
        assert result.passed, result.summary
        rows = result.figures["evaluation_rows"]
        held_out = result.figures["held_out_rows"]
        assert 30 <= rows < held_out and f"on {rows:.0f} rows neither trained on" in (
            result.summary
        )
        assert result.figures["rows_seen_in_training"] == held_out - rows
        assert _compare(forests, split, candidate).to_dict() == result.to_dict()  # seeded


def test_the_champion_comparison_scores_a_stated_sample_of_the_unseen_rows(forests):
    """At most ``eval_size`` unseen rows are scored (seeded); the evidence says how many
    of how many, and the verdict on an inverted model does not change."""
    split, candidate = forests["runs"][0]
    full = _compare(forests, split, candidate)
    unseen = int(full.figures["unseen_rows"])
    part = _compare(forests, split, candidate, eval_size=unseen - 20)
    assert part.figures["evaluation_rows"] == unseen - 20
    assert part.figures["unseen_rows"] == unseen == full.figures["evaluation_rows"]
    assert f"on {unseen - 20} (a seeded sample) of {unseen} rows" in part.summary
    assert part.to_dict() == _compare(forests, split, candidate, eval_size=unseen - 20).to_dict()
    worse = _compare(forests, split, forests["inverted"], eval_size=unseen - 20)
    assert not worse.passed


def test_a_worse_candidate_is_blocked_and_too_few_rows_fail_closed(forests):
    split, _ = forests["runs"][0]
    worse = _compare(forests, split, forests["inverted"])
    assert not worse.passed and "beyond tolerance and significant" in worse.summary
    assert worse.value < -0.02 and worse.figures["delta_upper"] < 0
    few = _compare(forests, split, forests["junk"], min_rows=10_000)
    assert not few.passed and few.summary.startswith("could not decide: only")


def test_init_outlier_allowance_sees_five_percent_poisoning(tmp_path, capsys, credit):
    """init's allowance (2 points above the 1 % expected; it was 3) blocks 5 % synthetic
    rows and passes clean re-samples (German credit)."""
    from risk_assets.controls._poisoning import outliers_against_reference
    from risk_assets.data import split_frame

    out = tmp_path / "p"
    _init(capsys, str(CREDIT_DATA), "--target", "risk", "--protected", "sex", "age",
          "--out", str(out))  # fmt: skip
    policy = yaml.safe_load((out / "policies" / "german_credit.yaml").read_text())
    params = next(r for r in policy["risks"] if r["id"] == "INT-002")["control"]["params"]
    cat = [c for c in CATEGORICAL if c != "job"]
    num = [c for c in FEATURES if c not in cat]
    reference = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True).train

    def share(current):
        return outliers_against_reference(
            reference, current, numeric=num, categorical=cat, seed=42, **params
        )

    rng = np.random.default_rng(0)
    n = int(0.05 * len(credit))
    fake = credit.sample(n=n, random_state=0).reset_index(drop=True)
    for c in num:  # every feature drawn on its own, inside its observed range
        fake[c] = rng.integers(credit[c].min(), credit[c].max() + 1, n)
    for c in cat:
        fake[c] = rng.choice(credit[c].dropna().unique(), n)
    poisoned = share(pd.concat([credit, fake], ignore_index=True))
    assert not poisoned.passed and poisoned.value > params["max_increase"], poisoned.summary
    for seed in range(3):
        clean = share(credit.sample(frac=0.9, random_state=seed))
        assert clean.passed, clean.summary
