"""The risk policy: a risk register (YAML) whose risks are each treated by a control.

Every mitigated risk names a control of the catalogue (:mod:`risk_assets.catalogue`), its
parameters and its severity (``error`` = blocking gate, ``warn`` = warning). Unknown
controls, unknown or missing parameters and contradictory settings fail at load with the
key named; :func:`policy_json_schema` gives the schema an editor can check a policy with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from risk_assets._yaml import format_validation_error, read_yaml_mapping
from risk_assets.catalogue import CATALOGUE, Entry
from risk_assets.errors import PolicyError

__all__ = [
    "CATEGORIES",
    "Control",
    "LoadedPolicy",
    "Policy",
    "Risk",
    "load_policy",
    "policy_json_schema",
]

CATEGORIES = (
    "data_quality",
    "data_privacy",
    "data_integrity",
    "drift",
    "model_performance",
    "fairness",
    "robustness",
    "privacy_leakage",
    "explainability",
    "operational",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ControlBase(_Strict):
    """A risk's control: a catalogue name, a severity and the control's own params."""

    name: str
    severity: Literal["error", "warn"] = "error"
    params: BaseModel

    @property
    def entry(self) -> Entry:
        return CATALOGUE[self.name]

    @property
    def check_name(self) -> str:
        return self.entry.check

    @property
    def asset(self) -> str:
        return self.entry.asset


def _control_model(found: Entry) -> type[_ControlBase]:
    required = any(f.is_required() for f in found.params.model_fields.values())
    params: Any = (
        (found.params, ...) if required else (found.params, Field(default_factory=found.params))
    )
    title = "".join(part.title() for part in found.name.split("_")) + "Control"
    model = create_model(
        title,
        __base__=_ControlBase,
        __module__=__name__,
        __doc__=f"{found.name}: {found.description}.",
        name=(Literal[found.name], ...),  # type: ignore[valid-type]
        params=params,
    )
    globals()[title] = model  # importable by name, so a policy pickles like any model
    return model


#: A control as a policy names it: a union tagged by the control's name, so that the
#: policy's JSON schema names every control and every parameter.
Control = Annotated[
    Union[tuple(_control_model(e) for e in CATALOGUE.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="name"),
]


class Risk(_Strict):
    """One entry of the risk register."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,40}$")
    title: str = Field(min_length=1)
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    description: str = ""
    likelihood: int = Field(default=3, ge=1, le=5)
    impact: int = Field(default=3, ge=1, le=5)
    owner: str = "unassigned"
    treatment: Literal["mitigate", "accept", "transfer", "avoid"] = "mitigate"
    justification: str | None = None
    accepted_by: str | None = None
    #: Clauses of regulations and standards this risk's control answers, e.g.
    #: ``EU-AI-ACT:Art.10`` (see ``risk-assets compliance``).
    clauses: list[str] = Field(default_factory=list)
    control: Control | None = None

    @field_validator("control", mode="before")
    @classmethod
    def _known_control(cls, control: Any) -> Any:
        """An unknown or missing control name is an error at ``control.name`` (before the
        union picks a model by the name)."""
        if isinstance(control, dict):
            name = control.get("name")
            if name is None:
                raise PydanticCustomError(
                    "control_name", f"name: required key is missing; one of {sorted(CATALOGUE)}"
                )
            if name not in CATALOGUE:
                raise PydanticCustomError(
                    "control_name",
                    f"name: unknown control {name!r}; known controls: {sorted(CATALOGUE)}",
                )
        return control

    @model_validator(mode="after")
    def _treatment_consistent(self) -> Risk:
        if self.treatment == "mitigate" and self.control is None:
            raise ValueError("a mitigated risk needs a control")
        if self.treatment == "accept":
            if not self.justification or not self.accepted_by:
                raise ValueError("an accepted risk needs 'justification' and 'accepted_by'")
            if self.control is not None and self.control.severity == "error":
                raise ValueError(
                    "an accepted risk runs its control as a warning; set control.severity: warn"
                )
        return self

    @property
    def score(self) -> int:
        return self.likelihood * self.impact

    @property
    def rating(self) -> str:
        s = self.score
        return "critical" if s >= 17 else "high" if s >= 10 else "medium" if s >= 5 else "low"

    @property
    def blocking(self) -> bool:
        return self.control is not None and self.control.severity == "error"


