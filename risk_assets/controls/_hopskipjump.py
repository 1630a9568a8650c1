"""HopSkipJump (Chen, Jordan & Wainwright 2020), the L-inf variant as ART implements it,
run on every attacked row at once.

ART's ``HopSkipJump`` attacks one row at a time and asks the model for a handful of
points per call; a query of a scikit-learn Pipeline through a DataFrame costs about the
same for one row as for a thousand. Here every stage of an iteration is one model call
over every row still under attack, each row with its own state; the binary search and
the step-size search ask for their next few steps in that call (only the points on each
row's path count as its queries). The steps are ART's (``art.attacks.evasion.
HopSkipJump`` with ``norm=np.inf``, ``init_size=1`` and a start given):

1. delta: ``0.1 * (clip_max - clip_min)`` in the first iteration, else ``dims * theta *
   dist`` (``dist`` the L-inf distance of the current point from the row);
2. binary search towards the row between 0 and ``dist`` with the L-inf projection
   (``clip(x, -alpha, alpha)``) to a tolerance of ``min(dist * theta, theta)``;
3. gradient sign from ``min(init_eval * sqrt(iteration + 1), max_eval)`` uniform probes
   of L2 length ``delta`` (masked, clipped to the box), ART's baseline correction;
4. geometric step-size search: from ``2 * dist / sqrt(iteration + 1)``, halved until the
   step lands on another decision.

Coordinates are the row's own (the row is the origin); only the features of a row's mask
move; every query is clipped to the row's ``[-bound, bound]``, as ART clips to its
``clip_values``. A row's attack ends as soon as the oracle says it is done (for the
evasion control: it queried a point within budget with another decision). Unlike ART:
the probes come from the ``numpy.random.Generator`` given (ART draws from the global
``np.random``), the arithmetic is float64 (ART's float32 in places), and a step is halved
at most 64 times. ``benchmarks/evasion_attack.py`` compares the two on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Oracle", "hopskipjump"]

#: The binary search asks for several of its steps at once: every point its next
#: ``levels`` steps may try (``2**levels - 1`` per row, at most this many points in all)
#: in one model call, of which only the points on each row's path count (the model is a
#: function: a point off the path changes neither where the search goes nor what the
#: attack found, and it is not one of the attack's queries).
_TREE_POINTS = 2048

#: At most this many halvings of a step: ART halves until it lands on another decision,
#: which the current point itself is (a step of 0), so the search always ends; the cap
#: only guards against a model whose decisions change from call to call.
_MAX_HALVINGS = 64

#: The step-size search asks for up to this many of its halvings at once (within
#: ``_TREE_POINTS`` points); as in the binary search, only the trials up to each row's
#: first step with another decision are the attack's queries.
_TRIALS = 16


class Oracle(Protocol):
    """The model as the attack sees it; ``idx`` index the attacked rows, ``points`` are
    in their coordinates (the row at the origin)."""

    def ask(self, idx: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Whether each point (of row ``idx[i]``) has another decision than its row, in
        one model call."""
        ...

    def note(self, idx: np.ndarray, points: np.ndarray, other: np.ndarray) -> None:
        """The attack queried these points (in this order) and found these decisions."""
        ...

    def done(self, idx: np.ndarray) -> np.ndarray:
        """Which of the rows ``idx`` are no longer attacked (their queries stop)."""
        ...


@dataclass
class _Rows:
    """The attack's state: per attacked row its current point, box and mask."""

    oracle: Oracle
    x: np.ndarray  # current points (rows, dims)
    bound: np.ndarray  # per row: the box is [-bound, bound] in every coordinate
    mask: np.ndarray  # per row: the coordinates that may move (0 or 1)
    theta: float  # ART's theta: the tolerance divided by the dimension

    def live(self, idx: np.ndarray) -> np.ndarray:
        """The rows of ``idx`` whose attack is not over."""
        return idx[~self.oracle.done(idx)] if len(idx) else idx

    def clip(self, idx: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Points of rows ``idx`` clipped to their rows' boxes (as ART clips every query
        to its ``clip_values``)."""
        b = self.bound[idx].reshape(-1, *([1] * (points.ndim - 1)))
        return np.clip(points, -b, b)

    def query(self, idx: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Whether each point (clipped) has another decision: asked and noted."""
        points = self.clip(idx, points)
        other = self.oracle.ask(idx, points)
        self.oracle.note(idx, points, other)
        return other


