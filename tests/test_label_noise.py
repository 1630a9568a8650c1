"""The label-noise gate: 10 % flipped labels contradict the reference and are blocked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import (
    CATEGORICAL,
    FEATURES,
    make_pipeline,
    policy_params,
    run_against_champion,
)
from risk_assets.controls._poisoning import conflicting_duplicates_share, label_consistency
from risk_assets.data import split_frame
from risk_assets.estimator import build_pipeline


def _params() -> dict:
    return policy_params("INT-001")


def _flipped(credit, share=0.10, seed=0):
    out = credit.copy()
    idx = np.random.default_rng(seed).choice(len(out), size=int(share * len(out)), replace=False)
    out.loc[idx, "risk"] = 1 - out.loc[idx, "risk"]
    return out


def _make():
    return build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=["credit_amount", "duration"],
        categorical=CATEGORICAL,
    )


def test_flipped_labels_contradict_the_reference(credit):
    p = _params()
    kwargs = {
        "features": FEATURES,
        "target": "risk",
        "make_model": _make,
        "confidence": p["confidence"],
        "max_increase": p["max_increase"],
        "max_conflicting_duplicates": p["max_conflicting_duplicates"],
    }
    reference = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True).train
    clean = label_consistency(reference, credit, **kwargs)
    assert clean.passed and clean.value < p["max_increase"]
    for seed in (0, 1, 2):
        noisy = label_consistency(reference, _flipped(credit, seed=seed), **kwargs)
        assert not noisy.passed and noisy.value > p["max_increase"], noisy.summary
    first = label_consistency(None, credit, **kwargs)
    assert first.passed and "no reference window" in first.summary


def test_conflicting_duplicates(credit):
    assert conflicting_duplicates_share(credit, features=FEATURES, target="risk") == 0.0
    copies = credit.head(50).assign(risk=lambda d: 1 - d["risk"])
    doubled = pd.concat([credit, copies], ignore_index=True)
    share = conflicting_duplicates_share(doubled, features=FEATURES, target="risk")
    assert share == 100 / len(doubled)


def test_flipped_batch_is_blocked_against_the_champion(clean_run, tmp_path, credit, capsys):
    spec = make_pipeline(tmp_path / "p", data=_flipped(credit))
    code, payload, gates = run_against_champion(clean_run["state"], spec, capsys)
    gate = gates["labels_consistent"]
    assert code == 3 and "labels_consistent" in payload["blocked_by"]
    assert gate["risk_id"] == "INT-001" and gate["value"] > _params()["max_increase"]
