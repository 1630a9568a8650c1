"""Content-addressed snapshot storage for data frames, and data-gate evidence beside them,
in a local folder or an object store (see :mod:`risk_assets.storage`)."""

from __future__ import annotations

import io
import json
import math
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from risk_assets.data import FRAME_HASH_SCHEME, frame_sha256
from risk_assets.errors import ConfigError, IntegrityError
from risk_assets.storage import as_path, is_local, read_bytes, remove, write_atomic

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SnapshotRef", "SnapshotStore"]


def _cache_limit() -> int:
    """Bytes of verified frames a process keeps: ``RISK_ASSETS_SNAPSHOT_CACHE_MB`` MiB."""
    raw = os.environ.get(CACHE_ENV, "").strip() or "1024"
    try:
        mib = float(raw)
    except ValueError:
        raise ConfigError(f"{CACHE_ENV}={raw!r}: expected a number of MiB (0 keeps none)") from None
    if not (math.isfinite(mib) and mib >= 0):
        raise ConfigError(f"{CACHE_ENV}={raw!r}: expected a number of MiB (0 keeps none)")
    return int(mib * 2**20)


class _VerifiedFrames:
    """The frames this process has read and verified, by file (path, inode, size and
    modification time: a file rewritten since is read and verified again), least recently
    used first out beyond ``RISK_ASSETS_SNAPSHOT_CACHE_MB``. The gates of a run read the same
    test and training snapshots; this reads and hashes each once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: OrderedDict[tuple, tuple[pd.DataFrame, int]] = OrderedDict()

    def get(self, key: tuple) -> pd.DataFrame | None:
        if _cache_limit() == 0:
            self._frames.clear()
            return None
        hit = self._frames.get(key)
        if hit is None:
            return None
        self._frames.move_to_end(key)
        return hit[0]

    def put(self, key: tuple, df: pd.DataFrame) -> None:
        self.limit = _cache_limit()
        size = int(df.memory_usage(index=False).sum())
        if size > self.limit:
            if self.limit == 0:
                self._frames.clear()
            return
        self._frames[key] = (df, size)
        while sum(s for _, s in self._frames.values()) > self.limit:
            self._frames.popitem(last=False)


def _own_copy(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a kept frame that its reader may change without changing the kept one:
    shallow where pandas copies on write (pandas 3, or the option set), deep otherwise
    (pandas 2, which the ``alibi`` extra resolves)."""
    import pandas as pd

    major = int(pd.__version__.split(".", 1)[0])
    cow = major >= 3 or pd.get_option("mode.copy_on_write") is True
    return df.copy(deep=not cow)


#: At most this many MiB of verified frames are kept in a process (see _VerifiedFrames).
CACHE_ENV = "RISK_ASSETS_SNAPSHOT_CACHE_MB"
_VERIFIED = _VerifiedFrames(0)


@dataclass(frozen=True)
class SnapshotRef:
    """Where a snapshot lives and what it is; JSON-serialisable for the IO manager."""

    sha256: str
    path: str
    rows: int
    columns: list[str]
    scheme: str = FRAME_HASH_SCHEME

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotRef:
        return cls(**d)


class SnapshotStore:
    """Parquet files named by the SHA-256 of their content (see :func:`frame_sha256`).

    ``root`` is a local folder or an fsspec URL (``s3://bucket/prefix``). Writes are atomic
    (a temporary file renamed into place; an object that appears when its upload completes)
    and a snapshot that exists is never rewritten; reads verify the hash again, so a changed
    file is an IntegrityError.
    """

    def __init__(self, root: str | Path | Any) -> None:
        self.root = as_path(root)

    def _path(self, sha256: str) -> Any:
        return self.root / "frames" / sha256[:2] / f"{sha256}.parquet"

    def put(self, df: pd.DataFrame, *, sha256: str | None = None) -> SnapshotRef:
        digest = sha256 or frame_sha256(df)
        path = self._path(digest)
        if not path.exists():
            write_atomic(path, lambda out: df.to_parquet(out, index=False))
        return SnapshotRef(
            sha256=digest, path=str(path), rows=len(df), columns=[str(c) for c in df.columns]
        )

    def get(self, ref: SnapshotRef | str) -> pd.DataFrame:
        import pandas as pd

        digest = ref.sha256 if isinstance(ref, SnapshotRef) else ref
        path = self._path(digest)
        if is_local(path):
            if not path.is_file():
                raise IntegrityError(f"snapshot {digest} not found in {self.root}")
            stat = path.stat()
            key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
            cached = _VERIFIED.get(key)
            if cached is not None:
                return _own_copy(cached)
            df = pd.read_parquet(path)
        else:
            content = read_bytes(path)
            if content is None:
                raise IntegrityError(f"snapshot {digest} not found in {self.root}")
            df = pd.read_parquet(io.BytesIO(content))
        actual = frame_sha256(df)
        if actual != digest:
            raise IntegrityError(
                f"snapshot {path} changed: content hash {actual} != recorded {digest}"
            )
        if is_local(path):
            _VERIFIED.put(key, df)
            return _own_copy(df)
        return df

    def _evidence_path(self, subject_sha256: str, check: str) -> Any:
        return self.root / "evidence" / subject_sha256 / f"{check}.json"

    def put_evidence(self, subject_sha256: str, check: str, record: dict[str, Any]) -> Any:
        path = self._evidence_path(subject_sha256, check)
        data = json.dumps(record, sort_keys=True, indent=1).encode("utf-8")
        write_atomic(path, lambda out: out.write(data))
        return path

    def put_evidence_plot(self, subject_sha256: str, check: str, png: bytes) -> Any:
        """The gate's plot beside its evidence (``<check>.png``)."""
        path = self._evidence_path(subject_sha256, check).with_suffix(".png")
        write_atomic(path, lambda out: out.write(png))
        return path

    def drop_evidence_plot(self, subject_sha256: str, check: str) -> None:
        """Remove an earlier plot of the gate (a new verdict without a plot replaces it)."""
        remove(self._evidence_path(subject_sha256, check).with_suffix(".png"))

    def get_evidence_plot(self, subject_sha256: str, check: str) -> bytes | None:
        return read_bytes(self._evidence_path(subject_sha256, check).with_suffix(".png"))

    def get_evidence(self, subject_sha256: str, check: str) -> dict[str, Any] | None:
        content = read_bytes(self._evidence_path(subject_sha256, check))
        return None if content is None else json.loads(content.decode("utf-8"))
