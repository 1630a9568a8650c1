"""Fairness across a protected attribute (fairlearn): demographic parity and equalized odds.

The figures: per-group selection rate, TPR and FPR; demographic parity difference and
ratio (the four-fifths rule reads ratio >= 0.8); equalized odds difference. A continuous
attribute (age) is banded first with :func:`band`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._format import compared
from risk_assets.controls._result import ControlResult, as_groups

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["band", "fairness_across"]


def band(values: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Band a numeric attribute at ``edges``: e.g. [25, 35, 50] -> <25, 25-35, 35-50, >=50."""
    import pandas as pd

    edges = sorted(float(e) for e in edges)
    labels = [f"<{edges[0]:g}"]
    labels += [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f">={edges[-1]:g}")
    cut = pd.cut(values, bins=[-np.inf, *edges, np.inf], labels=labels, right=False)
    return cut.astype(object).where(values.notna(), "missing")


def _group_figures(groups: np.ndarray, yt: np.ndarray, yp: np.ndarray, metrics: Any) -> Any:
    """Per group: selection rate, TPR, FPR and row count (``metrics``: fairlearn.metrics).

    fairlearn's metrics on the (group, truth, decision) cells weighted by their row counts:
    the same figures as on every row, at a cost that does not grow with the rows.
    """
    import pandas as pd

    cells = (
        pd.DataFrame({"group": groups, "truth": yt, "decision": yp})
        .groupby(["group", "truth", "decision"], sort=True)
        .size()
        .reset_index(name="rows")
    )
    weights = {"sample_weight": cells["rows"].to_numpy()}
    frame = metrics.MetricFrame(
        metrics={
            "selection_rate": metrics.selection_rate,
            "tpr": metrics.true_positive_rate,
            "fpr": metrics.false_positive_rate,
        },
        y_true=cells["truth"].to_numpy(),
        y_pred=cells["decision"].to_numpy(),
        # a Series: fairlearn squeezes an array, and one cell (every row in one group with
        # one label and one decision) would become a 0-d array it refuses
        sensitive_features=cells["group"],
        sample_params={"selection_rate": weights, "tpr": weights, "fpr": weights},
    )
    return frame.by_group.assign(count=cells.groupby("group")["rows"].sum())


def _group_rows(by_group: Any, min_group_size: int) -> list[dict[str, Any]]:
    """The evidence rows of the groups, and whether each is large enough for the verdict."""
    return [
        {
            "group": str(g),
            "rows": int(r["count"]),
            "selection_rate": float(r["selection_rate"]),
            "tpr": float(r["tpr"]),
            "fpr": float(r["fpr"]),
            "in_verdict": bool(r["count"] >= min_group_size),
        }
        for g, r in by_group.iterrows()
    ]


def _could_not_decide(reason: str, min_ratio: float, table: list[dict[str, Any]]) -> ControlResult:
    """The fail-closed verdict, with the per-group evidence gathered so far."""
    return ControlResult(
        passed=False,
        value=None,
        threshold=min_ratio,
        table=table,
        summary=f"could not decide: {reason}",
    )


def _odds_groups(groups: np.ndarray, yt: np.ndarray, kept: Any) -> list[Any]:
    """The groups of ``kept`` with at least 10 positives and 10 negatives.

    TPR needs positives and FPR negatives in a group (fairlearn reports 0 where a group
    has none): only these groups enter equalized odds.
    """
    import pandas as pd

    pos = pd.Series(yt).groupby(groups).sum()
    neg = pd.Series(1 - yt).groupby(groups).sum()
    return [g for g in kept if pos.get(g, 0) >= 10 and neg.get(g, 0) >= 10]


def _parity_and_odds(
    dp_ratio: float, min_ratio: float, eo_diff: float, eo_bound: float | None
) -> tuple[list[str], float, float]:
    """The problems with demographic parity and equalized odds, and the headline figure
    with its bound: the figure that failed (demographic parity first), not one that
    passed."""
    problems: list[str] = []
    value, threshold = dp_ratio, min_ratio
    if dp_ratio < min_ratio:
        a, b = compared(dp_ratio, min_ratio)
        problems.append(f"demographic parity ratio {a} < {b}")
    if eo_bound is not None and eo_diff > eo_bound:
        a, b = compared(eo_diff, eo_bound)
        problems.append(f"equalized odds difference {a} > {b}")
        if dp_ratio >= min_ratio:
            value, threshold = eo_diff, eo_bound
    return problems, value, threshold


def _training_label_ratio(
    training_labels: Any,
    training_groups: Any,
    *,
    favourable: Any,
    min_group_size: int,
    min_label_ratio: float,
) -> tuple[float | None, list[dict[str, Any]], str | None]:
    """The favourable label's rate per group in the training labels: their ratio (None
    when fewer than two groups have ``min_group_size`` rows), the evidence rows, and the
    problem found (None if the ratio holds)."""
    import pandas as pd

    label_rows = pd.DataFrame(
        {
            "group": as_groups(training_groups).to_numpy(),
            "fav": (np.asarray(training_labels) == favourable).astype(float),
        }
    )
    counts = label_rows.groupby("group")["fav"].agg(["mean", "size"])
    counts = counts[counts["size"] >= min_group_size]
    rows = [
        {
            "group": f"{g} (training labels)",
            "rows": int(r["size"]),
            "favourable_label_rate": float(r["mean"]),
        }
        for g, r in counts.iterrows()
    ]
    if len(counts) < 2:
        problem = (
            f"training labels: fewer than two groups with >= {min_group_size} rows "
            "(the label ratio cannot be decided)"
        )
        return None, rows, problem
    top = float(counts["mean"].max())
    ratio = float(counts["mean"].min()) / top if top > 0 else 0.0
    problem = None
    if ratio < min_label_ratio:
        a, b = compared(ratio, min_label_ratio)
        lg, hg = counts["mean"].idxmin(), counts["mean"].idxmax()
        problem = (
            f"training labels favour {hg} ({counts['mean'][hg]:.3f}) over {lg} "
            f"({counts['mean'][lg]:.3f}): label ratio {a} < {b}"
        )
    return ratio, rows, problem


