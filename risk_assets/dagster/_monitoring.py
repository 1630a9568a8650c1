"""Batch scoring of a partitioned pipeline: the monitoring assets.

``scored_batch`` scores each partition's batch with the production ``champion`` (loaded
safely, its hash verified) and writes the predictions to the snapshot store; its checks
watch the inputs, the scores and the decision counts. ``batch_outcomes`` joins a scored
batch with its delayed labels once they have arrived; its check watches performance.
"""

from typing import Any

import dagster as dg

from risk_assets.dagster._names import asset_key
from risk_assets.dagster._partitions import declared_columns, read_partition
from risk_assets.dagster._resources import MlflowResource, SnapshotStoreResource
from risk_assets.errors import DataError, IntegrityError
from risk_assets.labels import positive_scores
from risk_assets.registry import RunLineage, VersionTags

__all__ = ["monitoring_assets"]


def _champion_of(client: Any, spec: Any, part: str) -> tuple[Any, Any, list, list, str]:
    """The champion (safe load, hash verified), its features, categorical features and
    training snapshot."""
    from risk_assets.registry._mlflow import find_champion, load_version_model

    champion = find_champion(client, spec.model_name)
    if champion is None:
        raise dg.Failure(
            f"no champion of {spec.model_name} to score partition {part} with; "
            "train and promote a model first",
            allow_retries=False,
        )
    model = load_version_model(client, champion)
    run = client.get_run(champion.run_id)
    features = [f for f in run.data.params.get("features", "").split(",") if f]
    categorical = [f for f in run.data.params.get("categorical", "").split(",") if f]
    train_sha = RunLineage.from_tags(run.data.tags).train_sha256
    if not features or not train_sha:
        raise IntegrityError(
            f"{champion.name}/{champion.version} records no features or training snapshot"
        )
    return champion, model, features, categorical, train_sha


def _favourable(pipeline: Any, model: Any) -> Any:
    loaded, spec = pipeline.spec, pipeline.spec.spec
    labels = spec.labels(model.classes_, where=loaded.path)
    if pipeline.policy.policy.needs_favourable_label:
        return labels.require_favourable(target=spec.target, where=str(loaded.path))
    return labels.favourable  # counted when known; no control needs it here


def score_batch(context: Any, pipeline: Any, client: Any, store: Any) -> dg.Output:
    """Score one partition's batch with the champion; predictions go to the store."""
    import pandas as pd

    loaded, spec = pipeline.spec, pipeline.spec.spec
    part = context.partition_key
    champion, model, features, categorical, train_sha = _champion_of(client, spec, part)
    batch, _, source = read_partition(loaded, part, labelled=False)
    missing = [f for f in features if f not in batch.columns]
    if missing:
        raise DataError(f"{source}: feature column(s) {missing} of the champion not found")
    # only the columns the spec declares and the champion reads are stored (undeclared
    # columns, which may hold personal data, never reach the store)
    declared = declared_columns(spec)
    if declared is not None:
        keep = [c for c in batch.columns if c in {*declared, *features}]
        batch = batch[keep]
    batch_ref = store.put(batch)
    decisions = model.predict(batch[features])
    out = pd.DataFrame(
        {"prediction": decisions, "score": positive_scores(model, batch[features], spec)}
    )
    id_column = spec.source.id_column
    if id_column is not None and id_column in batch.columns:
        out.insert(0, id_column, batch[id_column].to_numpy())
    pred_ref = store.put(out)
    favourable = _favourable(pipeline, model)
    n_favourable = None if favourable is None else int((pd.Series(decisions) == favourable).sum())
    ref = f"{champion.name}/{champion.version}"
    model_sha = VersionTags.from_tags(champion.tags).model_sha256
    context.log.info(f"partition {part}: {len(out)} rows scored by {ref}")
    value = {
        "sha256": pred_ref.sha256,
        "path": pred_ref.path,
        "batch_sha256": batch_ref.sha256,
        "partition": part,
        "source": source,
        "champion": ref,
        "champion_run_id": champion.run_id,
        "model_sha256": model_sha,
        "train_sha256": train_sha,
        "features": features,
        "categorical": categorical,
        "rows": len(out),
        "favourable": n_favourable,
    }
    return dg.Output(
        value,
        data_version=dg.DataVersion(pred_ref.sha256),
        metadata=_scored_metadata(value, pred_ref),
    )


