"""Human decisions on a challenger: approve, reject, roll back, and what awaits one.

A challenger (a version of ``<model>-candidates`` that passed every blocking gate) becomes
champion when as many people as its policy's tier asks for have approved it
(``promotion.approvals``), under maker-checker: whoever trained it cannot approve it, and
nobody approves twice; two approvals come from two roles when the policy's approvers name
more than one. Every decision is a record of the audit trail (:mod:`risk_assets.audit`),
which is what counts: an approval is counted only from the chain, never from a tag.

An approval records the evidence it saw: a fingerprint over the gate records, the model,
data, policy and suite hashes. Before anything is recorded the evidence is verified again
(the model artefact against its hash, every gate against the chain), and an approval is
refused when the evidence differs from what an earlier approval of the same version saw,
or from the fingerprint the approver was shown (``expect_evidence``).

With the embedded stores, identity is the local user: approvals are advisory, and say so.
Against an MLflow server with authentication, MLflow decides who may write the production
model: an approval that would promote is refused, before anything is recorded, when MLflow
refuses the approver a write to it. A write MLflow refuses later in the promotion (to the
candidate's run, say) is refused too, saying that the approval is recorded and nothing was
promoted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from risk_assets.errors import ApprovalError, IntegrityError
from risk_assets.registry._lineage import RunLineage, VersionTags
from risk_assets.registry._mlflow import (
    CHAMPION,
    _compared_champion,
    _promote,
    candidates_name,
    find_champion,
    gate_records,
    recorded_decision,
    verify_gate_evidence,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "Decision",
    "Pending",
    "approve",
    "history_of",
    "pending",
    "publish_report",
    "reject",
    "rollback",
]


@dataclass(frozen=True)
class Decision:
    """What a decision did: the audit record it wrote, and the production version when the
    challenger became champion."""

    action: str
    model: str
    version: str
    seq: int
    approvals: int = 0
    required: int = 0
    production_version: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Pending:
    """A challenger awaiting a decision."""

    model: str
    version: str
    run_id: str
    maker: str | None
    evidence: str
    gates_passed: list[str]
    approvals: list[dict[str, Any]] = field(default_factory=list)
    required: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _production_name(model: str) -> str:
    suffix = candidates_name("")
    return model[: -len(suffix)] if model.endswith(suffix) else model


def _policy_of_run(run: Any) -> tuple[Any, str]:
    """The policy the run was gated under: the one its spec names, which must still hash to
    what the run recorded; refused when the spec is gone or the policy changed."""
    from risk_assets.errors import ConfigError
    from risk_assets.policy import load_policy
    from risk_assets.spec import load_spec

    lineage = RunLineage.from_tags(run.data.tags)
    if not lineage.spec_path:
        raise ApprovalError(f"run {run.info.run_id} records no pipeline spec")
    try:
        loaded = load_policy(load_spec(lineage.spec_path).policy_path)
    except (ConfigError, OSError) as exc:
        raise ApprovalError(f"the policy of run {run.info.run_id}: {exc}") from None
    if loaded.sha256 != lineage.policy_sha256:
        raise ApprovalError(
            f"{loaded.path} changed since run {run.info.run_id} was gated "
            f"({lineage.policy_sha256} then, {loaded.sha256} now): re-run the pipeline"
        )
    return loaded.policy, loaded.sha256


def evidence_fingerprint(run: Any, tags: VersionTags) -> str:
    """SHA-256 over what an approver decides on: every gate record of the run and the
    model, data, policy and suite hashes."""
    records = {k: r.to_dict() for k, r in sorted(gate_records(run).items())}
    body = {
        "gates": records,
        "model_sha256": tags.model_sha256,
        "snapshot_sha256": tags.snapshot_sha256,
        "policy_sha256": tags.policy_sha256,
        "suite_sha256": tags.suite_sha256,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _trusted(audit: Any) -> list[Any]:
    """Every record of the chain, once it has verified: no decision rests on a broken one.

    Raises:
        IntegrityError: the chain is broken (naming the first bad record).
    """
    verification = audit.verify()
    if not verification.ok:
        raise IntegrityError(f"no decision on a broken audit trail: {verification.render()}")
    return audit.records()


def _decisions(records: list[Any], cand: str, version: str) -> tuple[list[Any], list[Any]]:
    """The approvals and rejections of one challenger among verified ``records``."""
    mine = [r for r in records if r.model == cand and r.version == version]
    return (
        [r for r in mine if r.action == "approval"],
        [r for r in mine if r.action == "rejection"],
    )


def _promoted_from(records: list[Any], production: str) -> set[str]:
    """The challengers (``<cand>/<version>``) promoted into ``production``."""
    return {
        r.details.get("from") for r in records if r.model == production and r.action == "promotion"
    }


def _checked(client: MlflowClient, audit: Any, model: str, version: str) -> dict[str, Any]:
    """The challenger with its evidence verified again: version, run, policy, fingerprint."""
    cand = candidates_name(_production_name(model))
    mv = client.get_model_version(cand, version)
    run = client.get_run(mv.run_id)
    policy, policy_sha = _policy_of_run(run)
    verify_gate_evidence(
        client,
        mv.run_id,
        policy=policy,
        policy_sha256=policy_sha,
        suite_sha256=RunLineage.from_tags(run.data.tags).suite_sha256,
        audit=audit,
    )
    tags = VersionTags.from_tags(mv.tags)
    return {
        "cand": cand,
        "mv": mv,
        "run": run,
        "policy": policy,
        "tags": tags,
        "evidence": evidence_fingerprint(run, tags),
        "maker": RunLineage.from_tags(run.data.tags).user,
    }


def _may_approve(policy: Any, actor: str, maker: str | None, earlier: list[Any]) -> str:
    """The approver's role; refused under maker-checker or when not an approver."""
    if maker and actor == maker:
        raise ApprovalError(f"{actor} trained this model (maker-checker: the maker cannot approve)")
    if any(r.actor == actor for r in earlier):
        raise ApprovalError(f"{actor} has approved this version already")
    approvers = {a.user: a.role for a in policy.promotion.approvers}
    if approvers and actor not in approvers:
        raise ApprovalError(f"{actor} is not an approver of this policy ({sorted(approvers)})")
    role = approvers.get(actor, "approver")
    if len(set(approvers.values())) > 1 and any(r.details.get("role") == role for r in earlier):
        raise ApprovalError(f"a second approval must come from another role than {role!r}")
    return role


