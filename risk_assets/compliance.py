"""Regulations and standards mapped to evidence, per registered model version.

For each clause of each framework of the clause catalogue (:mod:`risk_assets.frameworks`:
EU AI Act, SR 26-2, NIST AI RMF 1.0, ISO/IEC 42001, ISO/IEC 23894), the report lists the
controls of the policy that answer it (:func:`clauses_of`: a risk's own ``clauses``, else
its control's default clauses), each check with its verdict on the version's run
(``passed``, ``failed``, ``not run``, ``warning-only`` or ``accepted risk``) and its
evidence (the MLflow run and the gate record's tag), then the project's features that
answer it without being a gate (process evidence, listed apart and never counted as a
passed gate), and which clauses nothing answers (uncovered).

:func:`compliance_report` is pure (a policy and gate records in, a report out);
:func:`compliance_for_version` reads a registered version from MLflow and the policy its
run was gated under. When that policy file is gone or has changed since (its SHA-256
differs from the one the run recorded), the report says so and falls back to the gate
records' risk ids with the controls' default clauses: it never invents a verdict.

Rendering: :func:`render_text` (people), :meth:`ComplianceReport.to_json` (tools) and
:func:`compliance_markdown` (a section of the model's risk report). :func:`add_parser`
and :func:`run` are the ``risk-assets compliance`` command.

Only the standard library is imported at module level, so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from risk_assets.errors import ConfigError, RiskAssetsError
from risk_assets.frameworks import (
    ClauseCatalogue,
    Framework,
    ProcessItem,
    check_policy_clauses,
    clauses_of,
    load_clause_catalogue,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from risk_assets.policy import Policy
    from risk_assets.registry._lineage import RunLineage

__all__ = [
    "ACCEPTED",
    "FAILED",
    "NOT_RUN",
    "PASSED",
    "VERDICTS",
    "WARNING_ONLY",
    "ClauseAnswer",
    "ComplianceReport",
    "ControlAnswer",
    "FrameworkAnswer",
    "ProcessAnswer",
    "add_parser",
    "clauses_of",
    "compliance_for_version",
    "compliance_markdown",
    "compliance_report",
    "load_clause_catalogue",
    "records_report",
    "render_text",
    "run",
    "select_frameworks",
    "verdict_of",
]

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
WARNING_ONLY, ACCEPTED = "warning-only", "accepted risk"
#: Every verdict a control's check may have on a run.
VERDICTS = (PASSED, FAILED, NOT_RUN, WARNING_ONLY, ACCEPTED)
#: The MLflow tag prefix of a gate record (``risk_assets.registry._mlflow.GATE_TAG``).
GATE_TAG = "risk_assets.gate."
EXIT_OK, EXIT_UNEXPECTED, EXIT_CONFIG = 0, 1, 2


# ---------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ControlAnswer:
    """One check of one risk that answers a clause, with its verdict on the run.

    ``passed`` is the gate record's own result (also for a warning-only check or an
    accepted risk, whose verdict does not say it); ``gate_record`` is the MLflow run tag
    that holds the record.
    """

    risk_id: str
    control: str | None
    check: str | None
    verdict: str
    passed: bool | None = None
    summary: str | None = None
    run_id: str | None = None
    gate_record: str | None = None
    note: str | None = None
    #: a monitoring check: it runs on scored batches, never on the training run
    monitoring: bool = False


@dataclass(frozen=True)
class ProcessAnswer:
    """A feature of the project that answers a clause without being a gate. It is never a
    passed gate; ``in_force`` is False when the policy does not use it (e.g. no approval
    on a tier that promotes automatically), None when that cannot be told."""

    id: str
    title: str
    what: str
    in_force: bool | None
    evidence: str | None = None


@dataclass(frozen=True)
class ClauseAnswer:
    """One clause with what answers it: controls (with verdicts) and process evidence."""

    id: str
    framework: str
    title: str
    asks: str
    controls: tuple[ControlAnswer, ...] = ()
    process: tuple[ProcessAnswer, ...] = ()

    @property
    def coverage(self) -> str:
        """``control`` (a control, or an accepted risk, answers it), ``process`` (only
        process evidence in force does) or ``none`` (uncovered; a risk listed without a
        control, e.g. transferred, is no answer)."""
        if any(a.control is not None or a.verdict == ACCEPTED for a in self.controls):
            return "control"
        if any(p.in_force is not False for p in self.process):
            return "process"
        return "none"


@dataclass(frozen=True)
class FrameworkAnswer:
    id: str
    name: str
    clauses: tuple[ClauseAnswer, ...]


@dataclass(frozen=True)
class ComplianceReport:
    """Clauses of each framework with the controls and process evidence that answer them.

    ``basis`` is ``policy`` (the policy the run was gated under) or ``gate records`` (that
    policy was unavailable: the records' risk ids with their controls' default clauses).
    """

    frameworks: tuple[FrameworkAnswer, ...]
    basis: str = "policy"
    policy_name: str | None = None
    policy_sha256: str | None = None
    model: str | None = None
    version: str | None = None
    run_id: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def clauses(self) -> Iterator[ClauseAnswer]:
        for framework in self.frameworks:
            yield from framework.clauses

    @property
    def uncovered(self) -> list[str]:
        """Clauses nothing answers: no control of the policy and no process evidence."""
        return [c.id for c in self.clauses() if c.coverage == "none"]

    @property
    def process_only(self) -> list[str]:
        """Clauses no control answers, only process evidence (which is not a gate)."""
        return [c.id for c in self.clauses() if c.coverage == "process"]

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON object (``coverage``, ``uncovered`` and ``process_only``
        are derived, and ignored by :meth:`from_json`)."""
        doc = {
            k: getattr(self, k)
            for k in ("model", "version", "run_id", "basis", "policy_name", "policy_sha256")
        }
        doc["notes"] = list(self.notes)
        doc["frameworks"] = [_framework_json(f) for f in self.frameworks]
        doc["uncovered"] = self.uncovered
        doc["process_only"] = self.process_only
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ComplianceReport:
        """Read what :meth:`to_json` wrote."""
        frameworks = tuple(
            FrameworkAnswer(f["id"], f["name"], tuple(_clause_from_json(c) for c in f["clauses"]))
            for f in doc["frameworks"]
        )
        simple = ("model", "version", "run_id", "basis", "policy_name", "policy_sha256")
        return cls(frameworks, notes=tuple(doc.get("notes", ())), **{k: doc.get(k) for k in simple})


