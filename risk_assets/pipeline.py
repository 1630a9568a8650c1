"""A pipeline: a spec with its policy and expectation suite, loaded and cross-checked.

Everything that can be decided before a run is decided here, naming the file and the key:
each file on its own (:func:`risk_assets.spec.load_spec`, :func:`risk_assets.policy.load_policy`),
then what the policy's controls require of the spec (the catalogue's ``requires``), and,
once the source's columns are known, what they require of the columns
(:func:`check_columns`, before a run starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from risk_assets.catalogue import ColumnKinds, column_problems, spec_problems
from risk_assets.errors import PolicyError, SpecError
from risk_assets.policy import LoadedPolicy, load_policy
from risk_assets.spec import LoadedSpec, load_spec

__all__ = ["LoadedPipeline", "check_columns", "load_pipeline"]


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
    policy = load_policy(spec.policy_path)
    load_suite(spec.suite_path)
    if not any(
        r.control.entry.uses_suite and r.control.asset == "validated_data"
        for r in policy.policy.controlled_risks()
    ):
        raise SpecError(
            f"{policy.path}: no risk uses the 'expectations' control, so the suite named by "
            f"{spec.path} would never run"
        )
    problems = spec_problems(policy.policy, spec.spec)
    if problems:
        raise SpecError(
            f"{policy.path}: its controls need what {spec.path} does not give:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    return LoadedPipeline(spec=spec, policy=policy, suite_sha256=file_sha256(spec.suite_path))


def column_kinds(pipeline: LoadedPipeline, frame: Any) -> ColumnKinds:
    """The columns of a source frame (a head is enough) as the pipeline will read them."""
    from risk_assets.estimator import categorical_columns

    spec = pipeline.spec.spec
    columns = [c for c in frame.columns if c != spec.source.id_column]
    features = [c for c in (spec.features or columns) if c in columns and c != spec.target]
    categorical = categorical_columns(frame, features, spec.categorical_features)
    return ColumnKinds(tuple(map(str, frame.columns)), tuple(features), tuple(categorical))


def check_columns(pipeline: LoadedPipeline, frame: Any, *, source: str) -> None:
    """What the policy's controls require of the source's columns (e.g. a perturbation
    budget on a categorical column); run before a run starts and before any gate.

    Raises:
        PolicyError: naming the policy file, the risk, the key and the source.
    """
    kinds = column_kinds(pipeline, frame)
    problems = column_problems(pipeline.policy.policy, pipeline.spec.spec, kinds)
    if problems:
        raise PolicyError(
            f"{pipeline.policy.path}: its controls do not fit the columns of {source}:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
