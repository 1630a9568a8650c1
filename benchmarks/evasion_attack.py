"""The evasion control's HopSkipJump: ART's, one row at a time, against the project's,
every row at once, on the same model and the same sampled rows.

Until December 2026 ``evasion_attack`` ran ART's ``HopSkipJump`` (with a
``BlackBoxClassifier``) per row; every query is a ``model.predict`` on a DataFrame, which
costs about the same for one row as for a thousand. ``art_per_row()`` puts that
implementation back in place of the package's step 3 (steps 1 and 2, the sample, the
starts and every figure stay the package's), so both run on identical inputs.

Cases: German credit on the shipped spec's split (its model and a deep unpruned tree),
the shipped policy's ROB-003 parameters, and with ``init_size`` 5 so that HopSkipJump
has rows left to attack; the breast cancer case of tests/test_robustness.py (25 mutable
features). Per case and repeat, in one process, one after the other: the attack with
ART's per-row step 3, then with the vectorised one; seconds, model calls, the success
rate and the successes by HopSkipJump. Ratios are what to compare (the machine is
noisy). From the repository root:

    .venv/bin/python benchmarks/evasion_attack.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from risk_assets.controls import _robustness  # noqa: E402

FEATURES = ["job", "housing", "saving_accounts", "checking_account", "credit_amount"]
FEATURES += ["duration", "purpose"]
CATEGORICAL = ["job", "housing", "saving_accounts", "checking_account", "purpose"]
NUMERIC = ["credit_amount", "duration"]


class _WithinBudget(Exception):
    """Raised from inside ART's queries: a point within budget changed the decision."""

    def __init__(self, move: np.ndarray) -> None:
        super().__init__("within budget")
        self.move = move


def _art_move(box, r, decision, start, bound, *, classes, max_iter, max_eval, theta):
    """ART's HopSkipJump on sample row ``r`` from ``start`` (budget units): the first
    move within budget it queries that changes the row's ``decision``, or None (the
    package's code before the vectorised attack)."""
    from risk_assets.controls._art import art_imports

    with art_imports():
        from art.attacks.evasion import HopSkipJump
        from art.estimators.classification import BlackBoxClassifier

    dims = len(box.numeric)

    def predict(z: np.ndarray) -> np.ndarray:
        at = np.full(len(z), r)
        pred = box.predict_at(at, z)
        move = box.moves_of(z, at)
        inside = (pred != decision) & (np.abs(move).max(axis=1) <= 1.0)
        if inside.any():
            raise _WithinBudget(move[np.argmax(inside)])
        return (pred[:, None] == classes[None, :]).astype(np.float32)

    attack = HopSkipJump(
        BlackBoxClassifier(
            predict, input_shape=(dims,), nb_classes=len(classes), clip_values=(-bound, bound)
        ),
        batch_size=max_eval,
        norm=np.inf,
        max_iter=max_iter,
        max_eval=max_eval,
        init_eval=min(10, max_eval),
        init_size=1,
        verbose=False,
    )
    attack.theta = theta / dims
    try:
        attack.generate(
            np.zeros((1, dims), dtype=np.float32),
            x_adv_init=start[None, :],
            mask=box.masks[r][None, :].astype(np.float32),
        )
    except _WithinBudget as found:
        return found.move
    return None


def _art_hopskipjump(box, base, left, rng, *, init_size, max_iter, max_eval, theta, seed):
    """Step 3 as it was: the same starts as the package's, then ART per row."""
    rows = np.repeat(left, init_size)
    lo_z = np.where(box.masks[left], (box.lo[None, :] - box.origins[left]) / box.scale, 0.0)
    hi_z = np.where(box.masks[left], (box.hi[None, :] - box.origins[left]) / box.scale, 0.0)
    far = rng.uniform(np.repeat(lo_z, init_size, axis=0), np.repeat(hi_z, init_size, axis=0))
    far = far.astype(np.float32)
    other = box.predict_at(rows, far) != base[rows] if len(rows) else np.zeros(0, dtype=bool)
    classes = np.asarray(box.model.classes_)
    moves: dict[int, np.ndarray] = {}
    state = np.random.get_state()  # ART estimates gradients with np.random
    np.random.seed(seed)
    try:
        for k, r in enumerate(left):
            mine = slice(k * init_size, (k + 1) * init_size)
            starts = far[mine][other[mine]]
            if not len(starts):
                continue
            start = starts[np.argmin(np.abs(starts).max(axis=1))]
            bound = float(max(np.abs(lo_z[k]).max(), np.abs(hi_z[k]).max(), 1.0))
            move = _art_move(
                box,
                r,
                base[r],
                start,
                bound,
                classes=classes,
                max_iter=max_iter,
                max_eval=max_eval,
                theta=theta,
            )
            if move is not None:
                moves[int(r)] = move
    finally:
        np.random.set_state(state)
    return moves


@contextmanager
def art_per_row(seed: int = 0) -> Iterator[None]:
    """``evasion_attack`` with ART's per-row HopSkipJump as its step 3 (``seed`` seeds
    ART's gradient estimates, as the package did)."""
    saved = _robustness._hopskipjump

    def step3(*args: Any, **kwargs: Any) -> dict[int, np.ndarray]:
        return _art_hopskipjump(*args, seed=seed, **kwargs)

    _robustness._hopskipjump = step3
    try:
        yield
    finally:
        _robustness._hopskipjump = saved


