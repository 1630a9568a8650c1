"""Audit the pinned dependencies for known vulnerabilities with pip-audit.

Each constraints file (``pip freeze`` pins) is audited as written, without resolving or
installing anything (``--no-deps --disable-pip``), against pip-audit's default
vulnerability service: PyPI's JSON API, one request per pinned release
(``https://pypi.org/pypi/NAME/VERSION/json``). Advisories listed in
constraints/vulnerabilities-ignored.txt, each with its reason, are let through.

A pinned version with a known vulnerability fails. A service that cannot be asked (no
network, or an index that serves packages but not the per-release JSON) means nothing was
audited: on a developer's machine that is said in one line and the audit is skipped; in
CI (``CI=true``) it is a failure, unless ``RISK_ASSETS_AUDIT_UNREACHABLE=warn`` says the
network is known not to reach the service.

    .venv/bin/python scripts/audit_dependencies.py constraints/test.txt constraints/alibi.txt
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = ROOT / "constraints" / "vulnerabilities-ignored.txt"
_ENTRY = re.compile(r"^(?P<id>[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9-]+)\s+#\s*(?P<reason>\S.*)$")


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


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [ROOT / "constraints" / "test.txt"]
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        ignored = ignored_advisories()
    except ValueError as exc:
        print(f"vulnerability audit: {exc}", file=sys.stderr)
        return 1
    reason = unreachable_reason()
    if reason is not None:
        lenient = os.environ.get("RISK_ASSETS_AUDIT_UNREACHABLE") == "warn"
        what = (
            f"vulnerability audit NOT RUN: pip-audit's service (PyPI's per-release JSON) "
            f"cannot be asked: {reason}"
        )
        if in_ci and not lenient:
            print(f"{what}; in CI that is a failure", file=sys.stderr)
            return 1
        print(what, file=sys.stderr)
        return 0
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
