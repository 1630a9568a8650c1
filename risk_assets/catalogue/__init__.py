"""The catalogue of controls: one record per control, the one list every other place reads.

Each :class:`Entry` says what a control is: its name, its params model, the asset its check
sits on, its check name(s), what it requires of the spec and its expectation suite
(checked when a pipeline loads), how it runs on a gate's inputs, its plot and the risk
``risk-assets init`` writes for it. The policy's params union, the Dagster
checks, monitoring, plots, ``init`` and the README's table are all made from it.

Adding a control: its pure function in ``risk_assets.controls``, one :class:`Entry` in the
module of its asset here (``_data``, ``_model`` or ``_monitoring``), its tests and a risk in
the example register. No other file changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from risk_assets.catalogue._data import DATA_GATES
from risk_assets.catalogue._entry import (
    ASSETS,
    MONITORING_ASSETS,
    TRAINING_ASSETS,
    Check,
    ColumnKinds,
    DefaultRisk,
    Entry,
    InitContext,
    Problem,
)
from risk_assets.catalogue._inputs import Champion, Inputs
from risk_assets.catalogue._model import MODEL_GATES
from risk_assets.catalogue._monitoring import MONITORING_CHECKS, batch_suite

if TYPE_CHECKING:
    from risk_assets.policy import Policy

__all__ = [
    "ASSETS",
    "CATALOGUE",
    "MONITORING_ASSETS",
    "TRAINING_ASSETS",
    "Champion",
    "Check",
    "ColumnKinds",
    "DefaultRisk",
    "Entry",
    "InitContext",
    "Inputs",
    "Problem",
    "batch_suite",
    "checks_of",
    "default_register",
    "entry",
    "pii_params_of",
    "spec_problems",
]

#: Every control a policy may name, by name, in the order of the flow.
CATALOGUE: dict[str, Entry] = {e.name: e for e in (*DATA_GATES, *MODEL_GATES, *MONITORING_CHECKS)}


def pii_params_of(policy: Any) -> Any:
    """The strictest parameters of the policy's PII controls (the lowest share, then the
    largest sample), or None when the policy has none: what a scan outside the gate (the
    columns a snapshot does not store, the group columns) applies."""
    params = [r.control.params for r in policy.controlled_risks() if r.control.name == "pii"]
    if not params:
        return None
    return min(params, key=lambda p: (p.max_share, -p.sample_size))


def entry(name: str) -> Entry:
    """The catalogue entry of a control.

    Raises:
        KeyError: no control of that name, naming the known ones.
    """
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown control {name!r}; known controls: {sorted(CATALOGUE)}") from None


def checks_of(
    policy: Policy, protected_attributes: Iterable[str], *, assets: tuple[str, ...] | None = None
) -> list[Check]:
    """Every check of a policy, in register order; ``assets`` keeps the checks on those
    assets only (e.g. :data:`TRAINING_ASSETS`). A per-attribute control (fairness) makes one
    check per attribute it covers: its own ``attributes``, else ``protected_attributes``.

    Raises:
        ValueError: a per-attribute control with no attribute, or one not protected.
    """
    protected = list(protected_attributes)
    out = []
    for risk in policy.controlled_risks():
        control = risk.control
        found = entry(control.name)
        if assets is not None and found.asset not in assets:
            continue
        params = control.params
        if not found.per_attribute:
            out.append(Check(found.check, risk, found, params))
            continue
        attributes = list(getattr(params, "attributes", None) or protected)
        if not attributes:
            raise ValueError(
                f"risk {risk.id} uses {control.name!r} but no protected_attributes are named"
            )
        unknown = sorted(set(attributes) - set(protected))
        if unknown:
            raise ValueError(
                f"risk {risk.id}: params.attributes names {unknown}, not in protected_attributes"
            )
        out += [Check(found.check.format(attribute=a), risk, found, params, a) for a in attributes]
    return out


def _located(policy: Policy, problems_of: Any) -> list[str]:
    out = []
    for index, risk in enumerate(policy.risks):
        if risk.control is None:
            continue
        for problem in problems_of(entry(risk.control.name), risk.control.params):
            where = (
                f"spec key {problem.key[5:]}"
                if problem.key.startswith("spec:")
                else f"risks.{index}.control.{problem.key}"
            )
            out.append(f"risk {risk.id} ({risk.control.name}), {where}: {problem.message}")
    return out


def spec_problems(policy: Policy, spec: Any, kinds: ColumnKinds) -> list[str]:
    """What the policy's controls require of the spec and of the columns as the spec and
    its suite describe them, and do not get; decided at load."""
    return _located(policy, lambda e, params: e.requires(params, spec, kinds))


def default_register(ctx: InitContext) -> list[dict[str, Any]]:
    """The risks ``init`` writes: each control's default risk that applies to the data."""
    out = []
    for name, found in CATALOGUE.items():
        if found.default_risk is not None:
            risk = found.default_risk.for_init(name, ctx)
            if risk is not None:
                out.append(risk)
    return out
