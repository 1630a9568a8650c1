"""Controls: pure functions from data and fitted models to a :class:`ControlResult`.

No Dagster and no MLflow here; each control can be used on its own. Heavy libraries
(scikit-learn, fairlearn, ART, alibi-detect, matplotlib) are imported inside the function
that needs them.
"""

from risk_assets.controls._champion import compare_on_unseen_rows
from risk_assets.controls._drift import feature_drift, holm, psi
from risk_assets.controls._expectations import load_suite, profile_suite, run_expectation_suite
from risk_assets.controls._explain import association, protected_among_top_features
from risk_assets.controls._fairness import band, fairness_across
from risk_assets.controls._monitoring import (
    DecisionCounts,
    decision_volume,
    outcome_performance,
    prediction_drift,
)
from risk_assets.controls._performance import (
    compare_to_champion,
    evaluate_classifier,
    meets_metric_thresholds,
)
from risk_assets.controls._pii import PII_KINDS, scan_pii
from risk_assets.controls._plots import plot_png
from risk_assets.controls._poisoning import (
    conflicting_duplicates_share,
    label_consistency,
    outliers_against_reference,
)
from risk_assets.controls._privacy import membership_inference_advantage
from risk_assets.controls._result import ControlResult, markdown_table
from risk_assets.controls._robustness import (
    evasion_attack,
    perturbation_flip_rate,
    stress_scenarios,
)
from risk_assets.controls._skew import training_serving_skew
from risk_assets.controls._slices import performs_across_slices

__all__ = [
    "PII_KINDS",
    "ControlResult",
    "DecisionCounts",
    "association",
    "band",
    "compare_on_unseen_rows",
    "compare_to_champion",
    "conflicting_duplicates_share",
    "decision_volume",
    "evaluate_classifier",
    "evasion_attack",
    "fairness_across",
    "feature_drift",
    "holm",
    "label_consistency",
    "load_suite",
    "markdown_table",
    "meets_metric_thresholds",
    "membership_inference_advantage",
    "outcome_performance",
    "outliers_against_reference",
    "perturbation_flip_rate",
    "performs_across_slices",
    "plot_png",
    "prediction_drift",
    "profile_suite",
    "protected_among_top_features",
    "psi",
    "run_expectation_suite",
    "scan_pii",
    "stress_scenarios",
    "training_serving_skew",
]
