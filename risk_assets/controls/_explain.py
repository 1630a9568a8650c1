"""Explainability: permutation importance, and a flag when a protected attribute or a close
proxy of one is among the most important features.

Importance is measured on the raw features (sklearn's permutation_importance on the whole
pipeline, seeded, on a sample). A feature is a proxy of a protected attribute when their
association reaches ``proxy_threshold``: Cramér's V between categories, the correlation
ratio between a number and a category, |Pearson r| between numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult, as_groups

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["association", "permutation_importance", "protected_among_top_features"]


def _is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def association(a: pd.Series, b: pd.Series) -> float:
    """Strength of association in [0, 1] between two columns of any kind."""
    import pandas as pd

    mask = a.notna() & b.notna()
    a, b = a[mask], b[mask]
    if len(a) < 3:
        return 0.0
    if _is_numeric(a) and _is_numeric(b):
        if a.std() == 0 or b.std() == 0:
            return 0.0
        return float(abs(np.corrcoef(a.astype(float), b.astype(float))[0, 1]))
    if _is_numeric(a) or _is_numeric(b):
        num, cat = (a, b) if _is_numeric(a) else (b, a)
        values = num.astype(float)
        total = ((values - values.mean()) ** 2).sum()
        if total == 0:
            return 0.0
        between = values.groupby(cat.astype(str)).agg(["mean", "size"])
        explained = (between["size"] * (between["mean"] - values.mean()) ** 2).sum()
        return float(np.sqrt(explained / total))
    table = pd.crosstab(a.astype(str), b.astype(str)).to_numpy(dtype=float)
    if min(table.shape) < 2:
        return 0.0
    from scipy.stats import chi2_contingency

    chi2 = chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


#: Rows per model call when the permuted copies are stacked.
_STACKED_ROWS = 200_000


def permutation_importance(model: Any, X: pd.DataFrame, y: Any, *, n_repeats: int, seed: int):
    """scikit-learn's ``permutation_importance`` scored by accuracy (a classifier's default
    score, which the pipeline's estimators keep): the same permutations and the same
    figures, with the permuted copies stacked into few ``predict`` calls instead of one
    per feature and repeat (a call on a thousand rows costs about as much as on ten
    thousand).

    Returns an object with ``importances_mean``, ``importances_std`` and ``importances``
    (features x repeats), as scikit-learn's does.
    """
    import pandas as pd
    from sklearn.utils import Bunch

    y = np.asarray(y)
    n = len(X)
    # as scikit-learn draws them: one seed for every column, its shuffles cumulative
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    copies: list[pd.DataFrame] = [X]
    for col_idx in range(X.shape[1]):
        rng = np.random.RandomState(column_seed)
        permuted = X.copy()
        order = np.arange(n)
        for _ in range(n_repeats):
            rng.shuffle(order)
            col = permuted.iloc[order, col_idx]
            col.index = permuted.index
            permuted[permuted.columns[col_idx]] = col
            copies.append(permuted.copy())
    per_call = max(1, _STACKED_ROWS // max(n, 1))
    scores = []
    for start in range(0, len(copies), per_call):
        chunk = copies[start : start + per_call]
        pred = np.asarray(model.predict(pd.concat(chunk, ignore_index=True)))
        scores += [float(np.mean(block == y)) for block in np.split(pred, len(chunk))]
    baseline, permuted_scores = scores[0], np.array(scores[1:]).reshape(X.shape[1], n_repeats)
    importances = baseline - permuted_scores
    return Bunch(
        importances_mean=np.mean(importances, axis=1),
        importances_std=np.std(importances, axis=1),
        importances=importances,
    )


def protected_among_top_features(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    protected: pd.DataFrame,
    *,
    top_k: int,
    proxy_threshold: float,
    categorical: Sequence[str] = (),
    n_repeats: int = 5,
    sample_size: int = 1000,
    seed: int = 0,
) -> ControlResult:
    """Permutation importance of each feature; flag protected attributes or their proxies
    among the ``top_k`` most important."""
    if len(X) == 0:
        return ControlResult.undecided("no rows to measure importance on")
    unknown = [c for c in protected.columns if protected[c].isna().all()]
    if unknown:
        return ControlResult.undecided(
            f"protected attributes {unknown} have no values: proxies cannot be measured"
        )
    rng = np.random.default_rng(seed)
    pos = (
        np.sort(rng.choice(len(X), size=sample_size, replace=False))
        if len(X) > sample_size
        else np.arange(len(X))
    )
    Xs, ys, Ps = X.iloc[pos], np.asarray(y)[pos], protected.iloc[pos]
    categorical = set(categorical)
    imp = permutation_importance(model, Xs, ys, n_repeats=n_repeats, seed=seed)
    order = np.argsort(-imp.importances_mean)
    # a feature without values is one constant to the model (it imputes it): it cannot
    # drive a decision here, and must not push a feature that can out of the top
    blank = {X.columns[i] for i in order if Xs[X.columns[i]].isna().all()}
    top = [X.columns[i] for i in order if X.columns[i] not in blank][:top_k]
    rows, flags = [], []
    for rank, i in enumerate(order, start=1):
        feature = X.columns[i]
        row: dict[str, Any] = {
            "rank": rank,
            "feature": feature,
            "importance": float(imp.importances_mean[i]),
            "importance_sd": float(imp.importances_std[i]),
        }
        if feature in blank:
            row["note"] = "no values"
        if feature in top:
            for attr in protected.columns:
                if feature == attr:
                    flags.append(f"{feature} (protected) is rank {rank}")
                    row["flag"] = "protected attribute"
                    continue
                a = Xs[feature]
                strength = association(
                    as_groups(a) if feature in categorical else a,
                    as_groups(Ps[attr]) if attr in categorical else Ps[attr],
                )
                row[f"assoc_{attr}"] = strength
                if strength >= proxy_threshold:
                    flags.append(f"{feature} (rank {rank}) is a proxy of {attr} ({strength:.2f})")
                    row["flag"] = f"proxy of {attr}"
        rows.append(row)
    return ControlResult(
        passed=not flags,
        value=float(len(flags)),
        threshold=0.0,
        summary=(
            f"top {top_k} features by permutation importance: {', '.join(top)}; no protected "
            f"attribute or proxy (association < {proxy_threshold})"
            if not flags
            else "; ".join(flags)
        ),
        figures={"flags": len(flags), "top_importance": float(imp.importances_mean[order[0]])},
        table=rows,
        sample_size=len(pos),
    )
