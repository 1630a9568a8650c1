"""Monitoring of a model in production: its scores, its decisions and, once the labels
arrive, its performance.

``prediction_drift`` compares the model's scores on a batch with its scores on the
reference (a KS test plus the PSI over ten quantile bins of the reference; drift when the
p-value is below ``alpha`` *and* the PSI is at least ``min_psi``). ``decision_volume``
compares the batch's favourable decisions (approvals) with earlier partitions: the share
of approvals and the number of approvals and of denials against their medians.
``outcome_performance`` holds metrics computed from delayed labels to minimum values,
with the definitions of :func:`~risk_assets.controls._performance.evaluate_classifier`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from risk_assets.controls._drift import psi
from risk_assets.controls._performance import meets_metric_thresholds
from risk_assets.controls._result import ControlResult

__all__ = ["DecisionCounts", "decision_volume", "outcome_performance", "prediction_drift"]


# -- prediction drift ---------------------------------------------------------------------


def _scores(values: Any, what: str) -> np.ndarray | str:
    """The scores as a 1-D float array, or the reason they cannot be used."""
    try:
        s = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return f"the {what} scores are not numbers"
    if s.ndim != 1:
        return f"the {what} scores are not one score per row (shape {s.shape})"
    if len(s) == 0:
        return f"the {what} has no scores"
    bad = int((~np.isfinite(s)).sum())
    if bad:
        return f"{bad} of {len(s)} {what} scores are not finite (NaN or infinite)"
    outside = int(((s < 0) | (s > 1)).sum())
    if outside:
        return f"{outside} of {len(s)} {what} scores are outside [0, 1] (not probabilities)"
    return s


def _sample(s: np.ndarray, sample_size: int, seed: int) -> np.ndarray:
    if len(s) <= sample_size:
        return s
    return s[np.random.default_rng(seed).choice(len(s), size=sample_size, replace=False)]


def _bin_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts over ten quantile bins of ``ref`` (as in :mod:`._drift`): tied edges merge, a
    (nearly) constant reference falls back to the distinct values of both sides."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(edges) < 3:
        edges = np.unique(np.concatenate([ref, cur]))
        edges = np.append(edges, edges[-1] + 1)
    ref_counts = np.histogram(np.clip(ref, edges[0], edges[-1]), bins=edges)[0]
    cur_counts = np.histogram(np.clip(cur, edges[0], edges[-1]), bins=edges)[0]
    return ref_counts, cur_counts


def prediction_drift(
    reference_scores: Any,
    batch_scores: Any,
    *,
    alpha: float,
    min_psi: float,
    sample_size: int = 20_000,
    seed: int = 0,
) -> ControlResult:
    """Compare the model's scores on a batch with its scores on the reference.

    Scores are probabilities of the positive class. Both sides are sampled (seeded) to
    ``sample_size``. Drift (the control fails) when the KS p-value is below ``alpha`` and
    the PSI over ten quantile bins of the reference is at least ``min_psi``. Missing,
    non-finite or out-of-range scores mean the control cannot decide.
    """
    from scipy import stats

    ref = _scores(reference_scores, "reference")
    if isinstance(ref, str):
        return ControlResult.undecided(ref)
    cur = _scores(batch_scores, "batch")
    if isinstance(cur, str):
        return ControlResult.undecided(cur)
    ref, cur = _sample(ref, sample_size, seed), _sample(cur, sample_size, seed)
    ks = stats.ks_2samp(ref, cur)
    ref_counts, cur_counts = _bin_counts(ref, cur)
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    value = psi(ref_share, cur_share)
    p = float(ks.pvalue)
    drift = p < alpha and value >= min_psi
    means = f"mean score {cur.mean():.2f} against {ref.mean():.2f} in the reference"
    summary = (
        f"the scores drift: KS {ks.statistic:.2f} (p {p:.1e} < {alpha}) and PSI {value:.2f} "
        f">= {min_psi}; {means}"
        if drift
        else f"no drift in the scores (p {p:.1e}, PSI {value:.2f}; drift needs p < {alpha} "
        f"and PSI >= {min_psi}); {means}"
    )
    return ControlResult(
        passed=not drift,
        value=value,
        threshold=min_psi,
        summary=summary,
        figures={
            "ks_statistic": float(ks.statistic),
            "p_value": p,
            "psi": value,
            "reference_mean_score": float(ref.mean()),
            "batch_mean_score": float(cur.mean()),
            "reference_rows": len(ref),
            "batch_rows": len(cur),
        },
        table=[
            {
                "bin": i + 1,
                "reference_rows": int(r),
                "batch_rows": int(c),
                "reference_share": float(rs),
                "batch_share": float(cs),
            }
            for i, (r, c, rs, cs) in enumerate(
                zip(ref_counts, cur_counts, ref_share, cur_share, strict=True)
            )
        ],
        sample_size=int(len(cur)),
    )


# -- decision volume ----------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionCounts:
    """The decisions of one partition: how many in all and how many favourable."""

    partition: str
    total: int
    favourable: int

    def __post_init__(self) -> None:
        if not 0 <= self.favourable <= self.total:
            raise ValueError(
                f"partition {self.partition!r}: favourable decisions ({self.favourable}) "
                f"must be between 0 and the total ({self.total})"
            )

    @property
    def rate(self) -> float:
        """The share of favourable decisions (NaN for a partition with no decisions)."""
        return self.favourable / self.total if self.total else math.nan

    @property
    def denied(self) -> int:
        return self.total - self.favourable


def _ratio(count: float, median: float) -> float:
    """``count`` over the history median; no change when both are zero."""
    if median > 0:
        return count / median
    return 1.0 if count == 0 else math.inf


def _volume_table(current: DecisionCounts, history: Sequence[DecisionCounts]) -> list[dict]:
    """One evidence row per earlier partition, then the batch's."""
    return [
        {"partition": h.partition, "total": h.total, "favourable": h.favourable, "rate": h.rate}
        for h in history
    ] + [
        {
            "partition": f"{current.partition} (batch)",
            "total": current.total,
            "favourable": current.favourable,
            "rate": current.rate,
        }
    ]


