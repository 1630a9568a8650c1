"""The candidate: fitted on the training split, evaluated on the test split, and logged to
MLflow with its lineage (:class:`risk_assets.registry.RunLineage`), its data snapshots as
dataset inputs, the model (skops, hash recorded) and the data gates' evidence."""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.dagster._window import data_gate_records
from risk_assets.errors import DataError
from risk_assets.registry import RunLineage
from risk_assets.settings import current_user

__all__ = ["fit_and_log"]


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


@dataclass(frozen=True)
class _Fitted:
    model: Any
    labels: Any
    metrics: dict[str, float]
    fit_seconds: float
    train_ref: Any
    test_ref: Any
    train: Any


def _fit(pipeline: Any, validated: dict, split: dict, store: Any) -> _Fitted:
    """Fit the spec's estimator on the training split and measure it on the test split."""
    from risk_assets.controls._performance import evaluate_classifier
    from risk_assets.estimator import build_pipeline
    from risk_assets.registry._snapshots import SnapshotRef

    loaded = pipeline.spec
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
    train_ref, test_ref = (
        SnapshotRef.from_dict(split["train"]),
        SnapshotRef.from_dict(split["test"]),
    )
    train, test = store.get(train_ref), store.get(test_ref)
    features, categorical = validated["features"], validated["categorical"]
    model = build_pipeline(
        class_path=spec.estimator.class_path,
        params=spec.estimator.params,
        numeric=[c for c in features if c not in categorical],
        categorical=categorical,
    )
    started = time.perf_counter()
    model.fit(train[features], train[spec.target])
    fit_seconds = time.perf_counter() - started
    labels = spec.labels(model.classes_, where=loaded.path)
    metrics = evaluate_classifier(
        model, test[features], test[spec.target], positive_label=labels.positive
    )
    return _Fitted(model, labels, metrics, fit_seconds, train_ref, test_ref, train)


def _lineage(
    context: Any, pipeline: Any, validated: dict, fitted: _Fitted, window: list | None
) -> RunLineage:
    loaded, lpolicy = pipeline.spec, pipeline.policy
    spec, labels = loaded.spec, fitted.labels
    partition = context.partition_key if context.has_partition_key else None
    return RunLineage(
        dagster_run_id=context.run.run_id,
        dagster_partition=partition or "none",
        partition=partition,
        window=RunLineage.describe_window([w["partition"] for w in window]) if window else None,
        dagster_job=context.job_name,
        pipeline=spec.name,
        source=validated["source"],
        raw_snapshot_sha256=validated["raw_sha256"],
        snapshot_sha256=validated["sha256"],
        train_sha256=fitted.train_ref.sha256,
        test_sha256=fitted.test_ref.sha256,
        suite_sha256=pipeline.suite_sha256,
        suite_path=str(loaded.suite_path),
        policy_sha256=lpolicy.sha256,
        policy_name=lpolicy.policy.name,
        policy_tier=lpolicy.policy.tier,
        spec_sha256=loaded.sha256,
        protected_attributes=tuple(spec.protected_attributes),
        positive_label=RunLineage.describe_label(labels.positive, labels.positive_reason),
        favourable_label=RunLineage.describe_label(labels.favourable, labels.favourable_reason),
        spec_path=str(loaded.path),
        code_version=_code_version(loaded.path.parent),
        user=current_user(),
    )


def _log_run_content(
    client: Any, run_id: str, pipeline: Any, validated: dict, split: dict, fitted: _Fitted
) -> None:
    """Params, metrics and the data snapshots as MLflow dataset inputs."""
    from mlflow.entities import Metric, Param, RunTag

    from risk_assets.registry._mlflow import iter_param_items, snapshot_dataset_input
    from risk_assets.registry._snapshots import SnapshotRef

    spec = pipeline.spec.spec
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
            "n_train": fitted.train_ref.rows,
            "n_test": fitted.test_ref.rows,
            "features": ",".join(validated["features"])[:6000],
            "categorical": ",".join(validated["categorical"])[:6000],
        }.items()
    ]
    client.log_batch(
        run_id,
        params=params,
        metrics=[
            *(Metric(f"test.{k}", v, now, 0) for k, v in fitted.metrics.items()),
            Metric("fit_seconds", fitted.fit_seconds, now, 0),
        ],
        tags=[
            RunTag(k, v)
            for k, v in RunLineage.model_tags(model_class=spec.estimator.class_path).items()
        ],
    )
    validated_ref = SnapshotRef.from_dict(
        {k: validated[k] for k in ("sha256", "path", "rows", "columns", "scheme")}
    )
    origin = validated["source"]
    client.log_inputs(
        run_id,
        datasets=[
            snapshot_dataset_input(
                validated_ref, name=f"{spec.name}-validated", context="source", origin=origin
            ),
            snapshot_dataset_input(
                fitted.train_ref, name=f"{spec.name}-train", context="training", origin=origin
            ),
            snapshot_dataset_input(
                fitted.test_ref, name=f"{spec.name}-test", context="testing", origin=origin
            ),
        ],
    )


