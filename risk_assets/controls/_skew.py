"""Training/serving skew: the features the model will see at scoring against training.

Per feature: present at serving; the same kind (number or text); for numbers, the share
of serving values outside the training range; for categories, the share of serving rows
with a category never seen in training, and categories common in training (expected at
least ``min_expected`` times at serving) that never occur at serving (vanished).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from risk_assets.controls._result import ControlResult, group_counts, names_extreme_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["training_serving_skew"]


@names_extreme_columns
def training_serving_skew(
    training: pd.DataFrame,
    serving: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_out_of_range_share: float,
    max_unseen_share: float,
    min_expected: float = 5.0,
) -> ControlResult:
    """Compare serving features with the training features; any problem blocks."""
    import pandas as pd

    if len(serving) == 0:
        return ControlResult.undecided("no serving rows to compare")
    if len(training) == 0:
        return ControlResult.undecided("no training rows to compare with")
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for col in [*numeric, *categorical]:
        if col not in serving.columns:
            problems.append(f"{col}: missing at serving")
            rows.append({"feature": col, "problem": "missing at serving"})
            continue
        t, s = training[col], serving[col]
        if col in numeric:
            if not pd.api.types.is_numeric_dtype(s.dtype):
                problems.append(f"{col}: numeric in training, text at serving")
                rows.append({"feature": col, "problem": "type changed"})
                continue
            trained, served = t.notna().any(), s.notna().any()
            if not served and trained:
                problems.append(f"{col}: no values at serving")
                rows.append({"feature": col, "kind": "numeric", "problem": "no values at serving"})
                continue
            if not trained:
                # never seen in training: any served value is out of range
                share = float(s.notna().mean())
            else:
                t, s = t.astype(float), s.astype(float)
                share = float(((s < t.min()) | (s > t.max())).mean())
            rows.append({"feature": col, "kind": "numeric", "out_of_range_share": share})
            if share > max_out_of_range_share:
                problems.append(f"{col}: {share:.1%} of serving values outside the training range")
            continue
        # rows per category on each side (every row counted, each category labelled once)
        train_counts, served_counts = group_counts(t), group_counts(s)
        train_share = train_counts / train_counts.sum()
        unseen = float(served_counts[~served_counts.index.isin(train_share.index)].sum() / len(s))
        vanished = [
            c
            for c, p in train_share.items()
            if p * len(s) >= min_expected and c not in served_counts.index
        ]
        rows.append(
            {
                "feature": col,
                "kind": "categorical",
                "unseen_share": unseen,
                "vanished_categories": len(vanished),
            }
        )
        if unseen > max_unseen_share:
            problems.append(f"{col}: {unseen:.1%} of serving rows have unseen categories")
        if vanished:
            problems.append(
                f"{col}: {len(vanished)} training categor"
                f"{'y' if len(vanished) == 1 else 'ies'} vanished at serving"
            )
    return ControlResult(
        passed=not problems,
        value=float(len(problems)),
        threshold=0.0,
        summary="; ".join(problems[:5])
        if problems
        else f"serving features match training ({len(serving)} serving rows)",
        figures={"problems": len(problems)},
        table=rows,
        sample_size=len(serving),
    )
