"""What one control of the catalogue is: one record, read by every other place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from risk_assets.controls._result import ControlResult
    from risk_assets.policy import Risk

__all__ = [
    "ASSETS",
    "MONITORING_ASSETS",
    "TRAINING_ASSETS",
    "Check",
    "ColumnKinds",
    "DefaultRisk",
    "Entry",
    "InitContext",
    "Problem",
]

Asset = Literal["validated_data", "candidate_model", "scored_batch", "batch_outcomes"]
ASSETS: tuple[str, ...] = ("validated_data", "candidate_model", "scored_batch", "batch_outcomes")
#: Assets whose checks gate training and registration; the rest monitor scored batches.
TRAINING_ASSETS: tuple[str, ...] = ("validated_data", "candidate_model")
MONITORING_ASSETS: tuple[str, ...] = ("scored_batch", "batch_outcomes")


@dataclass(frozen=True)
class Problem:
    """Something a control needs that the spec, policy or data does not give it.

    ``key`` is the policy key at fault, relative to the risk's ``control`` (e.g.
    ``params.budgets.housing``), or a spec key prefixed ``spec:`` (e.g. ``spec:serving_source``).
    """

    key: str
    message: str


@dataclass(frozen=True)
class ColumnKinds:
    """What the spec and its expectation suite say of the columns, before any data is read:
    the columns the suite expects (None when it does not fix the set), the categorical ones
    (the spec's ``categorical_features`` and columns the suite expects in a set of values)
    and the numeric ones (columns the suite expects between bounds). A column neither says
    is unknown until a run reads it."""

    columns: tuple[str, ...] | None
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    """One asset check a policy asks for: its name, the risk and control entry behind it,
    the control's parsed params and, for a per-attribute control, the attribute."""

    name: str
    risk: Risk
    entry: Entry
    params: BaseModel
    attribute: str | None = None

    @property
    def asset(self) -> str:
        return self.entry.asset

    @property
    def blocking(self) -> bool:
        return self.risk.blocking

    def run(self, inputs: Any) -> ControlResult:
        """The control on a gate's inputs (see :class:`risk_assets.catalogue.Inputs`), with
        the BLAS libraries (OpenBLAS, MKL) on :data:`GATE_BLAS_THREADS` threads while it
        runs."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=GATE_BLAS_THREADS, user_api="blas"):
            return self.entry.run(self, inputs)


#: BLAS threads while a control runs. A control works on a sample bounded by its policy
#: (thousands of rows, tens of columns): matrices so small that a second BLAS thread costs
#: more in hand-offs than it computes (the label-consistency gate's six fits took 2.2 to
#: 3.2 s on two OpenBLAS threads and 0.9 s on one, on 1M rows, 2 cores). The limit is the
#: process's while the control runs (threadpoolctl), then restored; training keeps the
#: environment's own setting.
GATE_BLAS_THREADS = 1


@dataclass(frozen=True)
class InitContext:
    """What ``risk-assets init`` learnt from the data, for the default register."""

    profile: dict[str, Any]  # the thresholds of the chosen profile (onboarding.PROFILES)
    majority_share: float
    budgets: dict[str, float]  # perturbation budgets of the numeric features
    protected: list[str]
    serving: bool  # a serving file was given


@dataclass(frozen=True)
class DefaultRisk:
    """The risk ``init`` writes for a control; ``params`` decides whether it applies (None:
    leave the control out, e.g. fairness without protected attributes)."""

    id: str
    title: str
    category: str
    description: str | Callable[[InitContext], str]
    likelihood: int
    impact: int
    owner: str
    params: Callable[[InitContext], dict[str, Any] | None]

    def for_init(self, name: str, ctx: InitContext) -> dict[str, Any] | None:
        params = self.params(ctx)
        if params is None:
            return None
        control: dict[str, Any] = {"name": name, "severity": "error"}
        if params:
            control["params"] = params
        description = self.description(ctx) if callable(self.description) else self.description
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "description": description,
            "likelihood": self.likelihood,
            "impact": self.impact,
            "owner": self.owner,
            "treatment": "mitigate",
            "control": control,
        }


def _no_problems(params: Any, spec: Any, kinds: ColumnKinds) -> Iterable[Problem]:
    return ()


@dataclass(frozen=True)
class Entry:
    """One control: its name, params model, asset, check name(s), what it requires of the
    spec and its suite (decided at load), how it runs on a gate's inputs, its plot and the
    risk ``init`` writes for it.

    Attributes:
        check: the check's name; for a control with ``per_attribute``, a template with
            ``{attribute}`` (one check per protected attribute).
        run: ``run(check, inputs) -> ControlResult``; inputs follow
            :class:`risk_assets.catalogue.Inputs`. Raising is a failed gate (fail closed).
        requires: ``requires(params, spec, kinds) -> problems``: what the control needs of
            the spec and of the columns as the spec and its expectation suite describe them
            (:class:`ColumnKinds`); checked when the pipeline loads. What only the data can
            tell stays the gates' finding (the suite's, or the runner's, failing closed).
        plot: ``plot(result, title) -> matplotlib Figure`` from the result's table, or None.
        counts_favourable: the control counts favourable decisions, so the spec must resolve
            ``favourable_label``.
        uses_suite: the control runs the spec's expectation suite, so its evidence must name
            the suite's SHA-256.
        compares_champion: the control judges the candidate against the production champion;
            registration records which champion it compared with.
    """

    name: str
    params: type[BaseModel]
    asset: Asset
    check: str
    description: str
    run: Callable[[Check, Any], ControlResult]
    requires: Callable[[Any, Any, ColumnKinds], Iterable[Problem]] = _no_problems
    per_attribute: bool = False
    plot: Callable[[Any, str], Any] | None = None
    default_risk: DefaultRisk | None = None
    counts_favourable: bool = False
    uses_suite: bool = False
    compares_champion: bool = False

    @property
    def monitoring(self) -> bool:
        return self.asset in MONITORING_ASSETS
