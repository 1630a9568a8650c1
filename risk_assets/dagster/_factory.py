"""The one place where specs and policies become Dagster assets, asset checks and jobs.

``build_pipeline_definitions`` validates a spec, its policy and its suite up front (a bad
file raises at load time, naming the file and key) and returns definitions without side
effects. Asset values are small JSON references (snapshot hashes, MLflow run ids); data
lives in the snapshot store and models in MLflow.
"""

import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.controls._result import ControlResult, markdown_table
from risk_assets.dagster._gates import Gate, GateInputs, gates_for
from risk_assets.dagster._monitoring import data_job_name, monitoring_definitions
from risk_assets.dagster._partitions import (
    partitions_def,
    quiet_previews,
    read_partition,
    window_mapping,
)
from risk_assets.dagster._resources import (
    JsonIOManager,
    MlflowResource,
    SnapshotStoreResource,
    WebhookAlertResource,
)
from risk_assets.errors import DataError, RiskAssetsError, SpecError
from risk_assets.policy import MONITORING_ASSETS, TRAINING_ASSETS, LoadedPolicy, Risk, load_policy
from risk_assets.settings import current_user
from risk_assets.spec import LoadedSpec, load_spec

__all__ = [
    "ASSET_NAMES",
    "PipelineDefinitions",
    "build_definitions",
    "build_pipeline_definitions",
    "definitions_from_folder",
    "job_name",
    "load_pipeline",
]

ASSET_NAMES = (
    "raw_snapshot",
    "validated_data",
    "train_test_split",
    "candidate_model",
    "registered_model",
)
_TAG = "risk_assets."


def job_name(pipeline: str) -> str:
    return f"{pipeline}_job"


@dataclass(frozen=True)
class LoadedPipeline:
    """A spec with its policy and suite, all validated."""

    spec: LoadedSpec
    policy: LoadedPolicy
    suite_sha256: str


def load_pipeline(spec_path: str | Path) -> LoadedPipeline:
    """Load and validate a spec, the policy it names and its expectation suite.

    Raises:
        SpecError, PolicyError, SuiteError: naming the file and the key at fault.
    """
    from risk_assets.controls._expectations import load_suite
    from risk_assets.registry._models import file_sha256

    spec = load_spec(spec_path)
    policy = load_policy(spec.policy_path)
    load_suite(spec.suite_path)
    if not any(
        r.control is not None and r.control.name == "expectations" for r in policy.policy.risks
    ):
        raise SpecError(
            f"{policy.path}: no risk uses the 'expectations' control, so the suite named by "
            f"{spec.path} would never run"
        )
    monitoring = [
        r.id for r in policy.policy.controlled_risks() if r.control.asset in MONITORING_ASSETS
    ]
    if monitoring and not spec.partitioned:
        raise SpecError(
            f"{policy.path}: risks {monitoring} use monitoring controls, which score batches; "
            f"they need a partitioned source (source.folder in {spec.path})"
        )
    return LoadedPipeline(spec=spec, policy=policy, suite_sha256=file_sha256(spec.suite_path))


@dataclass(frozen=True)
class PipelineDefinitions:
    pipeline: LoadedPipeline
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    job: Any  # the training job (an unresolved asset job)
    jobs: list[Any] = field(default_factory=list)  # every job, the training job first
    sensors: list[Any] = field(default_factory=list)
    schedules: list[Any] = field(default_factory=list)


