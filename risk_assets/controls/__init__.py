"""Controls: pure functions from data and fitted models to a :class:`ControlResult`.

No Dagster and no MLflow here; each control can be used on its own.
"""

from risk_assets.controls._expectations import load_suite, profile_suite, run_expectation_suite
from risk_assets.controls._performance import (
    compare_to_champion,
    evaluate_classifier,
    meets_metric_thresholds,
)
from risk_assets.controls._result import ControlResult, markdown_table

__all__ = [
    "ControlResult",
    "compare_to_champion",
    "evaluate_classifier",
    "load_suite",
    "markdown_table",
    "meets_metric_thresholds",
    "profile_suite",
    "run_expectation_suite",
]
