"""The vulnerability audit's offline half (scripts/audit_dependencies.py): OSV range logic
on hand-made advisories, the ignore file, and the advisory snapshot the audit reads when
pip-audit's service cannot be asked. No network."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "audit_dependencies", ROOT / "scripts" / "audit_dependencies.py"
)
audit = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = audit
_spec.loader.exec_module(audit)


def advisory(package="demo-pkg", ranges=(), versions=(), aliases=(), id="PYSEC-0000-1"):
    return {
        "id": id,
        "aliases": list(aliases),
        "package": package,
        "summary": "a flaw",
        "ranges": [list(r) for r in ranges],
        "versions": list(versions),
        "fixed": [e["fixed"] for r in ranges for e in r if "fixed" in e],
    }


def snapshot(*advisories, packages=("demo-pkg",), date=None):
    return {
        "source": audit.ADVISORY_DATABASE,
        "commit": "0" * 40,
        "date": (date or datetime.now(UTC)).isoformat(),
        "packages": list(packages),
        "advisories": list(advisories),
    }


@pytest.mark.parametrize(
    ("version", "affected"),
    [("0.1", False), ("1.0", True), ("1.5.post1", True), ("2.0rc1", True), ("2.0", False)],
)
def test_introduced_fixed_is_half_open(version, affected):
    adv = advisory(ranges=[[{"introduced": "1.0"}, {"fixed": "2.0"}]])
    assert audit.is_affected(version, adv) is affected


@pytest.mark.parametrize(("version", "affected"), [("1.2", True), ("1.2.1", False)])
def test_last_affected_is_inclusive(version, affected):
    adv = advisory(ranges=[[{"introduced": "1.0"}, {"last_affected": "1.2"}]])
    assert audit.is_affected(version, adv) is affected


@pytest.mark.parametrize(
    ("version", "affected"), [("0.0.1", True), ("3.7.3", True), ("3.7.4", False)]
)
def test_introduced_zero_is_every_earlier_release(version, affected):
    adv = advisory(ranges=[[{"introduced": "0"}, {"fixed": "3.7.4"}]])
    assert audit.is_affected(version, adv) is affected


def test_open_range_and_several_ranges_in_one():
    events = [{"fixed": "1.4"}, {"introduced": "0"}, {"introduced": "2.0"}, {"fixed": "2.3"}]
    adv = advisory(ranges=[events, [{"introduced": "5.0"}]])
    got = {v: audit.is_affected(v, adv) for v in ("1.3", "1.4", "2.1", "2.3", "5.0", "9")}
    assert got == {"1.3": True, "1.4": False, "2.1": True, "2.3": False, "5.0": True, "9": True}


def test_explicit_versions_count_even_outside_the_ranges():
    adv = advisory(ranges=[[{"introduced": "2.0"}, {"fixed": "2.1"}]], versions=["1.0", "0.3d"])
    assert audit.is_affected("1.0.0", adv)  # compared as versions: 1.0 == 1.0.0
    assert audit.is_affected("0.3d", adv)  # not PEP 440: compared as text
    assert not audit.is_affected("1.1", adv)


def test_findings_ignore_by_id_or_alias_and_normalise_names():
    found = advisory(
        package="Demo_Pkg", ranges=[[{"introduced": "0"}, {"fixed": "2.0"}]], id="PYSEC-1"
    )
    aliased = advisory(
        package="demo.pkg",
        ranges=[[{"introduced": "0"}]],
        id="PYSEC-2",
        aliases=["CVE-2099-1", "GHSA-aaaa-bbbb-cccc"],
    )
    snap = snapshot(found, aliased, packages=["DEMO-pkg"])
    checked, findings = audit.audit_snapshot([("demo__pkg", "1.0")], snap, [])
    assert checked == 1 and len(findings) == 2
    assert findings[0].startswith("demo-pkg 1.0: PYSEC-1, fixed in 2.0")
    assert "PYSEC-2 (CVE-2099-1, GHSA-aaaa-bbbb-cccc), fixed in no fixed release" in findings[1]
    checked, findings = audit.audit_snapshot(
        [("Demo-Pkg", "1.0")], snap, ["PYSEC-1", "ghsa-AAAA-bbbb-cccc"]
    )
    assert (checked, findings) == (1, [])
    assert audit.audit_snapshot([("demo-pkg", "2.0")], snapshot(found), []) == (1, [])


def test_a_pin_the_snapshot_was_not_built_for_is_not_audited():
    checked, findings = audit.audit_snapshot([("other", "1.0")], snapshot(), [])
    assert checked == 0
    assert findings == ["not audited (the snapshot was not built for them; refresh it): other 1.0"]


def test_compact_advisory_keeps_ecosystem_ranges_and_uncovered_versions():
    entry = {
        "id": "PYSEC-2021-76",
        "aliases": ["GHSA-v6wp-4m6f-gcjg", "CVE-2021-21330"],
        "details": "aiohttp is an HTTP framework. In aiohttp before 3.7.4 there is an open "
        "redirect.\nMore text.",
        "affected": [
            {
                "package": {"name": "AIOHTTP", "ecosystem": "PyPI"},
                "ranges": [
                    {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.7.4"}]},
                ],
                "versions": ["3.7.3", "3.7.4.post0", "0.3d"],
            },
            {"package": {"name": "aiohttp", "ecosystem": "npm"}, "ranges": []},
        ],
    }
    (record,) = audit.compact_advisory(entry, {"aiohttp"})
    assert record == {
        "id": "PYSEC-2021-76",
        "aliases": ["CVE-2021-21330", "GHSA-v6wp-4m6f-gcjg"],
        "package": "aiohttp",
        "summary": "In aiohttp before 3.7.4 there is an open redirect",
        "ranges": [[{"introduced": "0"}, {"fixed": "3.7.4"}]],
        "versions": ["3.7.4.post0", "0.3d"],
        "fixed": ["3.7.4"],
    }
    assert audit.compact_advisory({**entry, "withdrawn": "2022-01-01T00:00:00Z"}, {"aiohttp"}) == []
    assert audit.compact_advisory(entry, {"requests"}) == []


def test_corrupt_snapshots_are_refused(tmp_path):
    path = tmp_path / "snap.json"
    with pytest.raises(audit.SnapshotError, match="no advisory snapshot"):
        audit.load_snapshot(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(audit.SnapshotError, match="cannot be read"):
        audit.load_snapshot(path)
    bad = snapshot(advisory(ranges=[[{"introduced": "0"}, {"fixed": "not a version!"}]]))
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(audit.SnapshotError, match="PEP 440"):
        audit.load_snapshot(path)
    path.write_text(json.dumps({**snapshot(), "commit": None}), encoding="utf-8")
    with pytest.raises(audit.SnapshotError, match="'commit'"):
        audit.load_snapshot(path)


def test_offline_audit_fails_on_a_finding_and_warns_when_stale(tmp_path, monkeypatch, capsys):
    pins = tmp_path / "pins.txt"
    pins.write_text("# pins\nDemo_Pkg==1.0\n", encoding="utf-8")
    path = tmp_path / "snap.json"
    old = datetime.now(UTC) - timedelta(days=audit.STALE_AFTER_DAYS + 5)
    vulnerable = advisory(ranges=[[{"introduced": "0"}, {"fixed": "1.1"}]])
    path.write_text(json.dumps(snapshot(vulnerable, date=old)), encoding="utf-8")
    monkeypatch.setenv(audit.SNAPSHOT_ENV, str(path))
    assert audit.main(["--offline", str(pins)]) == 1
    out, err = capsys.readouterr()
    assert "demo-pkg 1.0: PYSEC-0000-1, fixed in 1.1: a flaw" in err
    assert f"is {audit.STALE_AFTER_DAYS + 5} days old" in err
    assert "1 distinct pins of pins.txt checked, 1 findings" in out
    path.write_text(json.dumps(snapshot()), encoding="utf-8")
    assert audit.main(["--offline", str(pins)]) == 0
    out, err = capsys.readouterr()
    assert "no known vulnerabilities" in out and "WARNING" not in err
    monkeypatch.setenv(audit.SNAPSHOT_ENV, str(tmp_path / "missing.json"))
    monkeypatch.setenv(audit.REQUIRED_ENV, "1")
    assert audit.main(["--offline", str(pins)]) == 1
    monkeypatch.setenv(audit.REQUIRED_ENV, "")
    assert audit.main(["--offline", str(pins)]) == 0
    assert "NOT RUN" in capsys.readouterr().err
    (tmp_path / "corrupt.json").write_text("{", encoding="utf-8")
    monkeypatch.setenv(audit.SNAPSHOT_ENV, str(tmp_path / "corrupt.json"))
    assert audit.main(["--offline", str(pins)]) == 1


def test_ignore_file_entries_have_reasons():
    audit.ignored_advisories()  # raises on an entry without a reason


def test_the_snapshot_parses_and_covers_every_pin():
    path = audit.snapshot_path()
    if not path.is_file():
        pytest.skip(f"no advisory snapshot at {path} (see scripts/audit_dependencies.py)")
    snap = audit.load_snapshot(path)
    assert snap["source"] == audit.ADVISORY_DATABASE and len(snap["commit"]) == 40
    assert snap["licence"] == "CC-BY-4.0" and snap["attribution"]
    built_for = set(snap["packages"])
    for pins in audit.PIN_FILES:
        missing = {name for name, _ in audit.read_pins(pins)} - built_for
        assert not missing, f"the snapshot was not built for {sorted(missing)} of {pins.name}"
    for adv in snap["advisories"]:
        assert adv["package"] in built_for, adv["id"]
        for version in (*adv["fixed"], *(e[k] for r in adv["ranges"] for e in r for k in e)):
            assert version == "0" or audit._version(version) is not None, adv["id"]