def _framework_json(f: FrameworkAnswer) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "clauses": [
            {
                "id": c.id,
                "framework": c.framework,
                "title": c.title,
                "asks": c.asks,
                "coverage": c.coverage,
                "controls": [asdict(a) for a in c.controls],
                "process": [asdict(p) | {"counts_as_gate": False} for p in c.process],
            }
            for c in f.clauses
        ],
    }


def _clause_from_json(c: Mapping[str, Any]) -> ClauseAnswer:
    process_keys = ProcessAnswer.__dataclass_fields__
    return ClauseAnswer(
        id=c["id"],
        framework=c["framework"],
        title=c["title"],
        asks=c["asks"],
        controls=tuple(ControlAnswer(**a) for a in c["controls"]),
        process=tuple(
            ProcessAnswer(**{k: v for k, v in p.items() if k in process_keys}) for p in c["process"]
        ),
    )


# ---------------------------------------------------------------------------- pure core


@dataclass(frozen=True)
class _Line:
    """A risk as the report needs it: its control, checks and clauses, and whether it is
    an accepted risk (``None``: not known, without the policy)."""

    risk_id: str
    control: str | None
    checks: tuple[str | None, ...]
    clauses: tuple[str, ...]
    accepted: bool | None
    monitoring: bool = False
    note: str | None = None


