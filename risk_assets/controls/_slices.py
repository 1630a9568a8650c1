"""Per-slice performance: a metric per segment, its minimum and the gap between segments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult, as_groups

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["performs_across_slices"]


def _score(metric: str, y: np.ndarray, pred: np.ndarray, positive: Any) -> float:
    from sklearn import metrics as m

    if metric == "accuracy":
        return float(m.accuracy_score(y, pred))
    if metric == "balanced_accuracy":
        return float(m.balanced_accuracy_score(y, pred))
    scorer = {"recall": m.recall_score, "precision": m.precision_score, "f1": m.f1_score}[metric]
    return float(scorer(y == positive, pred == positive, zero_division=0))


def performs_across_slices(
    y_true: Any,
    y_pred: Any,
    segments: Mapping[str, pd.Series],
    *,
    metric: str,
    min_value: float,
    max_gap: float | None,
    min_slice_size: int,
    positive_label: Any = 1,
) -> ControlResult:
    """Every segment of every slice column must reach ``min_value`` of ``metric`` and no
    two segments of one column may differ by more than ``max_gap``.

    Segments smaller than ``min_slice_size`` are reported, not judged. A slice column
    with fewer than two judged segments is reported as such; no judged segment at all
    means the control cannot decide (it fails).
    """
    import pandas as pd

    y = np.asarray(y_true)
    pred = np.asarray(y_pred)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    judged = 0
    worst_value = np.inf
    for column, groups in segments.items():
        if len(groups) and pd.Series(groups).isna().all():
            problems.append(f"{column}: no values (cannot decide)")
            rows.append({"slice": column, "segment": "missing", "rows": len(groups)})
            continue
        keys = np.asarray(as_groups(groups), dtype=object)
        values = {}
        for key in sorted(set(keys)):
            mask = keys == key
            size = int(mask.sum())
            value = _score(metric, y[mask], pred[mask], positive_label)
            in_verdict = size >= min_slice_size
            rows.append(
                {
                    "slice": column,
                    "segment": key,
                    "rows": size,
                    metric: value,
                    "in_verdict": in_verdict,
                }
            )
            if in_verdict:
                values[key] = value
                judged += 1
                worst_value = min(worst_value, value)
                if value < min_value:
                    problems.append(f"{column}={key} {metric} {value:.3f} < {min_value:.3f}")
        if not values:
            problems.append(f"{column}: no segment has {min_slice_size} rows (cannot decide)")
        if max_gap is not None and len(values) >= 2:
            gap = max(values.values()) - min(values.values())
            if gap > max_gap:
                problems.append(f"{column}: gap {gap:.3f} > {max_gap:.3f}")
    if judged == 0:
        return ControlResult.undecided(f"no segment has {min_slice_size} rows or more")
    summary = (
        f"{judged} segments of {len(segments)} slice(s) meet {metric} >= {min_value:.3f}"
        + (f" within a gap of {max_gap:.3f}" if max_gap is not None else "")
        if not problems
        else "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
    )
    return ControlResult(
        passed=not problems,
        value=float(worst_value),
        threshold=min_value,
        summary=summary,
        figures={"segments_judged": judged, f"worst_{metric}": float(worst_value)},
        table=rows,
        sample_size=int(len(y)),
    )