def _log_model(client: Any, run_id: str, fitted: _Fitted, features: list[str]) -> str:
    import tempfile

    from risk_assets.registry._models import save_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        model_sha = save_model_dir(
            fitted.model, Path(tmp) / "model", X_sample=fitted.train[features].head(50)
        )
        client.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
    for key, value in RunLineage.model_tags(model_sha256=model_sha).items():
        client.set_tag(run_id, key, value)
    return model_sha


def _log_data_gates(
    context: Any, client: Any, run_id: str, store: Any, records: list, plot_subject: str
) -> None:
    """The data gates' evidence (and plots) on the candidate's run, for registration."""
    from risk_assets.registry._mlflow import GateRecord, log_gate, log_gate_plot

    for record in records:
        log_gate(client, run_id, GateRecord.from_dict(record))
        png = store.get_evidence_plot(plot_subject, record["check"])
        if png is not None:
            try:
                log_gate_plot(client, run_id, record["check"], png)
            except Exception as exc:  # an illustration: never fails the training run
                context.log.warning(f"{record['check']}: plot not logged ({type(exc).__name__})")


def fit_and_log(
    context: Any, pipeline: Any, validated: dict, split: dict, mlflow: Any, store: Any
) -> dg.Output:
    """Fit, evaluate and log the candidate; its value names the MLflow run and the model
    hash that every model gate verifies."""
    from risk_assets.registry._mlflow import log_window

    spec = pipeline.spec.spec
    fitted = _fit(pipeline, validated, split, store)
    client = mlflow.get_client()
    experiment_id = mlflow.ensure_experiment(spec.name)
    window = split.get("window")
    records, window_doc = data_gate_records(store, pipeline, validated, window, context.run.run_id)
    lineage = _lineage(context, pipeline, validated, fitted, window)
    run = client.create_run(
        experiment_id, run_name=f"{spec.name}-{context.run.run_id[:8]}", tags=lineage.to_tags()
    )
    run_id = run.info.run_id
    status = "FAILED"
    try:
        _log_run_content(client, run_id, pipeline, validated, split, fitted)
        model_sha = _log_model(client, run_id, fitted, validated["features"])
        if window_doc is not None:
            for key, value in RunLineage.window_tags(
                log_window(client, run_id, window_doc)
            ).items():
                client.set_tag(run_id, key, value)
        plot_subject = validated["sha256"] if window is None else window[-1]["sha256"]
        _log_data_gates(context, client, run_id, store, records, plot_subject)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    return _candidate_output(mlflow, experiment_id, run_id, model_sha, fitted, validated, spec)


def _candidate_output(
    mlflow: Any,
    experiment_id: str,
    run_id: str,
    model_sha: str,
    fitted: _Fitted,
    validated: dict,
    spec: Any,
) -> dg.Output:
    md = {
        "risk/model_sha256": model_sha,
        "mlflow_run_id": run_id,
        "estimator": spec.estimator.class_path,
        "fit_seconds": dg.MetadataValue.float(fitted.fit_seconds),
        **{f"test/{k}": dg.MetadataValue.float(v) for k, v in fitted.metrics.items()},
    }
    url = mlflow.run_url(experiment_id, run_id)
    if url:
        md["mlflow_run"] = dg.MetadataValue.url(url)
    return dg.Output(
        {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_sha256": model_sha,
            "metrics": fitted.metrics,
            "test": fitted.test_ref.to_dict(),
            "train": fitted.train_ref.to_dict(),
            "categorical": validated["categorical"],
            "features": validated["features"],
            "target": spec.target,
        },
        data_version=dg.DataVersion(model_sha),
        metadata=md,
    )