def verdict_of(record: Any | None, *, accepted: bool | None) -> str:
    """A check's verdict: an accepted risk (run as a warning) is ``accepted risk``; else
    the gate record says ``passed``/``failed`` (blocking) or ``warning-only``; no record
    is ``not run``."""
    if accepted:
        return ACCEPTED
    if record is None:
        return NOT_RUN
    if not record.blocking:
        return WARNING_ONLY
    return PASSED if record.passed else FAILED


def _checks_of(risk: Any, records: Mapping[str, Any], protected: Sequence[str]) -> tuple[str, ...]:
    """A controlled risk's checks: its control's check, or for a per-attribute control one
    per attribute (its params', else the protected attributes, plus any the run recorded)."""
    found = risk.control.entry
    if not found.per_attribute:
        return (found.check,)
    attributes = list(getattr(risk.control.params, "attributes", None) or protected)
    names = [found.check.format(attribute=a) for a in attributes]
    names += sorted(
        name
        for name, r in records.items()
        if r.risk_id == risk.id and _matches(found.check, name) and name not in names
    )
    return tuple(names) or (found.check,)


def _matches(template: str, check: str) -> bool:
    """Whether a check name instantiates a per-attribute template (``fair_across_{attribute}``)."""
    head, _, tail = template.partition("{attribute}")
    return len(check) > len(head) + len(tail) and check.startswith(head) and check.endswith(tail)


def _policy_lines(
    policy: Policy, records: Mapping[str, Any], protected: Sequence[str], cat: ClauseCatalogue
) -> list[_Line]:
    out = []
    for risk in policy.risks:
        control = risk.control
        out.append(
            _Line(
                risk_id=risk.id,
                control=control.name if control else None,
                checks=_checks_of(risk, records, protected) if control else (None,),
                clauses=clauses_of(risk, cat),
                accepted=risk.treatment == "accept",
                monitoring=bool(control and control.entry.monitoring),
                note=None if control else f"no control: the risk's treatment is {risk.treatment}",
            )
        )
    return out


def _control_of_check(check: str) -> tuple[str | None, bool]:
    """The control of the catalogue whose check this is, and whether it monitors."""
    from risk_assets.catalogue import CATALOGUE

    for name, found in CATALOGUE.items():
        if check == found.check or (found.per_attribute and _matches(found.check, check)):
            return name, found.monitoring
    return None, False


def _record_lines(records: Mapping[str, Any], cat: ClauseCatalogue) -> list[_Line]:
    """Without the policy: one line per gate record, its control found by its check."""
    out = []
    for check, record in sorted(records.items(), key=lambda kv: (kv[1].risk_id, kv[0])):
        control, monitoring = _control_of_check(check)
        clauses = cat.controls.get(control, ()) if control else ()
        out.append(_Line(record.risk_id, control, (check,), clauses, None, monitoring))
    return out


def _control_answers(
    lines: Iterable[_Line], records: Mapping[str, Any], run_id: str | None
) -> dict[str, list[ControlAnswer]]:
    """Each clause's control answers, one per check of each line that names the clause."""
    out: dict[str, list[ControlAnswer]] = {}
    for line in lines:
        for check in line.checks:
            record = records.get(check) if check else None
            note = line.note
            if record is None and line.monitoring:
                note = "a monitoring check: it runs on scored batches, not on the training run"
            answer = ControlAnswer(
                risk_id=line.risk_id,
                control=line.control,
                check=check,
                verdict=verdict_of(record, accepted=line.accepted),
                passed=None if record is None else bool(record.passed),
                summary=None if record is None else record.summary,
                run_id=run_id if record is not None else None,
                gate_record=GATE_TAG + check if record is not None else None,
                note=note,
                monitoring=line.monitoring,
            )
            for clause in line.clauses:
                out.setdefault(clause, []).append(answer)
    return out


