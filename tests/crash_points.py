"""Crash points for tests: run the ``risk-assets`` CLI, or one registration, in this process
and SIGKILL it at a named point (``python tests/crash_points.py POINT cli ARGS...`` or
``... POINT register SPEC RUN_ID``).

The points wrap the real functions of registration and promotion, as Dagster's own crash
recovery tests do with their debug crash flags; nothing in risk-assets knows of them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, name: str, *, before: bool, when: Callable[..., bool]) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before and when(*args, **kwargs):
            _die()
        out = original(*args, **kwargs)
        if not before and when(*args, **kwargs):
            _die()
        return out

    setattr(owner, name, wrapper)


def _alias_is(alias: str) -> Callable[..., bool]:
    return lambda _client, _name, a, *rest, **kw: a == alias


def _action_is(action: str) -> Callable[..., bool]:
    return lambda _log, a, *rest, **kw: a == action


def _production(_client: Any, name: str, *rest: Any, **kw: Any) -> bool:
    return not name.endswith("-candidates")


def _candidates(_client: Any, name: str, *rest: Any, **kw: Any) -> bool:
    return name.endswith("-candidates")


def _always(*_: Any, **__: Any) -> bool:
    return True


#: Each point: (owner, attribute, kill before the call?, on which calls).
def points() -> dict[str, tuple[Any, str, bool, Callable[..., bool]]]:
    from mlflow import MlflowClient

    import risk_assets.registry._mlflow as reg
    from risk_assets.audit import AuditLog

    return {
        # the candidate's MLflow run exists with its gate evidence; nothing registered
        "before_registration": (reg, "verify_gate_evidence", True, _always),
        "after_candidate_version": (reg, "_new_candidate_version", False, _always),
        "after_registration_record": (AuditLog, "append", False, _action_is("registration")),
        "after_candidate_anchor": (reg, "_anchor", False, _candidates),
        "before_challenger_alias": (
            MlflowClient,
            "set_registered_model_alias",
            True,
            _alias_is("challenger"),
        ),
        "after_challenger_alias": (
            MlflowClient,
            "set_registered_model_alias",
            False,
            _alias_is("challenger"),
        ),
        "after_production_version": (reg, "_create_version", False, _production),
        "after_promotion_record": (AuditLog, "append", False, _action_is("promotion")),
        "after_production_anchor": (reg, "_anchor", False, _production),
        "before_champion_alias": (
            MlflowClient,
            "set_registered_model_alias",
            True,
            _alias_is("champion"),
        ),
        "after_champion_alias": (
            MlflowClient,
            "set_registered_model_alias",
            False,
            _alias_is("champion"),
        ),
        "after_verdict": (reg, "_record_registration", False, _always),
    }


def register(spec_path: str, run_id: str) -> Any:
    """Register one candidate run as the pipeline's registration step does."""
    from risk_assets.audit import open_audit_log
    from risk_assets.dagster._definitions import default_resources
    from risk_assets.pipeline import load_pipeline
    from risk_assets.registry import register_candidate

    pipeline = load_pipeline(spec_path)
    spec = pipeline.spec.spec
    return register_candidate(
        # resolved as a run resolves it (MLFLOW_TRACKING_URI read from the environment)
        default_resources()["mlflow"].process_config_and_initialize().get_client(),
        run_id,
        model_name=spec.model_name,
        policy=pipeline.policy.policy,
        policy_sha256=pipeline.policy.sha256,
        suite_sha256=pipeline.suite_sha256,
        protected_attributes=spec.protected_attributes,
        audit=open_audit_log(),
    )


def main(argv: list[str]) -> int:
    point, mode, *rest = argv
    owner, name, before, when = points()[point]
    _wrap(owner, name, before=before, when=when)
    if mode == "cli":
        from risk_assets.cli import main as cli

        return cli(rest)
    register(*rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
