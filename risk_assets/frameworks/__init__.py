"""The clause catalogue: regulations and standards, their clauses, and what answers each.

Shipped as package data beside this module: one YAML file per framework (EU AI Act,
SR 26-2, NIST AI RMF 1.0, ISO/IEC 42001, ISO/IEC 23894), each clause with its id
(``EU-AI-ACT:Art.10``), short title and a line on what it asks; and ``mapping.yaml``, the
clauses each control of the catalogue answers by default and the project's features that
answer clauses without being a gate (*process evidence*: the risk register, the approval
workflow, the audit trail, the risk report), kept apart so that they never count as a
passed gate.

A risk of a policy may name the clauses it answers (``Risk.clauses``); otherwise its
control's default clauses apply (:func:`clauses_of`). An unknown clause id in a policy is
refused when the pipeline loads (:func:`check_policy_clauses`), naming the risk and the
clause. The catalogue itself is validated when it loads: a clause id that its framework
does not prefix, a duplicate, a control missing from the mapping or mapped to no clause,
or a mapping to an unknown clause is an error naming the file and the key.

Only the standard library and PyYAML are imported here, so that the command line's
``--help`` stays fast; the control catalogue is imported when the mapping is checked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from risk_assets._yaml import SHIPPED_LOADER
from risk_assets.errors import PolicyError, RiskAssetsError

if TYPE_CHECKING:
    from risk_assets.policy import Policy, Risk

__all__ = [
    "FRAMEWORK_FILES",
    "MAPPING_FILE",
    "Clause",
    "ClauseCatalogue",
    "Framework",
    "ProcessItem",
    "build_catalogue",
    "check_policy_clauses",
    "clauses_of",
    "load_clause_catalogue",
    "unknown_clauses",
]

HERE = Path(__file__).parent
#: The framework files, in the order reports list them.
FRAMEWORK_FILES = (
    "eu_ai_act.yaml",
    "sr_26_2.yaml",
    "nist_ai_rmf.yaml",
    "iso_42001.yaml",
    "iso_23894.yaml",
)
MAPPING_FILE = "mapping.yaml"


@dataclass(frozen=True)
class Clause:
    """One clause of a framework: its id (``FRAMEWORK:CLAUSE``), title and what it asks."""

    id: str
    framework: str
    title: str
    asks: str


@dataclass(frozen=True)
class Framework:
    """A regulation or standard and the clauses of it this project maps."""

    id: str
    name: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class ProcessItem:
    """A feature of the project that answers clauses without being a gate (process
    evidence): the risk register, the approval workflow, the audit trail, the risk report."""

    id: str
    title: str
    what: str
    clauses: tuple[str, ...]


@dataclass(frozen=True)
class ClauseCatalogue:
    """The frameworks, the default clauses of each control, and the process evidence."""

    frameworks: tuple[Framework, ...]
    controls: Mapping[str, tuple[str, ...]]
    process: tuple[ProcessItem, ...]

    @functools.cached_property
    def clauses(self) -> dict[str, Clause]:
        """Every clause by id, in framework order."""
        return {c.id: c for f in self.frameworks for c in f.clauses}

    def framework(self, name: str) -> Framework:
        """The framework of that id, case-insensitively (``eu-ai-act``, ``ISO-42001``).

        Raises:
            KeyError: no such framework, naming the known ones.
        """
        found = next((f for f in self.frameworks if f.id.lower() == name.strip().lower()), None)
        if found is None:
            known = ", ".join(f.id for f in self.frameworks)
            raise KeyError(f"unknown framework {name!r}; known frameworks: {known}")
        return found


def _text(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RiskAssetsError(f"{where}.{key}: a non-empty text is required")
    return " ".join(value.split())


def _mapping(doc: Any, keys: Iterable[str], where: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise RiskAssetsError(f"{where}: expected a mapping, found {type(doc).__name__}")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        raise RiskAssetsError(f"{where}: unknown key(s) {unknown}")
    return doc


def _list(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list) or not value:
        raise RiskAssetsError(f"{where}.{key}: a non-empty list is required")
    return value


def _framework(doc: Any, where: str) -> Framework:
    """One framework file's content, each clause id prefixed by the framework's id."""
    doc = _mapping(doc, ("id", "name", "clauses"), where)
    fid = _text(doc, "id", where)
    clauses = []
    for i, raw in enumerate(_list(doc, "clauses", where)):
        at = f"{where}.clauses.{i}"
        raw = _mapping(raw, ("id", "title", "asks"), at)
        cid = _text(raw, "id", at)
        if not cid.startswith(f"{fid}:") or cid == f"{fid}:":
            raise RiskAssetsError(f"{at}.id: {cid!r} must start with the framework's {fid + ':'!r}")
        clauses.append(Clause(cid, fid, _text(raw, "title", at), _text(raw, "asks", at)))
    return Framework(fid, _text(doc, "name", where), tuple(clauses))


def _known_ids(ids: Sequence[str], known: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """``ids`` as a tuple, each a known clause and none repeated."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise RiskAssetsError(f"{where}: a non-empty list of clause ids is required")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise RiskAssetsError(f"{where}: unknown clause(s) {unknown}")
    if len(set(ids)) != len(ids):
        raise RiskAssetsError(f"{where}: a clause is listed twice: {ids}")
    return tuple(ids)


