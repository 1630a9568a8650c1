"""The risk policy: a risk register (YAML) whose risks are each treated by a control.

Every mitigated risk names a control from :data:`CONTROLS`, its parameters and its
severity (``error`` = blocking gate, ``warn`` = warning). Unknown controls, missing
thresholds and contradictory settings fail at load with the key named.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk_assets._yaml import format_validation_error, read_yaml_mapping
from risk_assets.errors import PolicyError

__all__ = [
    "CONTROLS",
    "CATEGORIES",
    "Check",
    "checks_of",
    "METRICS",
    "MONITORING_ASSETS",
    "TRAINING_ASSETS",
    "ControlInfo",
    "LoadedPolicy",
    "Policy",
    "Risk",
    "load_policy",
]

CATEGORIES = (
    "data_quality",
    "data_privacy",
    "data_integrity",
    "drift",
    "model_performance",
    "fairness",
    "robustness",
    "privacy_leakage",
    "explainability",
    "operational",
)

#: Metrics a threshold may name; each is "higher is better" and lies in [0, 1].
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectationsParams(_Strict):
    """The expectation suite named by the spec runs; no parameters."""


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


@dataclass(frozen=True)
class ControlInfo:
    """What a control is: its parameters, the asset its check sits on and the check's name."""

    params: type[BaseModel]
    asset: Literal["validated_data", "candidate_model", "scored_batch", "batch_outcomes"]
    check_name: str
    description: str


#: The catalogue of controls a policy may name.
CONTROLS: dict[str, ControlInfo] = {
    "expectations": ControlInfo(
        ExpectationsParams,
        "validated_data",
        "meets_expectations",
        "Great Expectations suite on the training data",
    ),
    "pii": ControlInfo(
        PiiParams,
        "validated_data",
        "pii_free",
        "no PII the spec does not allow, in values or column names",
    ),
    "drift": ControlInfo(
        DriftParams,
        "validated_data",
        "no_feature_drift",
        "features against the champion's training data (KS, chi-squared, Holm, PSI)",
    ),
    "label_noise": ControlInfo(
        LabelNoiseParams,
        "validated_data",
        "labels_consistent",
        "labels against the reference window; duplicates with conflicting labels",
    ),
    "outliers": ControlInfo(
        OutliersParams,
        "validated_data",
        "no_outliers_against_reference",
        "rows the reference window calls outliers (local outlier factor or isolation forest)",
    ),
    "skew": ControlInfo(
        SkewParams,
        "validated_data",
        "no_training_serving_skew",
        "serving features against training: schema, ranges, unseen and vanished categories",
    ),
    "fairness": ControlInfo(
        FairnessParams,
        "candidate_model",
        "fair_across_<attribute>",
        "demographic parity ratio and equalized odds across each protected attribute",
    ),
    "metric_thresholds": ControlInfo(
        MetricThresholdsParams,
        "candidate_model",
        "meets_metric_thresholds",
        "held-out metrics at or above their thresholds",
    ),
    "slices": ControlInfo(
        SlicesParams,
        "candidate_model",
        "performs_across_slices",
        "held-out metric per segment of the spec's slices (and protected groups)",
    ),
    "perturbation": ControlInfo(
        PerturbationParams,
        "candidate_model",
        "robust_to_perturbation",
        "decision flip rate under bounded random perturbations in the data's units",
    ),
    "evasion": ControlInfo(
        EvasionParams,
        "candidate_model",
        "robust_to_evasion",
        "black-box evasion attack (ART HopSkipJump) within budgets in the data's units",
    ),
    "stress": ControlInfo(
        StressParams,
        "candidate_model",
        "valid_under_stress",
        "valid outputs at and beyond the training range, with missing values, unseen categories",
    ),
    "membership_inference": ControlInfo(
        MembershipInferenceParams,
        "candidate_model",
        "no_membership_leakage",
        "membership-inference attack advantage (ART) on training vs held-out rows",
    ),
    "explainability": ControlInfo(
        ExplainabilityParams,
        "candidate_model",
        "no_protected_proxy_in_top_features",
        "permutation importance; protected attributes or proxies among the top features",
    ),
    "champion_challenger": ControlInfo(
        ChampionChallengerParams,
        "candidate_model",
        "no_worse_than_champion",
        "candidate not worse than the production champion by more than the tolerance",
    ),
    # monitoring: checks on the batches the champion scores (partitioned pipelines only)
    "input_drift": ControlInfo(
        DriftParams,
        "scored_batch",
        "no_input_drift",
        "a scored batch's features against the champion's training data",
    ),
    "prediction_drift": ControlInfo(
        PredictionDriftParams,
        "scored_batch",
        "no_prediction_drift",
        "the champion's scores on a batch against its scores on its training data (KS, PSI)",
    ),
    "decision_volume": ControlInfo(
        DecisionVolumeParams,
        "scored_batch",
        "decision_volume_stable",
        "favourable and unfavourable decision counts against the recent partitions",
    ),
    "batch_expectations": ControlInfo(
        ExpectationsParams,
        "scored_batch",
        "batch_meets_expectations",
        "the expectation suite (without the target's expectations) on an incoming batch",
    ),
    "outcome_performance": ControlInfo(
        OutcomePerformanceParams,
        "batch_outcomes",
        "performs_on_outcomes",
        "the champion's metrics on a batch once its delayed labels have arrived",
    ),
}

#: Assets whose checks gate training and registration; the rest monitor scored batches.
TRAINING_ASSETS = ("validated_data", "candidate_model")
MONITORING_ASSETS = ("scored_batch", "batch_outcomes")


