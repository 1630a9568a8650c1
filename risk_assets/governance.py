"""The command line of human decisions and of the audit trail: ``approve``, ``reject``,
``rollback``, ``pending`` and ``audit verify|show``.

Identity: against an ``mlflow server`` with authentication, the approver is the MLflow user
(``MLFLOW_TRACKING_USERNAME``) and MLflow itself checks the permission to move the
production model's alias. With the embedded stores, identity is the local user name, which
anyone can set: approvals are then advisory, and every decision says so.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["EXIT_REFUSED", "add_parsers", "identity", "run"]

#: Exit code of a refused decision (maker-checker, changed evidence, broken audit trail).
EXIT_REFUSED = 4
COMMANDS = ("approve", "reject", "rollback", "pending", "audit")


def add_parsers(sub: Any) -> None:
    """Add the governance commands to the CLI's subparsers."""
    for name, helptext in (
        ("approve", "approve a challenger (maker-checker; promotes once enough approved)"),
        ("reject", "reject a challenger: it can no longer be approved"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("model", metavar="MODEL", help="the production model name")
        p.add_argument("version", metavar="VERSION", help="the version of MODEL-candidates")
        p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
        if name == "approve":
            p.add_argument(
                "--evidence",
                metavar="SHA256",
                help="the evidence fingerprint you reviewed (from `pending`); refused if "
                "the evidence changed since",
            )
        p.add_argument("--json", action="store_true", help="print one JSON object")
    rb = sub.add_parser("rollback", help="move champion back to an earlier approved version")
    rb.add_argument("model", metavar="MODEL")
    rb.add_argument("--to", dest="to_version", metavar="VERSION", help="default: the previous")
    rb.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    rb.add_argument("--json", action="store_true", help="print one JSON object")
    pe = sub.add_parser("pending", help="challengers awaiting a decision, with their gates")
    pe.add_argument("model", nargs="?", metavar="MODEL")
    pe.add_argument("--json", action="store_true", help="print one JSON object")
    au = sub.add_parser("audit", help="the audit trail: verify the chain, or a model's history")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    v = au_sub.add_parser("verify", help="check every link of the chain and its anchors")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    sh = au_sub.add_parser("show", help="a model's decisions, oldest first")
    sh.add_argument("model", metavar="MODEL")
    sh.add_argument("--json", action="store_true", help="print one JSON object")


def identity() -> tuple[str, bool]:
    """Who decides, and whether the stores can vouch for it (an MLflow server user)."""
    from risk_assets.settings import current_user, server_user

    return current_user(), server_user() is not None


def _client() -> Any:
    from mlflow import MlflowClient

    from risk_assets.settings import current_settings

    s = current_settings()
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)


def run(args: argparse.Namespace) -> int:
    """Run one governance command; exit 0, 4 when a decision is refused.

    Raises:
        ApprovalError, IntegrityError, GateEvidenceError: for the caller to report (exit 4).
    """
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    from risk_assets.audit import open_audit_log

    audit = open_audit_log()
    if args.command == "audit":
        return _audit(args, audit)
    if args.command == "pending":
        return _pending(args, audit)
    return _decide(args, audit)


def _decide(args: argparse.Namespace, audit: Any) -> int:
    from risk_assets import approvals

    actor, vouched = identity()
    client = _client()
    if args.command == "approve":
        decision = approvals.approve(
            client,
            audit,
            args.model,
            args.version,
            actor=actor,
            reason=args.reason,
            expect_evidence=args.evidence,
        )
    elif args.command == "reject":
        decision = approvals.reject(
            client, audit, args.model, args.version, actor=actor, reason=args.reason
        )
    else:
        decision = approvals.rollback(
            client,
            audit,
            args.model,
            actor=actor,
            reason=args.reason,
            to_version=args.to_version,
        )
    advisory = (
        None
        if vouched
        else (
            f"identity is the local user {actor!r}: with the embedded stores this decision is "
            "advisory (run against an mlflow server with authentication to make it binding)"
        )
    )
    if args.json:
        print(json.dumps({**decision.to_json(), "actor": actor, "advisory": advisory}))
    else:
        print(f"{args.command}: {decision.message} (audit record {decision.seq})")
        if advisory:
            print(f"note: {advisory}")
    return 0


def _pending(args: argparse.Namespace, audit: Any) -> int:
    from risk_assets import approvals

    items = approvals.pending(_client(), audit, args.model)
    if args.json:
        print(json.dumps({"pending": [p.to_json() for p in items]}))
        return 0
    if not items:
        print("no challenger awaits a decision")
    for p in items:
        got = ", ".join(f"{a['actor']} ({a['role']})" for a in p.approvals) or "none"
        print(
            f"{p.model}/{p.version}  trained by {p.maker or 'unknown'}  approvals "
            f"{len(p.approvals)}/{p.required} ({got})\n"
            f"  gates passed: {', '.join(p.gates_passed)}\n"
            f"  evidence {p.evidence}  (approve with --evidence to pin what you reviewed)"
        )
    return 0


def _audit(args: argparse.Namespace, audit: Any) -> int:
    if args.audit_command == "verify":
        from risk_assets.registry._mlflow import audit_anchors

        result = audit.verify(anchors=audit_anchors(_client()))
        if args.json:
            print(
                json.dumps(
                    {
                        "ok": result.ok,
                        "records": result.records,
                        "first_bad": result.first_bad,
                        "problem": result.problem,
                        "path": str(audit.path),
                    }
                )
            )
        else:
            print(f"{audit.path}: {result.render()}")
        return 0 if result.ok else EXIT_REFUSED
    records = [r for r in audit.records() if r.model in (args.model, f"{args.model}-candidates")]
    if args.json:
        print(
            json.dumps(
                {"model": args.model, "records": [r.body() | {"hash": r.hash} for r in records]}
            )
        )
        return 0
    champions = [r for r in records if r.action in ("promotion", "rollback")]
    for r in records:
        what = f"{r.model}/{r.version}" if r.version else (r.model or "")
        gate = r.details.get("check")
        verdict = ("passed" if r.details.get("passed") else "FAILED") if gate else ""
        print(
            f"{r.seq:>6} {r.timestamp[:19]} {r.action:<12} {what:<28} {r.actor:<12} "
            + (f"{gate} {verdict}" if gate else (r.reason or ""))
        )
    print("champion history:" if champions else "champion history: none recorded")
    for r in champions:
        print(f"  {r.timestamp[:19]}  {r.model}/{r.version}  ({r.action} by {r.actor})")
    return 0