def approve(
    client: MlflowClient,
    audit: Any,
    model: str,
    version: str,
    *,
    actor: str,
    reason: str,
    expect_evidence: str | None = None,
) -> Decision:
    """Approve a challenger; when the policy's number of approvals is reached, promote it
    (copy into the production model and move ``champion``).

    Raises:
        ApprovalError: maker-checker, a second approval by the same person or role, a
            rejected version, evidence changed since it was seen, no reason.
        GateEvidenceError, IntegrityError: the evidence no longer verifies.
    """
    if not reason.strip():
        raise ApprovalError("an approval needs a reason")
    c = _checked(client, audit, model, str(version))
    # the approvals so far counted, this one recorded and the promotion it completes made,
    # one decision at a time: two approvers at once would each count the other's approval
    # out (neither promoting), or a rejection slip in between
    with audit.decisions():
        approvals, rejections = _decisions(_trusted(audit), c["cand"], str(version))
        if rejections:
            raise ApprovalError(f"{c['cand']}/{version} was rejected (record {rejections[-1].seq})")
        if expect_evidence and expect_evidence != c["evidence"]:
            raise ApprovalError(
                f"the evidence changed since you saw it ({expect_evidence[:12]}... then, "
                f"{c['evidence'][:12]}... now)"
            )
        for earlier in approvals:
            if earlier.hashes.get("evidence_sha256") != c["evidence"]:
                raise ApprovalError(
                    f"the evidence changed since {earlier.actor} approved it (record {earlier.seq})"
                )
        role = _may_approve(c["policy"], actor, c["maker"], approvals)
        required = c["policy"].promotion.required_approvals(c["policy"].tier)
        count = len(approvals) + 1
        if count >= required:  # this approval promotes: MLflow must let the approver do it
            _check_may_promote(client, _production_name(c["cand"]), actor)
        record = audit.append(
            "approval",
            actor=actor,
            model=c["cand"],
            version=str(version),
            run_id=c["mv"].run_id,
            hashes=_hashes(c),
            reason=reason,
            details={"role": role, "approval": count, "required": required},
        )
        if count >= required:
            return _promote_approved(client, audit, c, [*approvals, record], actor, required)
    _republish(client, audit, c["cand"], str(version))
    return Decision(
        "approval",
        c["cand"],
        str(version),
        record.seq,
        count,
        required,
        message=f"approved by {actor}; {required - count} more approval(s) needed",
    )


