"""The training assets of a pipeline, left to right: ``raw_snapshot``, ``validated_data``,
``train_test_split``, ``candidate_model``, ``registered_model``.

Asset values are small JSON references (snapshot hashes, MLflow run ids); data lives in
the snapshot store and models in MLflow.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from risk_assets.catalogue import pii_params_of
from risk_assets.dagster._blocking import withhold
from risk_assets.dagster._names import asset_key, registry_pool
from risk_assets.dagster._partitions import declared_columns, read_partition, window_mapping
from risk_assets.dagster._resources import AuditResource, MlflowResource, SnapshotStoreResource
from risk_assets.dagster._training import fit_and_log
from risk_assets.dagster._window import combine_window
from risk_assets.errors import DataError

__all__ = ["training_assets"]


@dataclass(frozen=True)
class _Build:
    """What every training asset of one pipeline shares."""

    pipeline: Any  # LoadedPipeline
    pdef: dg.PartitionsDefinition | None

    @property
    def spec(self) -> Any:
        return self.pipeline.spec.spec

    def key(self, asset: str) -> dg.AssetKey:
        return asset_key(self.spec.name, asset)

    def ins(self, *names: str) -> dict[str, dg.AssetIn]:
        return {n: dg.AssetIn(key=self.key(n)) for n in names}

    def common(self, name: str, description: str) -> dict[str, Any]:
        owner = self.spec.owner
        return {
            "name": name,
            "key_prefix": [self.spec.name],
            "group_name": self.spec.name,
            "partitions_def": self.pdef,
            "owners": [f"team:{owner}"] if owner and " " not in owner else None,
            "description": description,
            "kinds": _KINDS[name],
            "code_version": self.code_version,
        }

    @property
    def code_version(self) -> str:
        """The pipeline's configuration as Dagster's code version: the spec, policy and
        suite hashes, so that changing any of them marks the assets as changed."""
        import hashlib

        p = self.pipeline
        joined = f"{p.spec.sha256}:{p.policy.sha256}:{p.suite_sha256}"
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


#: What each asset is made with, as the Dagster UI shows it (asset kinds).
_KINDS = {
    "raw_snapshot": {"pandas"},
    "validated_data": {"pandas"},
    "train_test_split": {"pandas"},
    "candidate_model": {"sklearn", "mlflow"},
    "registered_model": {"mlflow"},
}


def _raw_snapshot(b: _Build) -> dg.AssetsDefinition:
    spec, loaded = b.spec, b.pipeline.spec
    where = (
        f"{spec.source.folder}/{spec.source.pattern}" if loaded.partitioned else spec.source.path
    )

    @dg.asset(
        **b.common(
            "raw_snapshot", f"Content-addressed snapshot of {where} (SHA-256 as data version)."
        )
    )
    def raw_snapshot(context: dg.AssetExecutionContext, snapshots: SnapshotStoreResource):
        from risk_assets.data import read_source

        counts: dict[str, Any] = {}
        if b.pdef is not None:
            df, counts, source = read_partition(loaded, context.partition_key)
        else:
            df, source = (
                read_source(loaded.source_path, spec.source.format),
                str(loaded.source_path),
            )
        # only what the spec declares is stored; a column it does not is scanned for PII
        # here, before it is dropped, and only that finding (names, kinds, shares) is kept
        declared = declared_columns(spec)
        dropped = [] if declared is None else [c for c in df.columns if c not in declared]
        undeclared = undeclared_finding(b.pipeline, df[dropped]) if dropped else None
        if dropped:
            df = df.drop(columns=dropped)
            context.log.info(
                f"{source}: {len(dropped)} column(s) the spec does not declare not stored: "
                f"{dropped}"
            )
        ref = snapshots.get_store().put(df)
        value = {**ref.to_dict(), "source": source}
        if undeclared is not None:
            value["undeclared"] = undeclared
        if b.pdef is not None:
            value["partition"] = context.partition_key
        return dg.Output(
            value,
            data_version=dg.DataVersion(ref.sha256),
            metadata={
                "risk/snapshot_sha256": ref.sha256,
                "risk/hash_scheme": ref.scheme,
                "dagster/row_count": dg.MetadataValue.int(ref.rows),
                "columns": dg.MetadataValue.int(len(ref.columns)),
                "risk/columns_not_stored": ", ".join(map(str, dropped)) or "none",
                "source": source,
                **{f"rows/{k}": dg.MetadataValue.int(v) for k, v in counts.items()},
            },
        )

    return raw_snapshot


def undeclared_finding(pipeline: Any, frame: Any) -> dict[str, Any]:
    """What the PII gate needs to know of the columns a spec does not declare, which are
    never stored: their names and, when the policy scans for PII, the scan's verdict and
    its table (kinds and shares per column, never a value). A scan that raises is recorded
    as undecided, so the gate fails closed."""
    from risk_assets.controls._result import ControlResult

    finding: dict[str, Any] = {"columns": [str(c) for c in frame.columns]}
    params = pii_params_of(pipeline.policy.policy)
    if params is None:
        return finding
    from risk_assets.controls._pii import scan_pii

    spec = pipeline.spec.spec
    try:
        result = scan_pii(
            frame,
            allowed=spec.pii_allowed,
            max_share=params.max_share,
            sample_size=params.sample_size,
            seed=spec.split.seed,
        )
    except Exception as exc:  # noqa: BLE001 - the gate fails closed on it
        result = ControlResult.undecided(
            f"the scan of the undeclared column(s) raised {type(exc).__name__}: {exc}"
        )
    finding["pii"] = {**result.to_dict(), "table": [dict(r) for r in result.table]}
    return finding


def refuse_personal_groups(pipeline: Any, raw: Any, *, source: str) -> None:
    """Refuse a snapshot whose protected attributes or slices the PII scan finds personal:
    their values would be the group labels of the fairness and slice evidence, and the
    pii_free gate may be a warning only (or absent) in a policy. A column declared personal
    (``pii_allowed``) is refused earlier, when the spec is loaded.

    Raises:
        DataError: naming the source, the spec key and the column, with the kind of PII and
            its share (never a value).
    """
    from risk_assets.catalogue.params import PiiParams
    from risk_assets.controls._pii import scan_pii

    spec = pipeline.spec.spec
    keys = {c: "protected_attributes" for c in spec.protected_attributes}
    keys.update({c: "slices" for c in spec.slices if c not in keys})
    grouped = [c for c in keys if c in raw.columns]
    if not grouped:
        return
    params = pii_params_of(pipeline.policy.policy) or PiiParams()
    result = scan_pii(
        raw[grouped],
        max_share=params.max_share,
        sample_size=params.sample_size,
        seed=spec.split.seed,
    )
    found = [r for r in result.table if r["kind"] == "column_name" or r["share"] > params.max_share]
    if found:
        named = ", ".join(
            f"{keys[r['column']]}: {r['column']!r} ({r['kind']}, {r['share']:.1%} of "
            f"{result.sample_size} rows scanned)"
            for r in found
        )
        raise DataError(
            f"{source}: personal data in a group column of {pipeline.spec.path}: {named}; "
            "its values would be group labels in the evidence (MLflow, Dagster metadata, the "
            "risk report): leave the column out of protected_attributes and slices"
        )


def validate_snapshot(context: Any, pipeline: Any, raw_snapshot: dict, store: Any) -> dict:
    """The target, feature and protected columns of a raw snapshot, as the gates judge them;
    refused before any gate when a label the spec names does not occur."""
    from risk_assets.data import select_columns
    from risk_assets.estimator import categorical_columns

    loaded, spec = pipeline.spec, pipeline.spec.spec
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
        categorical=spec.categorical_features,
    )
    labels = spec.labels(df[spec.target], where=loaded.path)
    if pipeline.policy.policy.needs_favourable_label:
        labels.require_favourable(target=spec.target, where=str(loaded.path))
    # protected attributes travel with the data (for fairness checks) even when they are
    # not features of the model
    extra = [c for c in spec.protected_attributes if c not in df.columns]
    missing = [c for c in extra if c not in raw.columns]
    if missing:
        raise DataError(f"{raw_snapshot['source']}: protected attribute(s) {missing} not found")
    refuse_personal_groups(pipeline, raw, source=raw_snapshot["source"])
    if extra:
        df = raw[[*df.columns, *extra]]
    # the same columns in the same order are the same frame: no second hash
    same = list(df.columns) == list(raw.columns) and spec.source.id_column is None
    ref = store.put(df, sha256=raw_snapshot["sha256"] if same else None)
    return {
        **ref.to_dict(),
        "raw_sha256": raw_snapshot["sha256"],
        "source": raw_snapshot["source"],
        "target": spec.target,
        "features": features,
        "categorical": categorical_columns(df, features, spec.categorical_features),
        **({"missing_features": lacking} if lacking else {}),
        # the PII scan of the columns raw_snapshot did not store, for the pii gate
        **({"undeclared": raw_snapshot["undeclared"]} if raw_snapshot.get("undeclared") else {}),
    }


def _validated_data(b: _Build) -> dg.AssetsDefinition:
    description = "Target and feature columns of the snapshot; gated by the expectation suite."

    @dg.asset(ins=b.ins("raw_snapshot"), **b.common("validated_data", description))
    def validated_data(
        context: dg.AssetExecutionContext, raw_snapshot: dict, snapshots: SnapshotStoreResource
    ):
        value = validate_snapshot(context, b.pipeline, raw_snapshot, snapshots.get_store())
        if b.pdef is not None:
            value["partition"] = context.partition_key
        return dg.Output(
            value,
            data_version=dg.DataVersion(value["sha256"]),
            metadata={
                "risk/snapshot_sha256": value["sha256"],
                "dagster/row_count": dg.MetadataValue.int(value["rows"]),
                "features": dg.MetadataValue.int(len(value["features"])),
                "categorical_features": ", ".join(value["categorical"]) or "none",
            },
        )

    return validated_data


def split_snapshot(
    context: Any, pipeline: Any, validated_data: dict, store: Any, partitioned: bool
) -> dg.Output:
    """The seeded train/test split of the validated data (of the window, when partitioned)."""
    from risk_assets.data import split_frame

    spec = pipeline.spec.spec
    window = None
    if partitioned:
        validated_data, window = combine_window(store, pipeline, validated_data)
    split = split_frame(
        store.get(validated_data["sha256"]),
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


def _train_test_split(b: _Build) -> dg.AssetsDefinition:
    spec = b.spec
    ins = b.ins("validated_data")
    description = "Seeded train/test split of the validated data, each part content-addressed"
    if b.pdef is not None:
        mapping = window_mapping(spec.training_window)
        ins = {"validated_data": dg.AssetIn(key=b.key("validated_data"), partition_mapping=mapping)}
        description += f"; trains on the last {spec.training_window} partitions"

    @dg.asset(ins=ins, output_required=False, **b.common("train_test_split", description + "."))
    def train_test_split(
        context: dg.AssetExecutionContext,
        validated_data: dict,
        snapshots: SnapshotStoreResource,
        audit: AuditResource,
    ):
        # every partition of the window must have passed its data gates
        window = (
            context.asset_partition_keys_for_input("validated_data")
            if b.pdef is not None
            else [None]
        )
        if withheld := withhold(context, b.pipeline, "validated_data", window, audit.get_log()):
            yield from withheld
            return
        store = snapshots.get_store()
        yield split_snapshot(context, b.pipeline, validated_data, store, b.pdef is not None)

    return train_test_split


def _candidate_model(b: _Build) -> dg.AssetsDefinition:
    description = f"{b.spec.estimator.class_path} fitted on the training split, logged to MLflow."
    # a window's split carries its combined validated data; otherwise the validated data is
    # an input of its own, so a stale split is caught against it
    ins = (
        b.ins("train_test_split")
        if b.pdef is not None
        else b.ins("validated_data", "train_test_split")
    )

    @dg.asset(ins=ins, **b.common("candidate_model", description))
    def candidate_model(
        context: dg.AssetExecutionContext,
        mlflow: MlflowResource,
        snapshots: SnapshotStoreResource,
        **inputs: dict,
    ):
        split = inputs["train_test_split"]
        validated = inputs.get("validated_data") or split["data"]
        return fit_and_log(context, b.pipeline, validated, split, mlflow, snapshots.get_store())

    return candidate_model


def _registered_model(b: _Build) -> dg.AssetsDefinition:
    model = b.spec.model_name
    description = (
        "The candidate in the MLflow registry; only after every blocking gate passed. One "
        f"registration of {model} at a time (pool {registry_pool(model)})."
    )

    # The pool makes registration and promotion of one model a critical section across
    # runs: promotion moves `champion` only while it is still the version the champion gate
    # compared with (a read, then a write), which two runs of one backfill must not
    # interleave. The gates themselves need no pool: they only read the champion, and a
    # sibling promoting between a gate and this step is caught here, not prevented there.
    @dg.asset(
        ins=b.ins("candidate_model"),
        pool=registry_pool(model),
        output_required=False,
        **b.common("registered_model", description),
    )
    def registered_model(
        context: dg.AssetExecutionContext,
        candidate_model: dict,
        mlflow: MlflowResource,
        audit: AuditResource,
    ):
        partition = context.partition_key if b.pdef is not None else None
        log = audit.get_log()
        if withheld := withhold(context, b.pipeline, "candidate_model", [partition], log):
            yield from withheld
            return
        yield register(context, b.pipeline, candidate_model, mlflow, log)

    return registered_model


def recover_left_behind(instance: dg.DagsterInstance, client: Any, audit: Any, spec: Any) -> list:
    """What runs of ``spec`` that ended without a verdict left in the registry, finished or
    removed (:func:`risk_assets.registry._recovery.recover`), asking ``instance`` how each
    Dagster run ended. A run the instance does not know belongs to another deployment
    sharing the MLflow server: only its own instance can tell whether it is still going,
    so it is left alone."""
    from risk_assets.registry._recovery import recover

    def ended(dagster_run_id: str) -> str | None:
        run = instance.get_run_by_id(dagster_run_id)
        if run is None:
            return None
        return run.status.value if run.is_finished else None

    return recover(client, audit, experiment=spec.name, model_name=spec.model_name, ended=ended)


def _recover_dead_runs(context: Any, spec: Any, mlflow: Any, audit: Any) -> None:
    """Before this run registers (a run the daemon launched has no CLI to do it first)."""
    for done in recover_left_behind(context.instance, mlflow.get_client(), audit, spec):
        context.log.warning(done.render())


def register(
    context: Any, pipeline: Any, candidate_model: dict, mlflow: Any, audit: Any = None
) -> dg.Output:
    """Register the candidate once its evidence verifies; a refusal never retries."""
    from risk_assets.errors import GateEvidenceError, IntegrityError
    from risk_assets.registry._mlflow import register_candidate

    spec, lpolicy = pipeline.spec.spec, pipeline.policy
    if audit is not None:
        _recover_dead_runs(context, spec, mlflow, audit)
    try:
        reg = register_candidate(
            mlflow.get_client(),
            candidate_model["run_id"],
            model_name=spec.model_name,
            policy=lpolicy.policy,
            policy_sha256=lpolicy.sha256,
            suite_sha256=pipeline.suite_sha256,
            protected_attributes=spec.protected_attributes,
            audit=audit,
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
    report = _publish_report(context, mlflow, audit, reg)
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
            **report,
            "mlflow_candidate_version": dg.MetadataValue.url(
                mlflow.model_version_url(reg.candidates_model, reg.candidate_version)
            ),
            **(
                {
                    "mlflow_model_version": dg.MetadataValue.url(
                        mlflow.model_version_url(reg.model, reg.version)
                    )
                }
                if reg.version
                else {}
            ),
        },
    )


def _publish_report(context: Any, mlflow: Any, audit: Any, reg: Any) -> dict[str, Any]:
    """The version's risk report on its run, and the metadata that links to it; a report
    that cannot be made is logged and left out (it documents a registration already made)."""
    from risk_assets.approvals import publish_report

    if audit is None:
        return {}
    try:
        paths = publish_report(
            mlflow.get_client(), audit, reg.candidates_model, reg.candidate_version
        )
    except Exception as exc:  # noqa: BLE001 - documentation, never the verdict
        context.log.warning(f"risk report not made ({type(exc).__name__}: {exc})")
        return {}
    return {
        "risk_report": dg.MetadataValue.url(mlflow.artifact_url(reg.run_id, paths["html"])),
    }


def training_assets(
    pipeline: Any, pdef: dg.PartitionsDefinition | None
) -> list[dg.AssetsDefinition]:
    """The five training assets of a pipeline, in the order of the flow."""
    b = _Build(pipeline, pdef)
    return [
        _raw_snapshot(b),
        _validated_data(b),
        _train_test_split(b),
        _candidate_model(b),
        _registered_model(b),
    ]
