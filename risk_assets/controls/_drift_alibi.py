"""The alibi-detect drift backend (optional extra ``alibi``).

alibi-detect is under the Business Source License 1.1: free for non-production use only;
production use needs a licence from Seldon. It is imported only when a policy picks
``backend: alibi``.

- :func:`feature_p_values`: alibi-detect's ``TabularDrift`` per feature (two-sample KS for
  numbers, chi-squared for categories), one detector per feature so that each numeric
  feature is tested on its own non-missing values.
- :func:`classifier_drift`: alibi-detect's multivariate ``ClassifierDrift`` (scikit-learn
  backend): a random forest learns to tell reference rows from new rows, out of fold; a
  KS test on its probabilities decides. It sees changes in how features go together
  (e.g. a broken correlation) that per-feature tests cannot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["classifier_drift", "feature_p_values"]


def _detectors() -> Any:
    # transformers (a dependency of alibi-detect) announces on import that it found no deep
    # learning framework; none is needed for tabular drift
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import alibi_detect.cd as cd

    return cd


def feature_p_values(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, bool]],
) -> list[tuple[float, float]]:
    """(p-value, statistic) per (reference values, new values, categorical?) pair."""
    cd = _detectors()
    out = []
    for ref, cur, categorical in pairs:
        detector = cd.TabularDrift(
            ref.reshape(-1, 1),
            p_val=0.05,  # unused: the decision is taken on the returned p-values
            categories_per_feature={0: None} if categorical else {},
        )
        data = detector.predict(cur.reshape(-1, 1), drift_type="feature")["data"]
        out.append((float(data["p_val"][0]), float(data["distance"][0])))
    return out


def classifier_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int = 0,
) -> tuple[float, float]:
    """(p-value, KS statistic of the out-of-fold probabilities) of ``ClassifierDrift``."""
    import warnings

    from sklearn.ensemble import RandomForestClassifier

    from risk_assets.controls._result import tabular_encoder

    cd = _detectors()
    encoder = tabular_encoder(list(numeric), list(categorical)).fit(reference)
    x_ref = encoder.transform(reference).astype(np.float32)
    x_cur = encoder.transform(current).astype(np.float32)
    logging.getLogger("alibi_detect").setLevel(logging.ERROR)  # notes on ignored options
    detector = cd.ClassifierDrift(
        x_ref,
        RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed, n_jobs=1),
        backend="sklearn",
        p_val=0.05,  # unused: the decision is taken on the returned p-value
        preds_type="probs",
        binarize_preds=False,
        n_folds=5,
        train_size=None,
        seed=seed,
    )
    with warnings.catch_warnings():
        # SciPy's exact KS gives way to the asymptotic one on ties; the p-value stays valid
        warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful")
        data = detector.predict(x_cur, return_probs=False, return_model=False)["data"]
    return float(data["p_val"]), float(data["distance"])