def _scored_metadata(value: dict, pred_ref: Any) -> dict[str, Any]:
    rows, n_favourable = value["rows"], value["favourable"]
    md: dict[str, Any] = {
        "risk/champion": value["champion"],
        "risk/model_sha256": value["model_sha256"] or "",
        "risk/batch_sha256": value["batch_sha256"],
        "risk/predictions_sha256": pred_ref.sha256,
        "risk/predictions": dg.MetadataValue.path(pred_ref.path),
        "dagster/row_count": dg.MetadataValue.int(rows),
    }
    if n_favourable is not None:
        md["risk/favourable"] = dg.MetadataValue.int(n_favourable)
        md["risk/favourable_rate"] = dg.MetadataValue.float(
            n_favourable / rows if rows else float("nan")
        )
    md["source"] = value["source"]
    return md


def _join_outcomes(predictions: Any, labelled: Any, spec: Any, scored: dict) -> Any:
    """Predictions with the label of each row (missing where it has not arrived)."""
    id_column = spec.source.id_column
    out = predictions.copy()
    if id_column is not None:
        labels = dict(zip(labelled[id_column].astype(str), labelled[spec.target], strict=True))
        out["label"] = out[id_column].astype(str).map(labels)
    else:
        if len(labelled) != len(out):
            raise DataError(
                f"{scored['source']}: {len(labelled)} labelled rows against {len(out)} scored"
            )
        out["label"] = labelled[spec.target].to_numpy()
    return out


def monitoring_assets(pipeline: Any, pdef: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """``scored_batch`` and ``batch_outcomes`` of a partitioned pipeline."""
    loaded = pipeline.spec
    spec = loaded.spec
    common = {
        "key_prefix": [spec.name],
        "group_name": f"{spec.name}_monitoring",
        "partitions_def": pdef,
    }

    @dg.asset(
        name="scored_batch",
        **common,
        kinds={"sklearn", "mlflow"},
        description=(
            f"Each new batch of {spec.source.folder}/{spec.source.pattern} scored by the "
            f"champion of {spec.model_name} (hash verified, safe load); predictions stored."
        ),
    )
    def scored_batch(
        context: dg.AssetExecutionContext, mlflow: MlflowResource, snapshots: SnapshotStoreResource
    ):
        return score_batch(context, pipeline, mlflow.get_client(), snapshots.get_store())

    @dg.asset(
        name="batch_outcomes",
        **common,
        kinds={"pandas"},
        ins={"scored_batch": dg.AssetIn(key=asset_key(spec.name, "scored_batch"))},
        output_required=False,
        description=(
            "A scored batch joined with its delayed labels; materialises once they have "
            "arrived (until then the step yields nothing and its check does not run)."
        ),
    )
    def batch_outcomes(
        context: dg.AssetExecutionContext, scored_batch: dict, snapshots: SnapshotStoreResource
    ):
        part = context.partition_key
        labels_path = loaded.labels_path(part)
        if labels_path is not None and not labels_path.is_file():
            context.log.info(f"partition {part}: labels not arrived yet ({labels_path})")
            return
        store = snapshots.get_store()
        labelled, _, source = read_partition(loaded, part, labelled=True)
        joined = _join_outcomes(store.get(scored_batch["sha256"]), labelled, spec, scored_batch)
        ref = store.put(joined)
        yield dg.Output(
            {**ref.to_dict(), "partition": part, "scored_sha256": scored_batch["sha256"]},
            data_version=dg.DataVersion(ref.sha256),
            metadata={
                "risk/outcomes_sha256": ref.sha256,
                "dagster/row_count": dg.MetadataValue.int(int(joined["label"].notna().sum())),
                "rows/scored": dg.MetadataValue.int(len(joined)),
                "source": source,
            },
        )

    return [scored_batch, batch_outcomes]