def _code_version(folder: Path) -> str:
    """The git commit of the folder holding the spec (``+dirty`` with local changes)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"risk-assets {version('risk-assets')} (no git)"


def _check_metadata(
    risk: Risk, result: ControlResult, *, extra: dict[str, Any] | None = None
) -> dict:
    md: dict[str, Any] = {
        "risk/id": risk.id,
        "risk/title": risk.title,
        "risk/category": risk.category,
        "risk/blocking": risk.blocking,
        "risk/passed": result.passed,
        "risk/summary": result.summary,
        "risk/value": dg.MetadataValue.float(result.value) if result.value is not None else "n/a",
        "risk/threshold": (
            dg.MetadataValue.float(result.threshold) if result.threshold is not None else "n/a"
        ),
    }
    for name, val in result.figures.items():
        md[f"risk/figures/{name}"] = dg.MetadataValue.float(float(val))
    if result.sample_size is not None:
        md["risk/sample_size"] = dg.MetadataValue.int(int(result.sample_size))
    if result.table:
        md["risk/evidence"] = dg.MetadataValue.md(markdown_table(result.table))
    md.update(extra or {})
    return md


def _run_control(fn: Callable[[], ControlResult], log: Any, check: str) -> ControlResult:
    """Run a control; an exception is a failed gate (fail closed).

    The evidence names our own errors in full (they name files, keys and columns, never
    values); for any other exception only its type, because library messages may quote
    data values. The full message goes to the run log.
    """
    try:
        return fn()
    except Exception as exc:
        log.error(f"{check}: the control raised {type(exc).__name__}: {exc}")
        if isinstance(exc, RiskAssetsError):
            return ControlResult.undecided(f"{type(exc).__name__}: {exc}")
        return ControlResult.undecided(f"{type(exc).__name__} raised (see the run log)")


def build_pipeline_definitions(pipeline: LoadedPipeline) -> PipelineDefinitions:
    """Assets, gate checks and the job for one pipeline; no side effects."""
    loaded, lpolicy = pipeline.spec, pipeline.policy
    spec, policy = loaded.spec, lpolicy.policy
    name = spec.name
    prefix = [name]

    def key(asset: str) -> dg.AssetKey:
        return dg.AssetKey([*prefix, asset])

    def ins(*names: str) -> dict[str, dg.AssetIn]:
        return {n: dg.AssetIn(key=key(n)) for n in names}

    pdef = partitions_def(loaded) if loaded.partitioned else None
    common = {"key_prefix": prefix, "group_name": name, "partitions_def": pdef}
    where = (
        f"{spec.source.folder}/{spec.source.pattern}" if loaded.partitioned else spec.source.path
    )
    owners = [f"team:{spec.owner}"] if spec.owner and " " not in spec.owner else None

    @dg.asset(
        name="raw_snapshot",
        **common,
        owners=owners,
        description=f"Content-addressed snapshot of {where} (SHA-256 as data version).",
    )
    def raw_snapshot(context: dg.AssetExecutionContext, snapshots: SnapshotStoreResource):
        from risk_assets.data import read_source

        counts: dict[str, Any] = {}
        if pdef is not None:
            df, counts, source = read_partition(loaded, context.partition_key)
        else:
            df, source = (
                read_source(loaded.source_path, spec.source.format),
                str(loaded.source_path),
            )
        ref = snapshots.get_store().put(df)
        value = {**ref.to_dict(), "source": source}
        if pdef is not None:
            value["partition"] = context.partition_key
        return dg.Output(
            value,
            data_version=dg.DataVersion(ref.sha256),
            metadata={
                "risk/snapshot_sha256": ref.sha256,
                "risk/hash_scheme": ref.scheme,
                "dagster/row_count": dg.MetadataValue.int(ref.rows),
                "columns": dg.MetadataValue.int(len(ref.columns)),
                "source": source,
                **{f"rows/{k}": dg.MetadataValue.int(v) for k, v in counts.items()},
            },
        )

    @dg.asset(
        name="validated_data",
        ins=ins("raw_snapshot"),
        **common,
        owners=owners,
        description="Target and feature columns of the snapshot; gated by the expectation suite.",
    )
    def validated_data(
        context: dg.AssetExecutionContext, raw_snapshot: dict, snapshots: SnapshotStoreResource
    ):
        from risk_assets.data import select_columns
        from risk_assets.estimator import categorical_columns

        store = snapshots.get_store()
        raw = store.get(raw_snapshot["sha256"])
        if spec.source.id_column in raw.columns:
            raw = raw.drop(columns=[spec.source.id_column])  # a key, never a feature
        lacking = [c for c in (spec.features or []) if c not in raw.columns]
        if lacking:
            # a feature the source no longer has is a finding of the expectation suite (every
            # register has one: a gate on this asset, with evidence), not a crash; training
            # refuses such a snapshot whatever the gates say
            context.log.warning(
                f"{raw_snapshot['source']}: feature column(s) {lacking} not found; the "
                "expectation suite decides, and no model is trained on this snapshot"
            )
        present = None if spec.features is None else [c for c in spec.features if c not in lacking]
        df, features = select_columns(
            raw,
            target=spec.target,
            features=present or spec.features,
            source=raw_snapshot["source"],
        )
        # a label the spec names must occur in the target: refused before any gate runs
        labels = spec.labels(df[spec.target], where=loaded.path)
        if pipeline.policy.policy.needs_favourable_label:
            labels.require_favourable(target=spec.target, where=str(loaded.path))
        # protected attributes travel with the data (for fairness checks) even when they
        # are not features of the model
        extra = [c for c in spec.protected_attributes if c not in df.columns]
        missing = [c for c in extra if c not in raw.columns]
        if missing:
            raise DataError(f"{raw_snapshot['source']}: protected attribute(s) {missing} not found")
        if extra:
            df = raw[[*df.columns, *extra]]
        # the same columns in the same order are the same frame: no second hash
        same = list(df.columns) == list(raw.columns) and spec.source.id_column is None
        ref = store.put(df, sha256=raw_snapshot["sha256"] if same else None)
        categorical = categorical_columns(df, features, spec.categorical_features)
        return dg.Output(
            {
                **ref.to_dict(),
                "raw_sha256": raw_snapshot["sha256"],
                "source": raw_snapshot["source"],
                "target": spec.target,
                "features": features,
                "categorical": categorical,
                **({"missing_features": lacking} if lacking else {}),
                **({"partition": context.partition_key} if pdef is not None else {}),
            },
            data_version=dg.DataVersion(ref.sha256),
            metadata={
                "risk/snapshot_sha256": ref.sha256,
                "dagster/row_count": dg.MetadataValue.int(ref.rows),
                "features": dg.MetadataValue.int(len(features)),
                "categorical_features": ", ".join(categorical) or "none",
            },
        )

    split_ins = ins("validated_data")
    if pdef is not None:
        split_ins = {
            "validated_data": dg.AssetIn(
                key=key("validated_data"), partition_mapping=window_mapping(spec.training_window)
            )
        }

    @dg.asset(
        name="train_test_split",
        ins=split_ins,
        **common,
        owners=owners,
        description=(
            "Seeded train/test split of the validated data, each part content-addressed"
            + (
                f"; trains on the last {spec.training_window} partitions."
                if pdef is not None
                else "."
            )
        ),
    )
    def train_test_split(
        context: dg.AssetExecutionContext, validated_data: dict, snapshots: SnapshotStoreResource
    ):
        from risk_assets.data import split_frame

        store = snapshots.get_store()
        window = None
        if pdef is not None:
            validated_data, window = _combine_window(store, pipeline, validated_data)
        df = store.get(validated_data["sha256"])
        split = split_frame(
            df,
            target=spec.target,
            test_size=spec.split.test_size,
            seed=spec.split.seed,
            stratify=spec.split.stratify,
        )
        train, test = store.put(split.train), store.put(split.test)
        value = {
            "train": train.to_dict(),
            "test": test.to_dict(),
            "seed": split.seed,
            "test_size": split.test_size,
            "stratified": split.stratified,
            "validated_sha256": validated_data["sha256"],
        }
        window_md = {}
        if window is not None:
            value["data"], value["window"] = validated_data, window
            window_md = {
                "risk/window": f"{window[0]['partition']}..{window[-1]['partition']}",
                "risk/window_partitions": dg.MetadataValue.int(len(window)),
                "risk/window_sha256": validated_data["sha256"],
            }
        return dg.Output(
            value,
            metadata={
                **window_md,
                "risk/train_sha256": train.sha256,
                "risk/test_sha256": test.sha256,
                "seed": split.seed,
                "test_size": split.test_size,
                "stratified": split.stratified,
                "train_rows": dg.MetadataValue.int(train.rows),
                "test_rows": dg.MetadataValue.int(test.rows),
            },
        )

    candidate_description = (
        f"{spec.estimator.class_path} fitted on the training split, logged to MLflow."
    )
    if pdef is None:

        @dg.asset(
            name="candidate_model",
            ins=ins("validated_data", "train_test_split"),
            **common,
            owners=owners,
            description=candidate_description,
        )
        def candidate_model(
            context: dg.AssetExecutionContext,
            validated_data: dict,
            train_test_split: dict,
            mlflow: MlflowResource,
            snapshots: SnapshotStoreResource,
        ):
            return _fit_and_log(
                context, pipeline, validated_data, train_test_split, mlflow, snapshots
            )

    else:

        @dg.asset(
            name="candidate_model",
            ins=ins("train_test_split"),
            **common,
            owners=owners,
            description=candidate_description,
        )
        def candidate_model(
            context: dg.AssetExecutionContext,
            train_test_split: dict,
            mlflow: MlflowResource,
            snapshots: SnapshotStoreResource,
        ):
            return _fit_and_log(
                context, pipeline, train_test_split["data"], train_test_split, mlflow, snapshots
            )

    @dg.asset(
        name="registered_model",
        ins=ins("candidate_model"),
        **common,
        owners=owners,
        description="The candidate in the MLflow registry; only after every blocking gate passed.",
    )
    def registered_model(
        context: dg.AssetExecutionContext, candidate_model: dict, mlflow: MlflowResource
    ):
        from risk_assets.errors import GateEvidenceError, IntegrityError
        from risk_assets.registry._mlflow import register_candidate

        try:
            reg = register_candidate(
                mlflow.get_client(),
                candidate_model["run_id"],
                model_name=spec.model_name,
                policy=policy,
                policy_sha256=lpolicy.sha256,
                suite_sha256=pipeline.suite_sha256,
                protected_attributes=spec.protected_attributes,
            )
        except (GateEvidenceError, IntegrityError) as exc:
            # a retry sees the same evidence: it must never turn a refusal into a pass
            raise dg.Failure(
                f"{type(exc).__name__}: {exc}",
                allow_retries=False,
                metadata={"risk/refused": type(exc).__name__},
            ) from exc
        context.log.info(
            f"registered {reg.candidates_model}/{reg.candidate_version} ({', '.join(reg.aliases)})"
        )
        return dg.Output(
            reg.to_dict(),
            data_version=dg.DataVersion(reg.model_sha256),
            metadata={
                "risk/model_sha256": reg.model_sha256,
                "candidate_version": f"{reg.candidates_model}/{reg.candidate_version}",
                "production_version": f"{reg.model}/{reg.version}"
                if reg.version
                else "awaiting promotion",
                "aliases": ", ".join(reg.aliases),
                "mlflow_run_id": reg.run_id,
            },
        )

    with quiet_previews():
        checks = [
            _build_check(pipeline, gate, key(gate.asset), pdef)
            for gate in gates_for(pipeline, assets=TRAINING_ASSETS)
        ]
    assets = [raw_snapshot, validated_data, train_test_split, candidate_model, registered_model]
    job = dg.define_asset_job(
        job_name(name),
        selection=dg.AssetSelection.assets(*[a.key for a in assets]),
        description=f"The gated pipeline {name}: data, gates, candidate, registration.",
        tags={"risk_assets/pipeline": name},
    )
    extra = None
    if pdef is not None:
        data_job = dg.define_asset_job(
            data_job_name(name),
            selection=dg.AssetSelection.assets(raw_snapshot.key, validated_data.key),
            description=f"Snapshots and gates one partition's data of {name}.",
            tags={"risk_assets/pipeline": name},
        )
        extra = monitoring_definitions(pipeline, pdef, job, data_job)
        extra.jobs.insert(0, data_job)
    return PipelineDefinitions(
        pipeline=pipeline,
        assets=assets + (extra.assets if extra else []),
        checks=checks + (extra.checks if extra else []),
        job=job,
        jobs=[job, *(extra.jobs if extra else [])],
        sensors=extra.sensors if extra else [],
        schedules=_schedules(pipeline, job, pdef),
    )


def _fit_and_log(
    context,
    pipeline: LoadedPipeline,
    validated: dict,
    split: dict,
    mlflow: MlflowResource,
    snapshots: SnapshotStoreResource,
) -> dg.Output:
    import tempfile

    from mlflow.entities import Metric, Param, RunTag

    from risk_assets.controls._performance import evaluate_classifier
    from risk_assets.estimator import build_pipeline
    from risk_assets.registry._mlflow import (
        GateRecord,
        iter_param_items,
        log_gate,
        log_gate_plot,
        log_window,
        snapshot_dataset_input,
    )
    from risk_assets.registry._models import save_model_dir
    from risk_assets.registry._snapshots import SnapshotRef

    loaded, lpolicy = pipeline.spec, pipeline.policy
    spec = loaded.spec
    if split["validated_sha256"] != validated["sha256"]:
        raise dg.Failure(
            f"the stored train_test_split was made from snapshot {split['validated_sha256']}, "
            f"not from the validated data {validated['sha256']}; materialise train_test_split",
            allow_retries=False,
        )
    if validated.get("missing_features"):
        raise DataError(
            f"{validated['source']}: feature column(s) {validated['missing_features']} not "
            f"found; the spec {loaded.path} lists them as features"
        )
    store = snapshots.get_store()
    train_ref, test_ref = (
        SnapshotRef.from_dict(split["train"]),
        SnapshotRef.from_dict(split["test"]),
    )
    train, test = store.get(train_ref), store.get(test_ref)
    features, categorical = validated["features"], validated["categorical"]
    numeric = [c for c in features if c not in categorical]
    model = build_pipeline(
        class_path=spec.estimator.class_path,
        params=spec.estimator.params,
        numeric=numeric,
        categorical=categorical,
    )
    started = time.perf_counter()
    model.fit(train[features], train[spec.target])
    fit_seconds = time.perf_counter() - started
    labels = spec.labels(model.classes_, where=loaded.path)
    metrics = evaluate_classifier(
        model, test[features], test[spec.target], positive_label=labels.positive
    )

    client = mlflow.get_client()
    experiment_id = mlflow.ensure_experiment(spec.name)
    partition = context.partition_key if context.has_partition_key else None
    window = split.get("window")
    if window is None:
        data_records = [
            rec
            for check in _data_checks(pipeline)
            if (rec := _current_evidence(store, pipeline, validated["sha256"], check)) is not None
        ]
        window_doc = None
    else:
        data_records, window_doc = _window_evidence(
            store, pipeline, window, validated["sha256"], context.run.run_id
        )
    tags = {
        "dagster.run_id": context.run.run_id,
        "dagster.partition": partition or "none",
        **({_TAG + "partition": partition} if partition else {}),
        **(
            {
                _TAG + "window": f"{window[0]['partition']}..{window[-1]['partition']} "
                f"({len(window)} partitions)"
            }
            if window
            else {}
        ),
        "dagster.job": context.job_name,
        _TAG + "pipeline": spec.name,
        _TAG + "source": validated["source"],
        _TAG + "raw_snapshot_sha256": validated["raw_sha256"],
        _TAG + "snapshot_sha256": validated["sha256"],
        _TAG + "train_sha256": train_ref.sha256,
        _TAG + "test_sha256": test_ref.sha256,
        _TAG + "suite_sha256": pipeline.suite_sha256,
        _TAG + "suite_path": str(loaded.suite_path),
        _TAG + "policy_sha256": lpolicy.sha256,
        _TAG + "policy_name": lpolicy.policy.name,
        _TAG + "policy_tier": lpolicy.policy.tier,
        _TAG + "spec_sha256": loaded.sha256,
        _TAG + "protected_attributes": ",".join(spec.protected_attributes),
        _TAG + "positive_label": f"{labels.positive!r} ({labels.positive_reason})",
        _TAG + "favourable_label": f"{labels.favourable!r} ({labels.favourable_reason})",
        _TAG + "spec_path": str(loaded.path),
        _TAG + "code_version": _code_version(loaded.path.parent),
        "mlflow.source.name": str(loaded.path),
        "mlflow.user": current_user(),
    }
    run = client.create_run(
        experiment_id, run_name=f"{spec.name}-{context.run.run_id[:8]}", tags=tags
    )
    run_id = run.info.run_id
    status = "FAILED"
    try:
        now = int(time.time() * 1000)
        params = [Param("estimator.class", spec.estimator.class_path)]
        params += [Param(k, v) for k, v in iter_param_items("estimator.", spec.estimator.params)]
        params += [
            Param(k, str(v))
            for k, v in {
                "split.seed": split["seed"],
                "split.test_size": split["test_size"],
                "split.stratified": split["stratified"],
                "target": spec.target,
                "n_train": train_ref.rows,
                "n_test": test_ref.rows,
                "features": ",".join(features)[:6000],
                "categorical": ",".join(categorical)[:6000],
            }.items()
        ]
        client.log_batch(
            run_id,
            params=params,
            metrics=[
                *(Metric(f"test.{k}", v, now, 0) for k, v in metrics.items()),
                Metric("fit_seconds", fit_seconds, now, 0),
            ],
            tags=[RunTag(_TAG + "model_class", spec.estimator.class_path)],
        )
        client.log_inputs(
            run_id,
            datasets=[
                snapshot_dataset_input(
                    SnapshotRef.from_dict(
                        {k: validated[k] for k in ("sha256", "path", "rows", "columns", "scheme")}
                    ),
                    name=f"{spec.name}-validated",
                    context="source",
                    origin=validated["source"],
                ),
                snapshot_dataset_input(
                    train_ref,
                    name=f"{spec.name}-train",
                    context="training",
                    origin=validated["source"],
                ),
                snapshot_dataset_input(
                    test_ref,
                    name=f"{spec.name}-test",
                    context="testing",
                    origin=validated["source"],
                ),
            ],
        )
        with tempfile.TemporaryDirectory() as tmp:
            model_sha = save_model_dir(
                model, Path(tmp) / "model", X_sample=train[features].head(50)
            )
            client.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
        client.set_tag(run_id, _TAG + "model_sha256", model_sha)
        if window_doc is not None:
            client.set_tag(run_id, _TAG + "window_sha256", log_window(client, run_id, window_doc))
        for record in data_records:
            log_gate(client, run_id, GateRecord.from_dict(record))
            plot_subject = validated["sha256"] if window is None else window[-1]["sha256"]
            png = store.get_evidence_plot(plot_subject, record["check"])
            if png is not None:
                try:
                    log_gate_plot(client, run_id, record["check"], png)
                except Exception as exc:  # an illustration: never fails the training run
                    context.log.warning(
                        f"{record['check']}: plot not logged ({type(exc).__name__})"
                    )
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    url = mlflow.run_url(experiment_id, run_id)
    md = {
        "risk/model_sha256": model_sha,
        "mlflow_run_id": run_id,
        "estimator": spec.estimator.class_path,
        "fit_seconds": dg.MetadataValue.float(fit_seconds),
        **{f"test/{k}": dg.MetadataValue.float(v) for k, v in metrics.items()},
    }
    if url:
        md["mlflow_run"] = dg.MetadataValue.url(url)
    return dg.Output(
        {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_sha256": model_sha,
            "metrics": metrics,
            "test": test_ref.to_dict(),
            "train": train_ref.to_dict(),
            "categorical": categorical,
            "features": features,
            "target": spec.target,
        },
        data_version=dg.DataVersion(model_sha),
        metadata=md,
    )


def _data_checks(pipeline: LoadedPipeline) -> list[str]:
    from risk_assets.policy import checks_of

    spec = pipeline.spec.spec
    return [
        c.name
        for c in checks_of(
            pipeline.policy.policy, spec.protected_attributes, assets=("validated_data",)
        )
    ]


def _current_evidence(
    store: Any, pipeline: LoadedPipeline, subject: str, check: str
) -> dict[str, Any] | None:
    """A data gate's record for a snapshot, if it was made under the policy and suite in
    force; a stale record counts as none, so registration finds no evidence."""
    rec = store.get_evidence(subject, check)
    if rec is None or rec.get("policy_sha256") != pipeline.policy.sha256:
        return None
    if rec.get("suite_sha256") not in (None, pipeline.suite_sha256):
        return None
    return rec


def _window_evidence(
    store: Any, pipeline: LoadedPipeline, window: list[dict], combined_sha: str, run_id: str
) -> tuple[list[dict], dict]:
    """Per data gate, a summary record over the window's partitions (about the combined
    snapshot), and the window record with every partition's own evidence."""
    from risk_assets.registry._mlflow import GateRecord

    policy = pipeline.policy
    parts = [{**w, "gates": {}} for w in window]
    summaries = []
    for check in _data_checks(pipeline):
        missing, failed = [], []
        for part in parts:
            rec = _current_evidence(store, pipeline, part["sha256"], check)
            if rec is None:
                missing.append(part["partition"])
                continue
            part["gates"][check] = rec
            if not rec.get("passed"):
                failed.append(part["partition"])
        n = len(parts)
        ok = n - len(missing) - len(failed)
        summary = f"{ok} of {n} partitions of the window passed"
        if failed:
            summary += f"; failed in {', '.join(failed)}"
        if missing:
            summary += f"; no current evidence for {', '.join(missing)}"
        first = parts[0]["gates"].get(check) or {}
        summaries.append(
            GateRecord(
                check=check,
                risk_id=first.get("risk_id") or _risk_id(pipeline, check),
                asset="validated_data",
                blocking=bool(first.get("blocking", True)),
                passed=not missing and not failed,
                value=float(len(missing) + len(failed)),
                threshold=0.0,
                summary=summary,
                subject_sha256=combined_sha,
                policy_sha256=policy.sha256,
                suite_sha256=pipeline.suite_sha256
                if all(p["gates"].get(check, {}).get("suite_sha256") for p in parts)
                else None,
                dagster_run_id=run_id,
                figures={"partitions": float(n), "passed_partitions": float(ok)},
            ).to_dict()
        )
    return summaries, {"combined_sha256": combined_sha, "partitions": parts}


