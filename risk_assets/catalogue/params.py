"""The parameters of every control, one pydantic model each (what a policy's ``params`` may
say). Strict: an unknown key is an error naming it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "METRICS",
    "ChampionChallengerParams",
    "DecisionVolumeParams",
    "DriftParams",
    "EvasionParams",
    "ExpectationsParams",
    "ExplainabilityParams",
    "FairnessParams",
    "LabelNoiseParams",
    "MembershipInferenceParams",
    "MetricThresholdsParams",
    "OutcomePerformanceParams",
    "OutliersParams",
    "PerturbationParams",
    "PiiParams",
    "PredictionDriftParams",
    "SkewParams",
    "SlicesParams",
    "StressParams",
]

#: Metrics a threshold may name; each is "higher is better" and lies in [0, 1].
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectationsParams(_Strict):
    """The expectation suite named by the spec runs on every row, unless ``sample_size``."""

    sample_size: int | None = Field(
        default=None,
        ge=1_000,
        description=(
            "judge the row-wise expectations (values in a set, a range, not null, a pattern) "
            "on a seeded sample of this many rows; table-level ones, aggregates and "
            "uniqueness always see every row; unset: every row"
        ),
    )


class PiiParams(_Strict):
    max_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="a column blocks above this share of PII values of one kind (0: any)",
    )
    sample_size: int = Field(default=10_000, ge=100, description="rows scanned per run")


class FairnessParams(_Strict):
    min_ratio: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="smallest demographic parity ratio (0.8: the four-fifths rule)",
    )
    max_equalized_odds_difference: float | None = Field(default=None, ge=0.0, le=1.0)
    min_label_ratio: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="smallest ratio of the favourable label's rate across groups in the "
        "training labels (disparate impact of the data the model learns from; None: not "
        "checked)",
    )
    min_group_size: int = Field(default=20, ge=1, description="smaller groups are reported only")
    attributes: list[str] | None = Field(
        default=None, description="protected attributes to check; default: all in the spec"
    )


class DriftParams(_Strict):
    backend: Literal["scipy", "alibi"] = Field(
        default="scipy",
        description="scipy, or alibi (extra 'alibi': alibi-detect, Business Source License)",
    )
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0, description="Holm-adjusted significance")
    min_numeric_distance: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="smallest KS distance (largest gap between the two cumulative "
        "distributions, a share of rows) that counts as drift in a numeric feature",
    )
    min_category_distance: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="smallest total variation distance (share of rows that changed category) "
        "that counts as drift in a categorical feature or a feature's missing share",
    )
    min_psi: float | None = Field(
        default=None,
        ge=0.0,
        description="deprecated and ignored: the PSI is reported but no longer decides (its "
        "decile bins hid category moves and moves of lumpy features); set "
        "min_numeric_distance and min_category_distance instead",
    )
    max_drifted: int = Field(default=0, ge=0, description="drifted features allowed")
    sample_size: int = Field(default=20_000, ge=100, description="rows per frame compared")
    multivariate: bool = Field(
        default=False, description="also alibi-detect's ClassifierDrift (backend alibi only)"
    )
    min_multivariate_distance: float = Field(
        default=0.1, ge=0.0, le=1.0, description="smallest classifier KS that counts as drift"
    )

    @model_validator(mode="after")
    def _backend_available(self) -> DriftParams:
        if self.multivariate and self.backend != "alibi":
            raise ValueError("multivariate: true needs backend: alibi")
        if self.backend == "alibi":
            import importlib.util

            if importlib.util.find_spec("alibi_detect") is None:
                raise ValueError(
                    "backend 'alibi' needs alibi-detect: pip install 'risk-assets[alibi]' "
                    "(Business Source License 1.1: non-production use without a Seldon licence)"
                )
        return self


class _Budgets(_Strict):
    """What an attacker may change: numeric features within budgets, in their own units, and
    categorical features to categories seen in training."""

    budgets: dict[str, float] = Field(
        min_length=1, description="mutable numeric features and how far each may move, in its units"
    )
    categorical_moves: list[str] = Field(
        default_factory=list, description="categorical features that may move to seen categories"
    )

    @field_validator("budgets")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, v in value.items() if not v > 0)
        if bad:
            raise ValueError(f"budgets must be positive; not so for {bad}")
        return value


class PerturbationParams(_Budgets):
    max_flip_rate: float = Field(ge=0.0, le=1.0, description="largest share of flipped decisions")
    trials: int = Field(default=10, ge=1, le=100)
    sample_size: int = Field(default=500, ge=20)


class EvasionParams(_Budgets):
    max_success_rate: float = Field(
        ge=0.0, le=1.0, description="largest share of changed decisions"
    )
    sample_size: int = Field(default=30, ge=5, description="rows attacked")
    max_iter: int = Field(default=5, ge=1, le=100, description="HopSkipJump iterations per row")
    max_eval: int = Field(default=50, ge=10, le=10_000, description="queries per gradient estimate")
    init_size: int = Field(default=100, ge=1, le=10_000, description="random points tried per row")


class StressParams(_Strict):
    sample_size: int = Field(default=200, ge=10, description="rows per stress scenario")


class MembershipInferenceParams(_Strict):
    max_advantage: float = Field(ge=0.0, le=1.0, description="largest attack TPR - FPR allowed")
    sample_size: int = Field(default=1000, ge=40, description="rows per side at most")


class ExplainabilityParams(_Strict):
    top_k: int = Field(default=3, ge=1, description="how many top features are inspected")
    proxy_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="association limit")
    n_repeats: int = Field(default=5, ge=1, le=50)
    sample_size: int = Field(default=1000, ge=50)


class LabelNoiseParams(_Strict):
    confidence: float = Field(default=0.7, gt=0.5, lt=1.0, description="confident rows only")
    max_increase: float = Field(ge=0.0, le=1.0, description="allowed rise in contradictions")
    max_conflicting_duplicates: float = Field(default=0.01, ge=0.0, le=1.0)
    sample_size: int = Field(default=20_000, ge=100)


class OutliersParams(_Strict):
    detector: Literal["local_outlier_factor", "isolation_forest"] = Field(
        default="local_outlier_factor", description="the scikit-learn outlier detector"
    )
    quantile: float = Field(
        default=0.01, gt=0.0, lt=0.5, description="reference share beyond the threshold"
    )
    max_increase: float = Field(ge=0.0, le=1.0, description="allowed rise in the outlier share")
    sample_size: int = Field(
        default=5_000, ge=200, description="rows scored; twice as many reference rows"
    )


class SkewParams(_Strict):
    max_out_of_range_share: float = Field(default=0.01, ge=0.0, le=1.0)
    max_unseen_share: float = Field(default=0.0, ge=0.0, le=1.0)
    min_expected: float = Field(
        default=5.0, gt=0.0, description="a category vanishes if expected this often at serving"
    )


class SlicesParams(_Strict):
    metric: Literal["accuracy", "balanced_accuracy", "f1", "precision", "recall"] = "accuracy"
    min_value: float = Field(ge=0.0, le=1.0, description="lowest allowed metric in any segment")
    max_gap: float | None = Field(default=None, ge=0.0, le=1.0, description="largest spread")
    min_slice_size: int = Field(default=20, ge=1, description="smaller segments are reported only")
    include_protected: bool = Field(default=True, description="also slice by protected groups")


class MetricThresholdsParams(_Strict):
    thresholds: dict[Literal[METRICS], float] = Field(  # type: ignore[valid-type]
        description="minimum value per metric on the held-out test set", min_length=1
    )

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, bound in value.items():
            if not 0.0 <= bound <= 1.0:
                raise ValueError(f"threshold for {metric} must lie in [0, 1], found {bound}")
        return value


class PredictionDriftParams(_Strict):
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0, description="KS significance")
    min_psi: float = Field(default=0.1, ge=0.0, description="smallest PSI that counts as drift")
    sample_size: int = Field(default=20_000, ge=100, description="scores per side compared")


class DecisionVolumeParams(_Strict):
    history: int = Field(default=6, ge=1, le=366, description="earlier partitions compared with")
    min_history: int = Field(
        default=3, ge=1, description="fewer earlier partitions: nothing to compare yet"
    )
    max_rate_change: float = Field(
        ge=0.0, le=1.0, description="largest change in the share of favourable decisions"
    )
    max_volume_ratio: float = Field(
        default=2.0, gt=1.0, description="largest jump (or fall) of a decision count vs the median"
    )

    @model_validator(mode="after")
    def _history(self) -> DecisionVolumeParams:
        if self.min_history > self.history:
            raise ValueError(f"min_history {self.min_history} exceeds history {self.history}")
        return self


class OutcomePerformanceParams(MetricThresholdsParams):
    min_rows: int = Field(default=30, ge=1, description="fewer labelled rows cannot decide")


class ChampionChallengerParams(_Strict):
    metric: Literal[METRICS] = "roc_auc"  # type: ignore[valid-type]
    tolerance: float = Field(ge=0.0, le=1.0, description="largest allowed drop below the champion")
    sample_size: int = Field(
        default=50_000,
        ge=1_000,
        description="unseen rows both models are scored on, at most (seeded sample)",
    )
