"""Which checks a pipeline has, and how each one calls its control.

A policy risk names one control; most controls make one check, ``fairness`` makes one
check per protected attribute (``fair_across_<attribute>``). Each check gets a
:class:`GateInputs` that loads what it needs lazily and verified (snapshots by hash, the
candidate model by hash, metrics from MLflow).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from risk_assets.controls._result import ControlResult
from risk_assets.errors import IntegrityError, SpecError
from risk_assets.policy import Risk, checks_of

__all__ = ["Gate", "GateInputs", "gates_for"]

_TAG = "risk_assets."


@dataclass
class GateInputs:
    """What a gate may look at; everything loads on first use and is verified."""

    pipeline: Any  # LoadedPipeline
    store: Any  # SnapshotStore
    validated: dict | None = None
    candidate: dict | None = None
    mlflow: Any = None  # MlflowResource: the client is made only if a gate needs it
    #: extra metadata the gate wants in the UI (e.g. the champion it compared with)
    extra: dict[str, Any] = field(default_factory=dict)
    suite_sha256: str | None = None

    @cached_property
    def client(self) -> Any:
        return self.mlflow.get_client()

    @property
    def spec(self) -> Any:
        return self.pipeline.spec.spec

    @cached_property
    def frame(self) -> Any:
        return self.store.get(self.validated["sha256"])

    @cached_property
    def raw(self) -> Any:
        """Every column of the source as snapshotted, features or not (hash verified)."""
        return self.store.get(self.validated.get("raw_sha256") or self.validated["sha256"])

    @cached_property
    def test(self) -> Any:
        return self.store.get(self.candidate["test"]["sha256"])

    @cached_property
    def train(self) -> Any:
        return self.store.get(self.candidate["train"]["sha256"])

    @property
    def validated_categorical(self) -> list[str]:
        return list(self.candidate["categorical"])

    @cached_property
    def metrics(self) -> dict[str, float]:
        """The candidate's held-out metrics as recorded in MLflow, for this model hash."""
        run = self.client.get_run(self.candidate["run_id"])
        if run.data.tags.get(_TAG + "model_sha256") != self.candidate["model_sha256"]:
            raise IntegrityError(
                f"MLflow run {self.candidate['run_id']} records another model hash"
            )
        return {k[5:]: v for k, v in run.data.metrics.items() if k.startswith("test.")}

    @cached_property
    def model(self) -> Any:
        """The candidate model from its MLflow run, loaded safely, hash verified."""
        import tempfile

        from risk_assets.registry._models import load_model_dir

        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(self.candidate["run_id"], "model", tmp)
            return load_model_dir(local, expected_sha256=self.candidate["model_sha256"])

    @cached_property
    def reference(self) -> Any:
        """The reference window: the training snapshot of the champion, else of the latest
        registered candidate; None for a first model. Hash verified on read."""
        from risk_assets.registry._mlflow import reference_version

        version = reference_version(self.client, self.spec.model_name)
        if version is None:
            self.extra["risk/reference"] = "none"
            return None
        ref_sha = self.client.get_run(version.run_id).data.tags.get(_TAG + "train_sha256")
        if not ref_sha:
            raise IntegrityError(f"{version.name}/{version.version} records no training snapshot")
        self.extra["risk/reference"] = f"{version.name}/{version.version} train {ref_sha}"
        return self.store.get(ref_sha)

    @cached_property
    def labels(self) -> Any:
        """The positive and favourable labels, resolved against the candidate's classes."""
        return self.spec.labels(self.model.classes_, where=self.pipeline.spec.path)

    @property
    def favourable(self) -> Any:
        return self.labels.require_favourable(
            target=self.spec.target, where=str(self.pipeline.spec.path)
        )

    @cached_property
    def test_predictions(self) -> Any:
        return self.model.predict(self.test[self.candidate["features"]])


@dataclass(frozen=True)
class Gate:
    """One check: its name, the risk it treats, the asset it sits on and how it runs."""

    check: str
    risk: Risk
    asset: str
    run: Callable[[GateInputs], ControlResult]

    @property
    def blocking(self) -> bool:
        return self.risk.blocking