def _risk_id(pipeline: LoadedPipeline, check: str) -> str:
    from risk_assets.policy import checks_of

    spec = pipeline.spec.spec
    for c in checks_of(pipeline.policy.policy, spec.protected_attributes):
        if c.name == check:
            return c.risk.id
    return "unknown"


def _combine_window(
    store: Any, pipeline: LoadedPipeline, loaded_input: dict
) -> tuple[dict, list[dict]]:
    """The validated partitions of a training window as one content-addressed snapshot.

    Returns:
        A validated-data value for the combined frame, and the window: each partition's
        key, snapshot, raw snapshot, source and rows, in partition order.
    """
    import hashlib

    import pandas as pd

    from risk_assets.estimator import categorical_columns

    spec = pipeline.spec.spec
    values = loaded_input if "sha256" not in loaded_input else {"": loaded_input}
    parts = [values[k] for k in sorted(values)]
    if not parts:
        raise dg.Failure("the training window holds no partition", allow_retries=False)
    columns = parts[0]["columns"]
    for part in parts[1:]:
        if part["columns"] != columns:
            raise DataError(
                f"{part['source']}: columns differ from those of partition "
                f"{parts[0]['partition']} ({parts[0]['source']}); a window needs one schema"
            )
    frames = [store.get(part["sha256"]) for part in parts]
    combined = pd.concat(frames, ignore_index=True)
    ref = store.put(combined)
    features = parts[0]["features"]
    window = [
        {
            "partition": part["partition"],
            "sha256": part["sha256"],
            "raw_sha256": part["raw_sha256"],
            "source": part["source"],
            "rows": part["rows"],
        }
        for part in parts
    ]
    raw_ids = ",".join(w["raw_sha256"] for w in window)
    value = {
        **ref.to_dict(),
        # the window's raw data is named by the hash of its partitions' raw snapshot hashes
        "raw_sha256": hashlib.sha256(raw_ids.encode()).hexdigest(),
        "source": f"{pipeline.spec.source_path} {window[0]['partition']}"
        f"..{window[-1]['partition']}",
        "target": spec.target,
        "features": features,
        "categorical": categorical_columns(combined, features, spec.categorical_features),
    }
    return value, window