def _controls(doc: Any, known: Mapping[str, Any], controls: Iterable[str], where: str) -> dict:
    """Each control's default clauses; every control of the catalogue, and only those."""
    doc = _mapping(doc, controls, where)
    missing = [c for c in controls if c not in doc]
    if missing:
        raise RiskAssetsError(f"{where}: controls of the catalogue with no clauses: {missing}")
    return {c: _known_ids(doc[c], known, f"{where}.{c}") for c in controls}


def _process(docs: Any, known: Mapping[str, Any], where: str) -> tuple[ProcessItem, ...]:
    if not isinstance(docs, list) or not docs:
        raise RiskAssetsError(f"{where}: a non-empty list is required")
    items = []
    for i, raw in enumerate(docs):
        at = f"{where}.{i}"
        raw = _mapping(raw, ("id", "title", "what", "clauses"), at)
        clauses = _known_ids(raw.get("clauses"), known, f"{at}.clauses")
        items.append(
            ProcessItem(
                _text(raw, "id", at), _text(raw, "title", at), _text(raw, "what", at), clauses
            )
        )
    ids = [p.id for p in items]
    if len(set(ids)) != len(ids):
        raise RiskAssetsError(f"{where}: an id is listed twice: {ids}")
    return tuple(items)


def build_catalogue(
    frameworks: Mapping[str, Any], mapping: Any, controls: Iterable[str]
) -> ClauseCatalogue:
    """Validate the catalogue's documents (as read from YAML) into a :class:`ClauseCatalogue`.

    ``frameworks`` maps each file name to its document; ``controls`` are the names of the
    control catalogue, each of which the mapping must give at least one clause.

    Raises:
        RiskAssetsError: naming the file and the key at fault.
    """
    parsed = tuple(_framework(doc, name) for name, doc in frameworks.items())
    ids = [c.id for f in parsed for c in f.clauses]
    if len(set(ids)) != len(ids):
        raise RiskAssetsError(f"clause ids repeat across {list(frameworks)}: {sorted(ids)}")
    fids = [f.id for f in parsed]
    if len(set(fids)) != len(fids):
        raise RiskAssetsError(f"framework ids repeat across {list(frameworks)}: {fids}")
    known = dict.fromkeys(ids)
    mapping = _mapping(mapping, ("controls", "process_evidence"), MAPPING_FILE)
    return ClauseCatalogue(
        frameworks=parsed,
        controls=_controls(
            mapping.get("controls"), known, list(controls), f"{MAPPING_FILE}: controls"
        ),
        process=_process(
            mapping.get("process_evidence"), known, f"{MAPPING_FILE}: process_evidence"
        ),
    )


def _read(name: str) -> Any:
    path = HERE / name
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SHIPPED_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise RiskAssetsError(f"{path}: cannot read the clause catalogue: {exc}") from exc


@functools.cache
def load_clause_catalogue() -> ClauseCatalogue:
    """The shipped clause catalogue, validated against the control catalogue (read once).

    Raises:
        RiskAssetsError: a file of the shipped catalogue is missing or invalid.
    """
    from risk_assets.catalogue import CATALOGUE

    docs = {name: _read(name) for name in FRAMEWORK_FILES}
    return build_catalogue(docs, _read(MAPPING_FILE), CATALOGUE)


def clauses_of(risk: Risk, catalogue: ClauseCatalogue | None = None) -> tuple[str, ...]:
    """The clauses a risk answers: its own ``clauses`` if it names any, else the default
    clauses of its control (none for a risk without a control)."""
    if risk.clauses:
        return tuple(risk.clauses)
    if risk.control is None:
        return ()
    return (catalogue or load_clause_catalogue()).controls.get(risk.control.name, ())


def unknown_clauses(
    policy: Policy, catalogue: ClauseCatalogue | None = None
) -> list[tuple[int, str, str]]:
    """Clause ids a policy's risks name that the catalogue does not know, as
    (risk index, risk id, clause id), in register order."""
    known = (catalogue or load_clause_catalogue()).clauses
    return [
        (index, risk.id, clause)
        for index, risk in enumerate(policy.risks)
        for clause in risk.clauses
        if clause not in known
    ]


def check_policy_clauses(
    policy: Policy, path: str | Path, catalogue: ClauseCatalogue | None = None
) -> None:
    """Refuse a policy whose risks name clauses the catalogue does not know.

    Raises:
        PolicyError: naming the file, the key, the risk id and the clause.
    """
    catalogue = catalogue or load_clause_catalogue()
    unknown = unknown_clauses(policy, catalogue)
    if not unknown:
        return
    lines = [
        f"  risks.{index}.clauses: risk {risk_id} names unknown clause {clause!r}; "
        + _known_hint(clause, catalogue)
        for index, risk_id, clause in unknown
    ]
    raise PolicyError(f"{path}: invalid\n" + "\n".join(lines))


def _known_hint(clause: str, catalogue: ClauseCatalogue) -> str:
    """The clauses of the framework an unknown clause id names, else the frameworks."""
    prefix = clause.split(":", 1)[0]
    try:
        framework = catalogue.framework(prefix)
    except KeyError:
        return f"known frameworks: {', '.join(f.id for f in catalogue.frameworks)}"
    return f"clauses of {framework.id}: {', '.join(c.id for c in framework.clauses)}"