def _approvals_in_force(policy: Policy | None) -> bool | None:
    """Whether the policy asks a person's approval before a version becomes champion."""
    if policy is None:
        return None
    return policy.promotion.required_approvals(policy.tier) > 0


#: Whether a process feature is in force under a policy (None: cannot be told); features
#: not listed are always in force.
IN_FORCE = {"approval_workflow": _approvals_in_force}


def _process_answers(
    items: Iterable[ProcessItem], policy: Policy | None, evidence: Mapping[str, str]
) -> dict[str, list[ProcessAnswer]]:
    out: dict[str, list[ProcessAnswer]] = {}
    for item in items:
        in_force = IN_FORCE[item.id](policy) if item.id in IN_FORCE else True
        answer = ProcessAnswer(item.id, item.title, item.what, in_force, evidence.get(item.id))
        for clause in item.clauses:
            out.setdefault(clause, []).append(answer)
    return out


def _assemble(
    frameworks: Sequence[Framework],
    controls: Mapping[str, list[ControlAnswer]],
    process: Mapping[str, list[ProcessAnswer]],
) -> tuple[FrameworkAnswer, ...]:
    return tuple(
        FrameworkAnswer(
            f.id,
            f.name,
            tuple(
                ClauseAnswer(
                    c.id,
                    c.framework,
                    c.title,
                    c.asks,
                    tuple(controls.get(c.id, ())),
                    tuple(process.get(c.id, ())),
                )
                for c in f.clauses
            ),
        )
        for f in frameworks
    )


def select_frameworks(
    names: Sequence[str] | None, catalogue: ClauseCatalogue | None = None
) -> tuple[Framework, ...]:
    """The frameworks named (case-insensitive ids), or all of them.

    Raises:
        ConfigError: an unknown framework, naming it and the known ones.
    """
    cat = catalogue or load_clause_catalogue()
    if not names:
        return cat.frameworks
    try:
        picked = [cat.framework(n) for n in names]
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    return tuple(f for f in cat.frameworks if f in picked)


def compliance_report(
    policy: Policy,
    gate_results: Mapping[str, Any],
    *,
    run_id: str | None = None,
    protected_attributes: Sequence[str] = (),
    frameworks: Sequence[str] | None = None,
    process_evidence: Mapping[str, str] | None = None,
) -> ComplianceReport:
    """Each clause of each framework with the policy's controls that answer it, their
    checks' verdicts in ``gate_results`` ({check: GateRecord}, as
    ``risk_assets.registry._mlflow.gate_records`` reads a run) and the process evidence.

    ``protected_attributes`` names the per-attribute checks (fairness) expected when the
    records do not; ``frameworks`` keeps those framework ids only; ``process_evidence``
    gives, per process feature id, where this version's evidence of it is.

    Raises:
        ConfigError: an unknown framework.
        PolicyError: a risk names a clause the catalogue does not know.
    """
    cat = load_clause_catalogue()
    picked = select_frameworks(frameworks, cat)
    check_policy_clauses(policy, f"policy {policy.name}", cat)
    lines = _policy_lines(policy, gate_results, protected_attributes, cat)
    return ComplianceReport(
        _assemble(
            picked,
            _control_answers(lines, gate_results, run_id),
            _process_answers(cat.process, policy, process_evidence or {}),
        ),
        basis="policy",
        policy_name=policy.name,
        run_id=run_id,
    )