def _schedules(pipeline: LoadedPipeline, job: Any, pdef: Any) -> list[Any]:
    """The spec's cron schedule of retraining (stopped until someone turns it on): a
    partitioned pipeline retrains on the window ending at the last complete partition."""
    spec = pipeline.spec.spec
    if spec.schedule is None:
        return []
    name = f"{spec.name}_retraining_schedule"
    description = f"Retrains {spec.name} on schedule {spec.schedule!r} (from {pipeline.spec.path})"
    if pdef is None:
        return [
            dg.ScheduleDefinition(
                name=name,
                job=job,
                cron_schedule=spec.schedule,
                description=description,
                default_status=dg.DefaultScheduleStatus.STOPPED,
            )
        ]

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=spec.schedule,
        description=description,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def retraining_schedule(context: dg.ScheduleEvaluationContext):
        keys = pdef.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason("no complete partition yet")
        key = keys[-1]
        return dg.RunRequest(
            run_key=f"schedule:{key}", partition_key=key, tags={"risk_assets/trigger": "schedule"}
        )

    return [retraining_schedule]


def _plot(control: str, check: str, result: ControlResult, log: Any) -> bytes | None:
    """The gate's plot, if its control draws one. A plot that cannot be drawn is logged and
    left out: it is an illustration of the evidence, not part of the verdict."""
    from risk_assets.controls._plots import PLOTTED_CONTROLS, plot_png

    if control not in PLOTTED_CONTROLS:
        return None
    try:
        return plot_png(control, check, result)
    except Exception as exc:  # noqa: BLE001 - reported, never decides the gate
        log.warning(f"{check}: no plot ({type(exc).__name__}: {exc})")
        return None