class Approver(_Strict):
    """Someone who may approve a challenger for production, and in which role."""

    user: str = Field(min_length=1, description="the user name (an MLflow user on a server)")
    role: str = Field(min_length=1, description="e.g. model-risk, validation, business-owner")


class Promotion(_Strict):
    auto_promote: bool = Field(
        default=False,
        description="move the champion alias automatically once the gates pass (low tier only)",
    )
    approvals: int | None = Field(
        default=None,
        ge=0,
        le=2,
        description=(
            "approvals a challenger needs before it becomes champion: 0 (automatic "
            "promotion, low tier only), 1 or 2; default 0 with auto_promote, else 1 for "
            "tier medium and 2 for tier high"
        ),
    )
    approvers: list[Approver] = Field(
        default_factory=list,
        description=(
            "who may approve (any user but the maker when empty); two approvals must come "
            "from two users, and from two roles when approvers name more than one role"
        ),
    )

    def required_approvals(self, tier: str) -> int:
        """How many approvals the tier's rule asks for."""
        if self.approvals is not None:
            return self.approvals
        if self.auto_promote:
            return 0
        return 2 if tier == "high" else 1


class Policy(_Strict):
    """The validated content of a policy file."""

    name: str = Field(min_length=1)
    version: str | int = 1
    tier: Literal["low", "medium", "high"] = "medium"
    promotion: Promotion = Field(default_factory=Promotion)
    risks: list[Risk] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        ids = [r.id for r in self.risks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"risk ids must be unique; repeated: {dupes}")
        seen: dict[str, str] = {}
        for risk in self.risks:
            if risk.control is None:
                continue
            if risk.control.name in seen:
                raise ValueError(
                    f"control {risk.control.name!r} treats both {seen[risk.control.name]!r} and "
                    f"{risk.id!r}; each control treats one risk"
                )
            seen[risk.control.name] = risk.id
        if self.promotion.auto_promote and self.tier != "low":
            raise ValueError(
                f"promotion.auto_promote is only allowed for tier 'low' (tier is {self.tier!r}); "
                "higher tiers need an approval"
            )
        required = self.promotion.required_approvals(self.tier)
        if required == 0 and self.tier != "low":
            raise ValueError(
                f"promotion.approvals 0 is only allowed for tier 'low' (tier is {self.tier!r})"
            )
        if required > 0 and self.promotion.auto_promote:
            raise ValueError(
                f"promotion.auto_promote contradicts promotion.approvals {required}: "
                "an automatic promotion has no approver"
            )
        if self.tier == "high" and required < 2:
            raise ValueError("tier 'high' needs promotion.approvals 2 (maker-checker by two)")
        users = [a.user for a in self.promotion.approvers]
        if len(set(users)) != len(users):
            raise ValueError(f"promotion.approvers lists a user twice: {users}")
        if self.promotion.approvers and len(set(users)) < required:
            raise ValueError(
                f"promotion.approvers names {len(users)} user(s); {required} approvals "
                "need at least as many"
            )
        return self

    @property
    def needs_favourable_label(self) -> bool:
        """Whether a control counts favourable decisions (fairness, decision volumes)."""
        return any(r.control is not None and r.control.entry.counts_favourable for r in self.risks)

    def controlled_risks(self) -> list[Risk]:
        return [r for r in self.risks if r.control is not None]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    sha256: str


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load and validate a policy file.

    Raises:
        PolicyError: the file is missing or invalid; the message names the file and the key.
    """
    path = Path(path).resolve()
    raw = read_yaml_mapping(path, error=PolicyError, what="policy")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(format_validation_error(path, exc, tags=CATALOGUE)) from None
    return LoadedPolicy(
        policy=policy, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file: every control of the catalogue and its params."""
    return Policy.model_json_schema()
