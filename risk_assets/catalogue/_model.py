"""Model gates: checks on ``candidate_model`` (the fitted candidate and its held-out rows)."""

from __future__ import annotations

from typing import Any

from risk_assets.catalogue import params as p
from risk_assets.catalogue._entry import Check, ColumnKinds, DefaultRisk, Entry, Problem
from risk_assets.controls._plots import fairness_figure, importance_figure, slices_figure
from risk_assets.controls._result import ControlResult
from risk_assets.errors import SpecError

__all__ = ["MODEL_GATES"]

_MAX_UNBANDED_GROUPS = 20


def _segments(values: Any, column: str, inp: Any) -> Any:
    """A column as groups: banded by the spec's protected_bands, else its values; a numeric
    column with many values needs bands first, or every value would become a group and
    appear in the evidence."""
    import pandas as pd

    from risk_assets.controls._fairness import band

    edges = inp.spec.protected_bands.get(column)
    if edges:
        return band(values, edges)
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    if numeric and column not in inp.categorical and values.nunique() > _MAX_UNBANDED_GROUPS:
        raise SpecError(
            f"{inp.spec_path}: {column!r} is numeric with {values.nunique()} values; "
            "give it band edges in protected_bands (or list it in categorical_features)"
        )
    return values


def _metric_thresholds(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._performance import meets_metric_thresholds

    return meets_metric_thresholds(inp.metrics, check.params.thresholds)


def _champion_challenger(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._champion import compare_on_unseen_rows
    from risk_assets.controls._performance import compare_to_champion

    metric, tolerance = check.params.metric, check.params.tolerance
    champion = inp.champion()
    if champion is None:
        inp.extra["champion_version"] = "none"
        return compare_to_champion(
            metric=metric,
            candidate=inp.metrics.get(metric),
            champion=None,
            tolerance=tolerance,
            champion_ref=None,
        )
    inp.extra["champion_version"] = champion.ref
    return compare_on_unseen_rows(
        inp.model,
        champion.model,
        inp.test,
        features=inp.features,
        target=inp.target,
        trained_on=[champion.train, inp.train],
        also_held_out=[champion.test],
        metric=metric,
        tolerance=tolerance,
        positive_label=inp.labels.positive,
        champion_ref=champion.ref,
        seed=inp.spec.split.seed,
        eval_size=check.params.sample_size,
    )


def _fairness(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._fairness import fairness_across

    params, attribute = check.params, check.attribute
    groups = _segments(inp.test[attribute], attribute, inp)
    edges = inp.spec.protected_bands.get(attribute)
    if edges:
        inp.extra["risk/bands"] = ", ".join(f"{e:g}" for e in edges)
    favourable = inp.favourable
    shown = favourable.item() if hasattr(favourable, "item") else favourable  # not np.int64(1)
    inp.extra["risk/favourable_label"] = f"{shown!r} ({inp.labels.favourable_reason})"
    train_groups = None
    if params.min_label_ratio is not None:
        train_groups = _segments(inp.train[attribute], attribute, inp)
    return fairness_across(
        inp.test[inp.target],
        inp.test_predictions,
        groups,
        favourable=inp.favourable,
        min_ratio=params.min_ratio,
        max_equalized_odds_difference=params.max_equalized_odds_difference,
        min_group_size=params.min_group_size,
        training_labels=inp.train[inp.target],
        training_groups=train_groups,
        min_label_ratio=params.min_label_ratio,
    )


def _fairness_attributes(params: Any, spec: Any) -> list[str]:
    return list(params.attributes or spec.protected_attributes)


def _fairness_requires(params: Any, spec: Any, kinds: Any) -> list[Problem]:
    if not _fairness_attributes(params, spec):
        return [Problem("spec:protected_attributes", "fairness needs protected attributes")]
    unknown = sorted(set(params.attributes or ()) - set(spec.protected_attributes))
    if unknown:
        return [Problem("params.attributes", f"{unknown} are not in protected_attributes")]
    return []


def _slices(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._slices import performs_across_slices

    params, test = check.params, inp.test
    columns = _slice_columns(params, inp.spec)
    if not columns:
        raise SpecError(f"{inp.spec_path}: the slices control needs 'slices'")
    return performs_across_slices(
        test[inp.target],
        inp.test_predictions,
        {col: _segments(test[col], col, inp) for col in columns},
        metric=params.metric,
        min_value=params.min_value,
        max_gap=params.max_gap,
        min_slice_size=params.min_slice_size,
        positive_label=inp.labels.positive,
    )


def _slice_columns(params: Any, spec: Any) -> list[str]:
    columns = list(spec.slices)
    if params.include_protected:
        columns += [c for c in spec.protected_attributes if c not in columns]
    return columns


def _slices_requires(params: Any, spec: Any, kinds: ColumnKinds) -> list[Problem]:
    if not _slice_columns(params, spec):
        return [
            Problem(
                "spec:slices",
                "the slices control needs slices in the spec (or protected_attributes with "
                "include_protected)",
            )
        ]
    if kinds.columns is None:
        return []
    return [
        Problem(
            f"spec:slices.{c}",
            f"slice column {c!r} is not among the columns the expectation suite expects",
        )
        for c in spec.slices
        if c not in kinds.columns
    ]


def _seen_categories(inp: Any, params: Any, control: str) -> dict[str, list]:
    """The categories seen in training of each ``categorical_moves`` feature, after refusing
    budgets on categorical features (they can only switch category)."""
    moving_categories = [c for c in params.budgets if c in inp.categorical]
    if moving_categories:
        raise SpecError(
            f"{inp.policy_path}: {control} budgets name categorical features "
            f"{moving_categories}; list them under categorical_moves"
        )
    train = inp.train
    return {c: sorted(train[c].dropna().unique(), key=str) for c in params.categorical_moves}


def _budgets_requires(params: Any, spec: Any, kinds: ColumnKinds) -> list[Problem]:
    """Budgets and moves must name model features; budgets numeric ones and moves
    categorical ones, as the spec (``categorical_features``) and its expectation suite (a
    set of values, or bounds) describe them. A column neither describes is judged when a
    run reads it (the runner fails closed)."""
    out = []
    not_features = {spec.target, spec.source.id_column} - {None}
    if spec.features is not None:
        not_features |= set(spec.protected_attributes) - set(spec.features)
    for key, names in (("budgets", list(params.budgets)), ("categorical_moves", None)):
        for name in names if names is not None else params.categorical_moves:
            problem = _budget_problem(key, name, spec, kinds, not_features)
            if problem is not None:
                out.append(Problem(f"params.{key}.{name}", problem))
    return out


def _budget_problem(
    key: str, name: str, spec: Any, kinds: ColumnKinds, not_features: set
) -> str | None:
    if name in not_features or (spec.features is not None and name not in spec.features):
        return f"{name!r} is not a model feature"
    if spec.features is None and kinds.columns is not None and name not in kinds.columns:
        return f"{name!r} is not among the columns the expectation suite expects"
    if key == "budgets" and name in kinds.categorical:
        return (
            f"{name!r} is categorical (the spec's categorical_features, or a set of values in "
            "its expectation suite): it can only switch category; list it under "
            "categorical_moves"
        )
    if key == "categorical_moves" and name in kinds.numeric and name not in kinds.categorical:
        return (
            f"{name!r} is numeric (its expectation suite expects it between bounds): give it "
            "a budget, or list it under the spec's categorical_features if its numbers are codes"
        )
    return None


def _ranges(train: Any, numeric: list[str]) -> dict[str, tuple[Any, Any]]:
    """Each numeric feature's training range as floats; ``<NA>`` for a feature without
    values (the controls then say so instead of raising)."""
    import pandas as pd

    out = {}
    for c in numeric:
        lo, hi = train[c].min(), train[c].max()
        out[c] = (pd.NA, pd.NA) if pd.isna(lo) or pd.isna(hi) else (float(lo), float(hi))
    return out


def _perturbation(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._robustness import perturbation_flip_rate

    params = check.params
    return perturbation_flip_rate(
        inp.model,
        inp.test[inp.features],
        budgets=params.budgets,
        categorical_moves=params.categorical_moves,
        categories=_seen_categories(inp, params, "perturbation"),
        max_flip_rate=params.max_flip_rate,
        trials=params.trials,
        sample_size=params.sample_size,
        seed=inp.spec.split.seed,
    )


def _evasion(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._robustness import evasion_attack

    params, features = check.params, inp.features
    categories = _seen_categories(inp, params, "evasion")
    numeric = [c for c in features if c not in inp.categorical]
    return evasion_attack(
        inp.model,
        inp.test[features],
        budgets=params.budgets,
        train_ranges=_ranges(inp.train, numeric),
        categorical_moves=params.categorical_moves,
        categories=categories,
        max_success_rate=params.max_success_rate,
        sample_size=params.sample_size,
        max_iter=params.max_iter,
        max_eval=params.max_eval,
        init_size=params.init_size,
        seed=inp.spec.split.seed,
    )


def _stress(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._robustness import stress_scenarios

    features = inp.features
    categorical = [c for c in features if c in inp.categorical]
    numeric = [c for c in features if c not in categorical]
    return stress_scenarios(
        inp.model,
        inp.test[features],
        numeric=numeric,
        categorical=categorical,
        train_ranges=_ranges(inp.train, numeric),
        sample_size=check.params.sample_size,
        seed=inp.spec.split.seed,
    )


def _membership(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._privacy import membership_inference_advantage

    features, target = inp.features, inp.target
    return membership_inference_advantage(
        inp.model,
        inp.train[features],
        inp.train[target],
        inp.test[features],
        inp.test[target],
        max_advantage=check.params.max_advantage,
        sample_size=check.params.sample_size,
        seed=inp.spec.split.seed,
    )


def _explainability(check: Check, inp: Any) -> ControlResult:
    from risk_assets.controls._explain import protected_among_top_features

    protected = list(inp.spec.protected_attributes)
    if not protected:
        raise SpecError(f"{inp.spec_path}: explainability needs protected_attributes")
    params = check.params
    return protected_among_top_features(
        inp.model,
        inp.test[inp.features],
        inp.test[inp.target],
        inp.test[protected],
        top_k=params.top_k,
        categorical=inp.categorical,
        proxy_threshold=params.proxy_threshold,
        n_repeats=params.n_repeats,
        sample_size=params.sample_size,
        seed=inp.spec.split.seed,
    )


def _explainability_requires(params: Any, spec: Any, kinds: Any) -> list[Problem]:
    if not spec.protected_attributes:
        return [Problem("spec:protected_attributes", "explainability needs protected attributes")]
    return []


def _thresholds_description(ctx: Any) -> str:
    return (
        "The model must discriminate (ROC AUC) and be no less accurate than always predicting "
        f"the majority class ({ctx.majority_share:.3f} of the profiled rows, the accuracy "
        "threshold rounded down to two decimals)"
        + ("; recall is on the positive class." if ctx.profile["recall"] is not None else ".")
    )


def _thresholds_params(ctx: Any) -> dict[str, Any]:
    thresholds = {"roc_auc": 0.6, "accuracy": int(ctx.majority_share * 100) / 100}
    if ctx.profile["recall"] is not None:
        thresholds["recall"] = round(float(ctx.profile["recall"]), 2)
    return {"thresholds": thresholds}


def _fairness_params(ctx: Any) -> dict[str, Any] | None:
    if not ctx.protected:
        return None
    profile = ctx.profile
    return {
        "min_ratio": profile["min_ratio"],
        # the four-fifths rule on the training labels too (historical bias)
        "min_label_ratio": profile["min_ratio"],
        "min_group_size": 20,
        **(
            {"max_equalized_odds_difference": profile["max_eo"]}
            if profile["max_eo"] is not None
            else {}
        ),
    }


_BUDGET_NOTE = "Each numeric feature moves by up to 5 % of its robust spread (its units)."

MODEL_GATES = (
    Entry(
        name="metric_thresholds",
        params=p.MetricThresholdsParams,
        asset="candidate_model",
        check="meets_metric_thresholds",
        description="held-out metrics at or above their thresholds",
        run=_metric_thresholds,
        default_risk=DefaultRisk(
            "PERF-001",
            "Under-performing model",
            "model_performance",
            _thresholds_description,
            3,
            4,
            "model-risk",
            _thresholds_params,
        ),
    ),
    Entry(
        name="champion_challenger",
        params=p.ChampionChallengerParams,
        asset="candidate_model",
        check="no_worse_than_champion",
        description="candidate not worse than the production champion by more than the tolerance",
        run=_champion_challenger,
        compares_champion=True,
        default_risk=DefaultRisk(
            "PERF-002",
            "Regression against the production model",
            "model_performance",
            "A retrained model must not be materially worse than the champion it replaces.",
            2,
            4,
            "model-risk",
            lambda ctx: {"metric": "roc_auc", "tolerance": 0.02},
        ),
    ),
    Entry(
        name="membership_inference",
        params=p.MembershipInferenceParams,
        asset="candidate_model",
        check="no_membership_leakage",
        description="membership-inference attack advantage (ART) on training vs held-out rows",
        run=_membership,
        default_risk=DefaultRisk(
            "PRIV-002",
            "The model leaks who was in its training data",
            "privacy_leakage",
            "Membership-inference attack advantage on training vs held-out rows.",
            2,
            4,
            "data-protection",
            lambda ctx: {"max_advantage": ctx.profile["max_advantage"], "sample_size": 1000},
        ),
    ),
    Entry(
        name="stress",
        params=p.StressParams,
        asset="candidate_model",
        check="valid_under_stress",
        description="valid outputs at and beyond the training range, with missing values, "
        "unseen categories",
        run=_stress,
        default_risk=DefaultRisk(
            "ROB-002",
            "Invalid outputs on extreme or incomplete inputs",
            "robustness",
            "Values beyond the training range, missing values, unseen categories.",
            2,
            4,
            "model-risk",
            lambda ctx: {"sample_size": 200},
        ),
    ),
    Entry(
        name="perturbation",
        params=p.PerturbationParams,
        asset="candidate_model",
        check="robust_to_perturbation",
        description="decision flip rate under bounded random perturbations in the data's units",
        run=_perturbation,
        requires=_budgets_requires,
        default_risk=DefaultRisk(
            "ROB-001",
            "Decisions that flip under small changes to the inputs",
            "robustness",
            _BUDGET_NOTE,
            3,
            3,
            "model-risk",
            lambda ctx: (
                {"budgets": ctx.budgets, "max_flip_rate": 0.1, "trials": 10, "sample_size": 500}
                if ctx.budgets
                else None
            ),
        ),
    ),
    Entry(
        name="evasion",
        params=p.EvasionParams,
        asset="candidate_model",
        check="robust_to_evasion",
        description="black-box evasion attack (HopSkipJump) within budgets in the data's units",
        run=_evasion,
        requires=_budgets_requires,
        default_risk=DefaultRisk(
            "ROB-003",
            "Decisions an adversary can change within small budgets",
            "robustness",
            "A black-box evasion attack (HopSkipJump) within the same budgets.",
            2,
            3,
            "model-risk",
            lambda ctx: (
                {"budgets": ctx.budgets, "max_success_rate": 0.2, "sample_size": 30}
                if ctx.budgets
                else None
            ),
        ),
    ),
    Entry(
        name="slices",
        params=p.SlicesParams,
        asset="candidate_model",
        check="performs_across_slices",
        description="held-out metric per segment of the spec's slices (and protected groups)",
        run=_slices,
        requires=_slices_requires,
        plot=slices_figure,
        default_risk=DefaultRisk(
            "PERF-003",
            "Performance collapses for a protected group",
            "model_performance",
            "Accuracy per protected group (and per spec slice).",
            3,
            4,
            "model-risk",
            lambda ctx: (
                {"metric": "accuracy", "min_value": 0.5, "max_gap": 0.25, "min_slice_size": 20}
                if ctx.protected
                else None
            ),
        ),
    ),
    Entry(
        name="fairness",
        params=p.FairnessParams,
        asset="candidate_model",
        check="fair_across_{attribute}",
        per_attribute=True,
        description="demographic parity ratio and equalized odds across each protected attribute",
        run=_fairness,
        requires=_fairness_requires,
        plot=fairness_figure,
        counts_favourable=True,
        default_risk=DefaultRisk(
            "FAIR-001",
            "Unfair decisions across protected groups",
            "fairness",
            "Demographic parity ratio across each protected attribute (four-fifths rule).",
            3,
            5,
            "model-risk",
            _fairness_params,
        ),
    ),
    Entry(
        name="explainability",
        params=p.ExplainabilityParams,
        asset="candidate_model",
        check="no_protected_proxy_in_top_features",
        description="permutation importance; protected attributes or proxies among the top "
        "features",
        run=_explainability,
        requires=_explainability_requires,
        plot=importance_figure,
    ),
)
