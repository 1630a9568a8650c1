"""MLflow as the home of lineage and the gated model registry (a thin adapter over MlflowClient).

Layout: ``<name>-candidates`` holds every model that passed its blocking gates (alias
``challenger``); ``<name>`` holds production versions, copied from the candidates with
``copy_model_version`` (alias ``champion``). Tags use the ``risk_assets.`` prefix; lineage
tags are read and written through :class:`RunLineage` and :class:`VersionTags`; gate
evidence is a JSON tag per check, ``risk_assets.gate.<check>``, summarised per risk in
``risk_assets.risk.<id>``. What became of a run (registered, awaiting approval, blocked,
refused) is its :class:`RunVerdict`; a blocking data gate that fails leaves a refusal run
(:func:`refusal_run`), so MLflow records data that never reached training too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from risk_assets.catalogue import TRAINING_ASSETS, checks_of
from risk_assets.errors import GateEvidenceError, IntegrityError, RiskAssetsError
from risk_assets.registry._lineage import (
    _RUN_KEYS,
    TAG_PREFIX,
    RunLineage,
    RunVerdict,
    VersionTags,
)
from risk_assets.settings import current_user
from risk_assets.storage import as_path, is_local, location_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from risk_assets.policy import Policy
    from risk_assets.registry._snapshots import SnapshotRef

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateRecord",
    "Registration",
    "candidates_name",
    "find_champion",
    "find_refusal_run",
    "lineage",
    "log_gate",
    "log_gate_plot",
    "log_window",
    "read_window",
    "record_verdict",
    "refusal_run",
    "register_candidate",
    "risk_summary",
    "verify_gate_evidence",
]

GATE_TAG = TAG_PREFIX + "gate."
RISK_TAG = TAG_PREFIX + "risk."
CHALLENGER = "challenger"
CHAMPION = "champion"


#: MLflow's variable for the tracking URI (see _new_candidate_version).
_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def candidates_name(model_name: str) -> str:
    return f"{model_name}-candidates"


@dataclass(frozen=True)
class GateRecord:
    """The evidence one gate leaves: verdict, figures and what it was about."""

    check: str
    risk_id: str
    asset: str
    blocking: bool
    passed: bool
    value: float | None
    threshold: float | None
    summary: str
    subject_sha256: str
    policy_sha256: str
    suite_sha256: str | None = None
    dagster_run_id: str | None = None
    evaluated_at: float = field(default_factory=time.time)
    figures: Mapping[str, float | None] = field(default_factory=dict)
    sample_size: int | None = None
    #: what the gate compared against, e.g. the champion version ("none" when there was none)
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["figures"] = dict(self.figures)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def log_gate(client: MlflowClient, run_id: str, record: GateRecord) -> None:
    """Put a gate's verdict and figures on the MLflow run: one JSON tag plus metrics, and
    the summary of its risk over every check of that risk on the run
    (``risk_assets.risk.<id>``, see :func:`risk_summary`)."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(f"gate.{record.check}.passed", float(record.passed), now, 0)]
    if record.value is not None:
        metrics.append(Metric(f"gate.{record.check}.value", float(record.value), now, 0))
    for name, val in record.figures.items():
        if val is not None:
            metrics.append(Metric(f"gate.{record.check}.{_metric_key(name)}", float(val), now, 0))
    tags = [RunTag(GATE_TAG + record.check, json.dumps(record.to_dict(), sort_keys=True)[:7900])]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    _summarise_risk(client, run_id, record.risk_id)


def risk_summary(records: Mapping[str, GateRecord], risk_id: str) -> str | None:
    """The ``risk_assets.risk.<id>`` tag: a risk failed when any of its checks failed.

    ``passed: fair_across_age, fair_across_sex`` or ``FAILED: fair_across_age; passed:
    fair_across_sex`` (the failed checks first); None when the risk has no record.
    """
    mine = sorted((r for r in records.values() if r.risk_id == risk_id), key=lambda r: r.check)
    if not mine:
        return None
    failed = [r.check for r in mine if not r.passed]
    passed = [r.check for r in mine if r.passed]
    if not failed:
        return "passed: " + ", ".join(passed)
    text = "FAILED: " + ", ".join(failed)
    return (text + ("; passed: " + ", ".join(passed) if passed else ""))[:5000]


def _summarise_risk(client: MlflowClient, run_id: str, risk_id: str) -> None:
    """Write the risk's summary from the gate records on the run, then read them again until
    the summary no longer changes: checks of one risk logged at the same time (parallel
    steps) each end on a tag that counts every record written before it."""
    written = None
    for _ in range(5):
        summary = risk_summary(gate_records(client.get_run(run_id)), risk_id)
        if summary is None or summary == written:
            return
        client.set_tag(run_id, RISK_TAG + risk_id, summary)
        written = summary