@contextmanager
def counting_calls() -> Iterator[list[int]]:
    """The number of model calls the attack's box makes (``calls[0]``)."""
    calls = [0]
    saved = _robustness._Box.predict_at

    def predict_at(self: Any, rows: np.ndarray, z: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return saved(self, rows, z)

    _robustness._Box.predict_at = predict_at  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        _robustness._Box.predict_at = saved  # type: ignore[method-assign]


def credit_models() -> tuple[dict[str, Any], pd.DataFrame, dict[str, tuple[float, float]]]:
    """The shipped spec's model (logistic regression) and a deep unpruned tree, fitted on
    the shipped split of the German credit data; the test part and the training ranges."""
    from risk_assets.data import split_frame
    from risk_assets.estimator import build_pipeline

    credit = pd.read_csv(ROOT / "pipelines" / "data" / "german_credit.csv")
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    models = {}
    for name, class_path, params in [
        ("logistic_regression", "sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
        ("deep_tree", "sklearn.tree.DecisionTreeClassifier", {"random_state": 0}),
    ]:
        models[name] = build_pipeline(
            class_path=class_path, params=params, numeric=NUMERIC, categorical=CATEGORICAL
        ).fit(split.train[FEATURES], split.train["risk"])
    ranges = {c: (float(split.train[c].min()), float(split.train[c].max())) for c in NUMERIC}
    return models, split.test[FEATURES], ranges


def policy_params() -> dict[str, Any]:
    """ROB-003's parameters in the shipped credit_risk policy."""
    policy = yaml.safe_load((ROOT / "pipelines" / "policies" / "credit_risk.yaml").read_text())
    risk = next(r for r in policy["risks"] if r["id"] == "ROB-003")
    return dict(risk["control"]["params"])


def attack(model: Any, X: pd.DataFrame, ranges: dict, params: dict, *, art: bool) -> dict:
    """One attack (ART's step 3 if ``art``): seconds, model calls and its figures."""
    from risk_assets.controls import evasion_attack

    with counting_calls() as calls, art_per_row() if art else nullcontext():
        t0 = time.perf_counter()
        result = evasion_attack(model, X, train_ranges=ranges, **params)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "calls": calls[0], "result": result}


def machine() -> str:
    """Architecture, usable CPUs (as ``nproc`` counts them), CPU model and Python."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, nproc {cpus}, {cpu}, Python {platform.python_version()}"


def breast_cancer_case() -> tuple[Any, pd.DataFrame, dict, dict]:
    """scikit-learn's breast cancer data (30 numeric features, 25 mutable, budgets of half
    a standard deviation), as in tests/test_robustness.py: a 25-dimensional box, where
    the random search rarely lands near the boundary and HopSkipJump walks to it."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from risk_assets.estimator import build_pipeline

    data = load_breast_cancer(as_frame=True)
    columns = list(data.data.columns)
    X_train, X_test, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0
    )
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=columns,
        categorical=[],
    ).fit(X_train, y_train)
    budgets = {c: 0.5 * float(X_train[c].std()) for c in columns[:25]}
    ranges = {c: (float(X_train[c].min()), float(X_train[c].max())) for c in columns}
    params = {"budgets": budgets, "max_success_rate": 1.0, "sample_size": 30}
    return model, X_test, ranges, params | {"max_iter": 5, "max_eval": 50}


def cases() -> dict[str, tuple[Any, pd.DataFrame, dict, dict]]:
    """name: (model, rows, training ranges, evasion_attack's parameters)."""
    models, X, ranges = credit_models()
    shipped = policy_params()
    return {
        "credit, shipped model, shipped policy": (
            models["logistic_regression"],
            X,
            ranges,
            shipped,
        ),
        "credit, deep tree, shipped policy": (models["deep_tree"], X, ranges, shipped),
        "credit, shipped model, init_size 5": (
            models["logistic_regression"],
            X,
            ranges,
            shipped | {"init_size": 5},
        ),
        "credit, deep tree, init_size 5": (
            models["deep_tree"],
            X,
            ranges,
            shipped | {"init_size": 5},
        ),
        "breast cancer, 25 mutable features": breast_cancer_case(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"numpy {np.__version__}, pandas {pd.__version__}")
    print(
        "case | repeat | rows | ART s | new s | ratio | model calls ART/new "
        "| success rate ART/new | by HopSkipJump ART/new"
    )
    totals = [0.0, 0.0]
    for name, (model, X, ranges, params) in cases().items():
        for repeat in range(args.repeats):
            old = attack(model, X, ranges, params, art=True)
            new = attack(model, X, ranges, params, art=False)
            o, n = old["result"], new["result"]
            totals[0] += old["seconds"]
            totals[1] += new["seconds"]
            print(
                f"{name} | {repeat + 1} | {n.sample_size} | {old['seconds']:.2f} | "
                f"{new['seconds']:.2f} | {old['seconds'] / new['seconds']:.1f}x | "
                f"{old['calls']}/{new['calls']} | {o.value:.1%}/{n.value:.1%} | "
                f"{int(o.figures['by_hopskipjump'])}/{int(n.figures['by_hopskipjump'])}",
                flush=True,
            )
    print(f"total: ART {totals[0]:.1f} s, new {totals[1]:.1f} s, {totals[0] / totals[1]:.1f}x")


if __name__ == "__main__":
    main()