def evaluate_gate(
    context: Any,
    gate: Gate,
    inputs: Any,
    *,
    subject: str,
    policy_sha256: str,
    reference: str | None = None,
) -> tuple[ControlResult, Any]:
    """Run a gate's control (fail closed), time it, and make its evidence record.

    ``reference`` names what the gate compared against; by default what the control put in
    the inputs' metadata while it ran (the champion version, or the reference window).
    """
    from risk_assets.registry._mlflow import GateRecord

    started = time.perf_counter()
    result = _run_control(lambda: gate.run(inputs), context.log, gate.check)
    inputs.extra["risk/seconds"] = dg.MetadataValue.float(round(time.perf_counter() - started, 3))
    record = GateRecord(
        check=gate.check,
        risk_id=gate.risk.id,
        asset=gate.asset,
        blocking=gate.blocking,
        passed=result.passed,
        value=result.value,
        threshold=result.threshold,
        summary=result.summary,
        subject_sha256=subject,
        policy_sha256=policy_sha256,
        suite_sha256=inputs.suite_sha256,
        dagster_run_id=context.run.run_id,
        figures=dict(result.figures),
        sample_size=result.sample_size,
        reference=reference
        or inputs.extra.get("champion_version")
        or inputs.extra.get("risk/reference"),
    )
    return result, record


