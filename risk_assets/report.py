"""The risk report (model card) of one registered model version, from MLflow alone.

An auditor asks of a model in the registry: what is it for, who owns it, trained on what,
checked how, with what result, what was knowingly accepted, and who approved it. The
answers are on the candidate's MLflow run (lineage tags, gate records, gate plots) and in
the spec and policy files the run names by path and SHA-256. :func:`collect_report`
gathers them into a :class:`ReportData`; :func:`render_html` makes one self-contained
HTML file (inline CSS, plots as data URIs, no request leaves the page) and
:func:`render_markdown` the same content as Markdown; :func:`log_report` puts both on the
candidate's run under ``report/``.

A file that cannot be read, or whose SHA-256 is no longer the one the run recorded, is
not used: the report says so (:attr:`ReportData.notes`) rather than show today's file as
the one the model was trained under. The risk register then comes from the gate records
alone.

Example::

    data = collect_report(client, "credit_risk@champion", history=audit_rows)
    paths = log_report(client, data.run_id, data)  # report/risk_report.html, .md
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from risk_assets._yaml import load_file_bounded
from risk_assets.errors import RiskAssetsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from risk_assets.policy import Policy
    from risk_assets.registry import GateRecord, RunLineage
    from risk_assets.spec import PipelineSpec

__all__ = [
    "FAIL",
    "NOT_EVALUATED",
    "NO_CONTROL",
    "PASS",
    "REPORT_ARTIFACTS",
    "WARN",
    "GateRow",
    "Limitation",
    "Plot",
    "ReportData",
    "RiskRow",
    "UnknownModelVersionError",
    "add_parser",
    "collect_report",
    "log_report",
    "render_html",
    "render_markdown",
    "run",
    "write_report",
]

PASS, FAIL, WARN = "PASS", "FAIL", "WARN"
#: A controlled risk without a gate record on the run.
NOT_EVALUATED = "NOT EVALUATED"
#: A risk the register treats without a control (accepted, transferred, avoided).
NO_CONTROL = "NO CONTROL"
#: Where :func:`log_report` puts the report on the run, by format.
REPORT_ARTIFACTS = {"html": "report/risk_report.html", "md": "report/risk_report.md"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MISSING = "not recorded"
_NO_APPROVAL = "no approval recorded"


class UnknownModelVersionError(RiskAssetsError):
    """The model reference names no registered model version (the CLI exits with 2)."""


# ------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class GateRow:
    """One gate's result on the run, as its record says (its verdict: PASS, FAIL, WARN)."""

    check: str
    risk_id: str
    asset: str
    blocking: bool
    verdict: str
    value: float | None
    threshold: float | None
    summary: str
    figures: Mapping[str, float | None] = field(default_factory=dict)
    evaluated_at: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class RiskRow:
    """One risk of the register with its control and the gates that checked it.

    The descriptive fields (title, owner, treatment, ...) are None when the policy file
    could not be used; ``control`` and ``severity`` then come from the gate records."""

    id: str
    title: str | None
    category: str | None
    owner: str | None
    treatment: str | None
    control: str | None
    severity: str | None
    justification: str | None = None
    accepted_by: str | None = None
    clauses: tuple[str, ...] = ()
    gates: tuple[GateRow, ...] = ()

    @property
    def verdict(self) -> str:
        """FAIL if a blocking gate failed, WARN if a warning did, PASS when all passed;
        NOT EVALUATED (a control without a record) or NO CONTROL without gates."""
        if not self.gates:
            return NOT_EVALUATED if self.control else NO_CONTROL
        return _worst(g.verdict for g in self.gates)


@dataclass(frozen=True)
class Plot:
    """A gate's plot: its artefact path on the run, the PNG bytes and a caption."""

    check: str
    path: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class Limitation:
    """A known limitation: an accepted risk, a failed warning or a control not evaluated."""

    risk_id: str
    kind: str
    text: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered by :func:`collect_report`; rendering reads
    only this (so a test or another module can render a report it built itself)."""

    model: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    run_verdict: str | None
    model_sha256: str | None
    generated_at: str
    intended_use: str | None
    owner: str | None
    lineage: tuple[tuple[str, str | None], ...]
    risks: tuple[RiskRow, ...]
    metrics: tuple[tuple[str, float], ...] = ()
    plots: tuple[Plot, ...] = ()
    limitations: tuple[Limitation, ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()
    sections: tuple[tuple[str, str], ...] = ()
    #: What the report could not fill honestly, and why (spec, policy, model, plots).
    notes: tuple[str, ...] = ()
    registration: tuple[tuple[str, str | None], ...] = ()

    @property
    def gates(self) -> tuple[GateRow, ...]:
        return tuple(g for r in self.risks for g in r.gates)

    @property
    def verdict(self) -> str:
        """The gates' verdict over the whole register (NOT EVALUATED without any record)."""
        gates = self.gates
        return _worst(g.verdict for g in gates) if gates else NOT_EVALUATED


