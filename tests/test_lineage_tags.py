"""The lineage tag schema: one typed object writes and reads what earlier versions wrote."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from risk_assets.errors import GateEvidenceError, IntegrityError
from risk_assets.registry import TAG_PREFIX, RunLineage, RunVerdict, VersionTags
from risk_assets.registry._lineage import _RUN_KEYS, _VERDICT_KEYS, _VERSION_KEYS

#: The published schema of a candidate run's tags (audit queries select on these keys).
RUN_KEYS = [
    "dagster.job",
    "dagster.partition",
    "dagster.run_id",
    "mlflow.source.name",
    "mlflow.user",
    "risk_assets.code_version",
    "risk_assets.favourable_label",
    "risk_assets.model_class",
    "risk_assets.model_sha256",
    "risk_assets.pipeline",
    "risk_assets.policy_name",
    "risk_assets.policy_sha256",
    "risk_assets.policy_tier",
    "risk_assets.positive_label",
    "risk_assets.protected_attributes",
    "risk_assets.raw_snapshot_sha256",
    "risk_assets.snapshot_sha256",
    "risk_assets.source",
    "risk_assets.spec_path",
    "risk_assets.spec_sha256",
    "risk_assets.suite_path",
    "risk_assets.suite_sha256",
    "risk_assets.test_sha256",
    "risk_assets.train_sha256",
]
#: Only on a run trained on one partition, resp. on a window of partitions.
PARTITION_KEYS = ["risk_assets.partition"]
WINDOW_KEYS = ["risk_assets.window", "risk_assets.window_sha256"]
#: Set on the run when it is registered.
REGISTRATION_KEYS = ["risk_assets.candidate_version"]
#: The link back to the Dagster run (written by the pipeline since it links the UIs).
LINK_KEYS = ["risk_assets.dagster_run_url"]
#: A run's verdict: what became of its model, the failed blocking gates, MLflow's own
#: run description.
VERDICT_KEYS = ["mlflow.note.content", "risk_assets.failed_gates", "risk_assets.verdict"]

#: The published schema of a registered version's tags.
VERSION_KEYS = [
    "risk_assets.gates_passed",
    "risk_assets.model_sha256",
    "risk_assets.policy_sha256",
    "risk_assets.policy_tier",
    "risk_assets.registered_by",
    "risk_assets.run_id",
    "risk_assets.snapshot_sha256",
    "risk_assets.suite_sha256",
]
PROMOTION_KEYS = [
    "risk_assets.candidate_version",
    "risk_assets.promoted_by",
    "risk_assets.promotion_reason",
]

SHA = {name: name[:4] * 16 for name in ("rawx", "vali", "trai", "test", "suit", "poli", "spec")}
MODEL_SHA = "9" * 64
WINDOW_SHA = "8" * 64


def _sample_inputs(partitioning: str):
    """Objects shaped like what the candidate's logging (``dagster/_training.py``) has at
    hand, with sample values."""
    partition = "2024-03-01" if partitioning == "partition" else None
    window = (
        [
            {"partition": "2024-01-01", "sha256": "1" * 64},
            {"partition": "2024-02-01", "sha256": "2" * 64},
            {"partition": "2024-03-01", "sha256": "3" * 64},
        ]
        if partitioning == "window"
        else None
    )
    context = SimpleNamespace(
        run=SimpleNamespace(run_id="0f6c2a9e-52b1-4c7e-9d0a-1b2c3d4e5f60"),
        job_name="credit_risk_training",
    )
    spec = SimpleNamespace(
        name="credit_risk",
        protected_attributes=["sex", "age"],
        estimator=SimpleNamespace(class_path="sklearn.linear_model.LogisticRegression"),
    )
    loaded = SimpleNamespace(
        spec=spec,
        sha256=SHA["spec"],
        path=Path("pipelines/credit_risk.yaml"),
        suite_path=Path("expectations/credit_risk.json"),
    )
    lpolicy = SimpleNamespace(
        sha256=SHA["poli"],
        policy=SimpleNamespace(name="credit-risk-register", tier="high"),
    )
    pipeline = SimpleNamespace(suite_sha256=SHA["suit"])
    validated = {
        "source": "pipelines/data/german_credit.csv",
        "raw_sha256": SHA["rawx"],
        "sha256": SHA["vali"],
    }
    train_ref = SimpleNamespace(sha256=SHA["trai"])
    test_ref = SimpleNamespace(sha256=SHA["test"])
    labels = SimpleNamespace(
        positive="bad",
        positive_reason="the spec's positive_label",
        favourable="good",
        favourable_reason="the spec's favourable_label",
    )
    return SimpleNamespace(
        context=context,
        partition=partition,
        window=window,
        spec=spec,
        loaded=loaded,
        lpolicy=lpolicy,
        pipeline=pipeline,
        validated=validated,
        train_ref=train_ref,
        test_ref=test_ref,
        labels=labels,
        code_version="3216633c0ffee0000000000000000000000000ab+dirty",
        user="analyst",
    )


def _old_writer(i) -> dict[str, str]:
    """The tags as the candidate's logging wrote them before the schema had a type: the dict
    below is its code, verbatim, then the tags it set after saving the model."""
    _TAG = "risk_assets."
    context, partition, window = i.context, i.partition, i.window
    spec, loaded, lpolicy, pipeline = i.spec, i.loaded, i.lpolicy, i.pipeline
    validated, train_ref, test_ref, labels = i.validated, i.train_ref, i.test_ref, i.labels

    def _code_version(folder):
        return i.code_version

    def current_user():
        return i.user

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
    after_save = {
        _TAG + "model_class": spec.estimator.class_path,
        _TAG + "model_sha256": MODEL_SHA,
        **({_TAG + "window_sha256": WINDOW_SHA} if window else {}),
    }
    return {"created": tags, "after_save": after_save}


def _new_writer(i) -> RunLineage:
    """The same run through the typed object, as the candidate's logging builds it."""
    spec, loaded, lpolicy, labels = i.spec, i.loaded, i.lpolicy, i.labels
    return RunLineage(
        pipeline=spec.name,
        source=i.validated["source"],
        raw_snapshot_sha256=i.validated["raw_sha256"],
        snapshot_sha256=i.validated["sha256"],
        train_sha256=i.train_ref.sha256,
        test_sha256=i.test_ref.sha256,
        suite_sha256=i.pipeline.suite_sha256,
        suite_path=str(loaded.suite_path),
        policy_sha256=lpolicy.sha256,
        policy_name=lpolicy.policy.name,
        policy_tier=lpolicy.policy.tier,
        spec_sha256=loaded.sha256,
        spec_path=str(loaded.path),
        protected_attributes=tuple(spec.protected_attributes),
        positive_label=RunLineage.describe_label(labels.positive, labels.positive_reason),
        favourable_label=RunLineage.describe_label(labels.favourable, labels.favourable_reason),
        code_version=i.code_version,
        partition=i.partition,
        window=RunLineage.describe_window([w["partition"] for w in i.window]) if i.window else None,
        dagster_run_id=i.context.run.run_id,
        dagster_partition=i.partition or "none",
        dagster_job=i.context.job_name,
        user=i.user,
    )