#: A registered-model tag risk-assets never sets: deleting it changes nothing, and MLflow
#: authorises the deletion as a write to the model (see _check_may_promote).
_WRITE_CHECK_TAG = "risk_assets.write_check"


def _permission_denied(exc: BaseException) -> str | None:
    """MLflow's refusal for lack of permission (``PERMISSION_DENIED`` or HTTP 403) in ``exc``
    or what it wraps (``copy_model_version`` re-raises it as an internal error), else None."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        response = getattr(seen, "response", None)
        if (
            getattr(seen, "error_code", None) == "PERMISSION_DENIED"
            or getattr(response, "status_code", None) == 403
        ):
            return str(seen).strip().splitlines()[-1]
        seen = seen.__cause__ or seen.__context__
    return None


def _check_may_promote(client: MlflowClient, production: str, actor: str) -> None:
    """Refuse an approval that would promote when MLflow would refuse the approver the
    promotion, before anything is recorded: deleting a tag that is never set changes nothing
    but needs the permission that copying a version into ``production`` and moving its alias
    need (update on the registered model). Only a permission error refuses; anything else
    (no production model yet, with the embedded stores) is left to the promotion."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_tag(production, _WRITE_CHECK_TAG)
    except MlflowException as exc:
        denied = _permission_denied(exc)
        if denied is None:
            return
        raise ApprovalError(
            f"MLflow refuses {actor} write access to the production model {production} "
            f"(permission denied: {denied}); {actor}'s approval would not promote and is "
            "not recorded"
        ) from None


def _republish(client: MlflowClient, audit: Any, cand: str, version: str) -> None:
    """The report re-generated after a decision; a report that cannot be made is logged,
    never undoes the decision (the audit trail holds it)."""
    import logging

    try:
        publish_report(client, audit, cand, version)
    except Exception as exc:  # noqa: BLE001 - documentation of a decision already recorded
        logging.getLogger(__name__).warning(
            f"{cand}/{version}: risk report not re-generated ({type(exc).__name__}: {exc})"
        )


def _hashes(c: dict[str, Any]) -> dict[str, str]:
    t = c["tags"]
    return {
        "model_sha256": t.model_sha256 or "",
        "snapshot_sha256": t.snapshot_sha256 or "",
        "policy_sha256": t.policy_sha256 or "",
        "suite_sha256": t.suite_sha256 or "",
        "evidence_sha256": c["evidence"],
    }


