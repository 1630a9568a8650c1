"""The evasion control's HopSkipJump runs on every attacked row at once: on the German
credit data with the shipped policy's budgets it changes as many decisions as ART's
per-row HopSkipJump on the same sampled rows, in a few dozen model calls instead of
about a thousand; it blocks a model made fragile on purpose and passes the shipped one.

ART's per-row attack lives on in ``benchmarks/evasion_attack.py`` for these comparisons;
its two attacks (20-90 s each for 30 rows, depending on the machine's load) are most of
this module's time."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import CATEGORICAL, FEATURES, ROOT, policy_params
from risk_assets.controls import _hopskipjump
from risk_assets.controls._robustness import evasion_attack

if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.evasion_attack import art_per_row, counting_calls, credit_models  # noqa: E402

NUMERIC = ["credit_amount", "duration"]

#: The same rows attacked by both implementations may end differently (their gradient
#: estimates draw different random probes), by at most this many rows of 30.
TOLERANCE_ROWS = 1


@pytest.fixture(scope="module")
def credit_case():
    """The shipped spec's model and a deep unpruned tree on the shipped split; the test
    part, the training ranges and ROB-003's parameters."""
    models, X, ranges = credit_models()
    return models, X, ranges, policy_params("ROB-003")


@pytest.mark.parametrize("model_name", ["logistic_regression", "deep_tree"])
def test_same_success_rate_as_art_per_row_on_the_same_rows(credit_case, model_name):
    """``init_size`` 5 leaves rows to HopSkipJump that the random search of the shipped
    policy (100 points) would have settled: both implementations see the same sample,
    the same category switches, random points and starts."""
    models, X, ranges, params = credit_case
    params = params | {"init_size": 5}
    with art_per_row(), counting_calls() as art_calls:
        art = evasion_attack(models[model_name], X, train_ranges=ranges, **params)
    with counting_calls() as new_calls:
        new = evasion_attack(models[model_name], X, train_ranges=ranges, **params)
    assert new.sample_size == art.sample_size == params["sample_size"]
    for step in ("by_category_switch", "by_random_search"):  # steps 1 and 2 are shared
        assert new.figures[step] == art.figures[step]
    assert abs(new.figures["successes"] - art.figures["successes"]) <= TOLERANCE_ROWS, (
        art.summary,
        new.summary,
    )
    assert new.passed is art.passed
    assert new_calls[0] * 10 <= art_calls[0], (new_calls[0], art_calls[0])


class _Fragile:
    """A credit model whose decision flips at every 200 DM of ``credit_amount`` (a tree
    that splits on tiny differences of a mutable feature): within the 500 DM budget of
    every row."""

    def __init__(self, model):
        self.model, self.classes_ = model, model.classes_

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        band = (np.asarray(frame["credit_amount"], dtype=float) // 200).astype(int) % 2
        return np.where(band == 1, self.classes_[1], self.classes_[0])


def test_hopskipjump_blocks_a_fragile_model_and_passes_the_shipped_one(credit_case):
    """With one random point per row the random search misses some rows; HopSkipJump
    walks from a point with another decision to those rows and finds their flips."""
    models, X, ranges, params = credit_case
    params = params | {"init_size": 1}
    fragile = evasion_attack(
        _Fragile(models["logistic_regression"]), X, train_ranges=ranges, **params
    )
    shipped = evasion_attack(models["logistic_regression"], X, train_ranges=ranges, **params)
    assert not fragile.passed and fragile.value > 2 * params["max_success_rate"], fragile.summary
    assert fragile.figures["by_hopskipjump"] > 0, fragile.summary
    assert shipped.passed, shipped.summary
    for row in fragile.table:  # the moves found are within budget
        assert 0 <= row["median_move_of_successes"] <= params["budgets"][row["feature"]]


def test_model_calls_do_not_grow_with_the_rows(credit_case):
    """Each stage of HopSkipJump is one model call for every row still attacked: ten
    times the rows, about the same calls."""
    models, X, ranges, params = credit_case
    calls = {}
    for rows in (6, 60):
        with counting_calls() as counted:
            evasion_attack(
                models["deep_tree"], X, train_ranges=ranges, **params | {"sample_size": rows}
            )
        calls[rows] = counted[0]
    assert calls[60] <= 2 * calls[6] and calls[60] <= 60, calls


def test_asking_steps_ahead_changes_nothing(credit_case, monkeypatch):
    """The binary search and the step-size search ask several of their steps in one
    call, but only the points on each row's path are the attack's queries: one step per
    call gives the same moves, figures and summary."""
    models, X, ranges, params = credit_case
    params = params | {"init_size": 3, "seed": 1}
    ahead = evasion_attack(models["deep_tree"], X, train_ranges=ranges, **params)
    monkeypatch.setattr(_hopskipjump, "_TREE_POINTS", 1)
    monkeypatch.setattr(_hopskipjump, "_TRIALS", 1)
    with counting_calls() as calls:
        one_by_one = evasion_attack(models["deep_tree"], X, train_ranges=ranges, **params)
    assert ahead.figures == one_by_one.figures and ahead.summary == one_by_one.summary
    assert ahead.table == one_by_one.table
    assert calls[0] > 40  # it did ask step by step


def test_hopskipjump_walks_to_a_linear_boundary():
    """On a boundary ``z0 + z1 > 1.5`` the attack's queries reach its nearest point in
    L-inf, (0.75, 0.75), from a far start; for a row with only its first coordinate
    movable, (1.5, 0); no query leaves the box, and a masked coordinate never moves."""

    class Plane:
        def __init__(self) -> None:
            self.asked: list[np.ndarray] = []
            self.queries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def ask(self, idx, points):
            self.asked.append(points)
            return points.sum(axis=1) > 1.5

        def note(self, idx, points, other) -> None:
            self.queries.append((idx, points, other))

        def done(self, idx):
            return np.zeros(len(idx), dtype=bool)

    plane = Plane()
    _hopskipjump.hopskipjump(
        plane,
        np.array([[3.0, 2.5], [4.0, 0.0]]),
        np.array([4.0, 4.0]),
        np.array([[1, 1], [1, 0]]),
        np.random.default_rng(0),
        max_iter=5,
        max_eval=50,
        theta=0.01,
    )
    idx, points, other = (np.concatenate(part) for part in zip(*plane.queries, strict=True))
    for row, nearest in ((0, [0.75, 0.75]), (1, [1.5, 0.0])):
        found = points[(idx == row) & other]
        best = found[np.argmin(np.abs(found).max(axis=1))]
        assert np.allclose(best, nearest, atol=0.02), (row, best)
    assert (points[idx == 1][:, 1] == 0).all()
    assert (np.abs(np.concatenate(plane.asked)) <= 4.0).all()
    with pytest.raises(ValueError, match="theta"):
        _hopskipjump.hopskipjump(
            plane,
            np.ones((1, 2)),
            np.ones(1),
            np.ones((1, 2)),
            np.random.default_rng(0),
            max_iter=1,
            max_eval=10,
            theta=0.0,
        )


def test_numeric_features_of_the_credit_data(credit_case):
    """The comparison above moves both numeric features of the shipped spec."""
    _, X, ranges, params = credit_case
    assert set(params["budgets"]) == set(NUMERIC) == set(ranges)
    assert list(X.columns) == FEATURES and set(CATEGORICAL) <= set(X.columns)