def records_report(
    gate_results: Mapping[str, Any],
    *,
    run_id: str | None = None,
    frameworks: Sequence[str] | None = None,
    process_evidence: Mapping[str, str] | None = None,
    reason: str = "the policy is unavailable",
) -> ComplianceReport:
    """The report without the policy: each gate record's risk id and check, its control
    found by the check's name and that control's default clauses. A risk's own clauses,
    accepted risks (reported as warning-only) and checks that never ran cannot be known,
    and the report's notes say so."""
    cat = load_clause_catalogue()
    picked = select_frameworks(frameworks, cat)
    lines = _record_lines(gate_results, cat)
    notes = [
        f"{reason}: verdicts come from the run's gate records, clauses from each control's "
        "default mapping; a risk's own clauses, accepted risks and checks that never ran "
        "cannot be told without the policy"
    ]
    unknown = sorted(line.checks[0] for line in lines if line.control is None)
    if unknown:
        notes.append(f"gate records of no known control (no clauses): {unknown}")
    return ComplianceReport(
        _assemble(
            picked,
            _control_answers(lines, gate_results, run_id),
            _process_answers(cat.process, None, process_evidence or {}),
        ),
        basis="gate records",
        run_id=run_id,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------- a version


def _gated_policy(lineage: RunLineage) -> tuple[Any | None, str]:
    """The policy the run was gated under (a LoadedPolicy), found through the spec the run
    recorded and verified against the policy SHA-256 it recorded; else None and why."""
    from risk_assets.policy import load_policy
    from risk_assets.spec import load_spec

    if not lineage.policy_sha256:
        return None, "the run records no policy hash"
    if not lineage.spec_path:
        return None, "the run records no spec path, so its policy file cannot be found"
    try:
        loaded = load_policy(load_spec(lineage.spec_path).policy_path)
    except ConfigError as exc:
        return (
            None,
            f"the policy the run was gated under cannot be read ({str(exc).splitlines()[0]})",
        )
    if loaded.sha256 != lineage.policy_sha256:
        return None, (
            f"the policy file {loaded.path} has changed since the run (sha256 "
            f"{loaded.sha256[:12]} now, {lineage.policy_sha256[:12]} recorded on the run)"
        )
    try:
        check_policy_clauses(loaded.policy, loaded.path)
    except ConfigError as exc:
        return None, f"the policy names clauses the catalogue does not know ({exc})"
    return loaded, f"policy file {loaded.path}: its sha256 matches the one the run recorded"


def _process_evidence(mv: Any, run_id: str, lineage: RunLineage) -> dict[str, str]:
    """Where this version's evidence of each process feature is (see mapping.yaml)."""
    from risk_assets.registry._lineage import VersionTags

    tags = VersionTags.from_tags(mv.tags or {})
    if tags.promotion_reason:
        approval = f"promoted by {tags.promoted_by or 'unknown'}: {tags.promotion_reason}"
    else:
        approval = f"{mv.name}/{mv.version} records no promotion"
    return {
        "risk_register": (
            f"policy {lineage.policy_name or 'unnamed'} (tier {lineage.policy_tier or 'unknown'}), "
            f"sha256 {lineage.policy_sha256 or 'not recorded'}, recorded on run {run_id}"
        ),
        "approval_workflow": approval,
        "audit_trail": (
            f"MLflow run {run_id}: lineage tags and gate records "
            f"(risk-assets lineage {mv.name}/{mv.version}); the audit log's records"
        ),
    }


def compliance_for_version(
    client: MlflowClient, ref: str, *, frameworks: Sequence[str] | None = None
) -> ComplianceReport:
    """The compliance report of a registered version: ``MODEL/VERSION``, ``MODEL@ALIAS``
    or ``MODEL`` (its champion, else its latest version), from its run's gate records and
    the policy the run was gated under (else from the records alone, saying why).

    Raises:
        ConfigError: an unknown framework, or no such model version.
    """
    from risk_assets.registry._lineage import RunLineage
    from risk_assets.registry._mlflow import _resolve_version, gate_records

    select_frameworks(frameworks)  # bad input is refused before MLflow is read
    try:
        mv = _resolve_version(client, ref)
    except RiskAssetsError as exc:
        raise ConfigError(str(exc)) from None
    run = client.get_run(mv.run_id)
    run_id = run.info.run_id
    lineage = RunLineage.from_tags(run.data.tags)
    records = gate_records(run)
    evidence = _process_evidence(mv, run_id, lineage)
    loaded, why = _gated_policy(lineage)
    if loaded is None:
        report = records_report(
            records, run_id=run_id, frameworks=frameworks, process_evidence=evidence, reason=why
        )
    else:
        report = compliance_report(
            loaded.policy,
            records,
            run_id=run_id,
            protected_attributes=lineage.protected_attributes,
            frameworks=frameworks,
            process_evidence=evidence,
        )
        report = replace(report, notes=(why, *report.notes))
    return replace(
        report,
        model=mv.name,
        version=str(mv.version),
        policy_name=lineage.policy_name or report.policy_name,
        policy_sha256=lineage.policy_sha256,
    )


# ---------------------------------------------------------------------------- rendering


def _short(clause_id: str) -> str:
    """A clause id without its framework's prefix (``Art.10``)."""
    return clause_id.split(":", 1)[-1]


def _shown(a: ControlAnswer) -> str:
    """A check's verdict for people: a warning-only check or an accepted risk also says
    what its record found."""
    if a.verdict in (WARNING_ONLY, ACCEPTED) and a.passed is not None:
        return f"{a.verdict} ({'passed' if a.passed else 'failed'})"
    if a.verdict == NOT_RUN and a.monitoring:
        return f"{NOT_RUN} (monitoring check)"
    return a.verdict


def _process_verdict(p: ProcessAnswer) -> str:
    if p.in_force is False:
        return "not in force under this policy"
    if p.in_force is None:
        return "process evidence (in force: unknown)"
    return "process evidence (not a gate)"


def _rows(clause: ClauseAnswer) -> list[tuple[str, str, str]]:
    """(answered by, check, verdict) per control and process feature; one row if none."""
    rows = [(a.risk_id, a.check or "(no control)", _shown(a)) for a in clause.controls]
    rows += [("process", p.title, _process_verdict(p)) for p in clause.process]
    if clause.coverage == "none":
        rows.append(("-", "-", "UNCOVERED"))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def _counts(clauses: Sequence[ClauseAnswer]) -> str:
    by = [c.coverage for c in clauses]
    return (
        f"{len(clauses)} clauses: {by.count('control')} answered by a control, "
        f"{by.count('process')} by process evidence only, {by.count('none')} uncovered"
    )


def _header(report: ComplianceReport) -> list[str]:
    subject = (
        f"{report.model} version {report.version}" if report.model else "compliance report"
    ) + (f", run {report.run_id}" if report.run_id else "")
    policy = f"policy {report.policy_name or 'unknown'}" + (
        f", sha256 {report.policy_sha256[:12]}" if report.policy_sha256 else ""
    )
    return [
        subject,
        f"{policy}; clauses from: {report.basis}",
        *(f"note: {n}" for n in report.notes),
    ]


def _text_rows(clause: ClauseAnswer) -> list[tuple[str, ...]]:
    """A clause's rows of the text table; its id and (shortened) title on the first."""
    title = clause.title if len(clause.title) <= 40 else clause.title[:39] + "…"
    return [
        (_short(clause.id), title, *row) if i == 0 else ("", "", *row)
        for i, row in enumerate(_rows(clause))
    ]


def render_text(report: ComplianceReport) -> str:
    """The report as tables for people: per framework, each clause with what answers it."""
    lines = _header(report)
    for f in report.frameworks:
        lines += ["", f"{f.id}  {f.name}", f"  {_counts(f.clauses)}"]
        rows = [row for c in f.clauses for row in _text_rows(c)]
        lines += _table(("clause", "title", "answered by", "check", "verdict"), rows)
    lines += [
        "",
        "process evidence is listed apart from the gates and never counts as a passed gate",
        "uncovered (nothing answers): " + (", ".join(report.uncovered) or "none"),
        "process evidence only (no control): " + (", ".join(report.process_only) or "none"),
    ]
    return "\n".join(lines)


def _cell(text: str | None) -> str:
    """Text safe in a Markdown table cell."""
    return (text or "").replace("|", "\\|").replace("\n", " ") or "—"


def _md_rows(clause: ClauseAnswer) -> list[str]:
    first = f"| {_cell(_short(clause.id))} | {_cell(clause.title)} |"
    rest = "| | |"
    rows = []
    for a in clause.controls:
        evidence = f"run `{a.run_id}`, tag `{a.gate_record}`" if a.gate_record else (a.note or "")
        control = f"{a.risk_id} (`{a.control}`)" if a.control else a.risk_id
        check = f"`{a.check}`" if a.check else "(no control)"
        rows.append(f"{control} | {check} | {_shown(a)} | {_cell(evidence)} |")
    for p in clause.process:
        rows.append(
            f"process evidence: {_cell(p.title)} | | {_process_verdict(p)} | {_cell(p.evidence)} |"
        )
    if clause.coverage == "none":
        rows.append("**uncovered** | | | |")
    return [f"{first if i == 0 else rest} {row}" for i, row in enumerate(rows)]


def compliance_markdown(report: ComplianceReport, *, heading_level: int = 2) -> str:
    """The report as a Markdown section (a heading, notes and one table per framework), for
    the model's risk report. ``heading_level`` is the level of the section's heading."""
    h = "#" * heading_level
    lines = [f"{h} Regulations and standards", ""]
    lines += [f"{line}  " for line in _header(report)]
    lines += [
        "",
        "Process evidence (the project's own features, such as the approval workflow and "
        "the audit trail) is listed apart from the gates and never counts as a passed gate.",
    ]
    for f in report.frameworks:
        lines += ["", f"{h}# {f.name}", "", _counts(f.clauses) + ".", ""]
        lines += ["| Clause | Title | Answered by | Check | Verdict | Evidence |"]
        lines += ["|---|---|---|---|---|---|"]
        for c in f.clauses:
            lines += _md_rows(c)
    lines += ["", "**Uncovered** (nothing answers): " + (", ".join(report.uncovered) or "none")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``compliance MODEL[/VERSION|@ALIAS] [--framework NAME] [--json]`` to the
    command line's subparsers; :func:`run` runs it."""
    p = subparsers.add_parser(
        "compliance",
        help="clauses of regulations and standards a model version's gates answer",
        description=(
            "For a registered model version: each clause of the EU AI Act, SR 26-2, the NIST "
            "AI RMF 1.0, ISO/IEC 42001 and ISO/IEC 23894 with the controls that answer it "
            "and their verdicts on the version's run, the process evidence that answers it "
            "(never counted as a gate), and the clauses nothing answers."
        ),
    )
    p.add_argument("ref", metavar="MODEL[/VERSION|@ALIAS]")
    p.add_argument(
        "--framework",
        action="append",
        metavar="NAME",
        help="only this framework (repeatable): EU-AI-ACT, SR-26-2, NIST-AI-RMF, ISO-42001, "
        "ISO-23894 (case-insensitive)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"status": "error", "exit_code": code, "error": message}))
    print(f"risk-assets: error: {message}", file=sys.stderr)
    return code


def _client() -> MlflowClient:
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    from risk_assets.settings import current_settings

    s = current_settings()
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)


def run(args: argparse.Namespace) -> int:
    """Run ``compliance``: 0 when the report is printed, 2 for bad input (an unknown model,
    version, alias or framework, named), 1 for anything unexpected."""
    try:
        select_frameworks(args.framework)
        report = compliance_for_version(_client(), args.ref, frameworks=args.framework)
    except ConfigError as exc:
        return _fail(args, EXIT_CONFIG, str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's contract: exit 1 for anything unexpected
        return _fail(args, EXIT_UNEXPECTED, f"{type(exc).__name__}: {exc}")
    print(json.dumps(report.to_json(), indent=1) if args.json else render_text(report))
    return EXIT_OK
