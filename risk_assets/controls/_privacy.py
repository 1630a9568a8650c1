"""Privacy leakage: a black-box membership-inference attack (Adversarial Robustness Toolbox).

The attacker sees the model's outputs and learns, on one half of the training rows and an
equal number of held-out rows, to tell members from non-members; on the other halves its
advantage (TPR on members minus FPR on non-members) is the figure. A model that
memorises its training rows gives a large advantage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from risk_assets.controls._art import art_imports
from risk_assets.controls._result import ControlResult, lost_columns

__all__ = ["membership_inference_advantage"]


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)


def _rows(X: Any, index: np.ndarray) -> Any:
    """Rows of a frame or an array by position."""
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


def membership_inference_advantage(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    max_advantage: float,
    sample_size: int = 1000,
    seed: int = 0,
) -> ControlResult:
    """Attack advantage of ART's MembershipInferenceBlackBox on train vs held-out rows.

    For a scikit-learn Pipeline the attack works on the preprocessed features and the
    final estimator (ART perturbs and reads raw numeric arrays). ``sample_size`` caps the
    training rows and the held-out rows used (half to train the attack, half to measure it);
    fewer than 20 rows per half cannot decide (fail).
    """
    with art_imports():
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
        from art.estimators.classification.scikitlearn import SklearnClassifier

    if len(X_train) == 0 or len(X_test) == 0:
        return ControlResult.undecided("no training rows or no held-out rows to attack with")
    if hasattr(X_train, "columns") and hasattr(X_test, "columns"):
        columns = list(X_train.columns)
        lost = lost_columns(X_train, X_test, columns) + lost_columns(X_test, X_train, columns)
        if lost:
            # members and non-members would differ by more than membership
            return ControlResult.undecided(
                f"features {lost} have values on one side only (training or held-out rows)"
            )
    rng = np.random.default_rng(seed)
    n = min(len(X_train), len(X_test), 2 * sample_size) // 2
    if n < 20:
        return ControlResult.undecided(f"only {n} rows per half for the attack (need 20)")
    tr, te = rng.permutation(len(X_train))[: 2 * n], rng.permutation(len(X_test))[: 2 * n]
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        # only the sampled rows are preprocessed and made dense: a wide (sparse) one-hot of
        # every training row need not fit in memory
        pre, est = model[:-1], model[-1]
        Xtr = _dense(pre.transform(_rows(X_train, tr)))
        Xte = _dense(pre.transform(_rows(X_test, te)))
    else:
        est, Xtr, Xte = model, _dense(X_train)[tr], _dense(X_test)[te]
    classes = list(est.classes_)
    ytr = np.searchsorted(classes, np.asarray(y_train))[tr]
    yte = np.searchsorted(classes, np.asarray(y_test))[te]
    attack = MembershipInferenceBlackBox(SklearnClassifier(model=est), attack_model_type="rf")
    attack.attack_model.set_params(random_state=seed)  # ART's forest, seeded: repeatable
    attack.fit(Xtr[:n], ytr[:n], Xte[:n], yte[:n])
    tpr = float(np.mean(attack.infer(Xtr[n:], ytr[n:])))
    fpr = float(np.mean(attack.infer(Xte[n:], yte[n:])))
    advantage = tpr - fpr
    return ControlResult(
        passed=advantage <= max_advantage,
        value=advantage,
        threshold=max_advantage,
        summary=(
            f"membership-inference advantage {advantage:.3f} (TPR {tpr:.3f} on training rows, "
            f"FPR {fpr:.3f} on held-out rows; allowed {max_advantage:.3f})"
        ),
        figures={"attack_advantage": advantage, "attack_tpr": tpr, "attack_fpr": fpr},
        table=[
            {"side": "training rows (members)", "rows": n, "flagged_share": tpr},
            {"side": "held-out rows (non-members)", "rows": n, "flagged_share": fpr},
        ],
        sample_size=4 * n,  # n members and n non-members to train the attack, as many to test
    )