def _volume_figures(current: DecisionCounts, used: Sequence[DecisionCounts]) -> dict[str, float]:
    """The batch's rate and counts against the history's pooled rate and median counts
    (NaN for the history's figures when there is none)."""
    if used:
        history_rate = sum(h.favourable for h in used) / sum(h.total for h in used)
        median_fav = float(np.median([h.favourable for h in used]))
        median_den = float(np.median([h.denied for h in used]))
    else:
        history_rate = median_fav = median_den = math.nan
    return {
        "rate": current.rate,
        "history_rate": history_rate,
        "rate_change": abs(current.rate - history_rate),
        "favourable": current.favourable,
        "denied": current.denied,
        "history_median_favourable": median_fav,
        "history_median_denied": median_den,
        "favourable_ratio": _ratio(current.favourable, median_fav) if used else math.nan,
        "denied_ratio": _ratio(current.denied, median_den) if used else math.nan,
        "history_partitions": len(used),
    }


def _volume_problems(
    figures: Mapping[str, float],
    *,
    max_rate_change: float,
    max_volume_ratio: float,
    earlier: str,
    rate_text: str,
) -> list[str]:
    """What moved beyond its limit (``figures``: those of :func:`_volume_figures`): the
    approval rate, the number of approvals, the number of denials."""
    problems: list[str] = []
    rate_change = figures["rate_change"]
    if rate_change > max_rate_change:
        problems.append(f"{rate_text} (change {rate_change:.2f} > {max_rate_change})")
    low = 1 / max_volume_ratio
    for what, key in (("approvals", "favourable"), ("denials", "denied")):
        count, median = figures[key], figures[f"history_median_{key}"]
        ratio = figures[f"{key}_ratio"]
        if ratio > max_volume_ratio or ratio < low:
            limit = max_volume_ratio if ratio > max_volume_ratio else low
            problems.append(
                f"{what} {count} = "
                + (f"{ratio:.1f}x the median" if math.isfinite(ratio) else "a jump from a median")
                + f" {median:g} of {earlier} (limit {limit:.1f}x)"
            )
    return problems


def decision_volume(
    current: DecisionCounts,
    history: Sequence[DecisionCounts],
    *,
    max_rate_change: float,
    max_volume_ratio: float,
    min_history: int,
) -> ControlResult:
    """Compare the batch's favourable decisions (approvals) with earlier partitions.

    The control fails when the approval rate moves more than ``max_rate_change`` (share
    points) from the rate pooled over the history, or when the number of approvals or of
    denials is more than ``max_volume_ratio`` times, or less than its inverse, the median
    over the history. Earlier partitions without decisions are listed but not counted as
    history; with fewer than ``min_history`` the control passes and says there is not
    enough history yet. A batch without decisions cannot be judged.
    """
    if current.total == 0:
        return ControlResult.undecided(
            f"the batch (partition {current.partition}) has no decisions"
        )
    if not max_volume_ratio > 1:
        return ControlResult.undecided(f"max_volume_ratio must be above 1, got {max_volume_ratio}")
    table = _volume_table(current, history)
    used = [h for h in history if h.total > 0]
    n = len(used)
    figures = _volume_figures(current, used)
    history_rate, rate_change = figures["history_rate"], figures["rate_change"]
    earlier = f"{n} earlier partition{'' if n == 1 else 's'}"
    rate_text = f"approval rate {current.rate:.2f} against {history_rate:.2f} over {earlier}"
    if n < max(min_history, 1):
        known = f"; approval rate {current.rate:.2f}" + (
            f" against {history_rate:.2f}" if used else ""
        )
        return ControlResult(
            passed=True,
            value=rate_change if used else None,
            threshold=max_rate_change,
            summary=f"not enough history yet to compare: {earlier} with decisions, "
            f"{min_history} needed{known}",
            figures=figures,
            table=table,
        )
    problems = _volume_problems(
        figures,
        max_rate_change=max_rate_change,
        max_volume_ratio=max_volume_ratio,
        earlier=earlier,
        rate_text=rate_text,
    )
    summary = (
        "; ".join(problems)
        if problems
        else f"{rate_text} (change {rate_change:.2f} <= {max_rate_change}); approvals "
        f"{figures['favourable_ratio']:.1f}x and denials {figures['denied_ratio']:.1f}x their "
        f"medians (limits {1 / max_volume_ratio:.1f}x to {max_volume_ratio:.1f}x)"
    )
    return ControlResult(
        passed=not problems,
        value=rate_change,
        threshold=max_rate_change,
        summary=summary,
        figures=figures,
        table=table,
    )


