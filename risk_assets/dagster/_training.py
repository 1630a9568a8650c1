"""The candidate: fitted on the training split, evaluated on the test split, and logged to
MLflow with its lineage (:class:`risk_assets.registry.RunLineage`), its data snapshots as
dataset inputs, the model (skops, hash recorded) and the data gates' evidence.

Data refused by a blocking data gate never gets a candidate; :func:`record_refusal` gives
it a refusal run in the same experiment instead, with the lineage it has and the gates'
records, so that MLflow alone says what was refused, when and why."""

import dataclasses
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from risk_assets.dagster._window import data_gate_records
from risk_assets.errors import DataError
from risk_assets.registry import RunLineage, RunVerdict
from risk_assets.settings import current_user

__all__ = ["fit_and_log", "log_plot", "record_refusal"]


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
    from risk_assets.controls._result import extreme_columns
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
    # a suite without a range on the column lets infinities through to the estimator,
    # whose own error would not name the column
    if extreme := extreme_columns([train[features]]):
        found = ", ".join(f"{c!r} ({why})" for c, why in extreme.items())
        raise DataError(
            f"{validated['source']}: numeric feature(s) {found} hold infinite or out-of-range "
            f"values; no model is trained on them (spec {loaded.path})"
        )
    model = build_pipeline(
        class_path=spec.estimator.class_path,
        params=spec.estimator.params,
        numeric=[c for c in features if c not in categorical],
        categorical=categorical,
    )
    started = time.perf_counter()
    try:
        # the Pipeline refuses identifier columns and a one-hot too large to hold
        model.fit(train[features], train[spec.target])
    except DataError as exc:
        raise DataError(f"{loaded.path}: {exc}") from exc
    fit_seconds = time.perf_counter() - started
    labels = spec.labels(model.classes_, where=loaded.path)
    metrics = evaluate_classifier(
        model, test[features], test[spec.target], positive_label=labels.positive
    )
    return _Fitted(model, labels, metrics, fit_seconds, train_ref, test_ref, train)


def _lineage(
    context: Any,
    pipeline: Any,
    validated: dict,
    fitted: _Fitted,
    window: list | None,
    dagster_run_url: str | None,
) -> RunLineage:
    """A candidate's lineage: what a refusal knows, plus its split, labels and window."""
    labels = fitted.labels
    return dataclasses.replace(
        _data_lineage(context, pipeline, validated, dagster_run_url),
        window=RunLineage.describe_window([w["partition"] for w in window]) if window else None,
        train_sha256=fitted.train_ref.sha256,
        test_sha256=fitted.test_ref.sha256,
        positive_label=RunLineage.describe_label(labels.positive, labels.positive_reason),
        favourable_label=RunLineage.describe_label(labels.favourable, labels.favourable_reason),
    )