def _expectations(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._expectations import load_suite, run_expectation_suite
        from risk_assets.registry._models import file_sha256

        path = inp.pipeline.spec.suite_path
        inp.suite_sha256 = file_sha256(path) if path.is_file() else None
        inp.extra["risk/suite_sha256"] = inp.suite_sha256 or "unreadable"
        return run_expectation_suite(inp.frame, load_suite(path), source=str(path))

    return run


def _pii(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._pii import scan_pii

        # the raw snapshot: a column the model does not use is still stored as lineage
        return scan_pii(
            inp.raw,
            allowed=inp.spec.pii_allowed,
            max_share=params.max_share,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _metric_thresholds(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._performance import meets_metric_thresholds

        return meets_metric_thresholds(inp.metrics, params.thresholds)

    return run


def _champion_challenger(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._champion import compare_on_unseen_rows
        from risk_assets.controls._performance import compare_to_champion
        from risk_assets.registry._mlflow import find_champion, load_version_model

        metric, tolerance = params.metric, params.tolerance
        champion = find_champion(inp.client, inp.spec.model_name)
        if champion is None:
            inp.extra["champion_version"] = "none"
            return compare_to_champion(
                metric=metric,
                candidate=inp.metrics.get(metric),
                champion=None,
                tolerance=tolerance,
                champion_ref=None,
            )
        ref = f"{champion.name}/{champion.version}"
        inp.extra["champion_version"] = ref
        champ_tags = inp.client.get_run(champion.run_id).data.tags
        champ_train_sha = champ_tags.get(_TAG + "train_sha256")
        champ_test_sha = champ_tags.get(_TAG + "test_sha256")
        if not champ_train_sha or not champ_test_sha:
            raise IntegrityError(f"{ref} records no training or test snapshot")
        inp.extra["risk/evaluation_rows"] = (
            "both models' test rows minus every row either model trained on "
            f"(champion train {champ_train_sha[:12]} test {champ_test_sha[:12]}, candidate "
            f"train {inp.candidate['train']['sha256'][:12]} test "
            f"{inp.candidate['test']['sha256'][:12]})"
        )
        return compare_on_unseen_rows(
            inp.model,
            load_version_model(inp.client, champion),
            inp.test,
            features=inp.candidate["features"],
            target=inp.candidate["target"],
            trained_on=[inp.store.get(champ_train_sha), inp.train],
            also_held_out=[inp.store.get(champ_test_sha)],
            metric=metric,
            tolerance=tolerance,
            positive_label=inp.labels.positive,
            champion_ref=ref,
            seed=inp.spec.split.seed,
        )

    return run


def _fairness(params: Any, attribute: str) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._fairness import band, fairness_across

        spec = inp.spec
        values = inp.test[attribute]
        edges = spec.protected_bands.get(attribute)
        groups = band(values, edges) if edges else _as_segments(values, attribute, inp)
        if edges:
            inp.extra["risk/bands"] = ", ".join(f"{e:g}" for e in edges)
        inp.extra["risk/favourable_label"] = f"{inp.favourable!r} ({inp.labels.favourable_reason})"
        train_groups = None
        if params.min_label_ratio is not None:
            tv = inp.train[attribute]
            train_groups = band(tv, edges) if edges else _as_segments(tv, attribute, inp)
        return fairness_across(
            inp.test[inp.candidate["target"]],
            inp.test_predictions,
            groups,
            favourable=inp.favourable,
            min_ratio=params.min_ratio,
            max_equalized_odds_difference=params.max_equalized_odds_difference,
            min_group_size=params.min_group_size,
            training_labels=inp.train[inp.candidate["target"]],
            training_groups=train_groups,
            min_label_ratio=params.min_label_ratio,
        )

    return run


_MAX_UNBANDED_GROUPS = 20


def _as_segments(values: Any, column: str, inp: GateInputs) -> Any:
    """A column as groups; a numeric column with many values needs bands first, or every
    value would become a group and appear in the evidence."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    if (
        numeric
        and column not in inp.validated_categorical
        and values.nunique() > _MAX_UNBANDED_GROUPS
    ):
        raise SpecError(
            f"{inp.pipeline.spec.path}: {column!r} is numeric with {values.nunique()} values; "
            "give it band edges in protected_bands (or list it in categorical_features)"
        )
    return values


def _slices(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._fairness import band
        from risk_assets.controls._slices import performs_across_slices

        spec, test = inp.spec, inp.test
        columns = list(spec.slices)
        if params.include_protected:
            columns += [c for c in spec.protected_attributes if c not in columns]
        if not columns:
            raise SpecError(f"{inp.pipeline.spec.path}: the slices control needs 'slices'")
        segments = {}
        for col in columns:
            edges = spec.protected_bands.get(col)
            segments[col] = band(test[col], edges) if edges else _as_segments(test[col], col, inp)
        return performs_across_slices(
            test[inp.candidate["target"]],
            inp.test_predictions,
            segments,
            metric=params.metric,
            min_value=params.min_value,
            max_gap=params.max_gap,
            min_slice_size=params.min_slice_size,
            positive_label=inp.labels.positive,
        )

    return run


def _drift(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        reference = inp.reference
        if reference is None:
            return ControlResult(
                passed=True,
                value=None,
                threshold=float(params.max_drifted),
                summary="no registered model yet: no reference window, gate passes",
            )
        return drift_against(
            params,
            reference,
            inp.frame,
            inp.validated["features"],
            inp.validated["categorical"],
            seed=inp.spec.split.seed,
        )

    return run


def drift_against(
    params: Any, reference: Any, current: Any, features: list, categorical: list, *, seed: int
) -> ControlResult:
    """The drift control of a policy on two frames (training gate and monitoring alike)."""
    from risk_assets.controls._drift import feature_drift

    return feature_drift(
        reference,
        current,
        numeric=[c for c in features if c not in categorical],
        categorical=categorical,
        alpha=params.alpha,
        min_numeric_distance=params.min_numeric_distance,
        min_category_distance=params.min_category_distance,
        max_drifted=params.max_drifted,
        sample_size=params.sample_size,
        seed=seed,
        backend=params.backend,
        multivariate=params.multivariate,
        min_multivariate_distance=params.min_multivariate_distance,
    )


def _seen_categories(inp: GateInputs, params: Any, control: str) -> dict[str, list]:
    """The categories seen in training of each ``categorical_moves`` feature, after refusing
    budgets on categorical features (they can only switch category)."""
    moving_categories = [c for c in params.budgets if c in inp.validated_categorical]
    if moving_categories:
        raise SpecError(
            f"{inp.pipeline.policy.path}: {control} budgets name categorical features "
            f"{moving_categories}; list them under categorical_moves"
        )
    train = inp.train
    return {c: sorted(train[c].dropna().unique(), key=str) for c in params.categorical_moves}


def _perturbation(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._robustness import perturbation_flip_rate

        return perturbation_flip_rate(
            inp.model,
            inp.test[inp.candidate["features"]],
            budgets=params.budgets,
            categorical_moves=params.categorical_moves,
            categories=_seen_categories(inp, params, "perturbation"),
            max_flip_rate=params.max_flip_rate,
            trials=params.trials,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _evasion(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._robustness import evasion_attack

        features, train = inp.candidate["features"], inp.train
        categories = _seen_categories(inp, params, "evasion")
        numeric = [c for c in features if c not in inp.validated_categorical]
        return evasion_attack(
            inp.model,
            inp.test[features],
            budgets=params.budgets,
            train_ranges=_ranges(train, numeric),
            categorical_moves=params.categorical_moves,
            categories=categories,
            max_success_rate=params.max_success_rate,
            sample_size=params.sample_size,
            max_iter=params.max_iter,
            max_eval=params.max_eval,
            init_size=params.init_size,
            seed=inp.spec.split.seed,
        )

    return run


def _ranges(train: Any, numeric: list[str]) -> dict[str, tuple[Any, Any]]:
    """Each numeric feature's training range as floats; ``<NA>`` for a feature without
    values (the controls then say so instead of raising)."""
    import pandas as pd

    out = {}
    for c in numeric:
        lo, hi = train[c].min(), train[c].max()
        out[c] = (pd.NA, pd.NA) if pd.isna(lo) or pd.isna(hi) else (float(lo), float(hi))
    return out


def _stress(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._robustness import stress_scenarios

        features = inp.candidate["features"]
        categorical = [c for c in features if c in inp.validated_categorical]
        numeric = [c for c in features if c not in categorical]
        train = inp.train
        ranges = _ranges(train, numeric)
        return stress_scenarios(
            inp.model,
            inp.test[features],
            numeric=numeric,
            categorical=categorical,
            train_ranges=ranges,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _membership(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._privacy import membership_inference_advantage

        features, target = inp.candidate["features"], inp.candidate["target"]
        return membership_inference_advantage(
            inp.model,
            inp.train[features],
            inp.train[target],
            inp.test[features],
            inp.test[target],
            max_advantage=params.max_advantage,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _explainability(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._explain import protected_among_top_features

        protected = list(inp.spec.protected_attributes)
        if not protected:
            raise SpecError(f"{inp.pipeline.spec.path}: explainability needs protected_attributes")
        features, target = inp.candidate["features"], inp.candidate["target"]
        return protected_among_top_features(
            inp.model,
            inp.test[features],
            inp.test[target],
            inp.test[protected],
            top_k=params.top_k,
            categorical=inp.validated_categorical,
            proxy_threshold=params.proxy_threshold,
            n_repeats=params.n_repeats,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _label_noise(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._poisoning import label_consistency
        from risk_assets.estimator import build_pipeline

        spec, validated = inp.spec, inp.validated
        categorical = validated["categorical"]
        features = validated["features"]

        def make_model():
            return build_pipeline(
                class_path=spec.estimator.class_path,
                params=spec.estimator.params,
                numeric=[c for c in features if c not in categorical],
                categorical=categorical,
            )

        return label_consistency(
            inp.reference,
            inp.frame,
            features=features,
            target=validated["target"],
            make_model=make_model,
            confidence=params.confidence,
            max_increase=params.max_increase,
            max_conflicting_duplicates=params.max_conflicting_duplicates,
            sample_size=params.sample_size,
            seed=spec.split.seed,
        )

    return run


def _outliers(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._poisoning import outliers_against_reference

        categorical = inp.validated["categorical"]
        return outliers_against_reference(
            inp.reference,
            inp.frame,
            numeric=[c for c in inp.validated["features"] if c not in categorical],
            categorical=categorical,
            detector=params.detector,
            quantile=params.quantile,
            max_increase=params.max_increase,
            sample_size=params.sample_size,
            seed=inp.spec.split.seed,
        )

    return run


def _skew(params: Any) -> Callable[[GateInputs], ControlResult]:
    def run(inp: GateInputs) -> ControlResult:
        from risk_assets.controls._skew import training_serving_skew
        from risk_assets.data import frame_sha256, read_source

        loaded = inp.pipeline.spec
        if loaded.serving_path is None:
            raise SpecError(f"{loaded.path}: the skew control needs serving_source")
        serving = read_source(loaded.serving_path, loaded.spec.serving_source.format)
        inp.extra["risk/serving_sha256"] = frame_sha256(serving)
        categorical = inp.validated["categorical"]
        numeric = [c for c in inp.validated["features"] if c not in categorical]
        return training_serving_skew(
            inp.frame,
            serving,
            numeric=numeric,
            categorical=categorical,
            max_out_of_range_share=params.max_out_of_range_share,
            max_unseen_share=params.max_unseen_share,
            min_expected=params.min_expected,
        )

    return run


_SINGLE = {
    "skew": _skew,
    "label_noise": _label_noise,
    "outliers": _outliers,
    "explainability": _explainability,
    "membership_inference": _membership,
    "perturbation": _perturbation,
    "evasion": _evasion,
    "stress": _stress,
    "drift": _drift,
    "slices": _slices,
    "expectations": _expectations,
    "pii": _pii,
    "metric_thresholds": _metric_thresholds,
    "champion_challenger": _champion_challenger,
}


def gates_for(
    pipeline: Any,
    *,
    assets: tuple[str, ...] | None = None,
    runners: dict[str, Callable[[Any], Callable[[Any], ControlResult]]] | None = None,
) -> list[Gate]:
    """Every check of a loaded pipeline on ``assets`` (default: all), in register order
    (see :func:`checks_of`); ``runners`` builds the gate of each control name (default:
    the training gates of this module).

    Raises:
        SpecError: a control needs something the spec does not name (e.g. fairness without
            protected attributes).
    """
    spec = pipeline.spec.spec
    try:
        checks = checks_of(pipeline.policy.policy, spec.protected_attributes, assets=assets)
    except ValueError as exc:
        raise SpecError(f"{pipeline.policy.path} with {pipeline.spec.path}: {exc}") from None
    gates = []
    for check in checks:
        params = check.risk.control.parsed_params()
        if check.attribute is not None:
            run = _fairness(params, check.attribute)
        else:
            run = (runners or _SINGLE)[check.risk.control.name](params)
        gates.append(Gate(check.name, check.risk, check.asset, run))
    return gates