def _promote_approved(
    client: MlflowClient, audit: Any, c: dict[str, Any], approvals: list, actor: str, required: int
) -> Decision:
    mv, tags = c["mv"], c["tags"]
    names = ", ".join(f"{r.actor} ({r.reason})" for r in approvals)
    production = _production_name(c["cand"])
    reason = f"approved by {names}"

    def record(version: str, replaced: str) -> Any:
        return audit.append(
            "promotion",
            actor=actor,
            model=production,
            version=version,
            run_id=mv.run_id,
            hashes=_hashes(c),
            reason=reason,
            details={
                "from": f"{c['cand']}/{mv.version}",
                "replaced": replaced,
                "approvals": [r.seq for r in approvals],
            },
        )

    try:
        version, promoted, note = _promote(
            client,
            c["cand"],
            mv.version,
            production,
            tags,
            mv.run_id,
            tags.model_sha256,
            compared_with=_compared_champion(c["policy"], gate_records(c["run"])),
            reason=reason,
            promoted_by=", ".join(r.actor for r in approvals),
            audit=audit,
            record=record,
        )
    except Exception as exc:
        denied = _permission_denied(exc)
        if denied is None:
            raise
        raise ApprovalError(
            f"MLflow refused {actor} a write the promotion of {c['cand']}/{mv.version} needs "
            f"(permission denied: {denied}): the approval is recorded (audit record "
            f"{approvals[-1].seq}), no promotion is, and {CHAMPION} of {production} did not "
            "move"
        ) from None
    if not promoted or version is None:
        raise ApprovalError(f"approved, but not promoted: {note}")
    promotion = recorded_decision(audit, "promotion", production, version)
    _republish(client, audit, c["cand"], str(mv.version))
    return Decision(
        "promotion",
        c["cand"],
        str(mv.version),
        promotion.seq,
        len(approvals),
        required,
        production_version=f"{production}/{version}",
        message=f"{production}/{version} is champion, approved by {names}",
    )


def reject(
    client: MlflowClient, audit: Any, model: str, version: str, *, actor: str, reason: str
) -> Decision:
    """Reject a challenger: it can no longer be approved (its challenger alias stays, so
    what was rejected remains visible).

    Raises:
        ApprovalError: no reason, or the version is already in production.
        IntegrityError: the audit trail is broken.
    """
    if not reason.strip():
        raise ApprovalError("a rejection needs a reason")
    production = _production_name(model)
    cand = candidates_name(production)
    with audit.decisions():  # not between an approval's count and its promotion
        if f"{cand}/{version}" in _promoted_from(_trusted(audit), production):
            raise ApprovalError(
                f"{cand}/{version} is in production already: roll {production} back instead"
            )
        mv = client.get_model_version(cand, str(version))
        record = audit.append(
            "rejection",
            actor=actor,
            model=cand,
            version=str(version),
            run_id=mv.run_id,
            hashes={"model_sha256": VersionTags.from_tags(mv.tags).model_sha256 or ""},
            reason=reason,
        )
    client.set_model_version_tag(cand, str(version), "risk_assets.rejected_by", actor)
    return Decision("rejection", cand, str(version), record.seq, message=f"rejected by {actor}")


def _rollback_target(
    client: MlflowClient, audit: Any, production: str, to_version: str | None
) -> tuple[Any, str, Any]:
    """(current champion, the version to roll back to, that version)."""
    current = find_champion(client, production)
    history = [
        r.version
        for r in _trusted(audit)
        if r.model == production and r.action in ("promotion", "rollback")
    ]
    if to_version is None:
        earlier = [v for v in history if current is None or v != str(current.version)]
        if not earlier:
            raise ApprovalError(f"{production} has no earlier champion in the audit trail")
        to_version = earlier[-1]
    if str(to_version) not in history:
        raise ApprovalError(f"{production}/{to_version} was never promoted through the audit trail")
    return current, str(to_version), client.get_model_version(production, str(to_version))


def rollback(
    client: MlflowClient,
    audit: Any,
    model: str,
    *,
    actor: str,
    reason: str,
    to_version: str | None = None,
) -> Decision:
    """Move ``champion`` back to an earlier production version (by default the one that
    was champion before the current one), which must have been promoted through the audit
    trail and whose model must still match its hash.

    Raises:
        ApprovalError: no earlier champion, or the version was never promoted.
        IntegrityError: the version's model no longer matches its hash, or the audit
            trail is broken.
    """
    from risk_assets.registry._mlflow import load_version_model

    if not reason.strip():
        raise ApprovalError("a rollback needs a reason")
    production = _production_name(model)
    with audit.decisions():  # the record, then the alias, with no promotion in between
        current, to_version, mv = _rollback_target(client, audit, production, to_version)
        load_version_model(client, mv, audit)  # its artefact must still be the model it was
        record = audit.append(
            "rollback",
            actor=actor,
            model=production,
            version=str(to_version),
            run_id=mv.run_id,
            hashes={"model_sha256": VersionTags.from_tags(mv.tags).model_sha256 or ""},
            reason=reason,
            details={"from": None if current is None else str(current.version)},
        )
        client.set_registered_model_alias(production, CHAMPION, str(to_version))
    return Decision(
        "rollback",
        production,
        str(to_version),
        record.seq,
        message=f"{production}/{to_version} is champion again (was "
        f"{'none' if current is None else current.version})",
    )