def _build_check(
    pipeline: LoadedPipeline,
    gate: Gate,
    asset_key: dg.AssetKey,
    pdef: dg.PartitionsDefinition | None = None,
):
    """One asset check for one gate: runs the control, records evidence, reports metadata."""
    risk, lpolicy = gate.risk, pipeline.policy
    description = (
        f"[{risk.id}] {risk.title}: {risk.control.name} "
        f"({'blocking' if gate.blocking else 'warning'})"
    )

    def evaluate(context, inputs: GateInputs, subject: str) -> tuple[ControlResult, Any, Any]:
        result, record = evaluate_gate(
            context,
            gate,
            inputs,
            subject=subject,
            policy_sha256=lpolicy.sha256,
        )
        return result, record, _plot(risk.control.name, gate.check, result, context.log)

    def finish(result: ControlResult, extra: dict[str, Any]) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=bool(result.passed),
            severity=dg.AssetCheckSeverity.ERROR if gate.blocking else dg.AssetCheckSeverity.WARN,
            metadata=_check_metadata(risk, result, extra=extra),
        )

    if gate.asset == "validated_data":

        @dg.asset_check(
            asset=asset_key,
            name=gate.check,
            blocking=gate.blocking,
            description=description,
            partitions_def=pdef,
        )
        def data_check(
            context: dg.AssetCheckExecutionContext,
            validated_data: dict,
            snapshots: SnapshotStoreResource,
            mlflow: MlflowResource,
        ) -> dg.AssetCheckResult:
            store = snapshots.get_store()
            inputs = GateInputs(
                pipeline=pipeline, store=store, validated=validated_data, mlflow=mlflow
            )
            result, record, plot = evaluate(context, inputs, validated_data["sha256"])
            store.put_evidence(validated_data["sha256"], gate.check, record.to_dict())
            extra = {**inputs.extra, "risk/snapshot_sha256": validated_data["sha256"]}
            if plot is not None:
                path = store.put_evidence_plot(validated_data["sha256"], gate.check, plot)
                extra["risk/plot"] = dg.MetadataValue.path(str(path))
            else:
                store.drop_evidence_plot(validated_data["sha256"], gate.check)
            return finish(result, extra)

        return data_check

    @dg.asset_check(
        asset=asset_key,
        name=gate.check,
        blocking=gate.blocking,
        description=description,
        partitions_def=pdef,
    )
    def model_check(
        context: dg.AssetCheckExecutionContext,
        candidate_model: dict,
        mlflow: MlflowResource,
        snapshots: SnapshotStoreResource,
    ) -> dg.AssetCheckResult:
        from risk_assets.registry._mlflow import log_gate, log_gate_plot

        inputs = GateInputs(
            pipeline=pipeline,
            store=snapshots.get_store(),
            candidate=candidate_model,
            mlflow=mlflow,
        )
        result, record, plot = evaluate(context, inputs, candidate_model["model_sha256"])
        log_gate(inputs.client, candidate_model["run_id"], record)
        extra = {**inputs.extra, "mlflow_run_id": candidate_model["run_id"]}
        if plot is not None:
            try:
                extra["risk/plot"] = "mlflow artefact " + log_gate_plot(
                    inputs.client, candidate_model["run_id"], gate.check, plot
                )
            except Exception as exc:  # an illustration: never decides the gate
                context.log.warning(f"{gate.check}: plot not logged ({type(exc).__name__})")
        return finish(result, extra)

    return model_check


