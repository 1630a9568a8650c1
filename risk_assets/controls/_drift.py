"""Feature drift against a reference window: KS for numbers, chi-squared for categories.

P-values are corrected for testing many features at once (Holm); a feature drifts when
its corrected p-value is below ``alpha`` *and* its population stability index (PSI) is at
least ``min_psi``, so that a large sample does not flag immaterial differences. Per
feature: p-value, corrected p-value, PSI and, for numbers, the Wasserstein distance in
units of the reference's standard deviation. Both frames are sampled (seeded) to
``sample_size`` rows, and the sample sizes are reported.

Two backends compute the p-values: ``scipy`` (the default, permissive licence) and
``alibi`` (alibi-detect's ``TabularDrift``, optional extra, Business Source License; see
:mod:`risk_assets.controls._drift_alibi`). Distances and the decision rule are the same for
both. The alibi backend can add a multivariate test (``ClassifierDrift``): one more row in
the Holm family, material when the KS statistic of its out-of-fold probabilities reaches
``min_multivariate_distance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult, as_groups

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["feature_drift", "holm", "psi"]

_EPS = 1e-4


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(ref_share, _EPS, None)
    c = np.clip(cur_share, _EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric(ref: np.ndarray, cur: np.ndarray) -> dict[str, float]:
    from scipy import stats

    p = float(stats.ks_2samp(ref, cur).pvalue)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(edges) < 3:  # (nearly) constant reference: fall back to its distinct values
        edges = np.unique(np.concatenate([ref, cur]))
        edges = np.append(edges, edges[-1] + 1)
    ref_counts = np.histogram(np.clip(ref, edges[0], edges[-1]), bins=edges)[0]
    cur_counts = np.histogram(np.clip(cur, edges[0], edges[-1]), bins=edges)[0]
    scale = float(np.std(ref)) or 1.0
    return {
        "p_value": p,
        "psi": psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()),
        "wasserstein_sd": float(stats.wasserstein_distance(ref, cur)) / scale,
    }


def _labels(values: pd.Series) -> np.ndarray:
    """Category labels as text (missing values labelled), for the alibi backend."""
    return as_groups(values).to_numpy(dtype=object)


def _categorical(ref: pd.Series, cur: pd.Series) -> dict[str, float]:
    from scipy import stats

    ref, cur = as_groups(ref), as_groups(cur)
    cats = sorted(set(ref) | set(cur))
    r = ref.value_counts().reindex(cats, fill_value=0).to_numpy()
    c = cur.value_counts().reindex(cats, fill_value=0).to_numpy()
    if len(cats) < 2:
        p = 1.0
    else:
        table = np.vstack([r, c])
        table = table[:, table.sum(axis=0) > 0]
        p = float(stats.chi2_contingency(table)[1])
    return {"p_value": p, "psi": psi(r / r.sum(), c / c.sum())}


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    alpha: float = 0.01,
    min_psi: float = 0.1,
    max_drifted: int = 0,
    sample_size: int = 20_000,
    seed: int = 0,
    backend: str = "scipy",
    multivariate: bool = False,
    min_multivariate_distance: float = 0.1,
) -> ControlResult:
    """Compare the features of ``current`` with ``reference``; block above ``max_drifted``."""
    if backend not in ("scipy", "alibi"):
        return ControlResult.undecided(f"unknown drift backend {backend!r}")
    if multivariate and backend != "alibi":
        return ControlResult.undecided("the multivariate test needs backend 'alibi'")
    features = [*numeric, *categorical]
    missing = [c for c in features if c not in reference.columns or c not in current.columns]
    if missing:
        return ControlResult.undecided(f"features {missing} are missing from one of the frames")
    ref = (
        reference.sample(n=sample_size, random_state=seed)
        if len(reference) > sample_size
        else reference
    )
    cur = (
        current.sample(n=sample_size, random_state=seed) if len(current) > sample_size else current
    )
    rows: list[dict[str, Any]] = []
    pairs: list[tuple[np.ndarray, np.ndarray, bool]] = []  # what each row's test compares
    for col in numeric:
        r = ref[col].dropna().to_numpy(dtype=float)
        c = cur[col].dropna().to_numpy(dtype=float)
        if len(r) == 0 or len(c) == 0:
            return ControlResult.undecided(f"feature {col!r} has no values in one of the frames")
        rows.append({"feature": col, "kind": "numeric", "test": "ks", **_numeric(r, c)})
        pairs.append((r, c, False))
        # a change in how often the value is missing is drift too
        if ref[col].isna().any() or cur[col].isna().any():
            missing = _categorical(ref[col].isna(), cur[col].isna())
            rows.append(
                {"feature": f"{col} (missing)", "kind": "missing share", "test": "chi2", **missing}
            )
            pairs.append((_labels(ref[col].isna()), _labels(cur[col].isna()), True))
    for col in categorical:
        rows.append(
            {
                "feature": col,
                "kind": "categorical",
                "test": "chi2",
                **_categorical(ref[col], cur[col]),
            }
        )
        pairs.append((_labels(ref[col]), _labels(cur[col]), True))
    if not rows:
        return ControlResult.undecided("no features to compare")
    if backend == "alibi":
        from risk_assets.controls._drift_alibi import classifier_drift, feature_p_values

        for row, (p, _) in zip(rows, feature_p_values(pairs), strict=True):
            row["p_value"] = p
            row["test"] = f"{row['test']} (alibi-detect TabularDrift)"
        if multivariate:
            p, distance = classifier_drift(
                ref, cur, numeric=numeric, categorical=categorical, seed=seed
            )
            rows.append(
                {
                    "feature": "all features",
                    "kind": "multivariate",
                    "test": "classifier (alibi-detect ClassifierDrift)",
                    "p_value": p,
                    "classifier_ks": distance,
                }
            )
    adjusted = holm([r["p_value"] for r in rows])
    for row, adj in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(adj)
        material = (
            row["classifier_ks"] >= min_multivariate_distance
            if row["kind"] == "multivariate"
            else row["psi"] >= min_psi
        )
        row["drift"] = bool(adj < alpha and material)
    drifted = [r["feature"] for r in rows if r["drift"]]
    max_psi = max(r["psi"] for r in rows if "psi" in r)
    summary = (
        f"no drift in {len(rows)} tests (Holm-adjusted p >= {alpha} or PSI < {min_psi}; "
        f"{backend} backend)"
        if not drifted
        else f"{len(drifted)} of {len(rows)} tests find drift ({backend} backend): "
        + ", ".join(
            f"{r['feature']} ("
            + (f"PSI {r['psi']:.2f}" if "psi" in r else f"classifier KS {r['classifier_ks']:.2f}")
            + f", p {r['p_adjusted']:.1e})"
            for r in rows
            if r["drift"]
        )
    )
    return ControlResult(
        passed=len(drifted) <= max_drifted,
        value=float(len(drifted)),
        threshold=float(max_drifted),
        summary=summary,
        figures={
            "drifted_features": len(drifted),
            "max_psi": max_psi,
            "reference_rows": len(ref),
            "current_rows": len(cur),
        },
        table=rows,
        sample_size=int(len(cur)),
    )