def _tree(lower: np.ndarray, upper: np.ndarray, levels: int) -> np.ndarray:
    """Per row, the midpoints the binary search may try in its next ``levels`` steps, in
    breadth-first order: node ``i`` halves its interval; its child ``2i + 1`` is the lower
    half (taken when the midpoint has another decision), ``2i + 2`` the upper."""
    nodes = 2**levels - 1
    lo, hi = [lower], [upper]
    for i in range(nodes // 2):
        mid = (lo[i] + hi[i]) / 2.0
        lo += [lo[i], mid]
        hi += [mid, hi[i]]
    return np.stack([(lo[i] + hi[i]) / 2.0 for i in range(nodes)], axis=1)


def _levels(rows: int, width: np.ndarray, threshold: np.ndarray) -> int:
    """How many steps of the binary search to ask at once: as many as the longest search
    still needs, within ``_TREE_POINTS`` points, at least one."""
    needed = int(np.ceil(np.log2(np.max(width / threshold)))) if len(width) else 1
    affordable = int(np.log2(_TREE_POINTS // max(rows, 1) + 1))
    return max(1, min(needed, affordable))


def _binary_search(s: _Rows, idx: np.ndarray) -> None:
    """Step 2 for rows ``idx``: move each current point to the boundary along the L-inf
    projection. Every point of the next few steps of all rows still searching is asked
    in one model call; each row then walks its own path through them, and only the
    points on the path are the attack's queries."""
    upper = np.abs(s.x[idx]).max(axis=1)
    lower = np.zeros(len(idx))
    threshold = np.minimum(upper * s.theta, s.theta)
    while True:
        go = np.flatnonzero((upper - lower > threshold) & ~s.oracle.done(idx))
        if not len(go):
            break
        levels = _levels(len(go), upper[go] - lower[go], threshold[go])
        alphas = _tree(lower[go], upper[go], levels)  # (rows, nodes)
        nodes = alphas.shape[1]
        points = s.clip(
            np.repeat(idx[go], nodes),
            np.clip(s.x[idx[go]][:, None, :], -alphas[..., None], alphas[..., None]).reshape(
                len(go) * nodes, -1
            ),
        )
        other = s.oracle.ask(np.repeat(idx[go], nodes), points).reshape(len(go), nodes)
        points = points.reshape(len(go), nodes, -1)
        node = np.zeros(len(go), dtype=int)
        for _ in range(levels):
            k = np.flatnonzero((upper[go] - lower[go] > threshold[go]) & ~s.oracle.done(idx[go]))
            if not len(k):
                break
            at, n = go[k], node[k]
            hit = other[k, n]
            s.oracle.note(idx[at], points[k, n], hit)
            alpha = alphas[k, n]
            lower[at] = np.where(hit, lower[at], alpha)
            upper[at] = np.where(hit, alpha, upper[at])
            node[k] = np.where(hit, 2 * n + 1, 2 * n + 2)
    s.x[idx] = np.clip(s.x[idx], -upper[:, None], upper[:, None])


def _gradient_sign(
    s: _Rows, idx: np.ndarray, delta: np.ndarray, num_eval: int, rng: np.random.Generator
) -> np.ndarray:
    """Step 3 for rows ``idx``: the sign of the estimated gradient at each current point,
    from ``num_eval`` probes per row (all rows' probes in one query)."""
    dims = s.x.shape[1]
    noise = rng.uniform(-1.0, 1.0, size=(len(idx), num_eval, dims)) * s.mask[idx][:, None, :]
    noise /= np.sqrt(np.sum(noise**2, axis=2, keepdims=True))
    here = s.x[idx][:, None, :]
    probes = s.clip(idx, here + delta[:, None, None] * noise)
    noise = (probes - here) / delta[:, None, None]
    other = s.query(np.repeat(idx, num_eval), probes.reshape(-1, dims)).reshape(len(idx), -1)
    f_val = 2.0 * other - 1.0
    mean = f_val.mean(axis=1)
    centred = np.mean((f_val - mean[:, None])[:, :, None] * noise, axis=1)
    grad = np.where(
        (mean == 1.0)[:, None],
        noise.mean(axis=1),
        np.where((mean == -1.0)[:, None], -noise.mean(axis=1), centred),
    )
    return np.sign(grad)


def _step(s: _Rows, idx: np.ndarray, update: np.ndarray, iteration: int) -> None:
    """Step 4 for rows ``idx``: the largest step along ``update`` of ``2 * dist /
    sqrt(iteration + 1)`` halved at least once that lands on another decision. The next
    few halvings of all rows still looking are asked in one model call; each row's
    trials count up to its first step with another decision."""
    epsilon = 2.0 * np.abs(s.x[idx]).max(axis=1) / np.sqrt(iteration + 1)
    pending, halved = np.arange(len(idx)), 0
    while halved < _MAX_HALVINGS:
        pending = pending[~s.oracle.done(idx[pending])]
        if not len(pending):
            return
        trials = max(1, min(_TRIALS, _TREE_POINTS // len(pending), _MAX_HALVINGS - halved))
        steps = epsilon[pending][:, None] / 2.0 ** np.arange(1, trials + 1)  # (rows, trials)
        moved = s.x[idx[pending]][:, None, :] + steps[..., None] * update[pending][:, None, :]
        owners = np.repeat(idx[pending], trials)
        moved = s.clip(owners, moved.reshape(len(owners), -1)).reshape(moved.shape)
        other = s.oracle.ask(owners, moved.reshape(len(owners), -1)).reshape(steps.shape)
        for t in range(trials):
            k = np.flatnonzero(~s.oracle.done(idx[pending]))
            if not len(k):
                return
            s.oracle.note(idx[pending[k]], moved[k, t], other[k, t])
            landed = k[other[k, t]]
            s.x[idx[pending[landed]]] = moved[landed, t]
            pending = np.delete(pending, landed)
            moved, other = np.delete(moved, landed, axis=0), np.delete(other, landed, axis=0)
        epsilon[pending] /= 2.0**trials
        halved += trials


def hopskipjump(
    oracle: Oracle,
    starts: np.ndarray,
    bound: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    max_iter: int,
    max_eval: int,
    theta: float,
) -> np.ndarray:
    """Untargeted L-inf HopSkipJump on every row at once from ``starts`` (points with
    another decision, each row at the origin of its coordinates); the final points.

    ``theta`` is ART's ``theta`` (the binary search's tolerance; times the dimension, the
    share of the distance that is delta); ``bound`` is each row's box, ``[-bound, bound]``
    in every coordinate; ``mask`` (0 or 1 per row and coordinate) the coordinates that
    move. ART's ``init_eval`` is ``min(10, max_eval)``. A row stops when the oracle says
    it is done.
    """
    if not theta > 0:
        raise ValueError(f"theta must be positive, not {theta!r}")
    s = _Rows(oracle, np.array(starts, dtype=float), bound, mask.astype(float), theta)
    dims = s.x.shape[1]
    init_eval = min(10, max_eval)
    for iteration in range(max_iter):
        idx = s.live(np.arange(len(s.x)))
        if not len(idx):
            break
        if iteration == 0:
            delta = 0.1 * 2.0 * s.bound[idx]
        else:
            delta = dims * theta * np.abs(s.x[idx]).max(axis=1)
        _binary_search(s, idx)
        keep = ~oracle.done(idx)
        idx, delta = idx[keep], delta[keep]
        if not len(idx):
            break
        num_eval = min(int(init_eval * np.sqrt(iteration + 1)), max_eval)
        update = _gradient_sign(s, idx, delta, num_eval, rng)
        keep = ~oracle.done(idx)
        _step(s, idx[keep], update[keep], iteration)
    return s.x