def _saved(lineage: RunLineage, i) -> RunLineage:
    """The object once the model is saved (and the window recorded)."""
    return replace(
        lineage,
        model_class=i.spec.estimator.class_path,
        model_sha256=MODEL_SHA,
        window_sha256=WINDOW_SHA if i.window else None,
    )


PARTITIONINGS = ["none", "partition", "window"]


@pytest.mark.parametrize("partitioning", PARTITIONINGS)
def test_round_trip(partitioning):
    i = _sample_inputs(partitioning)
    created = _new_writer(i)
    assert RunLineage.from_tags(created.to_tags()) == created
    saved = _saved(created, i)
    assert RunLineage.from_tags(saved.to_tags()) == saved
    registered = replace(saved, candidate_version="credit_risk-candidates/3")
    assert RunLineage.from_tags(registered.to_tags()) == registered


def test_reading_nothing_gives_nones_and_round_trips():
    empty = RunLineage.from_tags({})
    assert empty.train_sha256 is None
    assert empty.model_sha256 is None
    assert empty.protected_attributes == ()
    assert RunLineage.from_tags(empty.to_tags()) == empty
    assert VersionTags.from_tags({}) == VersionTags()


def test_unknown_tags_are_ignored():
    i = _sample_inputs("none")
    saved = _saved(_new_writer(i), i)
    tags = {
        **saved.to_tags(),
        "mlflow.runName": "credit_risk-0f6c2a9e",
        TAG_PREFIX + "gate.pii_free": "{}",
        TAG_PREFIX + "risk.PRV-001": "pii_free: passed",
        TAG_PREFIX + "a_tag_from_a_later_version": "x",
    }
    assert RunLineage.from_tags(tags) == saved