def log_gate_plot(client: MlflowClient, run_id: str, check: str, png: bytes) -> str:
    """Put a gate's plot on the MLflow run as ``gates/<check>.png``; return that path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{check}.png"
        path.write_bytes(png)
        client.log_artifact(run_id, str(path), "gates")
    return f"gates/{check}.png"


def _metric_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


def gate_records(run: Any) -> dict[str, GateRecord]:
    out = {}
    for key, value in run.data.tags.items():
        if key.startswith(GATE_TAG):
            try:
                out[key[len(GATE_TAG) :]] = GateRecord.from_dict(json.loads(value))
            except (ValueError, TypeError):
                continue  # an unreadable record counts as missing evidence
    return out


def _failed_blocking(records: Mapping[str, GateRecord]) -> list[GateRecord]:
    return sorted(
        (r for r in records.values() if r.blocking and not r.passed),
        key=lambda r: (r.asset != "validated_data", r.check),
    )


def _describe_failures(verdict: str, failed: Sequence[GateRecord], run: Any) -> str:
    lineage = RunLineage.from_tags(run.data.tags)
    n = len(failed)
    gates = f"{n} blocking gate{'s' if n != 1 else ''}"
    if verdict == RunVerdict.REFUSED:
        snapshot = (lineage.snapshot_sha256 or "unknown")[:12]
        where = f" (partition {lineage.partition})" if lineage.partition else ""
        head = (
            f"**Refused**: {gates} failed on data snapshot `{snapshot}`{where}; "
            "no model was trained on it."
        )
    else:
        head = f"**Blocked**: {gates} failed on this candidate; no model version was registered."
    lines = [head, ""]
    lines += [f"- `{r.check}` ({r.risk_id}): {r.summary[:600]}" for r in failed]
    if lineage.dagster_run_url:
        lines += ["", f"Dagster run: {lineage.dagster_run_url}"]
    return "\n".join(lines)[:7900]


def record_verdict(client: MlflowClient, run_id: str, verdict: str) -> RunVerdict | None:
    """Mark a run ``blocked`` (a candidate) or ``refused`` (a refusal run) from its gate
    records: the verdict, the blocking gates that failed, a description naming them, and
    MLflow's ``FAILED`` status. Called again as more gates fail, it names them all.

    Returns:
        The verdict written, or None when no blocking gate on the run has failed.
    """
    from mlflow.entities import RunTag

    if verdict not in (RunVerdict.BLOCKED, RunVerdict.REFUSED):
        raise ValueError(f"a verdict from gate records is blocked or refused, not {verdict!r}")
    run = client.get_run(run_id)
    failed = _failed_blocking(gate_records(run))
    if not failed:
        return None
    written = RunVerdict(
        verdict=verdict,
        failed_gates=[r.check for r in failed],
        description=_describe_failures(verdict, failed, run),
    )
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in written.to_tags().items()])
    client.set_terminated(run_id, status=written.run_status)
    _verdict_on_logged_model(client, run, written)
    return written


def _verdict_on_logged_model(client: MlflowClient, run: Any, written: RunVerdict) -> None:
    """The verdict's tags also on the run's LoggedModel, where the Models tab shows them."""
    model_id = RunLineage.from_tags(run.data.tags).logged_model_id
    if model_id:
        client.set_logged_model_tags(model_id, written.to_tags())


def find_refusal_run(
    client: MlflowClient, experiment_id: str, *, dagster_run_id: str, snapshot_sha256: str
) -> str | None:
    """The refusal run of one Dagster run and data snapshot, or None when there is none.

    Raises:
        ValueError: an empty or quoted id (it would not select one run).
    """
    keys = {
        _RUN_KEYS["dagster_run_id"]: dagster_run_id,
        _RUN_KEYS["snapshot_sha256"]: snapshot_sha256,
    }
    for key, value in keys.items():
        if not value or "'" in value:
            raise ValueError(f"a refusal run is found by a plain {key}, not {value!r}")
    filter_string = " and ".join(
        [RunVerdict.search_filter(RunVerdict.REFUSED)]
        + [f"tags.`{key}` = '{value}'" for key, value in keys.items()]
    )
    found = client.search_runs(
        [experiment_id],
        filter_string=filter_string,
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


def refusal_run(
    client: MlflowClient, experiment_id: str, lineage: RunLineage, *, run_name: str
) -> tuple[str, bool]:
    """The refusal run of one Dagster run and data snapshot, created if there is none.

    Found by its tags (verdict ``refused``, ``dagster.run_id``, ``snapshot_sha256``), so
    every blocking data gate that fails in that Dagster run records onto the same run.

    Returns:
        The run id, and whether it was created now.

    Raises:
        ValueError: the lineage lacks the Dagster run id or the snapshot hash.
    """
    found = find_refusal_run(
        client,
        experiment_id,
        dagster_run_id=lineage.dagster_run_id or "",
        snapshot_sha256=lineage.snapshot_sha256 or "",
    )
    if found is not None:
        return found, False
    pending = RunVerdict(
        verdict=RunVerdict.REFUSED, description="**Refused**: recording the data gates."
    )
    # created with its verdict: a second gate of the same run finds it by its tags
    run = client.create_run(
        experiment_id, run_name=run_name, tags={**lineage.to_tags(), **pending.to_tags()}
    )
    return run.info.run_id, True


def _record_registration(client: MlflowClient, run_id: str, reg: Registration) -> RunVerdict:
    """Mark a registered candidate's run: ``registered`` with a production version,
    ``awaiting approval`` as challenger only; status ``FINISHED``."""
    from mlflow.entities import RunTag

    candidate = f"`{reg.candidates_model}/{reg.candidate_version}` (challenger)"
    if reg.version is not None:
        champion = " (champion)" if CHAMPION in reg.aliases else ""
        verdict = RunVerdict.REGISTERED
        text = f"**Registered** as {candidate}, in production as `{reg.model}/{reg.version}`"
        text += f"{champion}."
    else:
        verdict = RunVerdict.AWAITING_APPROVAL
        text = f"**Awaiting approval**: registered as {candidate}; not in production yet."
    if reg.note:
        text += f" ({reg.note})"
    written = RunVerdict(verdict=verdict, description=text)
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in written.to_tags().items()])
    client.set_terminated(run_id, status=written.run_status)
    _verdict_on_logged_model(client, client.get_run(run_id), written)
    return written


def _chain_agrees(
    audit: Any,
    run_id: str,
    required: Sequence[Any],
    subjects: Mapping[str, str | None],
    policy_sha256: str,
    window: Sequence[str] | None,
) -> None:
    """Every required gate's latest verdict in the audit trail, about this subject under
    this policy, must be a pass (see :func:`verify_gate_evidence`); with a training window,
    a data gate's verdict on every partition's snapshot (``window``).

    Raises:
        IntegrityError: the chain is broken, or a gate has no passing verdict in it.
    """
    verification = audit.verify()
    if not verification.ok:
        raise IntegrityError(f"registration refused: {verification.render()}")
    verdicts = audit.records(action="gate")
    disagree = []
    for c in required:
        asset = c.risk.control.asset
        about = window if asset == "validated_data" and window is not None else None
        for subject in about or [subjects.get(asset)]:
            mine = [
                r
                for r in verdicts
                if r.details.get("check") == c.name
                and r.hashes.get("subject_sha256") == subject
                and r.hashes.get("policy_sha256") == policy_sha256
                and (asset != "candidate_model" or r.run_id == run_id)
            ]
            where = f" on snapshot {str(subject)[:12]}" if about else ""
            if not mine:
                disagree.append(f"{c.name} ({c.risk.id}){where}: no verdict in the audit trail")
            elif not mine[-1].details.get("passed"):
                disagree.append(
                    f"{c.name} ({c.risk.id}){where}: the audit trail says failed "
                    f"(record {mine[-1].seq})"
                )
    if disagree:
        raise IntegrityError(
            f"registration refused: run {run_id}'s gate records in MLflow disagree with the "
            "audit trail:\n  " + "\n  ".join(disagree)
        )


def verify_gate_evidence(
    client: MlflowClient,
    run_id: str,
    *,
    policy: Policy,
    policy_sha256: str,
    suite_sha256: str | None = None,
    protected_attributes: Sequence[str] | None = None,
    audit: Any = None,
) -> tuple[Any, str]:
    """Check, for this exact candidate, that every blocking gate of the policy passed.

    Re-hashes the model artefact and compares it with the run's recorded hash; then each
    blocking gate's record must exist, have passed, be about this model (or this data
    snapshot for data gates) and have been evaluated under this policy; the expectation
    gate's record must name the suite of the run, and that suite must be ``suite_sha256``
    when it is given (the suite in force). Fairness checks are per protected attribute:
    ``protected_attributes`` (default: those the run recorded) says which are required.

    With ``audit`` (the audit log), the chain must hold and each gate's verdict must be
    there too: MLflow's copy is only trusted where the chain agrees (a model gate's record
    of this run and model, a data gate's record of this snapshot; a window's data gates are
    checked against its hash-verified window record).

    Returns:
        The MLflow run and the verified model SHA-256.

    Raises:
        GateEvidenceError: naming every gate whose evidence is missing, failed or stale.
        IntegrityError: the model artefact does not match its recorded hash, the audit
            trail is broken, or MLflow's gate records disagree with it.
    """
    run = client.get_run(run_id)
    recorded = RunLineage.from_tags(run.data.tags)
    actual = _verified_model_sha256(client, run_id, recorded)
    if recorded.policy_sha256 != policy_sha256:
        raise GateEvidenceError(
            f"run {run_id} was gated under policy {recorded.policy_sha256}, "
            f"not the policy in force ({policy_sha256})"
        )
    run_suite = recorded.suite_sha256
    if suite_sha256 is not None and run_suite != suite_sha256:
        raise GateEvidenceError(
            f"run {run_id} was validated with suite {run_suite}, "
            f"not the suite in force ({suite_sha256})"
        )
    if protected_attributes is None:
        protected_attributes = list(recorded.protected_attributes)
    try:
        required = [
            c
            for c in checks_of(policy, list(protected_attributes), assets=TRAINING_ASSETS)
            if c.blocking
        ]
    except ValueError as exc:
        raise GateEvidenceError(f"cannot tell which gates are required: {exc}") from None
    subjects = {"candidate_model": actual, "validated_data": recorded.snapshot_sha256}
    records = gate_records(run)
    problems: list[str] = []
    failed: list[str] = []
    for required_check in required:
        risk, check = required_check.risk, required_check.name
        problem = _record_problem(
            records.get(check),
            risk,
            subject=subjects.get(risk.control.asset),
            policy_sha256=policy_sha256,
            run_suite=run_suite,
        )
        if problem is not None:
            problems.append(f"{check} ({risk.id}): {problem}")
            failed.append(check)
    parts = None
    if recorded.window_sha256:
        parts = _window_problems(
            client, run_id, recorded, required, policy_sha256, problems, failed
        )
    if audit is not None:
        trusted = [c for c in required if c.name not in failed]  # MLflow says passed
        _chain_agrees(audit, run_id, trusted, subjects, policy_sha256, parts)
    if problems:
        raise GateEvidenceError(
            "registration refused, blocking gates lack passing evidence for this candidate:\n  "
            + "\n  ".join(problems),
            gates=failed,
        )
    return run, actual


def _link_logged_model(client: MlflowClient, run_id: str, name: str, version: Any) -> None:
    """List a registered version on the run's LoggedModel (MLflow's ``mlflow.modelVersions``
    tag, which its UI reads to show the model as registered and link the version)."""
    model_id = RunLineage.from_tags(client.get_run(run_id).data.tags).logged_model_id
    if not model_id:
        return
    tag = "mlflow.modelVersions"
    listed = json.loads(client.get_logged_model(model_id).tags.get(tag) or "[]")
    entry = {"name": name, "version": str(version)}
    if entry not in listed:
        client.set_logged_model_tags(model_id, {tag: json.dumps([*listed, entry])})


def download_model(client: MlflowClient, run_id: str, dst: str, path: str = "") -> str:
    """Download a candidate's model folder (or the file ``path`` in it) into ``dst``.

    The model lives in the run's MLflow 3 LoggedModel (``risk_assets.logged_model_id``);
    a run made before models were logged so keeps it under its own ``model/``.
    """
    model_id = RunLineage.from_tags(client.get_run(run_id).data.tags).logged_model_id
    if not model_id:
        return client.download_artifacts(run_id, f"model/{path}".rstrip("/"), dst)
    from mlflow.artifacts import download_artifacts

    location = client.get_logged_model(model_id).artifact_location.rstrip("/")
    return download_artifacts(
        artifact_uri=f"{location}/{path}".rstrip("/"),
        dst_path=dst,
        tracking_uri=client.tracking_uri,
    )


def _verified_model_sha256(client: MlflowClient, run_id: str, recorded: RunLineage) -> str:
    """The model artefact's SHA-256, which must be the one the run records. The whole
    model folder is checked as a loader would follow it (its MLmodel's flavours, paths and
    trusted types: :func:`check_model_dir`), not only the skops file's hash: a decision
    must not pass a model that MLflow's own loaders would run differently."""
    from risk_assets.registry._models import check_model_dir

    if not recorded.model_sha256:
        raise GateEvidenceError(
            f"run {run_id} records no model hash; it is not a risk-assets candidate"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = download_model(client, run_id, tmp)
        try:  # hashes the skops file: it is the recorded one when this returns
            check_model_dir(local, expected_sha256=recorded.model_sha256)
        except IntegrityError as exc:
            # the temporary download path means nothing to the reader: name the run
            where = str(Path(local).resolve())
            raise IntegrityError(
                f"run {run_id}: model artefact: {str(exc).replace(where, 'model')}"
            ) from None
    return recorded.model_sha256


def _window_problems(
    client: MlflowClient,
    run_id: str,
    recorded: RunLineage,
    required: list[Any],
    policy_sha256: str,
    problems: list[str],
    failed: list[str],
) -> list[str]:
    """A model trained on a window of partitions: every partition's own data-gate evidence
    must pass, not only the window's summary record. Adds to ``problems`` and ``failed``;
    returns the partitions' snapshot hashes."""
    doc = read_window(client, run_id, recorded.window_sha256)
    if doc.get("combined_sha256") != recorded.snapshot_sha256:
        problems.append("training window: its record names another combined snapshot")
    for required_check in required:
        risk, check = required_check.risk, required_check.name
        if risk.control.asset != "validated_data":
            continue
        for part in doc.get("partitions", []):
            problem = _record_problem(
                _as_record(part.get("gates", {}).get(check)),
                risk,
                subject=part.get("sha256"),
                policy_sha256=policy_sha256,
                run_suite=recorded.suite_sha256,
            )
            if problem is not None:
                problems.append(
                    f"{check} ({risk.id}) in partition {part.get('partition')}: {problem}"
                )
                if check not in failed:
                    failed.append(check)
    return [str(part.get("sha256")) for part in doc.get("partitions", [])]


def _as_record(d: Any) -> GateRecord | None:
    try:
        return None if d is None else GateRecord.from_dict(d)
    except (TypeError, ValueError):
        return None  # an unreadable record counts as missing evidence


def _record_problem(
    rec: GateRecord | None,
    risk: Any,
    *,
    subject: str | None,
    policy_sha256: str,
    run_suite: str | None,
) -> str | None:
    """Why a gate record does not count as passing evidence (None when it does)."""
    if rec is None:
        return "no evidence"
    if not rec.passed:
        return f"failed: {rec.summary}"
    if rec.subject_sha256 != subject:
        return f"evidence is about another {risk.control.asset}"
    if rec.policy_sha256 != policy_sha256:
        return "evidence is from another policy"
    if (rec.suite_sha256 is not None or risk.control.entry.uses_suite) and (
        not run_suite or rec.suite_sha256 != run_suite
    ):
        return "evidence is from another expectation suite"
    return None


WINDOW_ARTIFACT = "lineage/window.json"


def log_window(client: MlflowClient, run_id: str, doc: Mapping[str, Any]) -> str:
    """Put a training window (its partitions, snapshots and their data-gate records) on the
    run as ``lineage/window.json``; return the SHA-256 of the bytes, which the run's tag
    ``window_sha256`` records so that a changed file is noticed."""
    data = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(WINDOW_ARTIFACT).name
        path.write_bytes(data)
        client.log_artifact(run_id, str(path), str(Path(WINDOW_ARTIFACT).parent))
    return hashlib.sha256(data).hexdigest()


def read_window(client: MlflowClient, run_id: str, expected_sha256: str) -> dict[str, Any]:
    """The run's training window record, verified against its recorded hash.

    Raises:
        GateEvidenceError: the record is missing or changed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, WINDOW_ARTIFACT, tmp)
        except Exception as exc:  # noqa: BLE001 - any failure to fetch is missing evidence
            raise GateEvidenceError(
                f"run {run_id}: training window record {WINDOW_ARTIFACT} cannot be read "
                f"({type(exc).__name__})"
            ) from None
        data = Path(local).read_bytes()
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise GateEvidenceError(
            f"run {run_id}: training window record {WINDOW_ARTIFACT} changed since training"
        )
    return json.loads(data)


@dataclass(frozen=True)
class Registration:
    candidates_model: str
    candidate_version: str
    model: str
    version: str | None
    aliases: list[str]
    model_sha256: str
    run_id: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ensure_registered_model(client: MlflowClient, name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=description)
        except MlflowException:
            client.get_registered_model(name)  # created concurrently: fine if it exists now


def _wait_ready(client: MlflowClient, name: str, version: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RiskAssetsError(f"model version {name}/{version} is {mv.status}")
        time.sleep(0.2)


def _create_version(
    client: MlflowClient,
    name: str,
    *,
    source: str,
    run_id: str,
    model_id: str | None,
    tags: Mapping[str, str],
    description: str,
) -> Any:
    """A new version of ``name``, created with all its tags in one call (a version is never
    seen half-tagged), and READY.

    A registry store in this process resolves a ``models:/`` source with a client of the
    process's tracking URI: it is made ours for the call. On leaving, MLflow restores a URI
    this process never set by unsetting MLFLOW_TRACKING_URI: the variable is put back as
    it was, or the next step a long-lived process runs (a celery worker's) would fall back
    to the embedded SQLite store.
    """
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get(_TRACKING_URI_ENV)
    try:
        with _use_tracking_uri(client.tracking_uri):
            mv = client.create_model_version(
                name,
                source=source,
                run_id=run_id,
                model_id=model_id,
                tags=dict(tags),
                description=description,
            )
    finally:
        if saved is None:
            os.environ.pop(_TRACKING_URI_ENV, None)
        else:
            os.environ[_TRACKING_URI_ENV] = saved
    return _wait_ready(client, name, mv.version)


def _new_candidate_version(client: MlflowClient, cand: str, run: Any, evidence: Any) -> Any:
    """A new version of ``cand`` made from the run's LoggedModel (so that MLflow links the
    two; a run made before models were logged: from its ``model/``), with the evidence."""
    run_id = run.info.run_id
    model_id = RunLineage.from_tags(run.data.tags).logged_model_id
    mv = _create_version(
        client,
        cand,
        source=f"models:/{model_id}" if model_id else f"{run.info.artifact_uri}/model",
        run_id=run_id,
        model_id=model_id,
        tags=evidence.to_tags(),
        description=f"Gated candidate from run {run_id}",
    )
    _link_logged_model(client, run_id, cand, mv.version)
    return mv


def _version_tags(
    run: Any, model_sha: str, policy: Policy, policy_sha256: str, records: dict, who: str
) -> VersionTags:
    """The evidence tags of a version registered from ``run``."""
    run_lineage = RunLineage.from_tags(run.data.tags)
    return VersionTags(
        model_sha256=model_sha,
        run_id=run.info.run_id,
        policy_sha256=policy_sha256,
        snapshot_sha256=run_lineage.snapshot_sha256 or "",
        suite_sha256=run_lineage.suite_sha256 or "",
        gates_passed=sorted(k for k, r in records.items() if r.passed),
        registered_by=who,
        policy_tier=policy.tier,
        partition=run_lineage.partition or None,
        window=run_lineage.window or None,
    )


def register_candidate(
    client: MlflowClient,
    run_id: str,
    *,
    model_name: str,
    policy: Policy,
    policy_sha256: str,
    suite_sha256: str | None = None,
    protected_attributes: Sequence[str] | None = None,
    registered_by: str | None = None,
    audit: Any = None,
) -> Registration:
    """Register a gated candidate, refusing it unless its gate evidence checks out.

    Creates (or reuses) a version of ``<model_name>-candidates``, records it in the audit
    trail, then gives it the ``challenger`` alias; if the policy allows automatic promotion,
    copies it into ``<model_name>`` and moves ``champion``, but only while the champion is
    still the one the champion gate compared the candidate with (see :func:`_promote`).

    Idempotent and recoverable, keyed on (MLflow run, model SHA-256; the run names the
    partition): registering the same run again, after a success or after a crash at any
    point, completes what is missing and never makes a second version of either model.
    A version is created with all its evidence tags at once, and an alias only ever moves
    onto a version whose record is in the audit trail.

    Raises:
        GateEvidenceError, IntegrityError: see :func:`verify_gate_evidence`.
    """
    run, model_sha = verify_gate_evidence(
        client,
        run_id,
        policy=policy,
        policy_sha256=policy_sha256,
        suite_sha256=suite_sha256,
        protected_attributes=protected_attributes,
        audit=audit,
    )
    who = registered_by or current_user()
    cand = candidates_name(model_name)
    _ensure_registered_model(client, cand, f"Gated candidates of {model_name} (risk-assets)")
    records = gate_records(run)
    existing = _versions_of(client, cand, run_id, model_sha)
    evidence = _version_tags(run, model_sha, policy, policy_sha256, records, who)
    mv = existing[0] if existing else _new_candidate_version(client, cand, run, evidence)
    hashes = _evidence_hashes(evidence)
    details = {"gates_passed": list(evidence.gates_passed)}
    if audit is not None:
        _record_once(
            audit, client, "registration", cand, str(mv.version), who, run_id, hashes, details
        )
    client.set_registered_model_alias(cand, CHALLENGER, mv.version)
    for key, value in RunLineage.registration_tags(f"{cand}/{mv.version}").items():
        client.set_tag(run_id, key, value)
    version = None
    aliases = [CHALLENGER]
    note = None
    if policy.promotion.auto_promote:
        reason = f"automatic promotion: policy tier {policy.tier!r} allows it"

        def record(pv: str, replaced: str) -> Any:
            return audit.append(
                "promotion",
                actor=who,
                model=model_name,
                version=pv,
                run_id=run_id,
                hashes=hashes,
                reason=reason,
                details={**details, "from": f"{cand}/{mv.version}", "replaced": replaced},
            )

        version, promoted, note = _promote(
            client,
            cand,
            mv.version,
            model_name,
            evidence,
            run_id,
            model_sha,
            compared_with=_compared_champion(policy, records),
            reason=reason,
            audit=audit,
            record=None if audit is None else record,
        )
        if promoted:
            aliases.append(CHAMPION)
    registration = Registration(
        candidates_model=cand,
        candidate_version=str(mv.version),
        model=model_name,
        version=None if version is None else str(version),
        aliases=aliases,
        model_sha256=model_sha,
        run_id=run_id,
        note=note,
    )
    try:
        _record_registration(client, run_id, registration)
    except Exception as exc:  # noqa: BLE001 - a label on a decision already made
        # the version is registered (and maybe champion): a failed label must not report
        # the registration as failed; lineage still reads the version's own tags
        logging.getLogger(__name__).warning(
            f"run {run_id}: registered as {registration.candidates_model}/"
            f"{registration.candidate_version}, but its verdict tag was not written "
            f"({type(exc).__name__}: {exc})"
        )
    return registration


#: Version tags that anchor a version's record of the audit trail (sequence number, hash):
#: records cut from the end of the log are caught against them.
AUDIT_SEQ_TAG = TAG_PREFIX + "audit_seq"
AUDIT_HASH_TAG = TAG_PREFIX + "audit_hash"


def _anchor(client: MlflowClient, name: str, version: str, record: Any) -> None:
    client.set_model_version_tag(name, version, AUDIT_SEQ_TAG, str(record.seq))
    client.set_model_version_tag(name, version, AUDIT_HASH_TAG, record.hash)


def audit_anchors(client: MlflowClient) -> dict[int, str]:
    """The audit records anchored on registered versions (sequence number -> hash)."""
    anchors = {}
    for mv in client.search_model_versions():
        seq, digest = mv.tags.get(AUDIT_SEQ_TAG), mv.tags.get(AUDIT_HASH_TAG)
        if seq and digest and seq.isdigit():
            anchors[int(seq)] = digest
    return anchors


def _evidence_hashes(evidence: Any) -> dict[str, str]:
    return {
        "model_sha256": evidence.model_sha256,
        "snapshot_sha256": evidence.snapshot_sha256,
        "policy_sha256": evidence.policy_sha256,
        "suite_sha256": evidence.suite_sha256,
    }


def recorded_decision(audit: Any, action: str, name: str, version: str) -> Any | None:
    """The audit trail's ``action`` record of version ``name/version``, or None."""
    found = [r for r in audit.records(model=name, version=version) if r.action == action]
    return found[-1] if found else None


def last_decision(audit: Any, model_name: str) -> Any | None:
    """The latest promotion or rollback of ``model_name`` in the audit trail: the version
    that should be its champion (None when there was none)."""
    found = [r for r in audit.records(model=model_name) if r.action in ("promotion", "rollback")]
    return found[-1] if found else None


def _record_once(
    audit: Any,
    client: MlflowClient,
    action: str,
    name: str,
    version: str,
    who: str,
    run_id: str,
    hashes: Mapping[str, str],
    details: Mapping[str, Any],
    reason: str | None = None,
) -> Any:
    """The ``action`` record of a version in the audit trail, appended unless the trail
    already has it (a registration repeated, or resumed after a crash), and anchored."""
    rec = recorded_decision(audit, action, name, version)
    if rec is None:
        rec = audit.append(
            action,
            actor=who,
            model=name,
            version=version,
            run_id=run_id,
            hashes=hashes,
            reason=reason,
            details=details,
        )
    mv = client.get_model_version(name, version)
    if mv.tags.get(AUDIT_SEQ_TAG) != str(rec.seq):
        _anchor(client, name, version, rec)
    return rec


def _versions_of(
    client: MlflowClient, name: str, run_id: str, model_sha: str, source: str | None = None
) -> list[Any]:
    """Versions of ``name`` already made from this run and this exact model (or, with
    ``source``, from that source: a production copy of one candidate version)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        return []
    return sorted(
        (
            mv
            for mv in found
            if VersionTags.from_tags(mv.tags).model_sha256 == model_sha
            or (source is not None and mv.source == source)
        ),
        key=lambda mv: int(mv.version),
    )


def _compared_champion(policy: Policy, records: Mapping[str, GateRecord]) -> str | None:
    """The champion the champion gate compared with ("none"), or None without that gate."""
    risk = next((r for r in policy.controlled_risks() if r.control.entry.compares_champion), None)
    if risk is None:
        return None
    rec = records.get(risk.control.check_name)
    return rec.reference if rec is not None and rec.reference else "unknown"


def _promote(
    client,
    cand,
    cand_version,
    model_name,
    evidence,
    run_id,
    model_sha,
    *,
    compared_with,
    reason,
    promoted_by: str | None = None,
    audit: Any = None,
    record: Any = None,
) -> tuple[str | None, bool, str | None]:
    """Copy the candidate into production and move ``champion``; see register_candidate.

    ``evidence`` is the candidate version's :class:`VersionTags`; the production version
    is created with the same tags plus where it was promoted from, by whom and why.
    ``record(version, replaced)`` appends the promotion's audit record (``replaced``: the
    champion it replaces, or "none"); it is written and anchored before the alias moves.
    With ``audit``, the whole decision holds its :meth:`decisions` lock, so two promotions
    of one model never interleave: the second sees the first's champion.

    Resumes a promotion a crash interrupted: a production version of this candidate made
    without its record is re-decided (and removed when it may no longer be promoted); one
    whose record is the model's last decision gets the alias it was promised.
    """
    from contextlib import nullcontext

    _ensure_registered_model(client, model_name, f"Production model {model_name} (risk-assets)")
    source = f"models:/{cand}/{cand_version}"
    with audit.decisions() if audit is not None else nullcontext():
        current = find_champion(client, model_name)
        current_ref = "none" if current is None else f"{current.name}/{current.version}"
        existing = _versions_of(client, model_name, run_id, model_sha, source=source)
        pv = existing[0] if existing else None
        if pv is not None:
            if current is not None and str(current.version) == str(pv.version):
                return str(pv.version), True, None
            done = audit is not None and recorded_decision(
                audit, "promotion", model_name, str(pv.version)
            )
            if done or audit is None:
                last = last_decision(audit, model_name) if audit is not None else None
                if last is None or last.version != str(pv.version):
                    return str(pv.version), False, "already in production"
                _anchor(client, model_name, str(pv.version), done)
                client.set_registered_model_alias(model_name, CHAMPION, pv.version)
                return str(pv.version), True, "completed a promotion a crash interrupted"
        if compared_with is not None and compared_with != current_ref:
            if pv is not None:  # made by a promotion that never reached its record
                client.delete_model_version(model_name, pv.version)
            return (
                None,
                False,
                (
                    f"not promoted: the champion gate compared with {compared_with}, "
                    f"but the champion is now {current_ref}; re-run the gates"
                ),
            )
        promoted = replace(
            evidence,
            candidate_version=f"{cand}/{cand_version}",
            promoted_by=promoted_by or current_user(),
            promotion_reason=reason,
        )
        if pv is None:
            pv = _create_version(
                client,
                model_name,
                source=source,
                run_id=run_id,
                model_id=getattr(client.get_model_version(cand, cand_version), "model_id", None),
                tags=promoted.to_tags(),
                description=f"Promoted from {cand}/{cand_version}",
            )
        else:
            for key, value in promoted.to_tags().items():
                if pv.tags.get(key) != value:
                    client.set_model_version_tag(model_name, pv.version, key, value)
        _list_on_logged_model(client, run_id, model_name, pv.version)
        if record is not None:
            _anchor(client, model_name, str(pv.version), record(str(pv.version), current_ref))
        client.set_registered_model_alias(model_name, CHAMPION, pv.version)
    return str(pv.version), True, None


def _list_on_logged_model(client: MlflowClient, run_id: str, name: str, version: Any) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _link_logged_model(client, run_id, name, version)
    except MlflowException as exc:
        # the listing MLflow's UI shows on the logged model: an approver may write the
        # production model without being allowed to write the pipeline's experiment
        logging.getLogger(__name__).warning(
            f"{name}/{version} not listed on its logged model ({exc.error_code})"
        )


def find_champion(client: MlflowClient, model_name: str) -> Any | None:
    """The model version under the ``champion`` alias, or None when there is none.

    Only "no such registered model" and "no such alias" mean "no champion"; any other
    error (an unreachable store, a permission error) is raised, so a gate fails closed.
    """
    from mlflow.exceptions import MlflowException

    try:
        reg = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if CHAMPION not in (reg.aliases or {}):
        return None
    return client.get_model_version_by_alias(model_name, CHAMPION)


def latest_gate_results(client: MlflowClient, experiment: str) -> tuple[str | None, dict]:
    """Each gate's latest record in an experiment: (latest run id, {check: record}).

    The latest candidate run's records, replaced by those of refusal runs made after it: a
    refusal run holds only data gates, and a model gate's last result is still the
    candidate's.
    """
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None, {}
    runs = client.search_runs(
        [exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=50
    )
    if not runs:
        return None, {}
    results: dict[str, GateRecord] = {}
    for run in runs:
        for check, record in gate_records(run).items():
            results.setdefault(check, record)
        if RunVerdict.from_tags(run.data.tags).verdict != RunVerdict.REFUSED:
            break  # a candidate run: it ran every gate that was run
    return runs[0].info.run_id, results


def reference_version(client: MlflowClient, model_name: str) -> Any | None:
    """The version whose training data is the reference window: the champion, else the
    latest registered candidate, else None (a first model)."""
    from mlflow.exceptions import MlflowException

    champion = find_champion(client, model_name)
    if champion is not None:
        return champion
    try:
        versions = client.search_model_versions(f"name='{candidates_name(model_name)}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return max(versions, key=lambda v: int(v.version)) if versions else None


def chain_model_sha256(audit: Any, name: str, version: str | int) -> str | None:
    """The model hash the audit trail recorded for a registered version (its registration
    or promotion), or None when the trail has no record of it (a version registered before
    the trail existed, and not anchored).

    Raises:
        IntegrityError: the chain is broken, or the version is anchored on a record the
            chain does not have.
    """
    verification = audit.verify()
    if not verification.ok:
        raise IntegrityError(f"{name}/{version}: {verification.render()}")
    records = [
        r
        for r in audit.records(model=name, version=version)
        if r.action in ("registration", "promotion") and r.hashes.get("model_sha256")
    ]
    return records[-1].hashes["model_sha256"] if records else None


def load_version_model(client: MlflowClient, mv: Any, audit: Any = None) -> Any:
    """Load a registered version's model safely, verifying its SHA-256 against the audit
    trail's record of the version (the version's own tag must agree: a replaced artefact
    with a rewritten tag is refused), or against its tag for a version the trail predates.

    Raises:
        IntegrityError: a hash differs, the version is anchored on a missing record, or the
            audit trail is broken.
    """
    from risk_assets.audit import open_audit_log
    from risk_assets.registry._models import load_model_dir

    expected = VersionTags.from_tags(mv.tags).model_sha256
    if not expected:
        raise IntegrityError(f"model version {mv.name}/{mv.version} records no model hash")
    chained = chain_model_sha256(audit or open_audit_log(), mv.name, str(mv.version))
    if chained is None and mv.tags.get(AUDIT_SEQ_TAG):
        raise IntegrityError(
            f"model version {mv.name}/{mv.version} is anchored on audit record "
            f"{mv.tags[AUDIT_SEQ_TAG]}, which the audit trail does not have"
        )
    if chained is not None and chained != expected:
        raise IntegrityError(
            f"model version {mv.name}/{mv.version}: its tag says model SHA-256 {expected}, "
            f"the audit trail recorded {chained} (the tag was rewritten)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = download_model(client, mv.run_id, tmp)
        return load_model_dir(local, expected_sha256=expected)


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``MODEL``, ``MODEL@ALIAS`` or ``MODEL/VERSION`` into (model, alias, version)."""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        if version.isdigit():
            return name, None, version
    return ref, None, None