# -- performance on delayed labels --------------------------------------------------------


def _outcome_metrics(
    y: np.ndarray, pred: np.ndarray, score: np.ndarray | None, positive: Any
) -> tuple[dict[str, float], dict[str, str]]:
    """Binary metrics as :func:`evaluate_classifier` defines them, and why any is missing.

    Balanced accuracy is the mean recall over the classes present in ``y`` (what
    scikit-learn computes, without its warning when ``y`` holds one class).
    """
    from sklearn import metrics

    kw: dict[str, Any] = {"pos_label": positive, "average": "binary", "zero_division": 0}
    out = {
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "balanced_accuracy": float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)])),
        "f1": float(metrics.f1_score(y, pred, **kw)),
        "precision": float(metrics.precision_score(y, pred, **kw)),
        "recall": float(metrics.recall_score(y, pred, **kw)),
    }
    missing: dict[str, str] = {}
    if score is None:
        missing["roc_auc"] = "no scores given"
    elif len(np.unique(y)) < 2:
        missing["roc_auc"] = "the labels hold one class only"
    elif not np.isfinite(score).all():
        missing["roc_auc"] = "some scores are not finite"
    else:
        out["roc_auc"] = float(metrics.roc_auc_score(y == positive, score))
    return out, missing


def outcome_performance(
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    *,
    thresholds: Mapping[str, float],
    positive_label: Any,
    min_rows: int = 30,
) -> ControlResult:
    """Hold the model's performance, once the labels arrive, to minimum values.

    ``y_true`` may lack labels that have not arrived yet (missing values); only labelled
    rows count. ``y_score`` is the probability of ``positive_label`` (``None``: no
    ``roc_auc``). Metrics are those of :func:`evaluate_classifier` for a binary model;
    each metric named in ``thresholds`` must be at least its threshold, and one that could
    not be computed (``roc_auc`` on labels of one class) fails. Fewer than ``min_rows``
    labelled rows means the control cannot decide.
    """
    import pandas as pd

    y_all = np.asarray(y_true)
    pred_all = np.asarray(y_pred)
    score_all = None if y_score is None else np.asarray(y_score, dtype=float)
    lengths = {len(y_all), len(pred_all)} | ({len(score_all)} if score_all is not None else set())
    if y_all.ndim != 1 or pred_all.ndim != 1 or len(lengths) != 1:
        return ControlResult.undecided(
            "labels, predictions and scores are not one value per row of the same rows"
        )
    labelled = ~pd.isna(pd.Series(y_all, dtype=object)).to_numpy()
    n, total = int(labelled.sum()), len(y_all)
    if n < min_rows:
        return ControlResult.undecided(
            f"only {n} labelled rows of {total} scored, at least {min_rows} needed"
        )
    y, pred = y_all[labelled], pred_all[labelled]
    score = None if score_all is None else score_all[labelled]
    labels = set(np.unique(y).tolist()) | set(np.unique(pred).tolist())
    if len(labels) > 2:
        return ControlResult.undecided(f"{len(labels)} classes among labels and predictions")
    if len(labels) == 2 and positive_label not in labels:
        return ControlResult.undecided(
            f"the positive label {positive_label!r} is not among the labels"
        )
    values, missing = _outcome_metrics(y, pred, score, positive_label)
    verdict = meets_metric_thresholds(values, thresholds)
    if not thresholds:
        return verdict
    reasons = [f"{m}: {why}" for m, why in missing.items() if m in thresholds]
    return replace(
        verdict,
        summary=f"{verdict.summary} (on {n} labelled rows of {total}"
        + "".join(f"; {r}" for r in reasons)
        + ")",
        figures={**values, "labelled_rows": n, "unlabelled_rows": total - n},
        sample_size=n,
    )