@pytest.mark.parametrize("partitioning", PARTITIONINGS)
def test_exact_keys_written(partitioning):
    i = _sample_inputs(partitioning)
    saved = _saved(_new_writer(i), i)
    expected = (
        RUN_KEYS
        + {
            "none": [],
            "partition": PARTITION_KEYS,
            "window": WINDOW_KEYS,
        }[partitioning]
    )
    assert sorted(saved.to_tags()) == sorted(expected)
    registered = replace(saved, candidate_version="credit_risk-candidates/3")
    assert sorted(registered.to_tags()) == sorted(expected + REGISTRATION_KEYS)


def test_every_field_has_a_key():
    assert set(_RUN_KEYS) == {f.name for f in fields(RunLineage)}
    assert set(_VERSION_KEYS) == {f.name for f in fields(VersionTags)}
    assert set(_VERDICT_KEYS) == {f.name for f in fields(RunVerdict)}
    assert all(k.startswith(TAG_PREFIX) for k in _VERSION_KEYS.values())
    assert TAG_PREFIX == "risk_assets."


@pytest.mark.parametrize("partitioning", PARTITIONINGS)
def test_old_writer_reads_the_same(partitioning):
    i = _sample_inputs(partitioning)
    old = _old_writer(i)
    created = _new_writer(i)
    # byte-identical: the same keys with the same values
    assert created.to_tags() == old["created"]
    assert RunLineage.from_tags(old["created"]) == created
    saved = _saved(created, i)
    assert RunLineage.from_tags({**old["created"], **old["after_save"]}) == saved
    after_save = RunLineage.model_tags(
        model_class=i.spec.estimator.class_path, model_sha256=MODEL_SHA
    )
    if i.window:
        after_save.update(RunLineage.window_tags(WINDOW_SHA))
    assert after_save == old["after_save"]


def test_label_and_window_formats():
    assert RunLineage.describe_label("good", "the spec's favourable_label") == (
        "'good' (the spec's favourable_label)"
    )
    assert RunLineage.describe_label(1, "the larger class") == "1 (the larger class)"
    assert RunLineage.describe_window(["2024-01", "2024-02"]) == "2024-01..2024-02 (2 partitions)"
    with pytest.raises(ValueError, match="at least one partition"):
        RunLineage.describe_window([])
    assert RunLineage.model_tags() == {}
    assert RunLineage.model_tags(model_sha256=MODEL_SHA) == {"risk_assets.model_sha256": MODEL_SHA}
    assert RunLineage.registration_tags("m-candidates/2") == {
        "risk_assets.candidate_version": "m-candidates/2"
    }


def test_list_fields_are_tuples():
    i = _sample_inputs("none")
    lineage = replace(_new_writer(i), protected_attributes=["sex", "age"])
    assert lineage.protected_attributes == ("sex", "age")
    hash(lineage)
    with pytest.raises(TypeError, match="protected_attributes"):
        replace(lineage, protected_attributes="sex,age")
    assert replace(lineage, protected_attributes=()).to_tags()[
        "risk_assets.protected_attributes"
    ] == ("")
    assert VersionTags(gates_passed=["a", "b"]).gates_passed == ("a", "b")


def _old_version_writer(*, partitioned: bool, promoted: bool) -> dict[str, str]:
    """The version tags as ``register_candidate`` and ``_promote`` wrote them before."""
    P = "risk_assets."
    run_tags = {
        P + "snapshot_sha256": SHA["vali"],
        P + "suite_sha256": SHA["suit"],
        **({P + "partition": "2024-03-01"} if partitioned else {}),
    }
    evidence = {
        P + "model_sha256": MODEL_SHA,
        P + "run_id": "a1b2c3",
        P + "policy_sha256": SHA["poli"],
        P + "snapshot_sha256": run_tags.get(P + "snapshot_sha256", ""),
        P + "suite_sha256": run_tags.get(P + "suite_sha256", ""),
        P + "gates_passed": ",".join(sorted(["pii_free", "expectations", "fair_across_sex"])),
        P + "registered_by": "trainer",
        P + "policy_tier": "high",
    }
    for key in ("partition", "window"):
        if run_tags.get(P + key):
            evidence[P + key] = run_tags[P + key]
    if not promoted:
        return evidence
    return {
        **evidence,
        P + "candidate_version": "credit_risk-candidates/3",
        P + "promoted_by": "approver",
        P + "promotion_reason": "automatic promotion: policy tier 'high' allows it",
    }


