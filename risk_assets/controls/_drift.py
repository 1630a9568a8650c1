"""Feature drift against a reference window: KS and Epps-Singleton for numbers,
chi-squared for categories and missing shares.

A feature drifts when two things hold:

- **significant**: its p-value, Holm-corrected for testing many features at once, is below
  ``alpha``;
- **material**: its effect size reaches a threshold, so that a large sample does not flag
  immaterial differences. For numbers the effect size is the KS distance (the largest gap
  between the two cumulative distributions, as a share of rows), at least
  ``min_numeric_distance``; for categories and missing shares it is the total variation
  (TV) distance (half the sum of the absolute changes in the shares, i.e. the share of rows
  that would have to change category), at least ``min_category_distance``. Both read as "a
  share of the rows moved": 0.05 means five rows in a hundred.

Both effect sizes see what ten decile bins of the PSI cannot: a move of a lumpy or mostly
zero feature (the bins collapse onto the lumps), and a few points moving between two
categories. The PSI and, for numbers, the Wasserstein distance in units of the reference's
standard deviation are still reported, but no longer decide (``min_psi`` is accepted and
ignored).

For numbers the p-value combines two tests (Bonferroni over the two): the two-sample KS
test, good at shifts, and the Epps-Singleton test (empirical characteristic function),
good at changes in spread and valid for discrete data. Where Epps-Singleton cannot be
computed (e.g. a feature with two or three distinct values) KS alone decides, and the
evidence says so. Both frames are sampled (seeded) to ``sample_size`` rows, and the sample
sizes are reported.

Two backends compute the p-values: ``scipy`` (the default, permissive licence) and
``alibi`` (alibi-detect's ``TabularDrift``: KS for numbers, chi-squared for categories,
optional extra, Business Source License; see :mod:`risk_assets.controls._drift_alibi`).
Effect sizes and the decision rule are the same for both. The alibi backend can add a
multivariate test (``ClassifierDrift``): one more row in the Holm family, material when the
KS statistic of its out-of-fold probabilities reaches ``min_multivariate_distance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import (
    ControlResult,
    as_groups,
    group_counts,
    names_extreme_columns,
)

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


def _combined_p(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, str]:
    """(p-value, KS statistic, test name) of KS and Epps-Singleton together."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        # SciPy's exact KS gives way to the asymptotic one on ties; the p-value stays valid
        warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful")
        ks = stats.ks_2samp(ref, cur)
    p_ks = float(ks.pvalue)
    if min(len(ref), len(cur)) < 25:  # below the sizes Epps-Singleton's p-value is made for
        return p_ks, float(ks.statistic), "ks"
    try:
        with warnings.catch_warnings():
            # a singular covariance (few distinct values): its p-value cannot be trusted
            warnings.simplefilter("error")
            p_es = float(stats.epps_singleton_2samp(ref, cur).pvalue)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, Warning):
        return p_ks, float(ks.statistic), "ks (epps-singleton not applicable)"
    if not np.isfinite(p_es):
        return p_ks, float(ks.statistic), "ks (epps-singleton not applicable)"
    return min(1.0, 2 * min(p_ks, p_es)), float(ks.statistic), "ks + epps-singleton"


def _numeric(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    from scipy import stats

    p, distance, test = _combined_p(ref, cur)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(edges) < 3:  # (nearly) constant reference: fall back to its distinct values
        edges = np.unique(np.concatenate([ref, cur]))
        edges = np.append(edges, edges[-1] + 1)
    ref_counts = np.histogram(np.clip(ref, edges[0], edges[-1]), bins=edges)[0]
    cur_counts = np.histogram(np.clip(cur, edges[0], edges[-1]), bins=edges)[0]
    scale = float(np.std(ref)) or 1.0
    return {
        "test": test,
        "p_value": p,
        "effect_size": "KS distance",
        "effect": distance,
        "psi": psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()),
        "wasserstein_sd": float(stats.wasserstein_distance(ref, cur)) / scale,
    }


def _labels(values: pd.Series) -> np.ndarray:
    """Category labels as text (missing values labelled), for the alibi backend."""
    return as_groups(values).to_numpy(dtype=object)