def _fairness_summary(
    rates: Any,
    problems: list[str],
    *,
    dp_ratio: float,
    min_ratio: float,
    label_ratio: float | None,
    min_label_ratio: float | None,
    eo_diff: float,
    eo_bound: float | None,
) -> str:
    """The lowest and highest selection rate, then the problems found or the figures
    that held."""
    lo, hi = rates.idxmin(), rates.idxmax()
    ok_text = "ratio {} >= {}".format(*compared(dp_ratio, min_ratio))
    if label_ratio is not None and not problems:
        ok_text += "; training label ratio {} >= {}".format(*compared(label_ratio, min_label_ratio))
    if eo_bound is not None and not problems:
        ok_text += "; equalized odds difference {} <= {}".format(*compared(eo_diff, eo_bound))
    return f"selection rate {rates[lo]:.3f} ({lo}) vs {rates[hi]:.3f} ({hi}): " + (
        "; ".join(problems) if problems else ok_text
    )


def fairness_across(
    y_true: Any,
    y_pred: Any,
    sensitive: pd.Series,
    *,
    favourable: Any,
    min_ratio: float,
    max_equalized_odds_difference: float | None = None,
    min_group_size: int = 20,
    training_labels: Any = None,
    training_groups: Any = None,
    min_label_ratio: float | None = None,
) -> ControlResult:
    """Compare how the favourable outcome is granted across the groups of one attribute.

    Groups with fewer than ``min_group_size`` rows are reported but left out of the
    verdict (their rates are noise); fewer than two groups left means the control cannot
    decide, which fails (closed).

    Args:
        favourable: the label that is the favourable decision (e.g. 1 = good credit).
        min_ratio: smallest allowed demographic parity ratio (0.8: the four-fifths rule).
        max_equalized_odds_difference: largest allowed gap in TPR or FPR, if set.
        training_labels / training_groups / min_label_ratio: with all three, the favourable
            label's rate per group in the training labels must keep a ratio of at least
            ``min_label_ratio`` (the data set's disparate impact): labels made unfavourable
            for one group teach a model that bias even when the attribute is not a feature.
    """
    from fairlearn import metrics  # first: no input can be judged without it

    yt = (np.asarray(y_true) == favourable).astype(int)
    yp = (np.asarray(y_pred) == favourable).astype(int)
    if len(yt) and not yt.any() and not yp.any():
        # every rate would be 0: a figure on a label that never occurs is not a result
        return ControlResult.undecided(
            f"the favourable label {favourable!r} occurs in neither the labels nor the decisions"
        )
    groups = as_groups(sensitive).to_numpy()
    by_group = _group_figures(groups, yt, yp, metrics)
    table = _group_rows(by_group, min_group_size)
    kept = by_group[by_group["count"] >= min_group_size]
    if len(kept) < 2:
        reason = f"fewer than two groups with >= {min_group_size} rows"
        return _could_not_decide(reason, min_ratio, table)
    rates = kept["selection_rate"]
    dp_diff = float(rates.max() - rates.min())
    dp_ratio = float(rates.min() / rates.max()) if rates.max() > 0 else 0.0
    defined = _odds_groups(groups, yt, kept.index)
    if max_equalized_odds_difference is not None and len(defined) < 2:
        reason = "fewer than two groups with 10 positives and 10 negatives for equalized odds"
        return _could_not_decide(reason, min_ratio, table)
    eo = kept.loc[defined] if defined else kept
    eo_diff = float(max(eo["tpr"].max() - eo["tpr"].min(), eo["fpr"].max() - eo["fpr"].min()))
    eo_bound = max_equalized_odds_difference
    problems, value, threshold = _parity_and_odds(dp_ratio, min_ratio, eo_diff, eo_bound)
    label_ratio = None
    if min_label_ratio is not None and training_labels is not None:
        label_ratio, label_rows, problem = _training_label_ratio(
            training_labels,
            training_groups,
            favourable=favourable,
            min_group_size=min_group_size,
            min_label_ratio=min_label_ratio,
        )
        table.extend(label_rows)
        if problem is not None:
            problems.append(problem)
        failed = label_ratio is not None and label_ratio < min_label_ratio
        if failed and dp_ratio >= min_ratio and value == dp_ratio:
            value, threshold = label_ratio, min_label_ratio
    return ControlResult(
        passed=not problems,
        value=value,
        threshold=threshold,
        summary=_fairness_summary(
            rates,
            problems,
            dp_ratio=dp_ratio,
            min_ratio=min_ratio,
            label_ratio=label_ratio,
            min_label_ratio=min_label_ratio,
            eo_diff=eo_diff,
            eo_bound=eo_bound,
        ),
        figures={
            "demographic_parity_ratio": dp_ratio,
            "demographic_parity_difference": dp_diff,
            "equalized_odds_difference": eo_diff,
            **({"training_label_ratio": label_ratio} if label_ratio is not None else {}),
            "groups": len(kept),
        },
        table=table,
        sample_size=int(len(yt)),
    )
