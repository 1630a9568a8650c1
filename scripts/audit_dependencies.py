"""Audit the pinned dependencies for known vulnerabilities: with pip-audit, or else against
a snapshot of the PyPA advisory database.

Each constraints file (``pip freeze`` pins) is audited as written, without resolving or
installing anything. Advisories listed in constraints/vulnerabilities-ignored.txt, each
with its reason, are let through (by advisory id or by any of its aliases).

When pip-audit's default vulnerability service answers (PyPI's JSON API, one request per
pinned release: ``https://pypi.org/pypi/NAME/VERSION/json``), pip-audit audits the pins
(``--no-deps --disable-pip``). When it cannot be asked (no network, or an index that serves
packages but not the per-release JSON), every pin is checked against a snapshot of the
PyPA advisory database (https://github.com/pypa/advisory-database, the data behind that
service's answers; CC-BY-4.0), restricted to the pinned packages: a version is affected
when an advisory lists it, or when it lies in one of the advisory's ranges (from
``introduced``, ``"0"`` meaning the first release, up to ``fixed`` excluded or
``last_affected`` included). One line says which snapshot (commit and date) was used and
why. ``--offline`` uses the snapshot without asking the service.

The snapshot is the file named by ``RISK_ASSETS_ADVISORY_SNAPSHOT``, else
constraints/advisories/pypa-advisory-database.json (the repository ships none: build one
with ``--refresh-snapshot``). A snapshot older than 180 days is used with a warning to
refresh it. With neither the service nor a snapshot nothing is audited: one line on stderr
says "vulnerability audit NOT RUN" and why, and the exit code is 0, unless
``RISK_ASSETS_AUDIT_REQUIRED=1`` (set it where CI reaches the service or holds a snapshot)
makes it a failure; a corrupt snapshot always fails. A pinned package that the snapshot was
not built for is not audited, and fails.

A pinned version with a known vulnerability fails (exit 1), whichever way it was found.

    .venv/bin/python scripts/audit_dependencies.py constraints/test.txt constraints/alibi.txt

Refresh the snapshot for the current pins from a clone of the advisory database (a
checkout or a bare git directory; its HEAD commit and that commit's date are recorded; the
YAML is read with PyYAML, a dependency of risk-assets):

    git clone https://github.com/pypa/advisory-database /tmp/advisory-database
    .venv/bin/python scripts/audit_dependencies.py --refresh-snapshot /tmp/advisory-database \\
        [--output PATH] constraints/test.txt constraints/alibi.txt
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
IGNORED = ROOT / "constraints" / "vulnerabilities-ignored.txt"
PIN_FILES = (ROOT / "constraints" / "test.txt", ROOT / "constraints" / "alibi.txt")
SNAPSHOT_NAME = "pypa-advisory-database.json"
SNAPSHOT = ROOT / "constraints" / "advisories" / SNAPSHOT_NAME
SNAPSHOT_ENV = "RISK_ASSETS_ADVISORY_SNAPSHOT"
REQUIRED_ENV = "RISK_ASSETS_AUDIT_REQUIRED"
STALE_AFTER_DAYS = 180
ADVISORY_DATABASE = "https://github.com/pypa/advisory-database"
ATTRIBUTION = (
    "Derived from the PyPA Advisory Database (https://github.com/pypa/advisory-database) "
    "by the Python Packaging Authority and its contributors, licensed under CC-BY-4.0 "
    "(https://creativecommons.org/licenses/by/4.0/): restricted to the pinned packages, "
    "fields reduced to those the audit needs, versions already inside a range dropped."
)
_ENTRY = re.compile(r"^(?P<id>[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9-]+)\s+#\s*(?P<reason>\S.*)$")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(?P<version>\S+)$")


def ignored_advisories(path: Path = IGNORED) -> list[str]:
    """The advisory ids of the ignore file; an entry without a reason raises ValueError."""
    ids = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = _ENTRY.match(line)
        if entry is None:
            raise ValueError(
                f"{path.name} line {number}: expected 'ADVISORY-ID  # reason', found {line!r}"
            )
        ids.append(entry["id"])
    return ids


def canonical_name(name: str) -> str:
    """A distribution name normalised as PEP 503 does (``Foo.Bar_baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> list[tuple[str, str]]:
    """The ``(canonical name, version)`` pins of a constraints file; a line that is neither
    a comment nor ``name==version`` (markers and extras aside) raises ValueError."""
    pins = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        pin = _PIN.match(line)
        if pin is None:
            raise ValueError(f"{path.name} line {number}: expected 'name==version', found {raw!r}")
        pins.append((canonical_name(pin["name"]), pin["version"]))
    return pins


# --- the live service -------------------------------------------------------------------


def unreachable_reason(timeout: float = 20.0) -> str | None:
    """Why PyPI's per-release JSON API cannot be asked, or None when it answers."""
    version = metadata.version("pip-audit")
    url = f"https://pypi.org/pypi/pip-audit/{version}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            json.load(response)
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        return f"{url} could not be read ({getattr(exc, 'reason', exc)})"
    return None


def audit(requirements: Path, ignored: list[str]) -> tuple[int, list[str]]:
    """How many pins pip-audit checked in ``requirements``, and one line per finding (a
    known vulnerability, or a pin that could not be audited)."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        *(arg for advisory in ignored for arg in ("--ignore-vuln", advisory)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return 0, [f"pip-audit failed on {requirements.name} (exit {done.returncode}): {tail}"]
    findings = []
    skipped = []
    for dep in report.get("dependencies", []):
        label = " ".join(filter(None, (dep["name"], dep.get("version"))))
        if "skip_reason" in dep:
            skipped.append(label)
            continue
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            aliases = ", ".join(vuln.get("aliases") or [])
            findings.append(
                f"{label}: {vuln['id']}{f' ({aliases})' if aliases else ''}, fixed in {fixed}"
            )
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        findings.append(f"not audited (no answer for them): {', '.join(skipped[:3])}{more}")
    return len(report.get("dependencies", [])) - len(skipped), findings


# --- the snapshot: OSV semantics ---------------------------------------------------------


class SnapshotError(Exception):
    """The advisory snapshot is missing, unreadable or not of the expected shape."""


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _event_key(event: dict[str, str]) -> tuple[int, Version | None, int]:
    (kind, value), *_ = event.items()
    if kind == "introduced" and value == "0":
        return (0, None, 0)
    version = _version(value)
    if version is None:
        raise SnapshotError(f"event {event!r} does not name a PEP 440 version")
    # at one version, an introduction opens before a fix closes (an empty range stays empty)
    return (1, version, 0 if kind == "introduced" else 1)


def in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """Whether ``version`` lies in an OSV ECOSYSTEM range: its events walked in version
    order, ``introduced`` (``"0"``: every version) opens, ``fixed`` closes at that version
    (excluded), ``last_affected`` closes after it (included); ``limit`` is ignored."""
    affected = False
    for event in sorted(events, key=_event_key):
        (kind, value), *_ = event.items()
        if kind == "introduced":
            if value == "0" or version >= Version(value):
                affected = True
        elif kind == "fixed":
            if version >= Version(value):
                affected = False
        elif kind == "last_affected":
            if version > Version(value):
                affected = False
    return affected


def is_affected(version: str, advisory: dict) -> bool:
    """Whether ``version`` is affected by ``advisory``: listed in its ``versions`` (compared
    as PEP 440 versions, or as text where one is not a valid version) or in one of its
    ``ranges``."""
    parsed = _version(version)
    for listed in advisory.get("versions", []):
        other = _version(listed)
        if (parsed == other) if (parsed and other) else (listed == version):
            return True
    if parsed is None:
        return False
    return any(in_range(parsed, events) for events in advisory.get("ranges", []))


def load_snapshot(path: Path) -> dict:
    """The snapshot at ``path``, checked for the fields the audit reads; SnapshotError
    names what is missing or wrong."""
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SnapshotError(f"no advisory snapshot at {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"advisory snapshot {path} cannot be read: {exc}") from exc
    if not isinstance(snapshot, dict):
        raise SnapshotError(f"advisory snapshot {path}: not a JSON object")
    for key, kind in (
        ("source", str),
        ("commit", str),
        ("date", str),
        ("packages", list),
        ("advisories", list),
    ):
        if not isinstance(snapshot.get(key), kind):
            raise SnapshotError(
                f"advisory snapshot {path}: {key!r} missing or not a {kind.__name__}"
            )
    try:
        snapshot["_date"] = datetime.fromisoformat(snapshot["date"])
    except ValueError as exc:
        raise SnapshotError(f"advisory snapshot {path}: date {snapshot['date']!r}") from exc
    if snapshot["_date"].tzinfo is None:
        snapshot["_date"] = snapshot["_date"].replace(tzinfo=UTC)
    for number, advisory in enumerate(snapshot["advisories"]):
        where = f"advisory snapshot {path}, advisory {number}"
        if not isinstance(advisory, dict):
            raise SnapshotError(f"{where}: not an object")
        if not isinstance(advisory.get("id"), str) or not isinstance(advisory.get("package"), str):
            raise SnapshotError(f"{where}: 'id' or 'package' missing")
        for key in ("aliases", "versions", "fixed"):
            values = advisory.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SnapshotError(f"{where} ({advisory['id']}): {key!r} not a list of text")
        ranges = advisory.get("ranges", [])
        if not isinstance(ranges, list):
            raise SnapshotError(f"{where} ({advisory['id']}): 'ranges' not a list")
        for events in ranges:
            ok = isinstance(events, list) and all(
                isinstance(e, dict)
                and len(e) == 1
                and next(iter(e)) in ("introduced", "fixed", "last_affected", "limit")
                for e in events
            )
            if not ok:
                raise SnapshotError(f"{where} ({advisory['id']}): malformed range {events!r}")
            try:
                sorted(events, key=_event_key)
            except SnapshotError as exc:
                raise SnapshotError(f"{where} ({advisory['id']}): {exc}") from exc
    return snapshot


def snapshot_path() -> Path:
    """Where the snapshot is: ``$RISK_ASSETS_ADVISORY_SNAPSHOT``, else the repository's."""
    if os.environ.get(SNAPSHOT_ENV):
        return Path(os.environ[SNAPSHOT_ENV])
    return SNAPSHOT


def audit_snapshot(
    pins: Iterable[tuple[str, str]], snapshot: dict, ignored: Iterable[str]
) -> tuple[int, list[str]]:
    """How many distinct pins were checked against the snapshot, and one line per finding
    (an affected pin whose advisory is not ignored by id or alias, or a pinned package
    the snapshot was not built for)."""
    ignore = {advisory.upper() for advisory in ignored}
    covered = {canonical_name(name) for name in snapshot["packages"]}
    by_package: dict[str, list[dict]] = {}
    for advisory in snapshot["advisories"]:
        by_package.setdefault(canonical_name(advisory["package"]), []).append(advisory)
    findings = []
    missing = []
    checked = 0
    for name, version in sorted({(canonical_name(name), version) for name, version in pins}):
        if name not in covered:
            missing.append(f"{name} {version}")
            continue
        checked += 1
        for advisory in by_package.get(name, []):
            ids = {advisory["id"], *advisory.get("aliases", [])}
            if ignore & {i.upper() for i in ids} or not is_affected(version, advisory):
                continue
            aliases = ", ".join(advisory.get("aliases", []))
            fixed = ", ".join(advisory.get("fixed", [])) or "no fixed release"
            summary = f": {advisory['summary']}" if advisory.get("summary") else ""
            findings.append(
                f"{name} {version}: {advisory['id']}{f' ({aliases})' if aliases else ''}, "
                f"fixed in {fixed}{summary}"
            )
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        findings.append(
            f"not audited (the snapshot was not built for them; refresh it): "
            f"{', '.join(missing[:3])}{more}"
        )
    return checked, findings


# --- refreshing the snapshot ---------------------------------------------------------------


def _git(git_dir: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {git_dir}: {done.stderr.decode()}")
    return done.stdout


def _advisory_files(
    source: Path, packages: set[str]
) -> tuple[str, str, Iterator[tuple[str, bytes]]]:
    """The HEAD commit, its committer date and the files (path, bytes) of vulns/PACKAGE/
    for ``packages`` of a clone of the advisory database (a checkout or a bare git
    directory)."""
    git_dir = source / ".git" if (source / ".git").exists() else source
    if not (git_dir / "HEAD").is_file():
        raise SystemExit(f"{source} is neither a git checkout nor a bare git directory")
    commit = _git(git_dir, "rev-parse", "HEAD").decode().strip()
    date = _git(git_dir, "show", "-s", "--format=%cI", commit).decode().strip()
    paths = _git(git_dir, "ls-tree", "-r", "--name-only", commit, "vulns/").decode().split("\n")
    wanted = [
        p
        for p in paths
        if p.endswith((".yaml", ".yml", ".json"))
        and p.count("/") == 2
        and canonical_name(p.split("/")[1]) in packages
    ]

    def files() -> Iterator[tuple[str, bytes]]:
        if not wanted:
            return
        batch = _git(
            git_dir, "cat-file", "--batch", data="".join(f"{commit}:{p}\n" for p in wanted).encode()
        )
        offset = 0
        for path in wanted:
            end = batch.index(b"\n", offset)
            header = batch[offset:end].split()
            size = int(header[2])
            yield path, batch[end + 1 : end + 1 + size]
            offset = end + 1 + size + 1

    return commit, date, files()


def _summary(entry: dict) -> str:
    """The advisory's summary, else the first sentence of its details that is not the
    package describing itself ("aiohttp is an asynchronous HTTP client..."), cut at 160."""
    text = str(entry.get("summary") or entry.get("details") or "").strip()
    first = text.split("\n\n", 1)[0].replace("\n", " ")
    sentences = re.split(r"(?<=[a-z0-9)])\. +(?=[A-Z`])", first)
    if len(sentences) > 1 and re.match(r"^[\w.\- ]+ (is|are) (an?|the) ", sentences[0]):
        sentences = sentences[1:]
    first = sentences[0].rstrip(".")
    return first if len(first) <= 160 else first[:157].rstrip() + "..."


def compact_advisory(entry: dict, packages: set[str]) -> list[dict]:
    """The snapshot records of one OSV advisory: one per affected PyPI package among
    ``packages``, with its ECOSYSTEM ranges, the listed versions that no range covers and
    the fixed versions. A withdrawn advisory gives none."""
    if entry.get("withdrawn"):
        return []
    records = []
    for affected in entry.get("affected", []):
        package = affected.get("package", {})
        name = canonical_name(str(package.get("name", "")))
        if package.get("ecosystem") != "PyPI" or name not in packages:
            continue
        ranges = [
            [{str(k): str(v) for k, v in event.items()} for event in r.get("events", [])]
            for r in affected.get("ranges", [])
            if r.get("type") == "ECOSYSTEM"
        ]
        versions = []
        for listed in map(str, affected.get("versions", [])):
            parsed = _version(listed)
            if parsed is None or not any(in_range(parsed, events) for events in ranges):
                versions.append(listed)
        fixed = sorted(
            {e["fixed"] for events in ranges for e in events if "fixed" in e},
            key=lambda v: _version(v) or Version("0"),
        )
        records.append(
            {
                "id": str(entry["id"]),
                "aliases": sorted(map(str, entry.get("aliases") or [])),
                "package": name,
                "summary": _summary(entry),
                "ranges": ranges,
                "versions": versions,
                "fixed": fixed,
            }
        )
    return records


def build_snapshot(source: Path, pin_files: Iterable[Path]) -> dict:
    """A snapshot of the advisory database clone at ``source`` for the pinned packages."""
    import yaml  # a dependency of risk-assets; only the refresh reads YAML

    pin_files = list(pin_files)
    packages = {name for path in pin_files for name, _ in read_pins(path)}
    commit, date, files = _advisory_files(source, packages)
    advisories = []
    for path, data in files:
        text = data.decode("utf-8")
        entry = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        advisories.extend(compact_advisory(entry, packages))
    advisories.sort(key=lambda a: (a["package"], a["id"]))
    return {
        "source": ADVISORY_DATABASE,
        "commit": commit,
        "date": date,
        "licence": "CC-BY-4.0",
        "attribution": ATTRIBUTION,
        "built_for": [
            str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in pin_files
        ],
        "packages": sorted(packages),
        "advisories": advisories,
    }


def dump_snapshot(snapshot: dict) -> str:
    """The snapshot as JSON: the header indented, one advisory a line (small diffs)."""
    header = {k: v for k, v in snapshot.items() if k != "advisories"}
    text = json.dumps(header, indent=1, ensure_ascii=False)[:-2]
    lines = ",\n".join(
        "  " + json.dumps(a, ensure_ascii=False, separators=(",", ":"))
        for a in snapshot["advisories"]
    )
    return f'{text},\n "advisories": [\n{lines}\n ]\n}}\n'


# --- the command ---------------------------------------------------------------------------


def _audit_with_snapshot(
    files: list[Path], ignored: list[str], reason: str | None, required: bool
) -> int:
    path = snapshot_path()
    if not path.is_file() and not required:
        why = f"pip-audit's service cannot be asked ({reason}) and " if reason else ""
        print(
            f"vulnerability audit NOT RUN: {why}there is no advisory snapshot at {path} "
            f"(build one with --refresh-snapshot, or set {REQUIRED_ENV}=1 to make this a "
            "failure)",
            file=sys.stderr,
        )
        return 0
    try:
        snapshot = load_snapshot(path)
    except SnapshotError as exc:
        why = f"pip-audit's service cannot be asked ({reason}) and " if reason else ""
        print(f"vulnerability audit failed: {why}{exc}", file=sys.stderr)
        return 1
    pins = [pin for file in files for pin in read_pins(file)]
    checked, findings = audit_snapshot(pins, snapshot, ignored)
    for line in findings:
        print(f"vulnerability audit: {line}", file=sys.stderr)
    when = snapshot["_date"]
    age = (datetime.now(UTC) - when).days
    if age > STALE_AFTER_DAYS:
        print(
            f"vulnerability audit: WARNING: the advisory snapshot is {age} days old (over "
            f"{STALE_AFTER_DAYS}); advisories published since {when:%Y-%m-%d} are not known "
            f"to it: refresh it (scripts/audit_dependencies.py --refresh-snapshot)",
            file=sys.stderr,
        )
    why = f"pip-audit's service could not be asked: {reason}" if reason else "asked to (--offline)"
    verdict = f"{len(findings)} findings" if findings else "no known vulnerabilities"
    print(
        f"vulnerability audit: used the PyPA advisory database snapshot of {when:%Y-%m-%d} "
        f"(commit {snapshot['commit'][:12]}, {len(snapshot['advisories'])} advisories) because "
        f"{why}; {checked} distinct pins of {', '.join(f.name for f in files)} checked, "
        f"{verdict}"
    )
    if ignored:
        print(f"vulnerability audit: {len(ignored)} advisories ignored ({IGNORED.name})")
    return 1 if findings else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("files", nargs="*", type=Path, help="constraints files (pip freeze pins)")
    parser.add_argument(
        "--offline", action="store_true", help="audit against the snapshot without the service"
    )
    parser.add_argument(
        "--refresh-snapshot",
        metavar="ADVISORY_DATABASE",
        type=Path,
        help="rebuild the snapshot for the pins from a clone of pypa/advisory-database",
    )
    parser.add_argument(
        "--output", type=Path, help="where --refresh-snapshot writes (default: the snapshot)"
    )
    args = parser.parse_args(argv)
    files = args.files or (
        list(PIN_FILES) if args.refresh_snapshot else [ROOT / "constraints" / "test.txt"]
    )
    if args.refresh_snapshot:
        snapshot = build_snapshot(args.refresh_snapshot, files)
        output = args.output or Path(os.environ.get(SNAPSHOT_ENV) or SNAPSHOT)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(dump_snapshot(snapshot), encoding="utf-8")
        print(
            f"advisory snapshot: {output}: commit {snapshot['commit']} of {snapshot['date']}, "
            f"{len(snapshot['advisories'])} advisories for {len(snapshot['packages'])} packages"
        )
        return 0
    required = os.environ.get(REQUIRED_ENV, "") == "1"
    try:
        ignored = ignored_advisories()
        for file in files:
            read_pins(file)
    except (OSError, ValueError) as exc:
        print(f"vulnerability audit: {exc}", file=sys.stderr)
        return 1
    reason = None if args.offline else unreachable_reason()
    if args.offline or reason is not None:
        return _audit_with_snapshot(files, ignored, reason, required)
    failed = False
    for path in files:
        checked, findings = audit(path, ignored)
        for line in findings:
            print(f"vulnerability audit: {line}", file=sys.stderr)
        failed = failed or bool(findings)
        verdict = f"{len(findings)} findings" if findings else "no known vulnerabilities"
        print(f"vulnerability audit: {path.name}: {checked} pins, {verdict}")
    if ignored:
        print(f"vulnerability audit: {len(ignored)} advisories ignored ({IGNORED.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