def _categorical(ref: pd.Series, cur: pd.Series) -> dict[str, Any]:
    from scipy import stats

    ref_counts, cur_counts = group_counts(ref), group_counts(cur)
    cats = sorted(set(ref_counts.index) | set(cur_counts.index))
    r = ref_counts.reindex(cats, fill_value=0).to_numpy()
    c = cur_counts.reindex(cats, fill_value=0).to_numpy()
    test = "chi2"
    if len(cats) < 2:
        p = 1.0
    else:
        table = np.vstack([r, c])
        table = table[:, table.sum(axis=0) > 0]
        # no continuity correction: Yates' is conservative on two categories (a missing
        # share, a binary feature) for no gain at these sample sizes
        p = float(stats.chi2_contingency(table, correction=False)[1])
        if table.shape[1] > 2:
            # a few points moving between two of many categories spread over k - 1 degrees
            # of freedom escape the omnibus test: also test each category's share against
            # the rest (Bonferroni over the categories, then over the two tests)
            per_category = [
                stats.chi2_contingency(
                    np.column_stack([table[:, j], table.sum(axis=1) - table[:, j]]),
                    correction=False,
                )[1]
                for j in range(table.shape[1])
            ]
            p_max = min(1.0, table.shape[1] * float(min(per_category)))
            p = min(1.0, 2 * min(p, p_max))
            test = "chi2 + per-category share"
    r_share, c_share = r / r.sum(), c / c.sum()
    return {
        "test": test,
        "p_value": p,
        "effect_size": "TV distance",
        "effect": float(0.5 * np.abs(r_share - c_share).sum()),
        "psi": psi(r_share, c_share),
    }


def _margin(value: float, threshold: float) -> str:
    """A figure against its threshold (0.083 ≥ 0.050), with the digits that tell them apart."""
    for digits in range(3, 8):
        shown, limit = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if shown != limit:
            break
    return f"{shown} ≥ {limit}"


def _sampled(frame: pd.DataFrame, sample_size: int, seed: int) -> pd.DataFrame:
    """At most ``sample_size`` rows of ``frame``, drawn with ``seed``."""
    return frame.sample(n=sample_size, random_state=seed) if len(frame) > sample_size else frame


def _feature_tests(
    ref: pd.DataFrame, cur: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[list[dict[str, Any]], list[tuple[Any, Any, bool]]] | str:
    """The scipy tests, one row each: per numeric feature with values on both sides, per
    numeric feature with missing values (its missing share), per categorical feature;
    beside each row what it compares, for the alibi backend (values, values, whether
    categorical). A message instead when one of the frames has no rows."""
    rows: list[dict[str, Any]] = []
    pairs: list[tuple[Any, Any, bool]] = []
    for col in numeric:
        r = ref[col].dropna().to_numpy(dtype=float)
        c = cur[col].dropna().to_numpy(dtype=float)
        if len(ref) == 0 or len(cur) == 0:
            return "one of the frames has no rows"
        # a feature without values on one side has no distribution to compare: the
        # missing-share test below decides (all missing on both sides is no change; values
        # that vanished are drift)
        if len(r) and len(c):
            rows.append({"feature": col, "kind": "numeric", **_numeric(r, c)})
            pairs.append((r, c, False))
        # a change in how often the value is missing is drift too
        if ref[col].isna().any() or cur[col].isna().any():
            shares = _categorical(ref[col].isna(), cur[col].isna())
            rows.append({"feature": f"{col} (missing)", "kind": "missing share", **shares})
            pairs.append((ref[col].isna(), cur[col].isna(), True))
    for col in categorical:
        rows.append({"feature": col, "kind": "categorical", **_categorical(ref[col], cur[col])})
        pairs.append((ref[col], cur[col], True))
    return rows, pairs


def _alibi_tests(
    rows: list[dict[str, Any]],
    pairs: list[tuple[Any, Any, bool]],
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    multivariate: bool,
    min_multivariate_distance: float,
) -> list[dict[str, Any]]:
    """``rows`` with alibi-detect's p-values and test names, and with ``multivariate`` one
    more row: its classifier test over all features."""
    from risk_assets.controls._drift_alibi import classifier_drift, feature_p_values

    pairs = [(_labels(r), _labels(c), True) if cat else (r, c, cat) for r, c, cat in pairs]
    rows = [
        {
            **row,
            "p_value": p,
            "test": ("ks" if row["kind"] == "numeric" else "chi2") + " (alibi-detect TabularDrift)",
        }
        for row, (p, _) in zip(rows, feature_p_values(pairs), strict=True)
    ]
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
                "effect_size": "classifier KS",
                "effect": distance,
                "effect_threshold": min_multivariate_distance,
                "classifier_ks": distance,
            }
        )
    return rows