def _resolve_version(client: MlflowClient, ref: str) -> Any:
    """The model version ``ref`` names: ``MODEL@ALIAS``, ``MODEL/VERSION``, or ``MODEL`` (its
    champion, else its latest version)."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_ref(ref)
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version:
            return client.get_model_version(name, version)
        mv = find_champion(client, name)
        if mv is None:
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise RiskAssetsError(f"no registered model versions named {name!r}")
            mv = max(versions, key=lambda v: int(v.version))
        return mv
    except MlflowException as exc:
        raise RiskAssetsError(f"cannot find {ref!r} in the model registry: {exc.message}") from None


def _datasets(run: Any) -> list[dict[str, Any]]:
    out = []
    for di in run.inputs.dataset_inputs if run.inputs else []:
        ds = di.dataset
        context = next((t.value for t in di.tags if t.key == "mlflow.data.context"), None)
        try:
            source = json.loads(ds.source)
        except ValueError:
            source = {"uri": ds.source}
        out.append({"name": ds.name, "context": context, "digest": ds.digest, **source})
    return out


def _gate_rows(run: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": r.check,
            "risk_id": r.risk_id,
            "asset": r.asset,
            "passed": r.passed,
            "blocking": r.blocking,
            "value": r.value,
            "threshold": r.threshold,
            "summary": r.summary,
            "evaluated_at": _iso(r.evaluated_at),
        }
        for r in sorted(
            gate_records(run).values(), key=lambda r: (r.asset != "validated_data", r.check)
        )
    ]


def _window_lineage(client: MlflowClient, run: Any, recorded: RunLineage) -> dict | None:
    if not recorded.window_sha256:
        return None
    try:
        doc = read_window(client, run.info.run_id, recorded.window_sha256)
    except GateEvidenceError as exc:
        return {"span": recorded.window, "error": str(exc)}
    return {
        "span": recorded.window,
        "partitions": [
            {
                "partition": w.get("partition"),
                "snapshot_sha256": w.get("sha256"),
                "rows": w.get("rows"),
                "source": w.get("source"),
            }
            for w in doc.get("partitions", [])
        ],
    }


def _audit_lineage(audit: Any, mv: Any, run: Any, aliases: list[str]) -> dict[str, Any]:
    """What the audit trail says of a version, and where MLflow disagrees with it."""
    verification = audit.verify()
    out: dict[str, Any] = {"log": str(audit.path), "chain": verification.render()}
    warnings = [] if verification.ok else [verification.render()]
    tags = VersionTags.from_tags(mv.tags)
    names = {
        mv.name,
        *([tags.candidate_version.rpartition("/")[0]] if tags.candidate_version else []),
    }
    decisions = [
        r
        for r in audit.records()
        if r.action != "gate"
        and (
            (r.model == mv.name and r.version == str(mv.version))
            or (tags.candidate_version and f"{r.model}/{r.version}" == tags.candidate_version)
        )
        and r.model in names
    ]
    out["decisions"] = [
        {
            "seq": r.seq,
            "when": r.timestamp,
            "action": r.action,
            "by": r.actor,
            "version": f"{r.model}/{r.version}",
            "reason": r.reason,
        }
        for r in decisions
    ]
    chained = next(
        (
            r.hashes.get("model_sha256")
            for r in reversed(decisions)
            if r.action in ("registration", "promotion") and r.model == mv.name
        ),
        None,
    )
    if chained is None:
        warnings.append("the audit trail has no registration or promotion of this version")
    elif chained != tags.model_sha256:
        warnings.append(
            f"model SHA-256: the tag says {tags.model_sha256}, the audit trail {chained}"
        )
    if CHAMPION in aliases and not any(
        r.action in ("promotion", "rollback") and r.model == mv.name for r in decisions
    ):
        warnings.append(
            "champion, but no promotion or rollback of it is in the audit trail "
            "(the alias was moved outside risk-assets)"
        )
    verdicts = {}
    for r in audit.records(run_id=run.info.run_id, action="gate"):
        verdicts[r.details.get("check")] = r
    for name, rec in gate_records(run).items():
        chain = verdicts.get(name)
        if chain is not None and bool(chain.details.get("passed")) != bool(rec.passed):
            said = "passed" if rec.passed else "failed"
            warnings.append(
                f"gate {name}: MLflow says {said}, the audit trail says "
                f"{'passed' if chain.details.get('passed') else 'failed'} (record {chain.seq})"
            )
    out["warnings"] = warnings
    return out


def lineage(client: MlflowClient, ref: str, audit: Any = None) -> dict[str, Any]:
    """Answer "why is this model here?" from MLflow, and with ``audit`` say where what
    MLflow shows disagrees with the audit trail (``info["audit"]["warnings"]``).

    Follows version -> run -> data snapshots -> suite and policy hashes -> every gate
    result -> code version -> when and by whom. ``ref`` is ``MODEL``, ``MODEL@ALIAS`` or
    ``MODEL/VERSION``; a bare ``MODEL`` means its champion, else its latest version.
    """
    mv = _resolve_version(client, ref)
    reg = client.get_registered_model(mv.name)
    aliases = sorted(a for a, v in (reg.aliases or {}).items() if str(v) == str(mv.version))
    run = client.get_run(mv.run_id)
    recorded = RunLineage.from_tags(run.data.tags)
    verdict = RunVerdict.from_tags(run.data.tags)
    version_tags = VersionTags.from_tags(mv.tags)
    return {
        "model": mv.name,
        "version": str(mv.version),
        "aliases": aliases,
        "model_sha256": version_tags.model_sha256,
        "candidate_version": version_tags.candidate_version,
        "registered_at": _iso(mv.creation_timestamp / 1000),
        "registered_by": version_tags.registered_by or mv.user_id or None,
        "promoted_by": version_tags.promoted_by,
        "promotion_reason": version_tags.promotion_reason,
        "run": {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "started_at": _iso(run.info.start_time / 1000),
            "user": recorded.user or run.info.user_id,
            "dagster_run_id": recorded.dagster_run_id,
            "dagster_run_url": recorded.dagster_run_url,
            "partition": recorded.dagster_partition,
            "status": run.info.status,
            "verdict": verdict.verdict,
        },
        "window": _window_lineage(client, run, recorded),
        "data": {
            "source": recorded.source,
            "snapshot_sha256": recorded.snapshot_sha256,
            "raw_snapshot_sha256": recorded.raw_snapshot_sha256,
            "split": {
                k: run.data.params.get(f"split.{k}") for k in ("seed", "test_size", "stratified")
            },
            "datasets": _datasets(run),
        },
        "suite_sha256": recorded.suite_sha256,
        "policy_sha256": recorded.policy_sha256,
        "policy": recorded.policy_name,
        "spec_sha256": recorded.spec_sha256,
        "code_version": recorded.code_version,
        "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("test.")},
        "gates": _gate_rows(run),
        "report": _report_artifact(client, run.info.run_id),
        **({"audit": _audit_lineage(audit, mv, run, aliases)} if audit is not None else {}),
    }


def _report_artifact(client: MlflowClient, run_id: str) -> str | None:
    """The run's risk report (HTML) as an artefact URI, or None when it has none."""
    files = {f.path for f in client.list_artifacts(run_id, "report")}
    if "report/risk_report.html" not in files:
        return None
    return f"{client.get_run(run_id).info.artifact_uri}/report/risk_report.html"


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


