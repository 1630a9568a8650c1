"""Errors that risk-assets raises on purpose, each naming what is at fault."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "GateEvidenceError",
    "IntegrityError",
    "PolicyError",
    "RiskAssetsError",
    "SpecError",
    "SuiteError",
]


class RiskAssetsError(Exception):
    """Base class of every error risk-assets raises on purpose."""


class ConfigError(RiskAssetsError):
    """A bad input file (spec, policy, suite or data): the CLI exits with code 2."""


class SpecError(ConfigError):
    """A pipeline spec is invalid; the message names the file and the key."""


class PolicyError(ConfigError):
    """A risk policy (risk register) is invalid; the message names the file and the key."""


class SuiteError(ConfigError):
    """An expectation suite file is missing, unreadable or empty."""


class DataError(ConfigError):
    """A data file is unreadable or lacks what the spec asks for (file, column named)."""


class GateEvidenceError(RiskAssetsError):
    """Registration refused: evidence that every blocking gate passed is missing or stale."""

    def __init__(self, message: str, *, gates: list[str] | None = None) -> None:
        super().__init__(message)
        self.gates = list(gates or [])


class IntegrityError(RiskAssetsError):
    """A content hash did not match what was recorded: the artefact changed."""


class ApprovalError(RiskAssetsError):
    """A human decision on a model was refused: maker-checker, an approver the policy does
    not name, a rejected version, or evidence that changed since it was seen."""
