"""The audit trail in PostgreSQL (the production database): the same chain, appended by
several processes at once, append-only in the database, and every kind of tampering an
insider with the database's owner rights can do caught and named."""

from __future__ import annotations

import multiprocessing

import pytest
from services import postgres_cluster

from risk_assets.audit import PostgresAuditLog, open_audit_log


@pytest.fixture(scope="module")
def pg_url():
    with postgres_cluster() as url:
        yield url


def _fresh(url: str) -> PostgresAuditLog:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS risk_assets_audit")
    return PostgresAuditLog(url)


def _append_many(url: str, who: str) -> None:
    log = PostgresAuditLog(url)
    for i in range(20):
        log.append("gate", actor=who, details={"i": i})


def test_the_chain_in_postgres_holds_under_concurrent_appends(pg_url, monkeypatch):
    log = _fresh(pg_url)
    monkeypatch.setenv("RISK_ASSETS_AUDIT_LOG", pg_url)
    assert isinstance(open_audit_log(), PostgresAuditLog)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(pg_url, f"p{n}")) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = log.verify()
    assert result.ok and result.records == 60, result.render()
    assert {r.actor for r in log.records()} == {"p0", "p1", "p2"}


def test_the_table_is_append_only(pg_url):
    import psycopg

    log = _fresh(pg_url)
    log.append("approval", actor="alice", model="m", version="1", reason="ok")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in (
            "UPDATE risk_assets_audit SET record = record",
            "DELETE FROM risk_assets_audit",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_tampering_past_the_trigger_is_named(pg_url, tamper):
    """An insider who switches the trigger off can change rows; the chain names the first
    bad record."""
    import psycopg

    log = _fresh(pg_url)
    for i in range(5):
        log.append("approval", actor="alice", model="m", version=str(i), reason="ok")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE risk_assets_audit DISABLE TRIGGER USER")
        if tamper == "edit":
            conn.execute(
                "UPDATE risk_assets_audit SET record = replace(record, 'alice', 'mallory') "
                "WHERE seq = 3"
            )
        elif tamper == "delete":
            conn.execute("DELETE FROM risk_assets_audit WHERE seq = 2")
        else:
            conn.execute("UPDATE risk_assets_audit SET seq = -2 WHERE seq = 2")
            conn.execute("UPDATE risk_assets_audit SET seq = 2 WHERE seq = 3")
            conn.execute("UPDATE risk_assets_audit SET seq = 3 WHERE seq = -2")
        conn.execute("ALTER TABLE risk_assets_audit ENABLE TRIGGER USER")
    result = log.verify()
    assert not result.ok
    assert result.first_bad == (3 if tamper == "edit" else 2), result.render()
