"""Human decisions as a Dagster job, so that an approver never needs a shell: launch
``risk_assets_decision`` from the UI (Jobs, then Launchpad) with the decision as run
config. It does what ``risk-assets approve|reject|rollback`` does, through the same
functions, and records the decision in the audit trail.

Dagster's open-source UI has no users: the ``approver`` in the run config is who the
person says they are, so with the embedded stores a decision is advisory, as on the
command line (see :mod:`risk_assets.governance`).
"""

from typing import Literal

import dagster as dg
from pydantic import Field

from risk_assets.dagster._resources import AuditResource, MlflowResource

__all__ = ["DECISION_JOB", "decision_job"]

DECISION_JOB = "risk_assets_decision"


class DecisionConfig(dg.Config):
    """One decision on a model."""

    decision: Literal["approve", "reject", "rollback"]
    model: str = Field(description="the production model name, e.g. credit_risk")
    version: str | None = Field(
        default=None,
        description="the version of <model>-candidates (approve, reject); for rollback the "
        "production version to return to (default: the previous champion)",
    )
    approver: str = Field(description="who decides (maker-checker applies)")
    reason: str = Field(description="why; recorded in the audit trail")
    evidence: str | None = Field(
        default=None, description="the evidence fingerprint reviewed (from `pending`)"
    )


@dg.op(name="decide", description="Approve, reject or roll back, as the run config says.")
def _decide(
    context: dg.OpExecutionContext,
    config: DecisionConfig,
    mlflow: MlflowResource,
    audit: AuditResource,
) -> None:
    from risk_assets import approvals
    from risk_assets.errors import ApprovalError, GateEvidenceError, IntegrityError

    client, log = mlflow.get_client(), audit.get_log()
    try:
        if config.decision != "rollback" and not config.version:
            raise ApprovalError(f"{config.decision} needs the version")
        if config.decision == "approve":
            decision = approvals.approve(
                client,
                log,
                config.model,
                config.version,
                actor=config.approver,
                reason=config.reason,
                expect_evidence=config.evidence,
            )
        elif config.decision == "reject":
            decision = approvals.reject(
                client,
                log,
                config.model,
                config.version,
                actor=config.approver,
                reason=config.reason,
            )
        else:
            decision = approvals.rollback(
                client,
                log,
                config.model,
                actor=config.approver,
                reason=config.reason,
                to_version=config.version,
            )
    except (ApprovalError, GateEvidenceError, IntegrityError) as exc:
        raise dg.Failure(f"refused: {exc}", allow_retries=False) from exc
    context.log.info(f"{config.decision}: {decision.message} (audit record {decision.seq})")


@dg.job(
    name=DECISION_JOB,
    description="Approve, reject or roll back a model (run config: decision, model, version, "
    "approver, reason); recorded in the audit trail.",
    tags={"risk_assets/kind": "decision"},
)
def decision_job() -> None:
    _decide()
