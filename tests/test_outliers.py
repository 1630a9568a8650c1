"""The outlier gate: injected rows unlike the reference (poisoning) are blocked; clean data
from the same source passes; with no reference the gate passes and says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import (
    CATEGORICAL,
    make_pipeline,
    policy_params,
    run_against_champion,
)
from risk_assets.controls._poisoning import outliers_against_reference
from risk_assets.data import split_frame

NUMERIC = ["credit_amount", "duration"]


def _poisoned(frame: pd.DataFrame, share: float = 0.10, seed: int = 0) -> pd.DataFrame:
    """Replace ``share`` of the rows by injected ones: each value plausible on its own (within
    the suite's ranges and categories), the combination unlike any real application: the
    longest loans for the smallest amounts, for holidays, with a rich checking account."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    idx = rng.choice(out.index.to_numpy(), size=int(share * len(out)), replace=False)
    out.loc[idx, "duration"] = rng.integers(60, 73, len(idx))
    out.loc[idx, "credit_amount"] = rng.integers(250, 600, len(idx))
    out.loc[idx, "purpose"] = "vacation/others"
    out.loc[idx, "checking_account"] = "rich"
    return out


def _kwargs(**overrides) -> dict:
    p = policy_params("INT-002")
    kwargs = {
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "detector": p["detector"],
        "quantile": p["quantile"],
        "max_increase": p["max_increase"],
    }
    return kwargs | overrides


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_injected_rows_are_outliers_and_clean_rows_are_not(credit, seed):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    reference, new = split.train, split.test
    clean = outliers_against_reference(reference, new, **_kwargs(), seed=seed)
    poisoned = outliers_against_reference(
        reference, _poisoned(new, seed=seed), **_kwargs(), seed=seed
    )
    limit = policy_params("INT-002")["max_increase"]
    assert clean.passed and clean.value <= limit, clean.summary
    assert not poisoned.passed and poisoned.value > limit, poisoned.summary
    # most of the injected 10 % are found
    assert poisoned.figures["outlier_share"] >= 0.08
    assert poisoned.sample_size == len(new)


def test_repeated_rows_in_the_reference_do_not_hide_injected_ones(credit):
    """Categories only: half the reference rows repeat another. Fitted on distinct rows, the
    local outlier factor still finds 15 % of rows set to one combination never seen."""
    reference, new = credit.iloc[:750], credit.iloc[750:].copy()
    odd = new.sample(frac=0.15, random_state=0).index
    new.loc[odd, CATEGORICAL] = [0, "free", "rich", "rich", "vacation/others"]
    kwargs = _kwargs(numeric=[])
    assert outliers_against_reference(reference, credit.iloc[750:], **kwargs).passed
    result = outliers_against_reference(reference, new, **kwargs)
    assert not result.passed and result.figures["outlier_share"] >= 0.14, result.summary


def test_isolation_forest_is_the_other_detector(credit):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    kwargs = _kwargs(detector="isolation_forest")
    clean = outliers_against_reference(split.train, split.test, **kwargs)
    assert clean.passed and "isolation forest" in clean.summary
    # rows far outside the reference on every numeric feature
    far = split.test.assign(credit_amount=lambda d: d["credit_amount"] * 10, duration=200)
    assert not outliers_against_reference(split.train, far, **kwargs).passed


def test_no_reference_passes_and_says_so_and_a_tiny_reference_fails_closed(credit):
    first = outliers_against_reference(None, credit, **_kwargs())
    assert first.passed and "no reference window" in first.summary
    tiny = outliers_against_reference(credit.head(199), credit, **_kwargs())
    assert not tiny.passed and "needs at least 200" in tiny.summary
    assert outliers_against_reference(credit.head(200), credit.head(200), **_kwargs()).passed


def test_poisoned_batch_is_blocked_against_the_champion(clean_run, tmp_path, credit, capsys):
    spec = make_pipeline(tmp_path / "p", data=_poisoned(credit))
    code, payload, gates = run_against_champion(clean_run["state"], spec, capsys)
    gate = gates["no_outliers_against_reference"]
    assert code == 3 and "no_outliers_against_reference" in payload["blocked_by"]
    assert gate["risk_id"] == "INT-002"
    assert gate["value"] > policy_params("INT-002")["max_increase"]