@pytest.mark.parametrize("partitioned", [False, True])
def test_version_tags_match_the_old_writer(partitioned):
    evidence = VersionTags(
        model_sha256=MODEL_SHA,
        run_id="a1b2c3",
        policy_sha256=SHA["poli"],
        snapshot_sha256=SHA["vali"],
        suite_sha256=SHA["suit"],
        gates_passed=sorted(["pii_free", "expectations", "fair_across_sex"]),
        registered_by="trainer",
        policy_tier="high",
        partition="2024-03-01" if partitioned else None,
    )
    old = _old_version_writer(partitioned=partitioned, promoted=False)
    assert evidence.to_tags() == old
    assert VersionTags.from_tags(old) == evidence
    assert sorted(old) == sorted(VERSION_KEYS + (["risk_assets.partition"] if partitioned else []))
    promoted = replace(
        evidence,
        candidate_version="credit_risk-candidates/3",
        promoted_by="approver",
        promotion_reason="automatic promotion: policy tier 'high' allows it",
    )
    old_promoted = _old_version_writer(partitioned=partitioned, promoted=True)
    assert promoted.to_tags() == old_promoted
    assert VersionTags.from_tags(old_promoted) == promoted
    assert set(old_promoted) - set(old) == set(PROMOTION_KEYS)


def test_readers_keep_their_messages_when_a_hash_is_missing():
    from risk_assets.registry._mlflow import load_version_model, verify_gate_evidence

    mv = SimpleNamespace(name="credit_risk", version="4", tags={"risk_assets.run_id": "x"})
    with pytest.raises(
        IntegrityError, match=r"^model version credit_risk/4 records no model hash$"
    ):
        load_version_model(client=None, mv=mv)
    i = _sample_inputs("none")
    run = SimpleNamespace(data=SimpleNamespace(tags=_new_writer(i).to_tags()))
    client = SimpleNamespace(get_run=lambda run_id: run)
    with pytest.raises(
        GateEvidenceError,
        match=r"^run r1 records no model hash; it is not a risk-assets candidate$",
    ):
        verify_gate_evidence(client, "r1", policy=None, policy_sha256=SHA["poli"])


@pytest.mark.parametrize("partitioning", ["partition", "window"])
def test_a_real_mlflow_store_reads_back_identically(tmp_path, partitioning):
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment(
        "credit_risk", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    i = _sample_inputs(partitioning)
    created = _new_writer(i)
    run = client.create_run(experiment_id, run_name="credit_risk-0f6c2a9e", tags=created.to_tags())
    run_id = run.info.run_id
    stored = client.get_run(run_id).data.tags
    assert {k: stored[k] for k in created.to_tags()} == created.to_tags()
    assert RunLineage.from_tags(stored) == created
    assert client.get_run(run_id).info.user_id == i.user
    # the tags set later, the way the pipeline sets them
    client.log_batch(
        run_id,
        tags=[
            RunTag(k, v)
            for k, v in RunLineage.model_tags(model_class=i.spec.estimator.class_path).items()
        ],
    )
    for key, value in {
        **RunLineage.model_tags(model_sha256=MODEL_SHA),
        **(RunLineage.window_tags(WINDOW_SHA) if i.window else {}),
        **RunLineage.registration_tags("credit_risk-candidates/1"),
    }.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id)
    expected = replace(_saved(created, i), candidate_version="credit_risk-candidates/1")
    assert RunLineage.from_tags(client.get_run(run_id).data.tags) == expected
    # an audit query on the published key finds the run
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`risk_assets.train_sha256` = '{SHA['trai']}'"
    )
    assert [r.info.run_id for r in found] == [run_id]


def test_link_and_verdict_keys_written():
    i = _sample_inputs("none")
    url = "http://127.0.0.1:3000/runs/" + i.context.run.run_id
    linked = replace(_saved(_new_writer(i), i), dagster_run_url=url)
    assert sorted(linked.to_tags()) == sorted(RUN_KEYS + LINK_KEYS)
    assert linked.to_tags()["risk_assets.dagster_run_url"] == url
    assert RunLineage.from_tags(linked.to_tags()) == linked
    verdict = RunVerdict(verdict="refused", failed_gates=["pii_free"], description="**Refused**")
    assert sorted(verdict.to_tags()) == VERDICT_KEYS
    # verdict tags are not lineage: reading one ignores the other
    both = {**linked.to_tags(), **verdict.to_tags()}
    assert RunLineage.from_tags(both) == linked
    assert RunVerdict.from_tags(both) == verdict
