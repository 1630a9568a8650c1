"""A blocked gate reports the figure that failed, with enough digits to see the margin."""

from __future__ import annotations

import numpy as np

from risk_assets.controls._fairness import fairness_across
from risk_assets.controls._format import compared
from risk_assets.controls._performance import meets_metric_thresholds


def test_digits_grow_until_the_margin_shows():
    assert compared(0.79996, 0.8) == ("0.79996", "0.80000")
    assert compared(0.7, 0.8) == ("0.700", "0.800")
    assert compared(0.8, 0.8) == ("0.800", "0.800")
    result = meets_metric_thresholds({"roc_auc": 0.59999}, {"roc_auc": 0.6})
    assert "roc_auc 0.59999 < 0.60000" in result.summary


def test_fairness_headline_is_the_failed_figure(credit):
    # real groups (sex) and labels; decisions equal in rate, wrong for one group
    y = credit["risk"].to_numpy()
    sex = credit["sex"]
    rng = np.random.default_rng(0)
    pred = y.copy()
    women = (sex == "female").to_numpy()
    # for women, decisions ignore the label: same selection rate, very different TPR/FPR
    pred[women] = rng.permutation(y[women])
    result = fairness_across(
        y, pred, sex, favourable=1, min_ratio=0.8, max_equalized_odds_difference=0.2
    )
    assert not result.passed
    assert "demographic parity" not in result.summary
    assert result.value == result.figures["equalized_odds_difference"] > 0.2
    assert result.threshold == 0.2


def test_a_favourable_label_that_never_occurs_cannot_decide(credit):
    y = credit["risk"].map({1: "good", 0: "bad"}).to_numpy()
    result = fairness_across(y, y, credit["sex"], favourable=1, min_ratio=0.8)
    assert not result.passed and "occurs in neither" in result.summary


def test_labels_made_unfavourable_for_one_group_are_caught(credit):
    """A model that never sees sex can still be trained on labels biased against women:
    the four-fifths rule on the training labels catches what the decisions hide."""
    rng = np.random.default_rng(1)
    labels = credit["risk"].copy()
    women = credit.index[(credit["sex"] == "female").to_numpy()]
    labels[rng.choice(women, size=int(0.6 * len(women)), replace=False)] = 0
    decisions = credit["risk"].to_numpy()  # decisions as fair as the clean labels
    kw = dict(favourable=1, min_ratio=0.8, training_groups=credit["sex"], min_label_ratio=0.8)
    clean = fairness_across(credit["risk"], decisions, credit["sex"],
                            training_labels=credit["risk"], **kw)  # fmt: skip
    assert clean.passed and "training label ratio" in clean.summary, clean.summary
    biased = fairness_across(credit["risk"], decisions, credit["sex"],
                             training_labels=labels, **kw)  # fmt: skip
    assert not biased.passed and "training labels favour male" in biased.summary
    assert biased.value == biased.figures["training_label_ratio"] < 0.8


def test_a_training_label_ratio_that_cannot_be_measured_fails_closed(credit):
    y = credit["risk"].to_numpy()
    one_group = ["female"] * len(credit)  # every training row in one group
    result = fairness_across(
        y, y, credit["sex"], favourable=1, min_ratio=0.8,
        training_labels=credit["risk"], training_groups=one_group, min_label_ratio=0.8,
    )  # fmt: skip
    assert not result.passed and "label ratio cannot be decided" in result.summary