def pending(client: MlflowClient, audit: Any, model: str | None = None) -> list[Pending]:
    """Challengers awaiting a decision: versions of ``<model>-candidates`` not yet in
    production and not rejected, with their gate summary and approvals so far."""
    suffix = candidates_name("")
    names = (
        [candidates_name(_production_name(model))]
        if model
        else [m.name for m in client.search_registered_models() if m.name.endswith(suffix)]
    )
    out = []
    records = _trusted(audit)  # verified once for the whole listing
    for cand in names:
        promoted_from = _promoted_from(records, _production_name(cand))
        for mv in client.search_model_versions(f"name = '{cand}'"):
            if f"{cand}/{mv.version}" in promoted_from:
                continue
            approvals, rejections = _decisions(records, cand, str(mv.version))
            if rejections:
                continue
            run = client.get_run(mv.run_id)
            tags = VersionTags.from_tags(mv.tags)
            try:
                policy, _ = _policy_of_run(run)
                required = policy.promotion.required_approvals(policy.tier)
            except ApprovalError:
                required = 0
            out.append(
                Pending(
                    model=cand,
                    version=str(mv.version),
                    run_id=mv.run_id,
                    maker=RunLineage.from_tags(run.data.tags).user,
                    evidence=evidence_fingerprint(run, tags),
                    gates_passed=list(tags.gates_passed),
                    approvals=[
                        {"actor": r.actor, "role": r.details.get("role"), "seq": r.seq}
                        for r in approvals
                    ],
                    required=required,
                )
            )
    return sorted(out, key=lambda p: (p.model, int(p.version)))


def history_of(audit: Any, cand: str, version: str) -> list[dict[str, Any]]:
    """A challenger's decisions from the audit trail (registration, approvals, rejection,
    its promotion and the rollbacks to its production copy), oldest first."""
    production = _production_name(cand)
    mine = audit.records(model=cand, version=str(version))
    copies = {
        r.version
        for r in audit.records(model=production, action="promotion")
        if r.details.get("from") == f"{cand}/{version}"
    }
    later = [r for r in audit.records(model=production) if r.version in copies]
    rows = sorted([*mine, *later], key=lambda r: r.seq)
    return [
        {
            "timestamp": r.timestamp,
            "actor": r.actor,
            "action": r.action,
            "reason": r.reason or "",
            "version": f"{r.model}/{r.version}",
        }
        for r in rows
        if r.action != "gate"
    ]


def publish_report(client: MlflowClient, audit: Any, cand: str, version: str) -> dict[str, str]:
    """(Re)generate the risk report of a challenger, with its decisions from the audit
    trail, and log it on its run (``report/risk_report.html`` and ``.md``)."""
    from risk_assets.report import collect_report, log_report

    mv = client.get_model_version(cand, str(version))
    data = collect_report(
        client,
        f"{cand}/{version}",
        history=history_of(audit, cand, version),
        sections=[("Regulations and standards", _compliance_section(client, cand, version))],
    )
    return log_report(client, mv.run_id, data)


def _compliance_section(client: MlflowClient, cand: str, version: str) -> str:
    """The version's clauses and the controls that answer them, as Markdown (without the
    section's own heading, which the report writes)."""
    from risk_assets.compliance import compliance_for_version, compliance_markdown

    text = compliance_markdown(compliance_for_version(client, f"{cand}/{version}"))
    return text.split("\n", 1)[1] if text.startswith("#") else text
