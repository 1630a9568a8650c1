"""The audit trail: an append-only, hash-chained log of every decision about a model.

Every gate verdict, registration, refusal, approval, rejection, promotion and rollback
appends one :class:`AuditRecord` (who, when, what, why, risk ids, hashes, the MLflow and
Dagster runs). Each record carries the SHA-256 of the record before it and its own
SHA-256 over its canonical JSON, so editing, deleting, inserting or reordering a record
breaks the chain at that record, which :meth:`AuditLog.verify` names. Deleting the newest
records leaves a shorter valid chain: that is caught against *anchors*, the sequence
number and hash of a record kept elsewhere (the registry keeps them on each model
version), which :meth:`AuditLog.verify` checks when given.

The log is the source of truth, not the tags MLflow shows: anyone with write access to
MLflow can edit a tag, and a Dagster instance's event log can be purged. With the embedded
stores the log is a JSON Lines file beside them (``$RISK_ASSETS_HOME/audit/audit.jsonl``),
appended under an exclusive file lock and flushed to disk before the append returns.

Example::

    log = open_audit_log()
    log.append("approval", actor="alice", model="credit_risk", version="3", reason="...")
    result = log.verify()
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from risk_assets.errors import ConfigError
from risk_assets.settings import current_settings, exclusive_file_lock

__all__ = [
    "ACTIONS",
    "GENESIS",
    "AuditLog",
    "AuditRecord",
    "PostgresAuditLog",
    "Verification",
    "open_audit_log",
]

#: What a record may say happened.
ACTIONS = (
    "gate",
    "registration",
    "refusal",
    "approval",
    "rejection",
    "promotion",
    "rollback",
    "recovery",
)
#: The ``prev_hash`` of the first record.
GENESIS = "0" * 64
#: Environment variable naming the audit log file (default beside the embedded stores).
AUDIT_LOG_ENV = "RISK_ASSETS_AUDIT_LOG"


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One decision. ``hashes`` holds the SHA-256 of what it was about (model, data
    snapshot, policy, suite, evidence); ``details`` what the decision saw (a gate's figure,
    threshold and summary; an approval's evidence)."""

    seq: int
    timestamp: str
    actor: str
    action: str
    model: str | None = None
    version: str | None = None
    run_id: str | None = None
    dagster_run_id: str | None = None
    risk_ids: tuple[str, ...] = ()
    hashes: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but ``hash``, as JSON values."""
        d = asdict(self)
        d.pop("hash")
        d["risk_ids"] = list(self.risk_ids)
        d["hashes"] = dict(self.hashes)
        d["details"] = dict(self.details)
        return d

    def computed_hash(self) -> str:
        return _sha256(self.body())

    def to_json(self) -> str:
        return _canonical({**self.body(), "hash": self.hash})

    @classmethod
    def from_json(cls, line: str) -> AuditRecord:
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        d["risk_ids"] = tuple(d.get("risk_ids") or ())
        return cls(**d)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha256(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Verification:
    """The outcome of :meth:`AuditLog.verify`: ``first_bad`` is the 1-based line of the
    first record that breaks the chain (None when it holds), ``problem`` says how."""

    records: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None and self.problem is None

    def render(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.records} records, every link verified"
        where = f"record {self.first_bad}: " if self.first_bad is not None else ""
        return f"audit trail BROKEN at {where}{self.problem}"


class AuditLog:
    """The hash-chained log in one JSON Lines file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- writing ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with exclusive_file_lock(self.path.with_name(self.path.name + ".lock")):
            yield None

    #: the thread holding :meth:`decisions` through this object, if one does
    _decider: int | None = None

    @contextmanager
    def decisions(self) -> Iterator[None]:
        """Held while a decision is recorded and carried out (an approval: the approvals
        counted, its record, and the promotion it completes; a promotion: its record, then
        the ``champion`` alias; a rollback; a recovery): one at a time across processes, so
        the alias ends where the last record says. Apart from the lock of appends, which
        is taken inside it; the kernel releases it when its holder dies. Re-entrant in the
        thread that holds it through this object (an approval that promotes)."""
        if self._decider == threading.get_ident():
            yield None
            return
        with self._hold_decisions():
            self._decider = threading.get_ident()
            try:
                yield None
            finally:
                self._decider = None

    @contextmanager
    def _hold_decisions(self) -> Iterator[None]:
        with exclusive_file_lock(self.path.with_name(self.path.name + ".decisions.lock")):
            yield None

    def _write(self, cur: Any, record: AuditRecord) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _last(self, cur: Any = None) -> AuditRecord | None:
        """The newest record (read from the end of the file)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            chunk, pos = b"", end
            while pos > 0 and chunk.count(b"\n") < 2:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                chunk = f.read(step) + chunk
        lines = [line for line in chunk.split(b"\n") if line.strip()]
        return AuditRecord.from_json(lines[-1].decode("utf-8"))

    def append(
        self,
        action: str,
        *,
        actor: str,
        model: str | None = None,
        version: str | int | None = None,
        run_id: str | None = None,
        dagster_run_id: str | None = None,
        risk_ids: Sequence[str] = (),
        hashes: Mapping[str, str | None] | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record and return it (with its sequence number and hash); the write
        is flushed to disk before this returns.

        Raises:
            ValueError: an unknown action.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; one of {list(ACTIONS)}")
        with self._locked() as cur:
            last = self._last(cur)
            record = AuditRecord(
                seq=1 if last is None else last.seq + 1,
                timestamp=datetime.now(UTC).isoformat(timespec="microseconds"),
                actor=actor,
                action=action,
                model=model,
                version=None if version is None else str(version),
                run_id=run_id,
                dagster_run_id=dagster_run_id,
                risk_ids=tuple(risk_ids),
                hashes={k: v for k, v in (hashes or {}).items() if v},
                reason=reason,
                details=json.loads(_canonical(dict(details or {}))),
                prev_hash=GENESIS if last is None else last.hash,
            )
            record = AuditRecord(**{**record.__dict__, "hash": record.computed_hash()})
            self._write(cur, record)
        return record

    # -- reading ------------------------------------------------------------------------

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        # every append ends its line with a newline: a last line without one is an append
        # another process is writing as this reads it, not yet a record
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return [line for line in text.splitlines() if line]

    def _all_lines(self) -> list[str]:
        """Every line, a last one without its newline too: read under the append lock, so
        no append is in progress and such a line is a cut record."""
        if not self.path.exists():
            return []
        with self._locked():
            return [x for x in self.path.read_text(encoding="utf-8").splitlines() if x]

    def records(
        self,
        *,
        model: str | None = None,
        version: str | int | None = None,
        run_id: str | None = None,
        action: str | None = None,
    ) -> list[AuditRecord]:
        """The records that match every filter given, oldest first (the chain unverified:
        call :meth:`verify` to trust them)."""
        out = []
        for line in self._lines():
            r = AuditRecord.from_json(line)
            if model is not None and r.model != model:
                continue
            if version is not None and r.version != str(version):
                continue
            if run_id is not None and r.run_id != run_id:
                continue
            if action is not None and r.action != action:
                continue
            out.append(r)
        return out

    def verify(self, anchors: Mapping[int, str] | None = None) -> Verification:
        """Walk the chain: every record must parse, carry the next sequence number, link to
        the hash of the record before it and hash to its own ``hash``; each anchor
        (sequence number -> hash kept elsewhere) must be a record of the chain."""
        prev, seen = GENESIS, {}
        lines = self._all_lines()
        for n, line in enumerate(lines, start=1):
            try:
                r = AuditRecord.from_json(line)
            except (ValueError, TypeError) as exc:
                return Verification(len(lines), n, f"not a record ({type(exc).__name__})")
            if r.seq != n:
                return Verification(
                    len(lines),
                    n,
                    f"sequence number {r.seq} where {n} belongs (a record "
                    "was deleted, inserted or moved)",
                )
            if r.prev_hash != prev:
                return Verification(
                    len(lines),
                    n,
                    "does not link to the record before it (a record was "
                    "deleted, inserted or moved)",
                )
            if r.computed_hash() != r.hash:
                return Verification(len(lines), n, "its content does not match its hash (edited)")
            prev, seen[r.seq] = r.hash, r.hash
        for seq, expected in sorted((anchors or {}).items()):
            if seen.get(seq) != expected:
                state = "is missing" if seq not in seen else "differs"
                return Verification(
                    len(lines),
                    None,
                    f"record {seq}, anchored in the registry, {state} "
                    "(records were removed from the end, or the log was replaced)",
                )
        return Verification(len(lines))


class PostgresAuditLog(AuditLog):
    """The same chain in a PostgreSQL table (the production database), one row per record
    holding its JSON exactly as hashed. Appends take a transaction-level advisory lock, so
    concurrent writers on any machine extend one chain; a trigger refuses UPDATE and DELETE
    (the chain would catch them anyway, and names the record)."""

    TABLE = "risk_assets_audit"
    _LOCK = 72_657_001  # the advisory lock id of appends
    _DECISIONS = 72_657_002  # the advisory lock id of decisions (see decisions())

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(self.TABLE)  # what messages name; the table, not a file
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"PostgresAuditLog(table {self.TABLE})"

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                f"{AUDIT_LOG_ENV} names a PostgreSQL database, but psycopg is not installed "
                "(pip install 'risk-assets[postgres]')"
            ) from exc
        return psycopg.connect(self.url, autocommit=False)

    def _ensure_schema(self, conn: Any) -> None:
        if self._schema_ready:
            return
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK,))
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} ("
                "seq BIGINT PRIMARY KEY, record TEXT NOT NULL, hash CHAR(64) NOT NULL, "
                "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur.execute(
                "CREATE OR REPLACE FUNCTION risk_assets_audit_append_only() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                "'the audit trail is append-only'; END $$"
            )
            cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'risk_assets_audit_append_only'")
            if cur.fetchone() is None:
                cur.execute(
                    "CREATE TRIGGER risk_assets_audit_append_only BEFORE UPDATE OR DELETE "
                    f"ON {self.TABLE} FOR EACH ROW EXECUTE FUNCTION "
                    "risk_assets_audit_append_only()"
                )
        conn.commit()
        self._schema_ready = True

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with self._connect() as conn:
            self._ensure_schema(conn)
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK,))
                yield cur

    @contextmanager
    def _hold_decisions(self) -> Iterator[None]:
        """See :meth:`AuditLog.decisions`: a session advisory lock on a connection of its
        own, released when the block ends or the connection drops."""
        with self._connect() as conn:
            self._ensure_schema(conn)
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_lock(%s)", (self._DECISIONS,))
            try:
                yield None
            finally:
                self._unlock_decisions(conn)

    def _unlock_decisions(self, conn: Any) -> None:
        """Release the decisions lock; a connection that dropped meanwhile (the server
        restarted) took the lock with it, and the decision made under it stands: failing
        here would report a promotion that was recorded and carried out as failed."""
        import psycopg

        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self._DECISIONS,))
        except psycopg.OperationalError as exc:
            if not conn.broken:
                raise
            logging.getLogger(__name__).warning(
                f"{self.TABLE}: the connection holding the decisions lock dropped before the "
                f"lock was released ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})"
            )

    def _last(self, cur: Any = None) -> AuditRecord | None:
        cur.execute(f"SELECT record FROM {self.TABLE} ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
        return None if row is None else AuditRecord.from_json(row[0])

    def _write(self, cur: Any, record: AuditRecord) -> None:
        cur.execute(
            f"INSERT INTO {self.TABLE} (seq, record, hash) VALUES (%s, %s, %s)",
            (record.seq, record.to_json(), record.hash),
        )

    def _all_lines(self) -> list[str]:
        return self._lines()

    def _lines(self) -> list[str]:
        with self._connect() as conn:
            self._ensure_schema(conn)
            with conn.cursor() as cur:
                cur.execute(f"SELECT record FROM {self.TABLE} ORDER BY seq")
                return [row[0] for row in cur.fetchall()]


def open_audit_log(path: str | Path | None = None) -> AuditLog:
    """The audit log: ``path``, else ``$RISK_ASSETS_AUDIT_LOG``, else beside the embedded
    stores (``$RISK_ASSETS_HOME/audit/audit.jsonl``). A ``postgresql://`` URL names a
    table in that database instead of a file.

    Raises:
        ConfigError: the path names a folder.
    """
    chosen = path or os.environ.get(AUDIT_LOG_ENV)
    if chosen and str(chosen).startswith(("postgresql://", "postgres://")):
        return PostgresAuditLog(str(chosen))
    where = Path(chosen or current_settings().state_dir / "audit" / "audit.jsonl")
    if where.is_dir():
        raise ConfigError(f"{where}: the audit log must be a file, not a folder ({AUDIT_LOG_ENV})")
    return AuditLog(where)
