"""Robustness: bounded random perturbations and "extreme but plausible" stress scenarios.

Perturbation: only the numeric features the policy marks as mutable move, each by up to
its own budget in the data's units (e.g. credit_amount +/- 500); categorical features
move only to categories seen in training. The figure is the flip rate: the share of rows
whose decision changes under at least one of ``trials`` random perturbations.

Stress: values at and beyond the training range, missing values and unseen categories.
The model must not raise, and its outputs must stay valid (known classes, probabilities
finite, in [0, 1] and summing to 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["perturbation_flip_rate", "stress_scenarios"]


def perturbation_flip_rate(
    model: Any,
    X: pd.DataFrame,
    *,
    budgets: Mapping[str, float],
    categorical_moves: Sequence[str] = (),
    categories: Mapping[str, Sequence[Any]] | None = None,
    max_flip_rate: float,
    trials: int = 10,
    sample_size: int = 500,
    seed: int = 0,
) -> ControlResult:
    """Share of rows whose decision flips under bounded random perturbations."""
    import pandas as pd

    missing = [c for c in [*budgets, *categorical_moves] if c not in X.columns]
    if missing:
        return ControlResult.undecided(f"mutable features {missing} are not model features")
    rng = np.random.default_rng(seed)
    sample = X.sample(n=sample_size, random_state=seed) if len(X) > sample_size else X
    base = model.predict(sample)
    flipped = np.zeros(len(sample), dtype=bool)
    for _ in range(trials):
        moved = sample.copy()
        for col, budget in budgets.items():
            noise = rng.uniform(-budget, budget, size=len(moved))
            values = moved[col].to_numpy(dtype=float, na_value=np.nan) + noise
            if pd.api.types.is_integer_dtype(sample[col].dtype):
                values = np.rint(values)
            moved[col] = (
                values.astype(sample[col].dtype)
                if pd.api.types.is_integer_dtype(sample[col].dtype)
                else values
            )
        for col in categorical_moves:
            options = list((categories or {}).get(col) or sample[col].dropna().unique())
            change = rng.random(len(moved)) < 0.5
            moved.loc[change, col] = rng.choice(
                np.asarray(options, dtype=object), size=change.sum()
            )
        flipped |= model.predict(moved) != base
    rate = float(flipped.mean())
    moved_names = [*budgets, *categorical_moves]
    shown = ", ".join(moved_names[:4]) + (
        f" and {len(moved_names) - 4} more" if len(moved_names) > 4 else ""
    )
    return ControlResult(
        passed=rate <= max_flip_rate,
        value=rate,
        threshold=max_flip_rate,
        summary=(
            f"{rate:.1%} of {len(sample)} decisions flip under {trials} bounded perturbations "
            f"of {shown} (allowed {max_flip_rate:.1%})"
        ),
        figures={"flip_rate": rate, "trials": trials},
        table=[{"feature": c, "budget": float(b)} for c, b in budgets.items()]
        + [{"feature": c, "budget": "any seen category"} for c in categorical_moves],
        sample_size=len(sample),
    )


def _valid_outputs(model: Any, X: pd.DataFrame) -> str | None:
    """None if predictions are valid, else what is wrong."""
    pred = model.predict(X)
    classes = set(np.asarray(getattr(model, "classes_", np.unique(pred))).tolist())
    if len(pred) != len(X) or not set(np.asarray(pred).tolist()) <= classes:
        return "predictions outside the known classes"
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
        if not np.isfinite(proba).all():
            return "non-finite probabilities"
        if (proba < 0).any() or (proba > 1).any() or not np.allclose(proba.sum(axis=1), 1.0):
            return "probabilities outside [0, 1] or not summing to 1"
    return None


def stress_scenarios(
    model: Any,
    X: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    train_ranges: Mapping[str, tuple[float, float]],
    sample_size: int = 200,
    seed: int = 0,
) -> ControlResult:
    """Run the model on extreme but plausible inputs; every scenario must give valid outputs."""
    sample = X.sample(n=sample_size, random_state=seed) if len(X) > sample_size else X
    scenarios: dict[str, pd.DataFrame] = {}
    for col in numeric:
        lo, hi = train_ranges[col]
        span = (hi - lo) or 1.0
        for name, value in (
            ("at_min", lo),
            ("at_max", hi),
            ("beyond_max", hi + 10 * span),
            ("beyond_min", lo - 10 * span),
        ):
            scenarios[f"{col}:{name}"] = sample.assign(**{col: value})
    for col in [*numeric, *categorical]:
        missing = sample.copy()
        missing[col] = np.nan if col in numeric else None
        scenarios[f"{col}:missing"] = missing
    for col in categorical:
        scenarios[f"{col}:unseen_category"] = sample.assign(**{col: "__unseen__"})
    rows = []
    for name, frame in scenarios.items():
        try:
            problem = _valid_outputs(model, frame)
        except Exception as exc:  # a crash is the finding, recorded by type
            problem = f"raised {type(exc).__name__}"
        rows.append({"scenario": name, "valid": problem is None, "problem": problem or ""})
    failed = [r for r in rows if not r["valid"]]
    return ControlResult(
        passed=not failed,
        value=float(len(failed)),
        threshold=0.0,
        summary=(
            f"all {len(rows)} stress scenarios give valid outputs"
            if not failed
            else f"{len(failed)} of {len(rows)} scenarios fail: "
            + ", ".join(f"{r['scenario']} ({r['problem']})" for r in failed[:5])
        ),
        figures={"scenarios": len(rows), "failed_scenarios": len(failed)},
        table=rows,
        sample_size=len(sample),
    )
