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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._hopskipjump import hopskipjump
from risk_assets.controls._result import ControlResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["evasion_attack", "perturbation_flip_rate", "stress_scenarios"]


def _names(columns: Sequence[str], shown: int = 4) -> str:
    """The first few column names, and how many more."""
    rest = len(columns) - shown
    return ", ".join(columns[:shown]) + (f" and {rest} more" if rest > 0 else "")


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
    if len(X) == 0:
        return ControlResult.undecided("no rows to perturb")
    empty = [c for c in [*budgets, *categorical_moves] if X[c].isna().all()]
    if empty:
        return ControlResult.undecided(f"mutable features {empty} have no values to move")
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
            # back in the column's own dtype (an Int64 column keeps <NA> for a missing value)
            moved[col] = pd.Series(values, index=moved.index).astype(
                sample[col].dtype if pd.api.types.is_integer_dtype(sample[col].dtype) else float
            )
        for col in categorical_moves:
            options = list((categories or {}).get(col) or sample[col].dropna().unique())
            change = rng.random(len(moved)) < 0.5
            moved.loc[change, col] = rng.choice(
                np.asarray(options, dtype=object), size=change.sum()
            )
        flipped |= model.predict(moved) != base
    rate = float(flipped.mean())
    return ControlResult(
        passed=rate <= max_flip_rate,
        value=rate,
        threshold=max_flip_rate,
        summary=(
            f"{rate:.1%} of {len(sample)} decisions flip under {trials} bounded perturbations "
            f"of {_names([*budgets, *categorical_moves])} (allowed {max_flip_rate:.1%})"
        ),
        figures={"flip_rate": rate, "trials": trials},
        table=[{"feature": c, "budget": float(b)} for c, b in budgets.items()]
        + [{"feature": c, "budget": "any seen category"} for c in categorical_moves],
        sample_size=len(sample),
    )


def _valid_outputs(model: Any, X: pd.DataFrame) -> str | None:
    """None if predictions are valid, else what is wrong."""
    pred = np.asarray(model.predict(X))
    classes = set(np.asarray(getattr(model, "classes_", np.unique(pred))).tolist())
    if len(pred) != len(X):
        return "predictions outside the known classes"
    problem = _judge(pred, None, classes)
    if problem is not None or not hasattr(model, "predict_proba"):
        return problem  # probabilities are asked for only of valid decisions, as before
    return _judge(pred, np.asarray(model.predict_proba(X), dtype=float), classes)


def _problem(model: Any, frame: pd.DataFrame) -> str | None:
    try:
        return _valid_outputs(model, frame)
    except Exception as exc:  # noqa: BLE001 - a crash is the finding, recorded by type
        return f"raised {type(exc).__name__}"


def _problems_at_once(model: Any, scenarios: Mapping[str, pd.DataFrame]) -> dict | None:
    """Each scenario's problem from one call of ``predict`` and one of ``predict_proba``
    on all of them stacked (a call on a few rows costs as much as on thousands); None when
    that cannot stand for the calls one by one: a categorical column (stacking would turn
    it to text) or the stacked call raised (which scenario did is then found one by one)."""
    import pandas as pd

    frames = list(scenarios.values())
    if not frames or any(isinstance(t, pd.CategoricalDtype) for f in frames for t in f.dtypes):
        return None
    sizes = [len(f) for f in frames]
    stacked = pd.concat(frames, ignore_index=True)
    try:
        pred = np.asarray(model.predict(stacked))
        proba = (
            np.asarray(model.predict_proba(stacked), dtype=float)
            if hasattr(model, "predict_proba")
            else None
        )
    except Exception:  # noqa: BLE001 - attributed scenario by scenario
        return None
    if len(pred) != len(stacked) or (proba is not None and len(proba) != len(stacked)):
        return None
    classes = set(np.asarray(getattr(model, "classes_", np.unique(pred))).tolist())
    out: dict[str, str | None] = {}
    start = 0
    for name, size in zip(scenarios, sizes, strict=True):
        part = slice(start, start + size)
        start += size
        out[name] = _judge(pred[part], None if proba is None else proba[part], classes)
    return out


def _judge(pred: np.ndarray, proba: np.ndarray | None, classes: set) -> str | None:
    if not set(pred.tolist()) <= classes:
        return "predictions outside the known classes"
    if proba is not None:
        if not np.isfinite(proba).all():
            return "non-finite probabilities"
        if (proba < 0).any() or (proba > 1).any() or not np.allclose(proba.sum(axis=1), 1.0):
            return "probabilities outside [0, 1] or not summing to 1"
    return None


