"""Poisoning and label noise: outliers against the reference, conflicting duplicates, and
labels that contradict the reference.

- Outliers: an outlier detector of scikit-learn (isolation forest or local outlier
  factor), fitted on half of the reference window, sets its threshold at the ``quantile``
  of the other half's scores; rows of the new data beyond it are outliers. By
  construction about ``quantile`` of reference-like rows fall beyond, so injected rows
  unlike the reference raise the share above it.

- Conflicting duplicates: rows with identical features but different labels (share of
  rows in such groups).
- Confident contradictions: a model of the spec's kind, fitted on the reference window,
  scores the new rows; among rows it is confident about (probability >= ``confidence``
  for one class), the share whose label says the other class. The same share, measured
  out-of-fold on the reference itself, is the baseline; flipped or poisoned labels raise
  the new share above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import (
    ControlResult,
    lost_columns,
    names_extreme_columns,
    tabular_encoder,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["conflicting_duplicates_share", "label_consistency", "outliers_against_reference"]


def conflicting_duplicates_share(
    df: pd.DataFrame, *, features: Sequence[str], target: str
) -> float:
    """Share of rows whose exact feature values also occur with another label."""
    import pandas as pd

    keys = pd.util.hash_pandas_object(df[list(features)], index=False)
    labels_per_key = df[target].groupby(keys.to_numpy()).nunique()
    conflicting = labels_per_key[labels_per_key > 1].index
    return float(np.isin(keys.to_numpy(), conflicting).mean())


def _contradiction_rate(proba: np.ndarray, labels: np.ndarray, classes: list, confidence: float):
    top = proba.max(axis=1)
    confident = top >= confidence
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    wrong = predicted[confident] != labels[confident]
    return (float(wrong.mean()) if confident.any() else 0.0), int(confident.sum())


@names_extreme_columns
def label_consistency(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    *,
    features: Sequence[str],
    target: str,
    make_model: Callable[[], Any],
    confidence: float,
    max_increase: float,
    max_conflicting_duplicates: float,
    sample_size: int = 20_000,
    seed: int = 0,
) -> ControlResult:
    """Block when labels contradict the reference more than it contradicts itself, or when
    too many duplicate rows carry conflicting labels. Without a reference, only the
    duplicate check runs, and the summary says so."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if len(current) == 0:
        return ControlResult.undecided("no rows to check")
    lost = [] if reference is None else lost_columns(reference, current, list(features))
    if lost:
        return ControlResult.undecided(
            f"features {lost} have values in the reference but none in the new data"
        )
    cur = (
        current.sample(n=sample_size, random_state=seed) if len(current) > sample_size else current
    )
    dup_share = conflicting_duplicates_share(cur, features=features, target=target)
    rows: list[dict[str, Any]] = [
        {"check": "conflicting duplicates", "share": dup_share, "limit": max_conflicting_duplicates}
    ]
    problems = []
    if dup_share > max_conflicting_duplicates:
        problems.append(f"{dup_share:.1%} of rows are duplicates with conflicting labels")
    figures: dict[str, float] = {"conflicting_duplicates_share": dup_share}
    increase = None
    if reference is None:
        note = "no reference window yet: only duplicates checked"
    else:
        ref = (
            reference.sample(n=sample_size, random_state=seed)
            if len(reference) > sample_size
            else reference
        )
        model = make_model().fit(ref[list(features)], ref[target])
        classes = list(model.classes_)
        cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        oof = cross_val_predict(
            make_model(), ref[list(features)], ref[target], cv=cv, method="predict_proba"
        )
        base, base_n = _contradiction_rate(oof, ref[target].to_numpy(), classes, confidence)
        new, new_n = _contradiction_rate(
            model.predict_proba(cur[list(features)]), cur[target].to_numpy(), classes, confidence
        )
        if base_n == 0 or new_n == 0:
            return ControlResult.undecided(f"no rows reach confidence {confidence}")
        increase = new - base
        figures.update(
            {"reference_contradiction_rate": base, "contradiction_rate": new, "increase": increase}
        )
        rows.append(
            {
                "check": "confident contradictions (reference, out-of-fold)",
                "share": base,
                "rows": base_n,
            }
        )
        rows.append(
            {
                "check": "confident contradictions (new data)",
                "share": new,
                "rows": new_n,
                "limit": base + max_increase,
            }
        )
        if increase > max_increase:
            problems.append(
                f"labels contradict the reference on {new:.1%} of confident rows "
                f"(reference {base:.1%}, allowed increase {max_increase:.1%})"
            )
        note = f"contradiction rate {new:.1%} vs reference {base:.1%}"
    return ControlResult(
        passed=not problems,
        value=increase,
        threshold=max_increase,
        summary="; ".join(problems)
        if problems
        else f"labels consistent: {note}; {dup_share:.1%} conflicting duplicates",
        figures=figures,
        table=rows,
        sample_size=len(cur),
    )