def _log_run_content(
    client: Any, run_id: str, pipeline: Any, validated: dict, split: dict, fitted: _Fitted
) -> None:
    """Params, metrics and the data snapshots as MLflow dataset inputs."""
    from mlflow.entities import Metric, Param, RunTag

    from risk_assets.registry._mlflow import (
        iter_param_items,
        log_dataset_inputs,
        snapshot_dataset_input,
    )

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
        # the test metrics are logged with the model (see _log_model)
        metrics=[Metric("fit_seconds", fitted.fit_seconds, now, 0)],
        tags=[
            RunTag(k, v)
            for k, v in RunLineage.model_tags(model_class=spec.estimator.class_path).items()
        ],
    )
    validated_ref = _validated_ref(validated)
    origin = validated["source"]
    log_dataset_inputs(
        client,
        run_id,
        [
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


def _log_model(
    client: Any, run_id: str, experiment_id: str, spec: Any, fitted: _Fitted, features: list[str]
) -> str:
    """Save the model as an MLflow 3 LoggedModel of the experiment (its Models tab), made
    by the candidate's run, with the run's test metrics; the run records its id and the
    SHA-256 that every reader verifies."""
    import tempfile

    from mlflow.entities import Metric

    from risk_assets.registry._models import save_model_dir

    logged = client.create_logged_model(
        experiment_id,
        name=spec.model_name,
        source_run_id=run_id,
        params={"estimator": spec.estimator.class_path, "pipeline": spec.name},
        model_type=spec.estimator.class_path.rpartition(".")[2],
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            model_sha = save_model_dir(
                fitted.model, model_dir, X_sample=fitted.train[features].head(50)
            )
            client.log_model_artifacts(logged.model_id, str(model_dir))
        client.set_logged_model_tags(logged.model_id, RunLineage.model_tags(model_sha256=model_sha))
        now = int(time.time() * 1000)
        test = fitted.test_ref
        client.log_batch(
            run_id,
            metrics=[
                Metric(
                    f"test.{k}",
                    v,
                    now,
                    0,
                    model_id=logged.model_id,
                    dataset_name=f"{spec.name}-test",
                    dataset_digest=test.sha256[:36],
                )
                for k, v in fitted.metrics.items()
            ],
        )
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    tags = RunLineage.model_tags(model_sha256=model_sha, logged_model_id=logged.model_id)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return model_sha


def _log_data_gates(
    context: Any, client: Any, mlflow: Any, run_id: str, store: Any, records: list, subject: str
) -> dict[str, dict[str, Any]]:
    """Data gates' records (and their plots, kept beside ``subject``) on an MLflow run; per
    check, the metadata that shows its plot from there."""
    from risk_assets.registry._mlflow import GateRecord, log_gate

    shown = {}
    for record in records:
        log_gate(client, run_id, GateRecord.from_dict(record))
        png = store.get_evidence_plot(subject, record["check"])
        if png is not None:
            shown[record["check"]] = log_plot(context, client, mlflow, run_id, record["check"], png)
    return shown


def log_plot(context: Any, client: Any, mlflow: Any, run_id: str, check: str, png: bytes) -> dict:
    """A gate's plot as an artefact of its MLflow run (``gates/<check>.png``), and the Dagster
    metadata that shows it from there; a plot that cannot be logged is reported and left
    out: it illustrates the evidence, it never decides the gate."""
    from risk_assets.registry._mlflow import log_gate_plot

    try:
        path = log_gate_plot(client, run_id, check, png)
    except Exception as exc:  # noqa: BLE001 - an illustration
        context.log.warning(f"{check}: plot not logged ({type(exc).__name__})")
        return {}
    url = mlflow.artifact_url(run_id, path)
    return {
        "risk/plot": "mlflow artefact " + path,
        "risk/plot_image": dg.MetadataValue.md(f"![{check}]({url})\n\n[open in MLflow]({url})"),
    }


def fit_and_log(
    context: Any, pipeline: Any, validated: dict, split: dict, mlflow: Any, store: Any
) -> dg.Output:
    """Fit, evaluate and log the candidate; its value names the MLflow run and the model
    hash that every model gate verifies."""
    from risk_assets.registry._mlflow import log_window

    spec = pipeline.spec.spec
    fitted = _fit(pipeline, validated, split, store)
    client = mlflow.get_client()
    experiment_id = mlflow.ensure_experiment(spec.name, _experiment_description(spec))
    window = split.get("window")
    records, window_doc = data_gate_records(store, pipeline, validated, window, context.run.run_id)
    dagster_url = mlflow.dagster_run_url(context.run.run_id)
    lineage = _lineage(context, pipeline, validated, fitted, window, dagster_url)
    run = client.create_run(
        experiment_id, run_name=f"{spec.name}-{context.run.run_id[:8]}", tags=lineage.to_tags()
    )
    run_id = run.info.run_id
    status = "FAILED"
    try:
        _log_run_content(client, run_id, pipeline, validated, split, fitted)
        model_sha = _log_model(client, run_id, experiment_id, spec, fitted, validated["features"])
        if window_doc is not None:
            for key, value in RunLineage.window_tags(
                log_window(client, run_id, window_doc)
            ).items():
                client.set_tag(run_id, key, value)
        plot_subject = validated["sha256"] if window is None else window[-1]["sha256"]
        _log_data_gates(context, client, mlflow, run_id, store, records, plot_subject)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    if any(r.get("blocking", True) and not r.get("passed") for r in records):
        # a window with a refused partition: registration will refuse this candidate
        from risk_assets.registry._mlflow import record_verdict

        record_verdict(client, run_id, RunVerdict.BLOCKED)
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
    md["mlflow_run"] = dg.MetadataValue.url(mlflow.run_url(experiment_id, run_id))
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


def _data_lineage(context: Any, pipeline: Any, validated: dict, url: str | None) -> RunLineage:
    """What is known of a run before any model: the data, suite, policy, spec and code, and
    the Dagster run (all a refusal run records; a candidate adds its split and labels)."""
    loaded, lpolicy = pipeline.spec, pipeline.policy
    spec = loaded.spec
    partition = context.partition_key if context.has_partition_key else None
    return RunLineage(
        dagster_run_id=context.run.run_id,
        dagster_partition=partition or "none",
        partition=partition,
        dagster_job=context.run.job_name,
        pipeline=spec.name,
        source=validated["source"],
        raw_snapshot_sha256=validated["raw_sha256"],
        snapshot_sha256=validated["sha256"],
        train_sha256=None,
        test_sha256=None,
        suite_sha256=pipeline.suite_sha256,
        suite_path=str(loaded.suite_path),
        policy_sha256=lpolicy.sha256,
        policy_name=lpolicy.policy.name,
        policy_tier=lpolicy.policy.tier,
        spec_sha256=loaded.sha256,
        protected_attributes=tuple(spec.protected_attributes),
        positive_label=None,
        favourable_label=None,
        spec_path=str(loaded.path),
        code_version=_code_version(loaded.path.parent),
        user=current_user(),
        dagster_run_url=url,
    )


def _this_runs_records(context: Any, pipeline: Any, store: Any, subject: str) -> list[dict]:
    """The data gates' records about ``subject`` made by this Dagster run so far."""
    from risk_assets.catalogue import checks_of

    spec = pipeline.spec.spec
    out = []
    for check in checks_of(
        pipeline.policy.policy, spec.protected_attributes, assets=("validated_data",)
    ):
        rec = store.get_evidence(subject, check.name)
        if (
            rec is not None
            and rec.get("dagster_run_id") == context.run.run_id
            and rec.get("policy_sha256") == pipeline.policy.sha256
        ):
            out.append(rec)
    return out


def record_refusal(
    context: Any, pipeline: Any, validated: dict, record: Any, mlflow: Any, store: Any
) -> dict[str, Any]:
    """Keep a data gate's verdict in MLflow when the data has no candidate run.

    A blocking data gate that fails opens (or finds: once per Dagster run and snapshot) the
    refusal run, puts every data-gate record this Dagster run made about the snapshot on
    it, and marks it ``refused`` with a description naming the failed gates. Any other data
    gate is put on the refusal run if there is one already. Call it once the record is kept
    beside the snapshot. Returns Dagster metadata linking to the refusal run (none without).
    """
    from risk_assets.registry._mlflow import (
        find_refusal_run,
        gate_records,
        record_verdict,
        refusal_run,
    )

    spec = pipeline.spec.spec
    subject = record.subject_sha256
    made = _this_runs_records(context, pipeline, store, subject)
    if not any(r.get("blocking") and not r.get("passed") for r in made):
        return {}  # nothing refused in this run so far: no MLflow call at all
    client = mlflow.get_client()
    created = False
    if record.blocking and not record.passed:
        experiment_id = mlflow.ensure_experiment(spec.name, _experiment_description(spec))
        lineage = _data_lineage(
            context, pipeline, validated, mlflow.dagster_run_url(context.run.run_id)
        )
        run_name = f"{spec.name}-refused-{context.run.run_id[:8]}"
        run_id, created = refusal_run(client, experiment_id, lineage, run_name=run_name)
        context.log.info(f"{record.check} refused snapshot {subject[:12]}: MLflow run {run_id}")
    else:
        experiment = client.get_experiment_by_name(spec.name)
        if experiment is None:
            return {}
        experiment_id = experiment.experiment_id
        run_id = find_refusal_run(
            client, experiment_id, dagster_run_id=context.run.run_id, snapshot_sha256=subject
        )
        if run_id is None:
            return {}
    # this gate's record, and any record of this run the refusal run lacks (an earlier call
    # may have stopped half-way): nothing is logged twice
    logged = gate_records(client.get_run(run_id))
    records = [record.to_dict()] + [
        r for r in made if r["check"] != record.check and r["check"] not in logged
    ]
    shown = _log_data_gates(context, client, mlflow, run_id, store, records, subject)
    links = {k: v for k, v in shown.get(record.check, {}).items() if k == "risk/plot_image"}
    if created:
        _log_refused_snapshot(client, run_id, spec.name, validated)
    record_verdict(client, run_id, RunVerdict.REFUSED)
    return {
        "mlflow_run_id": run_id,
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(experiment_id, run_id)),
        **links,
    }


def _log_refused_snapshot(client: Any, run_id: str, name: str, validated: dict) -> None:
    """The refused snapshot as the refusal run's dataset input (MLflow shows its schema)."""
    from risk_assets.registry._mlflow import log_dataset_inputs, snapshot_dataset_input

    log_dataset_inputs(
        client,
        run_id,
        [
            snapshot_dataset_input(
                _validated_ref(validated),
                name=f"{name}-validated",
                context="refused",
                origin=validated["source"],
            )
        ],
    )


def _validated_ref(validated: dict) -> Any:
    """The validated snapshot a ``validated_data`` value names, as a snapshot reference."""
    from risk_assets.registry._snapshots import SnapshotRef

    return SnapshotRef.from_dict(
        {k: validated[k] for k in ("sha256", "path", "rows", "columns", "scheme")}
    )


def _experiment_description(spec: Any) -> str:
    """What the pipeline's MLflow experiment holds, as its description."""
    return (
        f"Training runs of the gated pipeline **{spec.name}**: every candidate with its "
        "lineage tags and gate evidence, and every refusal by a data gate. A run's "
        "`risk_assets.verdict` tag says what became of it (registered, awaiting approval, "
        f"blocked, refused). Models: `{spec.model_name}-candidates` (every challenger) and "
        f"`{spec.model_name}` (production, alias `champion`)."
    )