def _worst(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    return FAIL if FAIL in found else WARN if WARN in found else PASS


def _gate_verdict(record: GateRecord) -> str:
    if record.passed:
        return PASS
    return FAIL if record.blocking else WARN


# -------------------------------------------------------------------- collecting


def _find_version(client: MlflowClient, ref: str) -> Any:
    """The model version ``ref`` names (``MODEL/VERSION``, ``MODEL@ALIAS``, or ``MODEL``:
    its champion, else its latest version), as the ``lineage`` command resolves it.

    Only "does not exist" answers (and an unknown alias) mean an unknown version; any
    other registry error is raised as it is.

    Raises:
        UnknownModelVersionError: naming ``ref``.
    """
    from mlflow.exceptions import MlflowException

    from risk_assets.registry._mlflow import find_champion, parse_model_ref

    name, alias, version = parse_model_ref(ref)
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version:
            return client.get_model_version(name, version)
        found = find_champion(client, name) or max(
            client.search_model_versions(f"name='{name}'"),
            key=lambda v: int(v.version),
            default=None,
        )
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise UnknownModelVersionError(
            f"no registered model version {ref!r}: {exc.message}"
        ) from None
    if found is None:
        raise UnknownModelVersionError(f"no registered model version {ref!r}")
    return found


def _read_spec(recorded: RunLineage) -> tuple[PipelineSpec | None, Path | None, str]:
    """The spec the run was trained under, only if its bytes still hash as recorded.

    Returns:
        The spec (None unless verified), the policy path it names (when it parses, so a
        changed spec may still lead to a policy whose own hash is then checked), and a
        sentence saying what was found.
    """
    import yaml
    from pydantic import ValidationError

    from risk_assets.spec import PipelineSpec

    if not recorded.spec_path:
        return None, None, "The run records no spec file: intended use and owner are unknown."
    path = Path(recorded.spec_path)
    try:
        data = path.read_bytes()
        spec = PipelineSpec.model_validate(load_file_bounded(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
        return (
            None,
            None,
            (
                f"The spec file {path} cannot be read as a spec ({type(exc).__name__}): "
                "intended use and owner are not shown."
            ),
        )
    policy = Path(spec.policy).expanduser()
    policy_path = policy if policy.is_absolute() else (path.parent / policy).resolve()
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded.spec_sha256:
        return (
            None,
            policy_path,
            (
                f"The spec file {path} changed since training (SHA-256 {actual} now, "
                f"{recorded.spec_sha256 or _MISSING} recorded): "
                "intended use and owner are not shown."
            ),
        )
    return spec, policy_path, f"The spec file {path} matches its recorded SHA-256."


def _read_policy(path: Path | None, recorded_sha256: str | None) -> tuple[Policy | None, str]:
    """The policy the run was gated under, only if its file still hashes as recorded;
    with a sentence saying what was found."""
    from risk_assets.policy import load_policy

    fallback = (
        "the risk register is listed from the gate records alone, without titles, owners, "
        "treatments or accepted risks."
    )
    if path is None:
        return None, f"The policy file is unknown (the spec could not be read): {fallback}"
    try:
        loaded = load_policy(path)
    except (RiskAssetsError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"The policy file cannot be used ({first}): {fallback}"
    if loaded.sha256 != recorded_sha256:
        return None, (
            f"The policy file {path} changed since training (SHA-256 {loaded.sha256} now, "
            f"{recorded_sha256 or _MISSING} recorded): {fallback}"
        )
    return loaded.policy, f"The policy file {path} matches its recorded SHA-256."


def _gate_row(record: GateRecord) -> GateRow:
    from risk_assets.registry._mlflow import _iso

    return GateRow(
        check=record.check,
        risk_id=record.risk_id,
        asset=record.asset,
        blocking=record.blocking,
        verdict=_gate_verdict(record),
        value=record.value,
        threshold=record.threshold,
        summary=record.summary,
        figures=dict(record.figures),
        evaluated_at=_iso(record.evaluated_at),
        reference=record.reference,
    )


def _gate_order(record: GateRecord) -> tuple[bool, str]:
    return record.asset != "validated_data", record.check


def _control_of_check(check: str) -> str | None:
    """The catalogue control whose check this is (per-attribute checks by their template)."""
    from risk_assets.catalogue import CATALOGUE

    for name, found in CATALOGUE.items():
        pattern = re.escape(found.check).replace(re.escape("{attribute}"), ".+")
        if re.fullmatch(pattern, check):
            return name
    return None


def _risks_from_policy(policy: Policy, records: Mapping[str, GateRecord]) -> list[RiskRow]:
    """The register in the policy's order, each risk with its gate records; records of
    risks the policy does not list follow (from :func:`_risks_from_records`)."""
    rows = []
    for risk in policy.risks:
        mine = sorted((r for r in records.values() if r.risk_id == risk.id), key=_gate_order)
        rows.append(
            RiskRow(
                id=risk.id,
                title=risk.title,
                category=risk.category,
                owner=risk.owner,
                treatment=risk.treatment,
                control=risk.control.name if risk.control else None,
                severity=risk.control.severity if risk.control else None,
                justification=risk.justification,
                accepted_by=risk.accepted_by,
                clauses=tuple(getattr(risk, "clauses", ()) or ()),
                gates=tuple(_gate_row(r) for r in mine),
            )
        )
    known = {risk.id for risk in policy.risks}
    others = {k: r for k, r in records.items() if r.risk_id not in known}
    return rows + _risks_from_records(others)


def _risks_from_records(records: Mapping[str, GateRecord]) -> list[RiskRow]:
    """Risks as the gate records name them: the control from the catalogue by check name,
    the severity from whether the gate blocked; nothing the records do not say."""
    by_risk: dict[str, list[GateRecord]] = {}
    for record in sorted(records.values(), key=_gate_order):
        by_risk.setdefault(record.risk_id, []).append(record)
    return [
        RiskRow(
            id=risk_id,
            title=None,
            category=None,
            owner=None,
            treatment=None,
            control=_control_of_check(mine[0].check),
            severity="error" if any(r.blocking for r in mine) else "warn",
            gates=tuple(_gate_row(r) for r in mine),
        )
        for risk_id, mine in by_risk.items()
    ]


def _limitations(risks: Sequence[RiskRow], policy_known: bool) -> list[Limitation]:
    """Accepted risks (who accepted them, why), warnings that failed, and controls of the
    register that were not evaluated on this run."""
    out = []
    for risk in risks:
        if risk.treatment == "accept":
            text = (
                f"Risk accepted by {risk.accepted_by or 'nobody named'}: "
                f"{risk.justification or 'no justification given'}"
            )
            out.append(Limitation(risk.id, "accepted risk", text))
        for gate in risk.gates:
            if gate.verdict == WARN:
                text = f"Warning gate {gate.check} failed: {gate.summary}"
                out.append(Limitation(risk.id, "warning failed", text))
        if risk.verdict == NOT_EVALUATED:
            text = f"Control {risk.control} has no gate record on this run."
            out.append(Limitation(risk.id, "not evaluated", text))
    if not policy_known:
        text = "Accepted risks cannot be listed: the policy file could not be used (see notes)."
        out.append(Limitation("-", "unknown", text))
    return out


def _download_plots(
    client: MlflowClient, run_id: str, records: Mapping[str, GateRecord]
) -> tuple[list[Plot], list[str]]:
    """The run's ``gates/*.png`` with captions from their gate records; a file that is
    not a PNG is left out and named in the returned notes."""
    plots, notes = [], []
    try:
        listed = [a.path for a in client.list_artifacts(run_id, "gates")]
    except Exception as exc:  # noqa: BLE001 - a report without plots still reports
        return [], [f"The gate plots could not be listed ({type(exc).__name__}: {exc})."]
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(p for p in listed if p.endswith(".png")):
            try:
                png = Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
            except Exception as exc:  # noqa: BLE001 - one missing plot is a note, not a failure
                notes.append(f"The artefact {path} could not be downloaded ({exc}).")
                continue
            if not png.startswith(_PNG_MAGIC):
                notes.append(f"The artefact {path} is not a PNG image; it is not shown.")
                continue
            check = Path(path).stem
            plots.append(Plot(check, path, png, _caption(check, records.get(check))))
    return plots, notes


def _caption(check: str, record: GateRecord | None) -> str:
    if record is None:
        return f"{check}: no gate record on this run"
    return f"{check} ({record.risk_id}), {_gate_verdict(record)}: {record.summary}"


def _model_note(
    client: MlflowClient, run_id: str, recorded: RunLineage, version_sha: str | None
) -> str:
    """Whether the model artefact still hashes as recorded on the run and the version."""
    from risk_assets.registry._mlflow import _verified_model_sha256

    try:
        actual = _verified_model_sha256(client, run_id, recorded)
    except RiskAssetsError as exc:
        return f"The model artefact could not be verified: {exc}"
    if version_sha and version_sha != actual:
        return f"The version records model SHA-256 {version_sha}, the artefact hashes {actual}."
    return "The model artefact was downloaded and its SHA-256 matches the recorded one."


def _lineage_rows(client: MlflowClient, run: Any, rec: RunLineage) -> list[tuple[str, Any]]:
    """The data lineage, in the order an auditor follows it: source, snapshots, split,
    window and partition, suite, policy, spec, code, the runs that made the model."""
    from risk_assets.registry._mlflow import _window_lineage

    params = run.data.params
    split = ", ".join(
        f"{k} {params[f'split.{k}']}"
        for k in ("seed", "test_size", "stratified")
        if f"split.{k}" in params
    )
    rows: list[tuple[str, Any]] = [
        ("Pipeline", rec.pipeline),
        ("Data source", rec.source),
        ("Raw snapshot SHA-256", rec.raw_snapshot_sha256),
        ("Validated snapshot SHA-256", rec.snapshot_sha256),
        ("Training split SHA-256", rec.train_sha256),
        ("Test split SHA-256", rec.test_sha256),
        ("Split", split or None),
        ("Partition", rec.partition or "none (unpartitioned)"),
        ("Training window", rec.window or "none"),
    ]
    window = _window_lineage(client, run, rec) or {}
    if window.get("error"):
        rows.append(("Training window record", window["error"]))
    for part in window.get("partitions", []):
        text = f"{part.get('rows')} rows, SHA-256 {part.get('snapshot_sha256')}"
        rows.append((f"Window partition {part.get('partition')}", text))
    return rows + [
        ("Expectation suite SHA-256", rec.suite_sha256),
        ("Expectation suite file", rec.suite_path),
        ("Policy SHA-256", rec.policy_sha256),
        ("Policy", f"{rec.policy_name} (tier {rec.policy_tier})" if rec.policy_name else None),
        ("Spec SHA-256", rec.spec_sha256),
        ("Spec file", rec.spec_path),
        ("Protected attributes", ", ".join(rec.protected_attributes) or None),
        ("Positive label", rec.positive_label),
        ("Favourable label", rec.favourable_label),
        ("Model class", rec.model_class),
        ("Code version", rec.code_version),
        ("Dagster run id", rec.dagster_run_id),
        ("Dagster run URL", rec.dagster_run_url),
        ("MLflow run id", f"{run.info.run_id} (experiment {run.info.experiment_id})"),
        ("Trained by", rec.user or run.info.user_id or None),
    ]


def _registration_rows(client: MlflowClient, mv: Any) -> tuple[list[str], list[tuple]]:
    """The version's aliases and who registered (and promoted) it, from its tags."""
    from risk_assets.registry import VersionTags
    from risk_assets.registry._mlflow import _iso

    reg = client.get_registered_model(mv.name)
    aliases = sorted(a for a, v in (reg.aliases or {}).items() if str(v) == str(mv.version))
    tags = VersionTags.from_tags(mv.tags)
    rows = [
        ("Registered at", _iso(mv.creation_timestamp / 1000)),
        ("Registered by", tags.registered_by or mv.user_id or None),
        ("Policy tier", tags.policy_tier),
        ("Copied from", tags.candidate_version),
        ("Promoted by", tags.promoted_by),
        ("Promotion reason", tags.promotion_reason),
    ]
    keep = {"Registered at", "Registered by", "Policy tier"}
    return aliases, [(k, v) for k, v in rows if v or k in keep]


def collect_report(
    client: MlflowClient,
    ref: str,
    *,
    history: Sequence[Mapping[str, Any]] = (),
    sections: Sequence[tuple[str, str]] = (),
) -> ReportData:
    """Gather the risk report of a registered version from MLflow and the files its run
    names (each used only if its SHA-256 is still the one recorded).

    Args:
        ref: ``MODEL/VERSION``, ``MODEL@ALIAS`` or ``MODEL`` (its champion, else its latest
            version); a ``<name>-candidates`` version works the same way.
        history: approval history rows (``timestamp``, ``actor``, ``action``, ``reason``,
            ``version``), rendered as given.
        sections: extra sections, each (title, Markdown text), rendered after the rest.

    Raises:
        UnknownModelVersionError: ``ref`` names no registered version.
    """
    from risk_assets.registry import RunLineage, RunVerdict, VersionTags
    from risk_assets.registry._mlflow import gate_records

    mv = _find_version(client, ref)
    run = client.get_run(mv.run_id)
    recorded = RunLineage.from_tags(run.data.tags)
    spec, policy_path, spec_note = _read_spec(recorded)
    policy, policy_note = _read_policy(policy_path, recorded.policy_sha256)
    records = gate_records(run)
    risks = _risks_from_policy(policy, records) if policy else _risks_from_records(records)
    plots, plot_notes = _download_plots(client, run.info.run_id, records)
    aliases, registration = _registration_rows(client, mv)
    model_sha = VersionTags.from_tags(mv.tags).model_sha256 or recorded.model_sha256
    model_note = _model_note(client, run.info.run_id, recorded, model_sha)
    return ReportData(
        model=mv.name,
        version=str(mv.version),
        aliases=tuple(aliases),
        run_id=run.info.run_id,
        run_verdict=RunVerdict.from_tags(run.data.tags).verdict,
        model_sha256=model_sha,
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        intended_use=(spec.description or None) if spec else None,
        owner=spec.owner if spec else None,
        lineage=tuple(_lineage_rows(client, run, recorded)),
        risks=tuple(risks),
        metrics=tuple(sorted((k, v) for k, v in run.data.metrics.items() if k.startswith("test."))),
        plots=tuple(plots),
        limitations=tuple(_limitations(risks, policy is not None)),
        history=tuple(dict(h) for h in history),
        sections=tuple((str(t), str(body)) for t, body in sections),
        notes=tuple(n for n in (spec_note, policy_note, model_note, *plot_notes) if n),
        registration=tuple(registration),
    )


# ----------------------------------------------------------------------- shared text


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _when(value: Any) -> str:
    """A history timestamp as given, or as UTC ISO time when it is a number (seconds, or
    milliseconds when it is too large to be seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    return "" if value is None else str(value)


def _title(data: ReportData) -> str:
    return f"Risk report: {data.model} version {data.version}"


def _header_rows(data: ReportData) -> list[tuple[str, str]]:
    return [
        ("Model", data.model),
        ("Version", data.version + (f" ({', '.join(data.aliases)})" if data.aliases else "")),
        ("Run verdict", data.run_verdict or "none recorded"),
        ("Model SHA-256", data.model_sha256 or _MISSING),
        ("Generated", data.generated_at),
    ]


_HISTORY_KEYS = ("timestamp", "actor", "action", "reason", "version")
_REGISTER_HEAD = (
    "Risk",
    "Title",
    "Owner",
    "Treatment",
    "Control (check)",
    "Figure",
    "Threshold",
    "Verdict",
    "Summary",
)


def _register_cells(risk: RiskRow, gate: GateRow | None) -> list[str]:
    """One register row as plain text cells (a risk without gates has one row)."""
    control = risk.control or "none"
    if risk.severity:
        control += f" [{risk.severity}]"
    if gate is not None:
        control += f" ({gate.check})"
    return [
        risk.id,
        risk.title or "unknown (see About this report)",
        risk.owner or "unknown",
        risk.treatment or "unknown",
        control,
        _number(gate.value) if gate else "—",
        _number(gate.threshold) if gate else "—",
        gate.verdict if gate else risk.verdict,
        gate.summary if gate else "",
    ]


def _register_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for risk in data.risks:
        for gate in risk.gates or (None,):
            rows.append(_register_cells(risk, gate))
    return rows


# ---------------------------------------------------------------------------- HTML

_CSS = """
:root { --pass: #1b6e2a; --fail: #a4161a; --warn: #8a5a00; --none: #555; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #111; margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 8px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 2px solid #ccc; padding-bottom: 4px; } h3 { font-size: 15px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } tbody tr:nth-child(even) td { background: #fafafa; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
  overflow-wrap: anywhere; }
.verdict { display: inline-block; font-weight: 700; padding: 1px 6px; border-radius: 3px;
  border: 1px solid currentColor; white-space: nowrap; }
.verdict-pass { color: var(--pass); background: #e3f4e6; }
.verdict-fail { color: var(--fail); background: #fde2e2; }
.verdict-warn { color: var(--warn); background: #fff1cc; }
.verdict-none { color: var(--none); background: #eee; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
header dt { font-weight: 600; } header dd { margin: 0; }
figure { margin: 12px 0; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #333; }
#risk-register td:first-child { white-space: nowrap; }
#risk-register td:last-child { min-width: 240px; }
.note { color: #333; } pre { white-space: pre-wrap; background: #f5f5f5; padding: 8px; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  #risk-register { font-size: 8pt; } #risk-register td:last-child { min-width: 0; }
  #risk-register td, #risk-register th { padding: 2px 3px; }
  #risk-register td:nth-child(n+6):nth-child(-n+8) { white-space: nowrap; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  tr, figure { page-break-inside: avoid; break-inside: avoid; }
  thead { display: table-header-group; }
}
@page { margin: 12mm; }
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_VERDICT_SIGNS = {PASS: "✔", FAIL: "✘", WARN: "⚠"}


def _e(value: Any) -> str:
    """Escaped text of any value (None reads as not recorded)."""
    return html.escape(_MISSING if value is None else str(value), quote=True)


def _badge(verdict: str) -> str:
    """A verdict as text and colour, never colour alone (a sign, the word, a border)."""
    kind = verdict.lower() if verdict in (PASS, FAIL, WARN) else "none"
    sign = _VERDICT_SIGNS.get(verdict, "–")
    return f'<span class="verdict verdict-{kind}">{sign} {_e(verdict)}</span>'


def _html_table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    table_id: str = "",
    raw: Sequence[int] = (),
) -> str:
    """A table of escaped cells; the cells at the indices ``raw`` of each row are trusted
    markup built here from escaped text (a verdict badge, break opportunities)."""
    ident = f' id="{_e(table_id)}"' if table_id else ""
    out = [f"<table{ident}><thead><tr>"]
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [c if i in raw else _e(c) for i, c in enumerate(row)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _html_header(data: ReportData) -> str:
    items = [
        f"<dt>{_e(k)}</dt><dd{' class=mono' if 'SHA-256' in k else ''}>{_e(v)}</dd>"
        for k, v in _header_rows(data)
    ]
    items.insert(3, f"<dt>Gate verdict</dt><dd id='verdict'>{_badge(data.verdict)}</dd>")
    return f"<header><h1>{_e(_title(data))}</h1><dl>{''.join(items)}</dl></header>"


def _html_intended(data: ReportData) -> str:
    use = data.intended_use or "Not available (see About this report)."
    owner = data.owner or "Not available (see About this report)."
    rows = [("Intended use", use), ("Owner", owner), *data.registration]
    return (
        "<section id='intended-use'><h2>Model and intended use</h2>"
        + _html_table(("Field", "Value"), [(k, v if v is not None else _MISSING) for k, v in rows])
        + "</section>"
    )


def _html_lineage(data: ReportData) -> str:
    rows = "".join(
        f"<tr><th scope='row'>{_e(k)}</th><td class='mono'>{_e(v)}</td></tr>"
        for k, v in data.lineage
    )
    metrics = ""
    if data.metrics:
        metrics = "<h3>Held-out metrics (test split)</h3>" + _html_table(
            ("Metric", "Value"), [(k.removeprefix("test."), _number(v)) for k, v in data.metrics]
        )
    return (
        "<section id='lineage'><h2>Data lineage</h2>"
        f"<table id='lineage-table'><tbody>{rows}</tbody></table>{metrics}</section>"
    )


def _html_register(data: ReportData) -> str:
    rows = []
    for cells in _register_rows(data):
        cells[4] = _e(cells[4]).replace("_", "_<wbr>")  # long check names break at "_"
        cells[7] = _badge(cells[7])
        rows.append(cells)
    table = _html_table(_REGISTER_HEAD, rows, table_id="risk-register", raw=(4, 7))
    return (
        "<section id='register'><h2>Risk register and gate results</h2>"
        "<p class='note'>One row per gate; the figure is the gate's headline value, judged "
        "against its threshold. FAIL: a blocking gate failed; WARN: a warning-only gate "
        "failed.</p>" + table + "</section>"
    )


def _html_plots(data: ReportData) -> str:
    if not data.plots:
        return "<section id='plots'><h2>Gate plots</h2><p>No gate plot on this run.</p></section>"
    figures = []
    for plot in data.plots:
        uri = "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")
        figures.append(
            f'<figure><img src="{uri}" alt="{_e("Plot of gate " + plot.check)}">'
            f"<figcaption><code>{_e(plot.path)}</code>: {_e(plot.caption)}</figcaption></figure>"
        )
    return "<section id='plots'><h2>Gate plots</h2>" + "".join(figures) + "</section>"


def _html_limitations(data: ReportData) -> str:
    if not data.limitations:
        body = "<p>None: no accepted risk, no failed warning, every control evaluated.</p>"
    else:
        body = _html_table(
            ("Risk", "Kind", "Limitation"),
            [(lim.risk_id, lim.kind, lim.text) for lim in data.limitations],
            table_id="limitations",
        )
    return f"<section id='limitations'><h2>Known limitations</h2>{body}</section>"


def _html_history(data: ReportData) -> str:
    if not data.history:
        body = f"<p>{_e(_NO_APPROVAL.capitalize())}.</p>"
    else:
        rows = [
            [_when(h.get("timestamp")), *(str(h.get(k) or "") for k in _HISTORY_KEYS[1:])]
            for h in data.history
        ]
        head = [k.capitalize() for k in _HISTORY_KEYS]
        body = _html_table(head, rows, table_id="approval-history")
    return f"<section id='approvals'><h2>Approval history</h2>{body}</section>"


def _html_sections(data: ReportData) -> str:
    return "".join(
        f"<section class='extra'><h2>{_e(title)}</h2>{markdown_to_html(text)}</section>"
        for title, text in data.sections
    )


def _html_notes(data: ReportData) -> str:
    items = "".join(f"<li>{_e(n)}</li>" for n in data.notes) or "<li>Nothing to add.</li>"
    return (
        "<section id='about'><h2>About this report</h2>"
        "<p>Generated from the MLflow run of the model and the files it records, each used "
        f"only while its SHA-256 is the one recorded.</p><ul>{items}</ul></section>"
    )


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page: inline CSS, plots as data URIs, a
    content security policy that forbids any request, every value escaped."""
    body = "".join(
        part(data)
        for part in (
            _html_header,
            _html_intended,
            _html_lineage,
            _html_register,
            _html_plots,
            _html_limitations,
            _html_history,
            _html_sections,
            _html_notes,
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(_title(data))}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


# ------------------------------------------------------- a tiny, safe Markdown subset

_LIST_ITEM = re.compile(r"^\s*[-*] ")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _inline(text: str) -> str:
    """Escaped text with ``code`` spans and **bold**; nothing else is markup."""
    out = _e(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _md_table(lines: list[str]) -> str:
    head, body = _cells(lines[0]), [_cells(x) for x in lines[2:]]
    out = ["<table><thead><tr>", *(f"<th>{_inline(c)}</th>" for c in head), "</tr></thead>"]
    out.append("<tbody>")
    for row in body:
        out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _md_block(lines: list[str]) -> str:
    """One block of lines (no blank line inside): a table, a list, headings or a paragraph."""
    if len(lines) >= 2 and lines[0].lstrip().startswith("|") and _TABLE_RULE.match(lines[1]):
        return _md_table(lines)
    if all(_LIST_ITEM.match(x) for x in lines):
        items = "".join(f"<li>{_inline(_LIST_ITEM.sub('', x))}</li>" for x in lines)
        return f"<ul>{items}</ul>"
    out, para = [], []
    for line in lines:
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            if para:
                out.append(f"<p>{_inline(' '.join(para))}</p>")
                para = []
            level = min(len(heading.group(1)) + 2, 6)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        else:
            para.append(line.strip())
    if para:
        out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "".join(out)


def markdown_to_html(text: str) -> str:
    """A safe rendering of a small Markdown subset: headings, paragraphs, ``-`` lists,
    pipe tables, fenced code, ``code`` and **bold**. Every character of the input is
    escaped first, so no markup of the input reaches the page."""
    out, block, fence = [], [], None
    for line in text.splitlines():
        if fence is not None:
            if line.strip().startswith("```"):
                out.append(f"<pre>{_e(chr(10).join(fence))}</pre>")
                fence = None
            else:
                fence.append(line)
        elif line.strip().startswith("```"):
            out.append(_md_block(block) if block else "")
            block, fence = [], []
        elif not line.strip():
            out.append(_md_block(block) if block else "")
            block = []
        else:
            block.append(line)
    if fence is not None:
        out.append(f"<pre>{_e(chr(10).join(fence))}</pre>")
    if block:
        out.append(_md_block(block))
    return "".join(out)


# ------------------------------------------------------------------------ Markdown


def _md(value: Any) -> str:
    """A value as one Markdown table cell: no line break; backslashes, pipes and ``<``
    backslash-escaped (CommonMark), so a value can neither end the cell nor open HTML in
    a renderer that allows it, and reads as itself."""
    text = _MISSING if value is None else str(value)
    text = " ".join(text.split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")


def _md_section(text: str) -> str:
    """A supplied Markdown section as given, but for ``<`` outside code (backslash-escaped),
    so that it cannot carry HTML into a renderer that allows it."""
    out, in_fence = [], False
    for line in text.rstrip().splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            parts = re.split(r"(`[^`]*`)", line)
            line = "".join(p if p.startswith("`") else p.replace("<", "\\<") for p in parts)
        out.append(line)
    return "\n".join(out)


def _md_table_text(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out + [""]


def _md_head(data: ReportData) -> list[str]:
    rows = _header_rows(data)
    rows.insert(3, ("Gate verdict", data.verdict))
    lines = [f"# {_md(_title(data))}", ""]
    lines += [f"- **{k}**: {_md(v)}" for k, v in rows]
    use = data.intended_use or "Not available (see About this report)."
    owner = data.owner or "Not available (see About this report)."
    lines += ["", "## Model and intended use", ""]
    return lines + _md_table_text(
        ("Field", "Value"), [("Intended use", use), ("Owner", owner), *data.registration]
    )


def _md_lineage(data: ReportData) -> list[str]:
    lines = ["## Data lineage", ""] + _md_table_text(("Field", "Value"), data.lineage)
    if data.metrics:
        lines += ["### Held-out metrics (test split)", ""]
        rows = [(k.removeprefix("test."), _number(v)) for k, v in data.metrics]
        lines += _md_table_text(("Metric", "Value"), rows)
    return lines


def _md_register(data: ReportData) -> list[str]:
    return ["## Risk register and gate results", ""] + _md_table_text(
        _REGISTER_HEAD, _register_rows(data)
    )


def _md_plots(data: ReportData) -> list[str]:
    lines = ["## Gate plots", ""]
    if not data.plots:
        return lines + ["No gate plot on this run.", ""]
    for plot in data.plots:
        lines += [f"- `{plot.path}` (MLflow artefact of run `{data.run_id}`): {_md(plot.caption)}"]
    return lines + [""]


def _md_rest(data: ReportData) -> list[str]:
    lines = ["## Known limitations", ""]
    if data.limitations:
        rows = [(lim.risk_id, lim.kind, lim.text) for lim in data.limitations]
        lines += _md_table_text(("Risk", "Kind", "Limitation"), rows)
    else:
        lines += ["None: no accepted risk, no failed warning, every control evaluated.", ""]
    lines += ["## Approval history", ""]
    if data.history:
        rows = [
            [_when(h.get("timestamp")), *(h.get(k) or "" for k in _HISTORY_KEYS[1:])]
            for h in data.history
        ]
        lines += _md_table_text([k.capitalize() for k in _HISTORY_KEYS], rows)
    else:
        lines += [_NO_APPROVAL.capitalize() + ".", ""]
    for title, text in data.sections:
        lines += [f"## {_md(title)}", "", _md_section(text), ""]
    lines += ["## About this report", ""]
    return lines + [f"- {_md(n)}" for n in data.notes or ("Nothing to add.",)] + [""]


def render_markdown(data: ReportData) -> str:
    """The report as Markdown: the same tables; plots named by their MLflow artefact path."""
    parts = (_md_head, _md_lineage, _md_register, _md_plots, _md_rest)
    return "\n".join(line for part in parts for line in part(data))


# --------------------------------------------------------------------- publishing


def log_report(client: MlflowClient, run_id: str, data: ReportData) -> dict[str, str]:
    """Put the HTML and Markdown report on the run as ``report/risk_report.html`` and
    ``report/risk_report.md``; return their artefact paths by format. Calling it again
    (a report re-generated on approval) replaces both files."""
    rendered = {"html": render_html(data), "md": render_markdown(data)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, text in rendered.items():
            local = Path(tmp) / Path(REPORT_ARTIFACTS[kind]).name
            local.write_text(text, encoding="utf-8")
            client.log_artifact(run_id, str(local), str(Path(REPORT_ARTIFACTS[kind]).parent))
    return dict(REPORT_ARTIFACTS)


def write_report(data: ReportData, out: Path, fmt: str = "both") -> list[Path]:
    """Write the report into the folder ``out`` (``html``, ``md`` or ``both``); return
    the files written, named after the model and version."""
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{data.model}-v{data.version}-risk-report")
    written = []
    for kind, render in (("html", render_html), ("md", render_markdown)):
        if fmt in (kind, "both"):
            path = out / f"{stem}.{kind}"
            path.write_text(render(data), encoding="utf-8")
            written.append(path)
    return written


# ---------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report MODEL[/VERSION|@ALIAS] [--out DIR] [--format html|md|both]``."""
    p = subparsers.add_parser(
        "report",
        help="the risk report (model card) of a registered model version, as HTML/Markdown",
    )
    p.add_argument("ref", metavar="MODEL[/VERSION|@ALIAS]")
    p.add_argument("--out", default=".", metavar="DIR", help="folder to write to (default: .)")
    p.add_argument("--format", choices=("html", "md", "both"), default="both")
    return p


def run(args: argparse.Namespace) -> int:
    """Write the report of ``args.ref`` into ``args.out`` and print the files' paths.

    Returns:
        0 written, 2 no such model version (named on stderr), 1 anything unexpected.
    """
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        from mlflow import MlflowClient

        from risk_assets.settings import current_settings

        s = current_settings()
        client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)
        data = collect_report(client, args.ref)
        written = write_report(data, Path(args.out), args.format)
    except UnknownModelVersionError as exc:
        print(f"risk-assets: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI contract: exit 1, one message
        print(f"risk-assets: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