def default_resources() -> dict[str, Any]:
    """Resources on embedded defaults, moved by the environment (see risk_assets.settings)."""
    return {
        "mlflow": MlflowResource(),
        "snapshots": SnapshotStoreResource(),
        "alerts": WebhookAlertResource(),
        "io_manager": JsonIOManager(),
    }


def build_definitions(
    specs: Iterable[str | Path | LoadedPipeline], *, resources: dict[str, Any] | None = None
) -> dg.Definitions:
    """Definitions for every spec: one asset group, its gates and its job per pipeline.

    Args:
        specs: spec paths, or pipelines already loaded with :func:`load_pipeline`.
        resources: resources that replace the embedded defaults, by key.

    Raises:
        SpecError, PolicyError, SuiteError: at load time, naming the file and the key.
    """
    defs: list[PipelineDefinitions] = []
    seen: dict[str, Path] = {}
    for item in specs:
        pipeline = item if isinstance(item, LoadedPipeline) else load_pipeline(item)
        pname = pipeline.spec.name
        if pname in seen:
            raise SpecError(
                f"{pipeline.spec.path}: name {pname!r} is already used by {seen[pname]}"
            )
        seen[pname] = pipeline.spec.path
        defs.append(build_pipeline_definitions(pipeline))
    return dg.Definitions(
        assets=[a for d in defs for a in d.assets],
        asset_checks=[c for d in defs for c in d.checks],
        jobs=[j for d in defs for j in (d.jobs or [d.job])],
        sensors=[x for d in defs for x in d.sensors],
        schedules=[x for d in defs for x in d.schedules],
        resources={**default_resources(), **(resources or {})},
        # Steps run one after another in the run's process: the embedded SQLite
        # instance must not be written by several processes at once (dagster#2884).
        executor=dg.in_process_executor,
    )


def spec_files(folder: str | Path) -> Sequence[Path]:
    """Pipeline specs in a folder: each ``*.yaml`` or ``*.yml`` in it with a ``source`` key."""
    import yaml

    out = []
    for path in sorted(Path(folder).glob("*.y*ml")):
        try:
            head = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
        if isinstance(head, dict) and "source" in head:
            out.append(path)
    return out


def definitions_from_folder(folder: str | Path) -> dg.Definitions:
    """Definitions for every pipeline spec in ``folder`` (drop a spec in, it appears)."""
    return build_definitions(spec_files(folder))
