"""A pipeline: a spec with its policy and expectation suite, loaded and cross-checked.

Everything that can be decided before a run is decided here, naming the file and the key:
each file on its own (:func:`risk_assets.spec.load_spec`, :func:`risk_assets.policy.load_policy`,
the suite), then what the policy's controls require of the spec and of the columns as the
spec and its suite describe them (the catalogue's ``requires``). What only the data can
tell is the gates' finding: the expectation suite's, or a control's that fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from risk_assets.catalogue import ColumnKinds, spec_problems
from risk_assets.errors import SpecError
from risk_assets.frameworks import check_policy_clauses
from risk_assets.policy import LoadedPolicy, load_policy
from risk_assets.spec import LoadedSpec, load_spec

__all__ = ["LoadedPipeline", "load_pipeline", "suite_kinds"]


@dataclass(frozen=True)
class LoadedPipeline:
    """A spec with its policy and suite, all validated."""

    spec: LoadedSpec
    policy: LoadedPolicy
    suite_sha256: str


def load_pipeline(spec_path: str | Path) -> LoadedPipeline:
    """Load and validate a spec, the policy it names and its expectation suite, and what
    the policy's controls require of the spec.

    Raises:
        SpecError, PolicyError, SuiteError: naming the file and the key at fault.
    """
    from risk_assets.controls._expectations import load_suite
    from risk_assets.data import file_sha256

    spec = load_spec(spec_path)
    _refuse_personal_groups(spec)
    policy = load_policy(spec.policy_path)
    check_policy_clauses(policy.policy, policy.path)  # clause ids the catalogue knows
    suite = load_suite(spec.suite_path)
    if not any(
        r.control.entry.uses_suite and r.control.asset == "validated_data"
        for r in policy.policy.controlled_risks()
    ):
        raise SpecError(
            f"{policy.path}: no risk uses the 'expectations' control, so the suite named by "
            f"{spec.path} would never run"
        )
    problems = spec_problems(policy.policy, spec.spec, suite_kinds(spec.spec, suite))
    if problems:
        raise SpecError(
            f"{policy.path}: its controls need what {spec.path} does not give:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    return LoadedPipeline(spec=spec, policy=policy, suite_sha256=file_sha256(spec.suite_path))


def _refuse_personal_groups(loaded: LoadedSpec) -> None:
    """A column declared personal (``pii_allowed``) is no group: the values of a protected
    attribute or a slice are the group labels of the fairness and slice evidence (Dagster
    metadata, MLflow tags and artifacts, the risk report), which never carry personal data.

    Raises:
        SpecError: naming the spec file, the key and the column.
    """
    spec = loaded.spec
    personal = set(spec.pii_allowed)
    problems = [
        f"{key}: {column!r} is declared personal in pii_allowed; its values would be group "
        "labels in the evidence (MLflow, Dagster metadata, the risk report): leave it out of "
        f"{key}, or band or code it into non-personal groups in a column of its own"
        for key in ("protected_attributes", "slices")
        for column in getattr(spec, key)
        if column in personal
    ]
    if problems:
        raise SpecError(f"{loaded.path}: " + "; ".join(problems))


def suite_kinds(spec: Any, suite: dict[str, Any]) -> ColumnKinds:
    """The columns as the spec and its expectation suite describe them: the set the suite
    expects, the categorical ones (``categorical_features``, or a set of values expected)
    and the numeric ones (values expected between bounds)."""
    columns = None
    categorical = set(spec.categorical_features or ())
    numeric = set()
    for e in suite.get("expectations", []):
        kwargs = e.get("kwargs") or {}
        kind = e.get("type")
        if kind == "expect_table_columns_to_match_set" and kwargs.get("exact_match", True):
            columns = tuple(kwargs.get("column_set") or ())
        elif kind == "expect_table_columns_to_match_ordered_list":
            columns = tuple(kwargs.get("column_list") or ())
        elif kind == "expect_column_values_to_be_in_set" and kwargs.get("column"):
            categorical.add(kwargs["column"])
        elif kind == "expect_column_values_to_be_between" and kwargs.get("column"):
            numeric.add(kwargs["column"])
    return ColumnKinds(columns, tuple(sorted(categorical)), tuple(sorted(numeric)))