#: Arrow type ids (``pyarrow.types``) as MLflow column types; anything else is a string.
_MLFLOW_TYPES = (
    ("is_boolean", "boolean"),
    ("is_int64", "long"),
    ("is_integer", "integer"),
    ("is_float32", "float"),
    ("is_floating", "double"),
    ("is_timestamp", "datetime"),
    ("is_binary", "binary"),
)


def _colspec(ref: SnapshotRef) -> list[dict[str, Any]]:
    """The snapshot's columns as MLflow's column specification (the schema the dataset
    drawer of the MLflow UI reads), from the Parquet file's own schema: no data is read.
    A snapshot that cannot be read is described by its column names only."""
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    path = as_path(ref.path)
    try:
        if is_local(path):
            schema = pq.read_schema(path)
        else:
            with path.open("rb") as f:
                schema = pq.read_schema(f)
    except (OSError, ValueError):
        return [{"name": c, "type": "string", "required": False} for c in ref.columns]

    def kind(arrow_type: Any) -> str:
        return next((t for test, t in _MLFLOW_TYPES if getattr(pat, test)(arrow_type)), "string")

    return [
        {"name": f.name, "type": kind(f.type), "required": not f.nullable}
        for f in schema
        if f.name in ref.columns
    ]


def snapshot_dataset_input(ref: SnapshotRef, *, name: str, context: str, origin: str) -> Any:
    """An MLflow DatasetInput whose digest is our SHA-256 (MLflow stores at most 36 chars),
    with the schema and profile the MLflow UI's dataset drawer reads."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = json.dumps(
        {
            "sha256": ref.sha256,
            "scheme": ref.scheme,
            "uri": location_uri(ref.path),
            "origin": origin,
            "rows": ref.rows,
        }
    )
    schema = json.dumps({"mlflow_colspec": _colspec(ref)})
    return DatasetInput(
        dataset=Dataset(
            name=name,
            digest=ref.sha256[:36],
            source_type="risk_assets",
            source=source,
            schema=schema,
            profile=json.dumps({"num_rows": ref.rows}),
        ),
        tags=[InputTag("mlflow.data.context", context)],
    )


#: What MLflow's store says when another run inserted the same dataset first.
_DATASET_RACE = ("UNIQUE constraint failed: datasets.", "UniqueViolation", "duplicate key value")


def log_dataset_inputs(client: MlflowClient, run_id: str, datasets: Sequence[Any]) -> None:
    """``client.log_inputs(run_id, datasets=...)``, safe when runs log the same snapshot at
    once. MLflow's SQL store looks a dataset up and inserts it if absent in one transaction
    but without a lock, so the second of two runs inserting the same (experiment, name,
    digest) fails on the unique key and its transaction is rolled back; the dataset then
    exists, and logging again links it. Retried at most ``attempts`` times on that error
    only; any other error, or the race still lost after them, is raised."""
    from mlflow.exceptions import MlflowException

    attempts = 5
    for attempt in range(1, attempts + 1):
        try:
            client.log_inputs(run_id, datasets=list(datasets))
            return
        except MlflowException as exc:
            text = str(exc)
            if attempt == attempts or not (
                any(m in text for m in _DATASET_RACE) and "datasets" in text
            ):
                raise
            time.sleep(0.05 * attempt)


def iter_param_items(prefix: str, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for key, value in sorted(params.items()):
        text = json.dumps(value) if not isinstance(value, str) else value
        yield f"{prefix}{key}", text[:6000]