def _decided(rows: list[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """``rows`` with their Holm-adjusted p-values and whether each finds drift
    (significant and material)."""
    adjusted = holm([r["p_value"] for r in rows])
    return [
        {
            **row,
            "p_adjusted": float(adj),
            "drift": bool(adj < alpha and row["effect"] >= row["effect_threshold"]),
        }
        for row, adj in zip(rows, adjusted, strict=True)
    ]


def _drift_summary(
    rows: list[dict[str, Any]],
    drifted: list[dict[str, Any]],
    *,
    backend: str,
    alpha: float,
    min_numeric_distance: float,
    min_category_distance: float,
) -> str:
    """The tests that find drift with their margins, or the rule and the largest effect."""
    if drifted:
        return f"{len(drifted)} of {len(rows)} tests find drift ({backend} backend): " + (
            ", ".join(
                f"{r['feature']} ({r['effect_size']} "
                f"{_margin(r['effect'], r['effect_threshold'])}, "
                f"Holm-adjusted p {r['p_adjusted']:.1e} < {alpha})"
                for r in drifted
            )
        )
    rule = (
        f"drift needs Holm-adjusted p < {alpha} and KS distance ≥ {min_numeric_distance:.3f} "
        f"(numbers) or TV distance ≥ {min_category_distance:.3f} (categories, missing shares)"
    )
    closest = max(rows, key=lambda r: r["effect"] / max(r["effect_threshold"], 1e-12))
    return (
        f"no drift in {len(rows)} tests ({backend} backend; {rule}); largest effect: "
        f"{closest['feature']} {closest['effect_size']} {closest['effect']:.3f}, "
        f"Holm-adjusted p {closest['p_adjusted']:.2g}"
    )


def _drift_figures(
    rows: list[dict[str, Any]], drifted: int, reference_rows: int, current_rows: int
) -> dict[str, Any]:
    """How many features drift, the largest PSI and effect sizes, and the rows compared."""
    figures: dict[str, Any] = {
        "drifted_features": drifted,
        "max_psi": max(r["psi"] for r in rows if "psi" in r),
    }
    by_size = {"KS distance": "max_ks_distance", "TV distance": "max_tv_distance"}
    for size, key in by_size.items():
        effects = [r["effect"] for r in rows if r["effect_size"] == size]
        if effects:
            figures[key] = max(effects)
    figures.update(reference_rows=reference_rows, current_rows=current_rows)
    return figures


@names_extreme_columns
def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    alpha: float = 0.01,
    min_numeric_distance: float = 0.05,
    min_category_distance: float = 0.05,
    min_psi: float | None = None,
    max_drifted: int = 0,
    sample_size: int = 20_000,
    seed: int = 0,
    backend: str = "scipy",
    multivariate: bool = False,
    min_multivariate_distance: float = 0.1,
) -> ControlResult:
    """Compare the features of ``current`` with ``reference``; block above ``max_drifted``.

    Args:
        alpha: Holm-adjusted significance a drifting feature must reach.
        min_numeric_distance: smallest KS distance that counts as drift (numbers).
        min_category_distance: smallest TV distance that counts as drift (categories and
            the share of missing values).
        min_psi: accepted for registers written before the KS / TV effect sizes; ignored
            (the PSI is reported, it does not decide).
    """
    del min_psi  # see the docstring: reported, no longer a threshold
    if backend not in ("scipy", "alibi"):
        return ControlResult.undecided(f"unknown drift backend {backend!r}")
    if multivariate and backend != "alibi":
        return ControlResult.undecided("the multivariate test needs backend 'alibi'")
    features = [*numeric, *categorical]
    missing = [c for c in features if c not in reference.columns or c not in current.columns]
    if missing:
        return ControlResult.undecided(f"features {missing} are missing from one of the frames")
    ref = _sampled(reference, sample_size, seed)
    cur = _sampled(current, sample_size, seed)
    tests = _feature_tests(ref, cur, numeric, categorical)
    if isinstance(tests, str):
        return ControlResult.undecided(tests)
    rows, pairs = tests
    if not rows:
        return ControlResult.undecided("no features to compare")
    rows = [
        {
            **row,
            "effect_threshold": (
                min_numeric_distance if row["kind"] == "numeric" else min_category_distance
            ),
        }
        for row in rows
    ]
    if backend == "alibi":
        rows = _alibi_tests(
            rows,
            pairs,
            ref,
            cur,
            numeric=numeric,
            categorical=categorical,
            seed=seed,
            multivariate=multivariate,
            min_multivariate_distance=min_multivariate_distance,
        )
    rows = _decided(rows, alpha)
    drifted = [r for r in rows if r["drift"]]
    summary = _drift_summary(
        rows,
        drifted,
        backend=backend,
        alpha=alpha,
        min_numeric_distance=min_numeric_distance,
        min_category_distance=min_category_distance,
    )
    return ControlResult(
        passed=len(drifted) <= max_drifted,
        value=float(len(drifted)),
        threshold=float(max_drifted),
        summary=summary,
        figures=_drift_figures(rows, len(drifted), len(ref), len(cur)),
        table=rows,
        sample_size=int(len(cur)),
    )