def _range(bounds: Any) -> tuple[float, float] | None | str:
    """A training range as two finite floats; None when the feature had no values in
    training (NaN or pd.NA bounds); a message when the bounds are not numbers."""
    import pandas as pd

    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        return "is not a (min, max) pair"
    if pd.isna(lo) or pd.isna(hi):
        return None
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return "is not a pair of numbers"
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        return "is not a finite (min, max) pair"
    return lo, hi


def _with(sample: pd.DataFrame, col: str, values: Any) -> pd.DataFrame:
    """A copy of ``sample`` with column ``col`` replaced (any column name works, unlike
    ``DataFrame.assign``; a scalar replaces the whole column, whatever its dtype)."""
    frame = sample.copy()
    frame[col] = values
    return frame


def _unseen(column: pd.Series) -> Any:
    """Every value of ``column`` replaced by a category never seen in training; a
    ``category`` column keeps its dtype, with the new category added."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        cats = [c for c in column.cat.categories if c != _UNSEEN]
        return pd.Categorical([_UNSEEN] * len(column), categories=[*cats, _UNSEEN])
    return _UNSEEN


_UNSEEN = "__unseen__"


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
    """Run the model on extreme but plausible inputs; every scenario must give valid outputs.

    Per numeric feature: at, and far beyond, both ends of its training range; per feature:
    every value missing (in the column's own dtype, so an ``Int64`` column holds ``<NA>``);
    per categorical feature: a category never seen in training. A numeric feature without
    values in training (a NaN or ``pd.NA`` range) has no range scenarios; the summary
    names it. No rows, or features absent from ``X`` or ``train_ranges``, cannot decide.
    """
    if len(X) == 0:
        return ControlResult.undecided("no rows to stress")
    absent = [c for c in [*numeric, *categorical] if c not in X.columns]
    if absent:
        return ControlResult.undecided(f"features {absent} are not columns of the data")
    ranges: dict[str, tuple[float, float]] = {}
    unranged: list[str] = []
    for col in numeric:
        if col not in train_ranges:
            return ControlResult.undecided(f"no training range for numeric feature {col!r}")
        found = _range(train_ranges[col])
        if isinstance(found, str):
            return ControlResult.undecided(f"the training range of {col!r} {found}")
        if found is None:
            unranged.append(col)
        else:
            ranges[col] = found
    sample = X.sample(n=sample_size, random_state=seed) if len(X) > sample_size else X
    none = np.zeros(len(sample), dtype=bool)
    scenarios: dict[str, pd.DataFrame] = {}
    for col, (lo, hi) in ranges.items():
        span = (hi - lo) or 1.0
        for name, value in (
            ("at_min", lo),
            ("at_max", hi),
            ("beyond_max", hi + 10 * span),
            ("beyond_min", lo - 10 * span),
        ):
            scenarios[f"{col}:{name}"] = _with(sample, col, value)
    for col in [*numeric, *categorical]:
        scenarios[f"{col}:missing"] = _with(sample, col, sample[col].where(none))
    for col in categorical:
        scenarios[f"{col}:unseen_category"] = _with(sample, col, _unseen(sample[col]))
    problems = _problems_at_once(model, scenarios)
    if problems is None:  # the model raised on them all at once: one scenario at a time
        problems = {name: _problem(model, frame) for name, frame in scenarios.items()}
    rows = [
        {"scenario": name, "valid": problem is None, "problem": problem or ""}
        for name, problem in problems.items()
    ]
    failed = [r for r in rows if not r["valid"]]
    skipped = (
        f" (no values in training, so no range scenarios, for {_names(unranged)})"
        if unranged
        else ""
    )
    return ControlResult(
        passed=not failed,
        value=float(len(failed)),
        threshold=0.0,
        summary=(
            f"all {len(rows)} stress scenarios give valid outputs{skipped}"
            if not failed
            else f"{len(failed)} of {len(rows)} scenarios fail: "
            + ", ".join(f"{r['scenario']} ({r['problem']})" for r in failed[:5])
            + skipped
        ),
        figures={
            "scenarios": len(rows),
            "failed_scenarios": len(failed),
            "features_without_range": len(unranged),
        },
        table=rows,
        sample_size=len(sample),
    )


def _evasion_ranges(
    X: pd.DataFrame,
    budgets: Mapping[str, float],
    train_ranges: Mapping[str, tuple[float, float]],
    categorical_moves: Sequence[str],
    categories: Mapping[str, Sequence[Any]] | None,
) -> dict[str, tuple[float, float]] | str:
    """The training range of every numeric feature (NaN bounds for one without values in
    training), or why the attack cannot run on these inputs."""
    absent = [c for c in [*budgets, *categorical_moves] if c not in X.columns]
    if absent:
        return f"mutable features {absent} are not model features"
    if len(X) == 0:
        return "no rows to attack"
    ranges: dict[str, tuple[float, float]] = {}
    for col, bounds in train_ranges.items():
        found = _range(bounds)
        if isinstance(found, str):
            return f"the training range of {col!r} {found}"
        # a feature without values in training keeps its own values; it cannot move
        ranges[col] = (np.nan, np.nan) if found is None else found
    unranged = [c for c in budgets if np.isnan(ranges.get(c, (np.nan, np.nan))[0])]
    if unranged:
        return f"no training range for mutable features {unranged}"
    empty = [c for c in [*budgets, *categorical_moves] if X[c].isna().all()]
    if empty:
        return f"mutable features {empty} have no values to move"
    mutable = [c for c in ranges if c in budgets]
    if not mutable and not categorical_moves:
        return "no mutable features: nothing to attack"
    unlisted = [c for c in categorical_moves if not (categories or {}).get(c)]
    if unlisted:
        return f"no seen categories given for {unlisted}"
    return ranges


@dataclass(frozen=True)
class _Box:
    """The attack's coordinates for the sampled rows: each numeric feature measured from
    the row's value in units of its budget, so the budget is the box [-1, 1]."""

    model: Any
    sample: pd.DataFrame
    numeric: list[str]
    scale: np.ndarray  # the budget of each numeric feature (1 for one without a budget)
    lo: np.ndarray  # training range, per numeric feature
    hi: np.ndarray
    integer: np.ndarray  # whether the feature holds whole numbers
    origins: np.ndarray  # the rows' own values
    masks: np.ndarray  # per row: the mutable features it has a value for

    def decode(self, z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Values of the numeric features of ``rows``: a mutable feature moved by z budgets,
        kept within the training range (widened to the row's own value) and rounded if
        integer; every other feature exactly as in the row."""
        origin = self.origins[rows]
        moved = np.clip(origin + z * self.scale, np.fmin(self.lo, origin), np.fmax(self.hi, origin))
        moved = np.where(self.integer, np.rint(moved), moved)
        return np.where(self.masks[rows], moved, origin)

    def moves_of(self, z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The moves the model actually sees, in budget units (0 for unmoved features)."""
        return np.where(
            self.masks[rows], (self.decode(z, rows) - self.origins[rows]) / self.scale, 0.0
        )

    def predict_at(self, rows: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Decisions for sample rows ``rows`` with their numeric features moved by ``z``."""
        frame = self.sample.iloc[rows].reset_index(drop=True)
        frame[self.numeric] = self.decode(z, rows)
        return np.asarray(self.model.predict(frame))


def _box(
    model: Any,
    X: pd.DataFrame,
    sample: pd.DataFrame,
    budgets: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float]],
) -> _Box:
    """The attack's coordinates over every numeric feature of ``ranges``; a feature is
    integer when its column in ``X`` has an integer dtype."""
    import pandas as pd

    numeric = list(ranges)
    scale = np.array([float(budgets.get(c, 1.0)) for c in numeric])
    lo = np.array([ranges[c][0] for c in numeric], dtype=float)
    hi = np.array([ranges[c][1] for c in numeric], dtype=float)
    integer = np.array([pd.api.types.is_integer_dtype(X[c].dtype) for c in numeric])
    origins = sample[numeric].to_numpy(dtype=float, na_value=np.nan)
    # per row: the mutable features it has a value for (a missing value stays missing)
    masks = np.array([c in budgets for c in numeric])[None, :] & ~np.isnan(origins)
    return _Box(model, sample, numeric, scale, lo, hi, integer, origins, masks)


def _category_switches(
    model: Any,
    sample: pd.DataFrame,
    base: np.ndarray,
    categorical_moves: Sequence[str],
    categories: Mapping[str, Sequence[Any]] | None,
) -> np.ndarray:
    """Step 1: per sampled row, whether switching one categorical feature to another seen
    category changes the decision (every single switch of every row in one batch)."""
    import pandas as pd

    switched = np.zeros(len(sample), dtype=bool)
    variants, owners = [], []
    for col in categorical_moves:
        for option in (categories or {})[col]:
            other = np.flatnonzero((sample[col] != option).to_numpy())
            variants.append(_with(sample.iloc[other], col, option))
            owners.append(other)
    if variants:
        flipped = np.asarray(model.predict(pd.concat(variants, ignore_index=True)))
        owner = np.concatenate(owners)
        switched[owner[flipped != base[owner]]] = True
    return switched


def _random_search(
    box: _Box, base: np.ndarray, left: np.ndarray, rng: np.random.Generator, init_size: int
) -> dict[int, np.ndarray]:
    """Step 2: ``init_size`` random points in the budget box for each of the rows ``left``
    (all in one batch); per row whose decision one of them changes, the first such move.
    A hit counts only if the move the model saw (after rounding) stays within every
    budget."""
    moves: dict[int, np.ndarray] = {}
    rows = np.repeat(left, init_size)
    z = rng.uniform(-1, 1, size=(len(rows), len(box.numeric))) * box.masks[rows]
    if len(rows):
        seen = box.moves_of(z, rows)
        hit = (box.predict_at(rows, z) != base[rows]) & (np.abs(seen).max(axis=1) <= 1.0)
        for r in np.unique(rows[hit]):
            moves[int(r)] = seen[np.flatnonzero(hit & (rows == r))[0]]
    return moves


class _Hits:
    """HopSkipJump's oracle on the box for the attacked sample rows ``rows``: a row's
    attack is over at its first queried point that is within budget, as the model saw
    it, and has another decision; that move is kept."""

    def __init__(self, box: _Box, base: np.ndarray, rows: np.ndarray) -> None:
        self.box, self.base, self.rows = box, base, rows
        self.over = np.zeros(len(rows), dtype=bool)
        self.moves: dict[int, np.ndarray] = {}

    def ask(self, idx: np.ndarray, z: np.ndarray) -> np.ndarray:
        at = self.rows[idx]
        return self.box.predict_at(at, z) != self.base[at]

    def note(self, idx: np.ndarray, z: np.ndarray, other: np.ndarray) -> None:
        move = self.box.moves_of(z, self.rows[idx])
        inside = other & (np.abs(move).max(axis=1) <= 1.0)
        for j in np.flatnonzero(inside):
            if not self.over[idx[j]]:
                self.over[idx[j]] = True
                self.moves[int(self.rows[idx[j]])] = move[j]

    def done(self, idx: np.ndarray) -> np.ndarray:
        return self.over[idx]


def _hopskipjump(
    box: _Box,
    base: np.ndarray,
    left: np.ndarray,
    rng: np.random.Generator,
    *,
    init_size: int,
    max_iter: int,
    max_eval: int,
    theta: float,
) -> dict[int, np.ndarray]:
    """Step 3: HopSkipJump on the rows of ``left`` that have a start, the nearest of
    ``init_size`` random points in the training range with another decision (all rows'
    points scored in one batch), every row at once (one model call per stage); the move
    within budget it found, per row it succeeded on."""
    rows = np.repeat(left, init_size)
    lo_z = np.where(box.masks[left], (box.lo[None, :] - box.origins[left]) / box.scale, 0.0)
    hi_z = np.where(box.masks[left], (box.hi[None, :] - box.origins[left]) / box.scale, 0.0)
    far = rng.uniform(np.repeat(lo_z, init_size, axis=0), np.repeat(hi_z, init_size, axis=0))
    far = far.astype(np.float32)  # float32, as ART's attack took them: the same starts
    other = box.predict_at(rows, far) != base[rows] if len(rows) else np.zeros(0, dtype=bool)
    other = other.reshape(len(left), init_size)
    has = np.flatnonzero(other.any(axis=1))  # else no other decision in the training range
    far = np.where(other[..., None], far.reshape(len(left), init_size, len(box.numeric)), np.inf)
    starts = far[has, np.argmin(np.abs(far[has]).max(axis=2), axis=1)].astype(float)
    hits = _Hits(box, base, left[has])
    hits.note(np.arange(len(has)), starts, np.ones(len(has), dtype=bool))
    bound = np.maximum(np.maximum(np.abs(lo_z[has]), np.abs(hi_z[has])).max(axis=1), 1.0)
    hopskipjump(
        hits,
        starts,
        bound,
        box.masks[left[has]],
        rng,
        max_iter=max_iter,
        max_eval=max_eval,
        # ART's theta is the binary-search tolerance and sets the size of the gradient
        # probe (theta * dimension * distance); divided by the dimension, ``theta`` is
        # both, in budget units and as a share of the distance
        theta=theta / len(box.numeric),
    )
    return hits.moves


def _evasion_table(
    moves: Mapping[int, np.ndarray],
    mutable: Sequence[str],
    numeric: Sequence[str],
    budgets: Mapping[str, float],
    categorical_moves: Sequence[str],
) -> list[dict[str, Any]]:
    """Per mutable numeric feature, its budget and the median move of the successful
    numeric attacks, in the data's units; then each categorical feature allowed to move."""
    idx = [numeric.index(c) for c in mutable]
    return [
        {
            "feature": c,
            "budget": float(budgets[c]),
            "median_move_of_successes": (
                float(np.median([abs(m[j]) for m in moves.values()]) * budgets[c])
                if moves
                else None
            ),
        }
        for c, j in zip(mutable, idx, strict=True)
    ] + [{"feature": c, "budget": "any seen category"} for c in categorical_moves]


def evasion_attack(
    model: Any,
    X: pd.DataFrame,
    *,
    budgets: Mapping[str, float],
    train_ranges: Mapping[str, tuple[float, float]],
    categorical_moves: Sequence[str] = (),
    categories: Mapping[str, Sequence[Any]] | None = None,
    max_success_rate: float,
    sample_size: int = 50,
    max_iter: int = 10,
    max_eval: int = 100,
    init_size: int = 100,
    theta: float = 0.05,
    seed: int = 0,
) -> ControlResult:
    """Success rate of a black-box evasion attack within ``budgets`` (HopSkipJump).

    Each sampled row is attacked in three steps; the first that changes the decision
    within budget counts, and the attack stops there:

    1. each categorical feature in ``categorical_moves`` switched, one at a time, to every
       other category seen in training (an exhaustive search of single switches);
    2. ``init_size`` random points in the budget box (every mutable numeric feature moved
       by at most its budget, in its own units);
    3. HopSkipJump (the L-inf attack as ART implements it, see
       :mod:`risk_assets.controls._hopskipjump`): a random point with another decision,
       anywhere in the training range, walked towards the row while minimising the
       largest move in budget units. Its array holds every numeric model feature
       measured from the row's value in units of that feature's budget, so the budget is
       the box [-1, 1]; the row's mask lets it move only the mutable features the row has
       a value for (a missing value stays missing). ``theta`` is its binary-search
       tolerance in budget units and the size of its gradient probe as a share of the
       distance. The attack succeeds as soon as it queries a point within the box with
       another decision.

    The model always sees mutable values within the training range (widened to the row's
    own value) and rounded for integer features; the other features exactly as in the row.
    Steps 1 and 2 run as one batch for all rows. HopSkipJump runs ``max_iter`` iterations
    (gradient estimates of at most ``max_eval`` queries) on every row at once: each stage
    (steps of the binary search, the gradient estimate, trials of the step size) is one
    model call over all rows still attacked: some 20-30 calls in all, where ART's
    per-row attack made 30-40 per row.
    """
    ranges = _evasion_ranges(X, budgets, train_ranges, categorical_moves, categories)
    if isinstance(ranges, str):
        return ControlResult.undecided(ranges)
    mutable = [c for c in ranges if c in budgets]
    sample = X.sample(n=sample_size, random_state=seed) if len(X) > sample_size else X
    sample = sample.reset_index(drop=True)
    box = _box(model, X, sample, budgets, ranges)
    base = np.asarray(model.predict(sample))
    rng = np.random.default_rng(seed)

    switched = _category_switches(model, sample, base, categorical_moves, categories)
    left = np.flatnonzero(~switched & box.masks.any(axis=1))
    moves = _random_search(box, base, left, rng, init_size)
    by_random = len(moves)
    left = np.array([r for r in left if r not in moves], dtype=int)
    moves.update(
        _hopskipjump(
            box,
            base,
            left,
            rng,
            init_size=init_size,
            max_iter=max_iter,
            max_eval=max_eval,
            theta=theta,
        )
    )

    successes = int(switched.sum()) + len(moves)
    rate = successes / len(sample)
    by_attack = len(moves) - by_random
    return ControlResult(
        passed=rate <= max_success_rate,
        value=rate,
        threshold=max_success_rate,
        summary=(
            f"the evasion attack changes {successes} of {len(sample)} decisions within budget "
            f"({rate:.1%}: {int(switched.sum())} by one category switch, {by_random} by random "
            f"moves of {_names(mutable)}, {by_attack} by HopSkipJump; "
            f"allowed {max_success_rate:.1%})"
        ),
        figures={
            "success_rate": rate,
            "successes": successes,
            "by_category_switch": int(switched.sum()),
            "by_random_search": by_random,
            "by_hopskipjump": by_attack,
            "max_iter": max_iter,
            "max_eval": max_eval,
        },
        table=_evasion_table(moves, mutable, box.numeric, budgets, categorical_moves),
        sample_size=len(sample),
    )
