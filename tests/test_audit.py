"""The audit trail is append-only and hash-chained: every kind of tampering (an edited,
deleted, inserted or reordered record, records cut from the end) is caught and the first
bad record named; appends from several processes at once keep the chain whole."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from risk_assets.audit import GENESIS, AuditLog, AuditRecord, open_audit_log


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    for i in range(n):
        log.append(
            "gate",
            actor="pipeline",
            model="credit_risk",
            run_id=f"run{i}",
            risk_ids=["PRIV-001"],
            hashes={"model_sha256": f"{i:064x}", "policy_sha256": None},
            details={"check": "pii_free", "passed": i % 2 == 0, "value": 0.1 * i},
        )
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("\n".join(lines) + "\n")


def test_records_chain_and_verify(tmp_path):
    log = _log(tmp_path)
    records = log.records()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:], strict=False))
    assert "policy_sha256" not in records[0].hashes  # a missing hash is left out
    result = log.verify(anchors={5: records[-1].hash})
    assert result.ok and result.records == 5, result.render()
    assert log.records(run_id="run3")[0].details["value"] == pytest.approx(0.3)


def test_an_edited_record_is_named(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    d = json.loads(lines[1])
    assert d["details"]["passed"] is False
    d["details"]["passed"] = True  # a failed gate made to pass
    lines[1] = json.dumps(d)
    _write(log, lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 2
    assert "edited" in result.render()


def test_a_deleted_record_is_named(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    result = log.verify()
    assert result.first_bad == 2 and "deleted, inserted or moved" in result.problem


def test_an_inserted_record_is_named_even_with_a_valid_hash(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    forged = AuditRecord(
        seq=3,
        timestamp="2026-01-01T00:00:00+00:00",
        actor="mallory",
        action="approval",
        model="credit_risk",
        version="9",
        prev_hash=json.loads(lines[1])["hash"],
    )
    forged = AuditRecord(**{**forged.__dict__, "hash": forged.computed_hash()})
    lines.insert(2, forged.to_json())
    _write(log, lines)
    result = log.verify()
    assert result.first_bad == 4, result.render()  # the record after it no longer links


def test_reordered_records_are_named(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log, lines)
    result = log.verify()
    assert result.first_bad == 2


def test_records_cut_from_the_end_are_caught_by_an_anchor(tmp_path):
    log = _log(tmp_path)
    last = log.records()[-1]
    _write(log, _lines(log)[:-2])
    assert log.verify().ok  # a shorter chain is a valid chain...
    result = log.verify(anchors={last.seq: last.hash})
    assert not result.ok and "record 5, anchored in the registry, is missing" in result.render()


def test_garbage_is_named(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    lines[3] = "{not json"
    _write(log, lines)
    assert log.verify().first_bad == 4


def test_a_line_being_appended_is_not_read_as_a_record_but_a_cut_one_is_named(tmp_path):
    """A reader that meets the last line without its newline (an append in progress in
    another process) leaves it out; verify, which reads under the append lock, names it:
    with no append in progress, such a line is a record cut short."""
    log = AuditLog(tmp_path / "audit.jsonl")
    for version in ("1", "2"):
        log.append("registration", actor="a", model="m", version=version)
    text = log.path.read_text(encoding="utf-8")
    log.path.write_text(text[:-30], encoding="utf-8")
    assert [r.version for r in log.records()] == ["1"]
    result = log.verify()
    assert (result.first_bad, result.problem) == (2, "not a record (JSONDecodeError)")


def test_unknown_actions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown audit action 'deploy'"):
        AuditLog(tmp_path / "a.jsonl").append("deploy", actor="x")


def test_the_log_lives_beside_the_embedded_stores(tmp_path, monkeypatch):
    monkeypatch.delenv("RISK_ASSETS_AUDIT_LOG", raising=False)
    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path / "state"))
    assert open_audit_log().path == tmp_path / "state" / "audit" / "audit.jsonl"
    monkeypatch.setenv("RISK_ASSETS_AUDIT_LOG", str(tmp_path / "elsewhere.jsonl"))
    assert open_audit_log().path == tmp_path / "elsewhere.jsonl"


def _append_many(path: str, who: str) -> None:
    log = AuditLog(path)
    for i in range(25):
        log.append("gate", actor=who, details={"i": i})


def test_appends_from_several_processes_keep_the_chain(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, f"p{n}")) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    log = AuditLog(path)
    result = log.verify()
    assert result.ok and result.records == 75, result.render()


def test_the_cli_names_the_first_bad_record(tmp_path, monkeypatch, capsys):
    from risk_assets.cli import main

    monkeypatch.setenv("RISK_ASSETS_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("RISK_ASSETS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(4):
        log.append("approval", actor="alice", model="m", version=str(i), reason="ok")
    assert main(["audit", "verify"]) == 0
    assert "intact: 4 records" in capsys.readouterr().out
    lines = _lines(log)
    lines[2] = lines[2].replace('"alice"', '"mallory"')
    _write(log, lines)
    assert main(["audit", "verify", "--json"]) == 4
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is False and out["first_bad"] == 3 and "edited" in out["problem"]
