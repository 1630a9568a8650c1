"""Champion vs challenger on rows that neither model was trained on.

Scoring the champion on the candidate's test split is biased against every new model when
the data was re-sampled: most of those rows were then in the champion's own training data,
so the champion looks better than it is. Both models are therefore scored on the
candidate's test rows minus every row (by content) that either model trained on, and the
evidence says how many rows that left. The drop blocks when it is material (beyond the
policy's tolerance) and significant (a seeded paired bootstrap's upper confidence bound of
the difference is below zero), so that a small evaluation set does not block a model that
is as good as the champion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from risk_assets.controls._result import ControlResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_on_unseen_rows", "row_keys"]

_MISSING = "\x00missing"
_MIX = np.uint64(1_000_003)


def row_keys(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit content key per row over ``columns``, equal for equal values whatever the
    dtype (numbers as float64, everything else as text; missing values alike)."""
    import pandas as pd

    keys = np.zeros(len(df), dtype=np.uint64)
    for col in columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            values: Any = pd.to_numeric(s, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
        elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            # text: each distinct string hashed once (the hash of a row is its string's)
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
            hashed = pd.util.hash_array(np.array([*uniques, _MISSING], dtype=object))
            keys = keys * _MIX ^ hashed[codes]  # code -1 (missing): the last
            continue
        else:
            values = np.frompyfunc(str, 1, 1)(s.to_numpy(dtype=object))
            values[s.isna().to_numpy(dtype=bool)] = _MISSING
        # column hashes combined in order, as pandas combines a frame's columns
        keys = keys * _MIX ^ pd.util.hash_array(np.asarray(values))
    return keys


def _auc(positive: np.ndarray, score: np.ndarray | None) -> float:
    """ROC AUC from average ranks (the Mann-Whitney statistic): the same figure as
    scikit-learn's, cheap enough for a bootstrap."""
    from scipy.stats import rankdata

    if score is None:
        return float("nan")
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _metric(name: str, y: np.ndarray, pred: np.ndarray, score: np.ndarray | None, pos: Any):
    from sklearn import metrics

    if name == "roc_auc":
        return _auc(y == pos, score)
    if name == "accuracy":
        return float(np.mean(y == pred))
    if name == "balanced_accuracy":
        return float(metrics.balanced_accuracy_score(y, pred))
    kw: dict[str, Any] = (
        {"average": "macro", "zero_division": 0}
        if pos is None
        else {"pos_label": pos, "zero_division": 0}
    )
    fn = {"f1": metrics.f1_score, "precision": metrics.precision_score}.get(
        name, metrics.recall_score
    )
    return float(fn(y, pred, **kw))


def _outputs(model: Any, X: Any, pos: Any) -> tuple[np.ndarray, np.ndarray | None]:
    pred = np.asarray(model.predict(X))
    score = None
    if hasattr(model, "predict_proba") and pos is not None:
        classes = list(model.classes_)
        if pos in classes:
            score = np.asarray(model.predict_proba(X))[:, classes.index(pos)]
    return pred, score


def _held_out(
    test: pd.DataFrame, also_held_out: Sequence[pd.DataFrame], cols: Sequence[str]
) -> pd.DataFrame:
    """``test`` pooled with the frames of ``also_held_out`` that have every column of
    ``cols``, each row once (by content); ``test`` itself when none has."""
    extra = [f for f in also_held_out if all(c in f.columns for c in cols)]
    if not extra:
        return test
    import pandas as pd

    test = pd.concat([test[cols], *(f[cols] for f in extra)], ignore_index=True)
    return test.loc[~pd.Series(row_keys(test, cols)).duplicated().to_numpy()]


def _seen_in_training(
    test: pd.DataFrame, trained_on: Sequence[pd.DataFrame], cols: Sequence[str]
) -> np.ndarray:
    """Per row of ``test``, whether a training frame holds an equal row (over ``cols``)."""
    import pandas as pd

    keys = pd.Series(row_keys(test, cols))
    seen = np.zeros(len(test), dtype=bool)
    for frame in trained_on:
        shared = [c for c in cols if c in frame.columns]
        if len(shared) != len(cols):
            continue  # another set of columns: no row of it can equal a test row
        # a hash table of the training keys (np.isin sorts both: 20x slower at 1M rows)
        seen |= keys.isin(row_keys(frame, shared)).to_numpy()
    return seen


def _bootstrap(
    metric: str,
    y: np.ndarray,
    candidate: tuple[np.ndarray, np.ndarray | None],
    champion: tuple[np.ndarray, np.ndarray | None],
    *,
    positive_label: Any,
    n_boot: int,
    sample_size: int,
    seed: int,
    confidence: float,
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The rows the bootstrap draws from (at most ``sample_size``, seeded) and the
    ``confidence`` bounds (lower, upper) of the paired difference candidate - champion of
    ``metric`` over ``n_boot`` resamples of them; None for the bounds when fewer than half
    the resamples give both figures."""
    n = len(y)
    rng = np.random.default_rng(seed)
    idx_all = np.arange(n)
    if n > sample_size:
        idx_all = rng.choice(n, size=sample_size, replace=False)

    def on(i: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> float:
        return _metric(metric, y[i], pred[i], None if score is None else score[i], positive_label)

    # every resample drawn at once: the same draws, in the same order, as one at a time
    draws = rng.choice(idx_all, size=(n_boot, len(idx_all)), replace=True)
    at_once = _metric_per_resample(metric, y, draws, candidate, champion, positive_label, idx_all)
    if at_once is not None:
        a_all, b_all = at_once
        both = np.isfinite(a_all) & np.isfinite(b_all)
        deltas = list((a_all - b_all)[both])
    else:
        deltas = []
        for i in draws:
            a, b = on(i, *candidate), on(i, *champion)
            if np.isfinite(a) and np.isfinite(b):
                deltas.append(a - b)
    if len(deltas) < n_boot // 2:
        return idx_all, None
    upper = float(np.quantile(deltas, confidence))
    lower = float(np.quantile(deltas, 1 - confidence))
    return idx_all, (lower, upper)


def _metric_per_resample(
    metric: str,
    y: np.ndarray,
    draws: np.ndarray,
    candidate: tuple[np.ndarray, np.ndarray | None],
    champion: tuple[np.ndarray, np.ndarray | None],
    pos: Any,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``metric`` of both models on each resample (a row of ``draws``, drawn from the
    distinct indices ``rows``) as arrays, for the metrics with a closed form over a matrix
    (ROC AUC from counts, accuracy); None for the others, which are then computed one
    resample at a time."""
    if metric == "accuracy":
        truth = y[draws]
        return tuple(np.mean(truth == m[0][draws], axis=1) for m in (candidate, champion))
    if metric != "roc_auc" or candidate[1] is None or champion[1] is None:
        return None
    n_boot, m = draws.shape[0], len(rows)
    position = np.empty(len(y), dtype=np.int64)
    position[rows] = np.arange(m)
    positive = y[rows] == pos
    scores = [s[rows] for s in (candidate[1], champion[1])]
    out: tuple[list, list] = ([], [])
    # a block of resamples at a time, each block's arrays small enough to stay in the
    # cache and in memory already mapped (a whole 400 x 5,000 matrix of floats is not)
    block = max(1, _BLOCK_CELLS // max(m, 1))
    for first in range(0, n_boot, block):
        part = position[draws[first : first + block]]
        k = len(part)
        # how many times each row was drawn, per resample of the block
        flat = (np.arange(k)[:, None] * m + part).ravel()
        weights = np.bincount(flat, minlength=k * m).reshape(k, m).astype("float64")
        for figures, score in zip(out, scores, strict=True):
            figures.append(_auc_of_weighted_rows(weights, positive, score))
    return np.concatenate(out[0]), np.concatenate(out[1])


#: Cells (resamples x rows) of the bootstrap's arrays computed at once.
_BLOCK_CELLS = 1 << 17


def _auc_of_weighted_rows(
    weights: np.ndarray, positive: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """ROC AUC of each resample (a row of ``weights``: how many times each row was drawn)
    without ranking it: the Mann-Whitney count of (positive, negative) pairs whose positive
    scores higher, ties counting a half, from each resample's negative weight per distinct
    score. Every term is a multiple of one half below 2**53, so the figure is exactly the
    one from average ranks; a resample that drew a missing score has none, as there."""
    n_boot = weights.shape[0]
    known = ~np.isnan(score)
    distinct, group = np.unique(np.where(known, score, 0.0), return_inverse=True)
    n_groups = len(distinct)
    neg = ~positive & known
    # each resample's negative weight per distinct score, ascending
    neg_w = np.bincount(
        (np.arange(n_boot)[:, None] * n_groups + group[neg]).ravel(),
        weights=weights[:, neg].ravel(),
        minlength=n_boot * n_groups,
    ).reshape(n_boot, n_groups)
    below = np.cumsum(neg_w, axis=1) - neg_w
    pos = positive & known
    wins = (weights[:, pos] * (below[:, group[pos]] + 0.5 * neg_w[:, group[pos]])).sum(axis=1)
    n1 = weights[:, positive].sum(axis=1)
    n0 = weights[:, ~positive].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = wins / (n1 * n0)
    undefined = (n1 == 0) | (n0 == 0) | (weights[:, ~known].sum(axis=1) > 0)
    return np.where(undefined, np.nan, auc)


def _verdict(delta: float, tolerance: float, upper: float) -> tuple[bool, str]:
    """Passed unless the drop is material (beyond ``tolerance``) and significant (the
    bootstrap's upper bound below zero); and the verdict in words."""
    material = delta < -tolerance
    significant = upper < 0
    passed = not (material and significant)
    verdict = (
        "within tolerance"
        if not material
        else "beyond tolerance but not significant"
        if passed
        else "beyond tolerance and significant"
    )
    return passed, verdict


def _comparison_table(
    metric: str,
    figures: tuple[float, float, float],
    bounds: tuple[float, float],
    n: int,
    champion_ref: str,
    confidence: float,
) -> list[dict[str, Any]]:
    """Both models' figures and their difference (``figures``: candidate, champion,
    difference), the difference with the bootstrap's ``confidence`` bounds (lower,
    upper)."""
    cand, champ, delta = figures
    lower, upper = bounds
    return [
        {"model": "candidate", metric: cand, "rows": n},
        {"model": f"champion ({champion_ref})", metric: champ, "rows": n},
        {
            "model": "difference",
            metric: delta,
            "rows": n,
            f"bootstrap_{1 - confidence:.0%}": lower,
            f"bootstrap_{confidence:.0%}": upper,
        },
    ]


def compare_on_unseen_rows(
    candidate: Any,
    champion: Any,
    test: pd.DataFrame,
    *,
    features: Sequence[str],
    target: str,
    trained_on: Sequence[pd.DataFrame],
    also_held_out: Sequence[pd.DataFrame] = (),
    metric: str,
    tolerance: float,
    positive_label: Any,
    champion_ref: str,
    min_rows: int = 30,
    confidence: float = 0.95,
    n_boot: int = 400,
    sample_size: int = 5000,
    seed: int = 0,
    eval_size: int | None = None,
) -> ControlResult:
    """Candidate vs champion on the candidate's test rows that neither model trained on.

    Args:
        candidate, champion: fitted classifiers (the champion may need other columns of
            ``test``; it is given ``features``).
        test: the candidate's held-out rows with the target.
        trained_on: the training frames of both models; any test row equal (by content of
            the shared columns) to one of their rows is left out.
        also_held_out: more held-out rows to pool with ``test`` before that (the
            champion's own test split), so that a re-sample keeps enough unseen rows.
        metric / tolerance: the policy's metric and the largest allowed drop.
        min_rows: fewer unseen rows than this cannot decide (fails closed).
        confidence / n_boot / sample_size: the paired bootstrap of the difference, on at
            most ``sample_size`` seeded rows of the evaluation set.
        eval_size: both models are scored on at most this many of the unseen rows (a
            seeded sample; the evidence gives the count); None scores them all.

    Returns:
        Passed unless the drop is beyond ``tolerance`` and the bootstrap's upper bound of
        the difference is below zero; the evidence names the rows used.
    """
    cols = [target, *features]
    if test.empty:
        return ControlResult.undecided("the candidate's test split is empty")
    n_candidate_test = len(test)
    test = _held_out(test, also_held_out, cols)
    seen = _seen_in_training(test, trained_on, cols)
    unseen = test.loc[~seen]
    n_unseen = n = len(unseen)
    if n < min_rows:
        return ControlResult.undecided(
            f"only {n} of {len(test)} held-out rows were unseen by both models (need {min_rows})"
        )
    if eval_size is not None and n > eval_size:
        unseen = unseen.sample(n=eval_size, random_state=seed)
        n = eval_size
    y = unseen[target].to_numpy()
    X = unseen[list(features)]
    cand_outputs = _outputs(candidate, X, positive_label)
    champ_outputs = _outputs(champion, X, positive_label)
    cand = _metric(metric, y, *cand_outputs, positive_label)
    champ = _metric(metric, y, *champ_outputs, positive_label)
    if not np.isfinite(cand) or not np.isfinite(champ):
        return ControlResult.undecided(
            f"{metric} cannot be measured on the {n} unseen rows (one class only, or no scores)"
        )
    delta = cand - champ
    idx_all, bounds = _bootstrap(
        metric,
        y,
        cand_outputs,
        champ_outputs,
        positive_label=positive_label,
        n_boot=n_boot,
        sample_size=sample_size,
        seed=seed,
        confidence=confidence,
    )
    if bounds is None:
        return ControlResult.undecided(f"the bootstrap of {metric} failed on the unseen rows")
    lower, upper = bounds
    passed, verdict = _verdict(delta, tolerance, upper)
    scored = f"{n} rows" if n == n_unseen else f"{n} (a seeded sample) of {n_unseen} rows"
    summary = (
        f"candidate {metric} {cand:.4f} vs champion {champion_ref} {champ:.4f} on {scored} "
        f"neither trained on (of {len(test)} held-out rows of both test splits): "
        f"difference {delta:+.4f}, allowed "
        f"drop {tolerance:.4f}, {confidence:.0%} bootstrap bound {upper:+.4f}: {verdict}"
    )
    return ControlResult(
        passed=passed,
        value=delta,
        threshold=-tolerance,
        summary=summary,
        figures={
            f"candidate_{metric}": cand,
            f"champion_{metric}": champ,
            "delta": delta,
            "delta_upper": upper,
            "delta_lower": lower,
            "evaluation_rows": n,
            "unseen_rows": n_unseen,
            "test_rows": n_candidate_test,
            "held_out_rows": len(test),
            "rows_seen_in_training": int(seen.sum()),
        },
        table=_comparison_table(metric, (cand, champ, delta), bounds, n, champion_ref, confidence),
        sample_size=int(len(idx_all)),
    )