_NEIGHBOURS = 20  # of the local outlier factor


@names_extreme_columns
def outliers_against_reference(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    detector: str = "isolation_forest",
    quantile: float = 0.01,
    max_increase: float,
    sample_size: int = 20_000,
    seed: int = 0,
) -> ControlResult:
    """Block when the share of new rows that the reference calls outliers exceeds
    ``quantile`` (the share expected of reference-like data) by more than ``max_increase``.
    Without a reference the gate passes and says so."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    if reference is None:
        return ControlResult(
            passed=True,
            value=None,
            threshold=max_increase,
            summary="no reference window yet: no outliers to measure against, gate passes",
        )
    columns = [*numeric, *categorical]
    if len(current) == 0:
        return ControlResult.undecided("no rows to check")
    lost = lost_columns(reference, current, columns)
    if lost:
        return ControlResult.undecided(
            f"features {lost} have values in the reference but none in the new data"
        )
    # the first 2 x sample_size rows of a seeded shuffle, without shuffling every row
    ref = reference[columns].sample(n=min(len(reference), 2 * sample_size), random_state=seed)
    needed = 2 * max(int(np.ceil(1 / quantile)), _NEIGHBOURS + 1)
    if len(ref) < needed:
        return ControlResult.undecided(
            f"the reference has {len(ref)} rows; a {quantile:.1%} threshold needs at least {needed}"
        )
    fit_half, calibration = ref.iloc[: len(ref) // 2], ref.iloc[len(ref) // 2 :]
    cur = current[columns]
    cur = cur.sample(n=sample_size, random_state=seed) if len(cur) > sample_size else cur
    encoder = tabular_encoder(list(numeric), list(categorical)).fit(fit_half)
    if detector == "isolation_forest":
        model = IsolationForest(n_estimators=200, random_state=seed)
    elif detector == "local_outlier_factor":
        model = LocalOutlierFactor(n_neighbors=_NEIGHBOURS, novelty=True)
    else:
        return ControlResult.undecided(f"unknown outlier detector {detector!r}")
    # Repeated rows would make the local outlier factor's densities infinite (and every
    # row that repeats a fitted one look infinitely normal): fit on the distinct rows.
    fitted = np.unique(encoder.transform(fit_half), axis=0)
    if len(fitted) <= _NEIGHBOURS:
        return ControlResult.undecided(
            f"the reference has only {len(fitted)} distinct rows in its fitted half"
        )
    model.fit(fitted)
    cut = float(np.quantile(model.score_samples(encoder.transform(calibration)), quantile))
    if not np.isfinite(cut):
        return ControlResult.undecided("the reference's outlier scores are not finite")
    share = float((model.score_samples(encoder.transform(cur)) < cut).mean())
    increase = share - quantile
    return ControlResult(
        passed=increase <= max_increase,
        value=increase,
        threshold=max_increase,
        summary=(
            f"{share:.1%} of {len(cur)} rows are outliers against the reference "
            f"({detector.replace('_', ' ')}; {quantile:.1%} expected, "
            f"allowed increase {max_increase:.1%})"
        ),
        figures={"outlier_share": share, "expected_share": quantile, "increase": increase},
        table=[
            {"rows": "reference, fitted (distinct)", "count": len(fitted)},
            {"rows": "reference, calibration", "count": len(calibration), "share": quantile},
            {"rows": "new data", "count": len(cur), "share": share},
        ],
        sample_size=len(cur),
    )