class Control(_Strict):
    name: str
    severity: Literal["error", "warn"] = "error"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CONTROLS:
            raise ValueError(f"unknown control {value!r}; known controls: {sorted(CONTROLS)}")
        return value

    @model_validator(mode="after")
    def _params_valid(self) -> Control:
        model = CONTROLS[self.name].params
        try:
            model.model_validate(self.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in e['loc'])}: "
                + ("required key is missing" if e["type"] == "missing" else e["msg"])
                for e in exc.errors()
            )
            raise ValueError(f"control {self.name!r}: {problems}") from None
        return self

    def parsed_params(self) -> BaseModel:
        return CONTROLS[self.name].params.model_validate(self.params)

    @property
    def check_name(self) -> str:
        return CONTROLS[self.name].check_name

    @property
    def asset(self) -> str:
        return CONTROLS[self.name].asset


class Risk(_Strict):
    """One entry of the risk register."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,40}$")
    title: str = Field(min_length=1)
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    description: str = ""
    likelihood: int = Field(default=3, ge=1, le=5)
    impact: int = Field(default=3, ge=1, le=5)
    owner: str = "unassigned"
    treatment: Literal["mitigate", "accept", "transfer", "avoid"] = "mitigate"
    justification: str | None = None
    accepted_by: str | None = None
    control: Control | None = None

    @model_validator(mode="after")
    def _treatment_consistent(self) -> Risk:
        if self.treatment == "mitigate" and self.control is None:
            raise ValueError("a mitigated risk needs a control")
        if self.treatment == "accept":
            if not self.justification or not self.accepted_by:
                raise ValueError("an accepted risk needs 'justification' and 'accepted_by'")
            if self.control is not None and self.control.severity == "error":
                raise ValueError(
                    "an accepted risk runs its control as a warning; set control.severity: warn"
                )
        return self

    @property
    def score(self) -> int:
        return self.likelihood * self.impact

    @property
    def rating(self) -> str:
        s = self.score
        return "critical" if s >= 17 else "high" if s >= 10 else "medium" if s >= 5 else "low"

    @property
    def blocking(self) -> bool:
        return self.control is not None and self.control.severity == "error"


class Promotion(_Strict):
    auto_promote: bool = Field(
        default=False,
        description="move the champion alias automatically once the gates pass (low tier only)",
    )


#: Controls that count the favourable decision, so the spec must resolve favourable_label.
_FAVOURABLE_CONTROLS = frozenset({"fairness", "decision_volume"})


class Policy(_Strict):
    """The validated content of a policy file."""

    name: str = Field(min_length=1)
    version: str | int = 1
    tier: Literal["low", "medium", "high"] = "medium"
    promotion: Promotion = Field(default_factory=Promotion)
    risks: list[Risk] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        ids = [r.id for r in self.risks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"risk ids must be unique; repeated: {dupes}")
        seen: dict[str, str] = {}
        for risk in self.risks:
            if risk.control is None:
                continue
            if risk.control.name in seen:
                raise ValueError(
                    f"control {risk.control.name!r} treats both {seen[risk.control.name]!r} and "
                    f"{risk.id!r}; each control treats one risk"
                )
            seen[risk.control.name] = risk.id
        if self.promotion.auto_promote and self.tier != "low":
            raise ValueError(
                f"promotion.auto_promote is only allowed for tier 'low' (tier is {self.tier!r}); "
                "higher tiers need an approval"
            )
        return self

    @property
    def needs_favourable_label(self) -> bool:
        """Whether a control counts favourable decisions (fairness, decision volumes)."""
        return any(
            r.control is not None and r.control.name in _FAVOURABLE_CONTROLS for r in self.risks
        )

    def controlled_risks(self) -> list[Risk]:
        return [r for r in self.risks if r.control is not None]

    def risk_for_control(self, control: str) -> Risk | None:
        for risk in self.risks:
            if risk.control is not None and risk.control.name == control:
                return risk
        return None


@dataclass(frozen=True)
class Check:
    """One asset check a policy asks for: its name, the risk it treats and its asset."""

    name: str
    risk: Risk
    asset: str
    attribute: str | None = None  # the protected attribute of a fairness check

    @property
    def blocking(self) -> bool:
        return self.risk.blocking


def checks_of(
    policy: Policy, protected_attributes: list[str], *, assets: tuple[str, ...] | None = None
) -> list[Check]:
    """Every check of a policy for a spec with these protected attributes, in register order.

    A ``fairness`` control makes one check per attribute, ``fair_across_<attribute>``.
    ``assets`` keeps the checks on those assets only (e.g. :data:`TRAINING_ASSETS`).

    Raises:
        ValueError: a fairness control with no attribute to check, or one the spec lacks.
    """
    out = []
    for risk in policy.controlled_risks():
        control = risk.control
        if assets is not None and control.asset not in assets:
            continue
        if control.name != "fairness":
            out.append(Check(control.check_name, risk, control.asset))
            continue
        attributes = control.parsed_params().attributes or protected_attributes
        if not attributes:
            raise ValueError(
                f"risk {risk.id} uses 'fairness' but no protected_attributes are named"
            )
        unknown = sorted(set(attributes) - set(protected_attributes))
        if unknown:
            raise ValueError(
                f"risk {risk.id}: params.attributes names {unknown}, not in protected_attributes"
            )
        out += [Check(f"fair_across_{a}", risk, control.asset, a) for a in attributes]
    return out


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    sha256: str


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load and validate a policy file.

    Raises:
        PolicyError: the file is missing or invalid; the message names the file and the key.
    """
    path = Path(path).resolve()
    raw = read_yaml_mapping(path, error=PolicyError, what="policy")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(format_validation_error(path, exc)) from None
    return LoadedPolicy(
        policy=policy, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )
