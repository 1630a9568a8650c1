"""The alibi-detect drift backend (extra ``alibi``; alibi-detect needs numpy<2, so these
tests run in their own environment: see scripts/test). Both backends give the same verdict
on the same clear drift; the multivariate test sees a broken relationship between features
that per-feature tests cannot."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import CATEGORICAL, make_pipeline, run_against_champion

if os.environ.get("RISK_ASSETS_REQUIRE_ALIBI") == "1":
    import alibi_detect  # noqa: F401  (this environment must have it)
else:
    pytest.importorskip(
        "alibi_detect", reason="alibi-detect (numpy<2) is tested in .venv-alibi by scripts/test"
    )

from test_drift import NUMERIC, _params, _shifted  # noqa: E402

from risk_assets.controls._drift import feature_drift  # noqa: E402
from risk_assets.data import split_frame  # noqa: E402

pytestmark = pytest.mark.alibi


def _reversed_relationship(credit):
    """Same values of every feature, but the largest loans now have the shortest durations:
    every marginal distribution is unchanged, their relationship is reversed."""
    out = credit.copy()
    order = np.argsort(out["credit_amount"].to_numpy(), kind="stable")
    durations = np.sort(out["duration"].to_numpy())[::-1]
    values = np.empty(len(out), dtype=durations.dtype)
    values[order] = durations
    out["duration"] = values
    return out


def _drift(reference, current, **kwargs):
    return feature_drift(
        reference, current, numeric=NUMERIC, categorical=CATEGORICAL, **(_params() | kwargs)
    )


def test_both_backends_give_the_same_verdict(credit):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    for current, drifted in [(split.test, set()), (_shifted(credit, NUMERIC), set(NUMERIC))]:
        results = {b: _drift(split.train, current, backend=b) for b in ("scipy", "alibi")}
        for backend, result in results.items():
            assert result.passed is (not drifted), (backend, result.summary)
            assert {r["feature"] for r in result.table if r["drift"]} == drifted
        assert "TabularDrift" in results["alibi"].table[0]["test"]
        # alibi-detect's chi-squared is SciPy's plain contingency test (the scipy backend
        # adds per-category tests); KS p-values (SciPy exact or asymptotic, alibi-detect
        # asymptotic) and both backends' decisions agree
        for ours, theirs in zip(results["scipy"].table, results["alibi"].table, strict=True):
            assert ours["feature"] == theirs["feature"]
            if ours["kind"] == "categorical":
                plain = _plain_chi2(split.train[ours["feature"]], current[ours["feature"]])
                assert theirs["p_value"] == pytest.approx(plain, rel=1e-3, abs=1e-6)
            assert (ours["p_adjusted"] < 0.01) == (theirs["p_adjusted"] < 0.01)


def _plain_chi2(ref, cur) -> float:
    from scipy import stats

    from risk_assets.controls._result import as_groups

    ref, cur = as_groups(ref), as_groups(cur)
    cats = sorted(set(ref) | set(cur))
    table = np.vstack(
        [
            ref.value_counts().reindex(cats, fill_value=0).to_numpy(),
            cur.value_counts().reindex(cats, fill_value=0).to_numpy(),
        ]
    )
    return float(stats.chi2_contingency(table[:, table.sum(axis=0) > 0])[1])


def test_multivariate_test_sees_a_reversed_relationship(credit):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    reversed_ = _reversed_relationship(credit)
    assert _drift(split.train, reversed_, backend="scipy").passed  # per feature: no change
    assert _drift(split.train, reversed_, backend="alibi").passed
    result = _drift(split.train, reversed_, backend="alibi", multivariate=True)
    assert not result.passed
    row = next(r for r in result.table if r["kind"] == "multivariate")
    assert row["drift"] and row["classifier_ks"] >= _params()["min_multivariate_distance"]
    assert [r["feature"] for r in result.table if r["drift"]] == ["all features"]
    same = _drift(split.train, split.test, backend="alibi", multivariate=True)
    assert same.passed, same.summary


def test_alibi_backend_blocks_a_shifted_batch_in_the_pipeline(clean_run, tmp_path, credit, capsys):
    params = _params() | {"backend": "alibi", "multivariate": True}
    spec = make_pipeline(
        tmp_path / "p",
        data=_shifted(credit, NUMERIC),
        policy={"risk_params": {"DRIFT-001": params}},
    )
    code, payload, gates = run_against_champion(clean_run["state"], spec, capsys)
    gate = gates["no_feature_drift"]
    assert code == 3 and "no_feature_drift" in payload["blocked_by"]
    assert "alibi backend" in gate["summary"] and gate["value"] == 3.0, gate["summary"]
