"""Controls: pure functions from data and fitted models to a :class:`ControlResult`.

No Dagster and no MLflow here; each control can be used on its own. Heavy libraries
(scikit-learn, fairlearn, ART, alibi-detect, matplotlib) are imported inside the function
that needs them.

The names below are imported on first use (PEP 562), so that loading the catalogue or
the Dagster code location does not import numpy and every control module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # the "x as x" form re-exports each name for type checkers and linters
    from risk_assets.controls._champion import compare_on_unseen_rows as compare_on_unseen_rows
    from risk_assets.controls._drift import feature_drift as feature_drift, holm as holm, psi as psi
    from risk_assets.controls._expectations import (
        load_suite as load_suite,
        profile_suite as profile_suite,
        run_expectation_suite as run_expectation_suite,
    )
    from risk_assets.controls._explain import (
        association as association,
        protected_among_top_features as protected_among_top_features,
    )
    from risk_assets.controls._fairness import band as band, fairness_across as fairness_across
    from risk_assets.controls._monitoring import (
        DecisionCounts as DecisionCounts,
        decision_volume as decision_volume,
        outcome_performance as outcome_performance,
        prediction_drift as prediction_drift,
    )
    from risk_assets.controls._performance import (
        compare_to_champion as compare_to_champion,
        evaluate_classifier as evaluate_classifier,
        meets_metric_thresholds as meets_metric_thresholds,
    )
    from risk_assets.controls._pii import PII_KINDS as PII_KINDS, scan_pii as scan_pii
    from risk_assets.controls._plots import plot_png as plot_png
    from risk_assets.controls._poisoning import (
        conflicting_duplicates_share as conflicting_duplicates_share,
        label_consistency as label_consistency,
        outliers_against_reference as outliers_against_reference,
    )
    from risk_assets.controls._privacy import (
        membership_inference_advantage as membership_inference_advantage,
    )
    from risk_assets.controls._result import (
        ControlResult as ControlResult,
        markdown_table as markdown_table,
    )
    from risk_assets.controls._robustness import (
        evasion_attack as evasion_attack,
        perturbation_flip_rate as perturbation_flip_rate,
        stress_scenarios as stress_scenarios,
    )
    from risk_assets.controls._skew import training_serving_skew as training_serving_skew
    from risk_assets.controls._slices import performs_across_slices as performs_across_slices

_WHERE = {
    "ControlResult": "_result",
    "DecisionCounts": "_monitoring",
    "PII_KINDS": "_pii",
    "association": "_explain",
    "band": "_fairness",
    "compare_on_unseen_rows": "_champion",
    "compare_to_champion": "_performance",
    "conflicting_duplicates_share": "_poisoning",
    "decision_volume": "_monitoring",
    "evaluate_classifier": "_performance",
    "evasion_attack": "_robustness",
    "fairness_across": "_fairness",
    "feature_drift": "_drift",
    "holm": "_drift",
    "label_consistency": "_poisoning",
    "load_suite": "_expectations",
    "markdown_table": "_result",
    "meets_metric_thresholds": "_performance",
    "membership_inference_advantage": "_privacy",
    "outcome_performance": "_monitoring",
    "outliers_against_reference": "_poisoning",
    "performs_across_slices": "_slices",
    "perturbation_flip_rate": "_robustness",
    "plot_png": "_plots",
    "prediction_drift": "_monitoring",
    "profile_suite": "_expectations",
    "protected_among_top_features": "_explain",
    "psi": "_drift",
    "run_expectation_suite": "_expectations",
    "scan_pii": "_pii",
    "stress_scenarios": "_robustness",
    "training_serving_skew": "_skew",
}

#: Every public name, from the map above (tests/test_structure.py checks that the
#: type-checking imports name the same modules).
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
