"""Content-addressed snapshot storage for data frames, and data-gate evidence beside them."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from risk_assets.data import FRAME_HASH_SCHEME, frame_sha256
from risk_assets.errors import IntegrityError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SnapshotRef", "SnapshotStore"]


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


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SnapshotStore:
    """Parquet files named by the SHA-256 of their content (see :func:`frame_sha256`).

    Writes are atomic (temporary file + rename) and a snapshot that exists is never
    rewritten; reads verify the hash again, so a changed file is an IntegrityError.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        return self.root / "frames" / sha256[:2] / f"{sha256}.parquet"

    def put(self, df: pd.DataFrame, *, sha256: str | None = None) -> SnapshotRef:
        digest = sha256 or frame_sha256(df)
        path = self._path(digest)
        if not path.exists():
            _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
        return SnapshotRef(
            sha256=digest, path=str(path), rows=len(df), columns=[str(c) for c in df.columns]
        )

    def get(self, ref: SnapshotRef | str) -> pd.DataFrame:
        import pandas as pd

        digest = ref.sha256 if isinstance(ref, SnapshotRef) else ref
        path = self._path(digest)
        if not path.is_file():
            raise IntegrityError(f"snapshot {digest} not found in {self.root}")
        df = pd.read_parquet(path)
        actual = frame_sha256(df)
        if actual != digest:
            raise IntegrityError(
                f"snapshot {path} changed: content hash {actual} != recorded {digest}"
            )
        return df

    def _evidence_path(self, subject_sha256: str, check: str) -> Path:
        return self.root / "evidence" / subject_sha256 / f"{check}.json"

    def put_evidence(self, subject_sha256: str, check: str, record: dict[str, Any]) -> Path:
        path = self._evidence_path(subject_sha256, check)
        text = json.dumps(record, sort_keys=True, indent=1)
        _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return path

    def put_evidence_plot(self, subject_sha256: str, check: str, png: bytes) -> Path:
        """The gate's plot beside its evidence (``<check>.png``)."""
        path = self._evidence_path(subject_sha256, check).with_suffix(".png")
        _atomic_write(path, lambda tmp: Path(tmp).write_bytes(png))
        return path

    def drop_evidence_plot(self, subject_sha256: str, check: str) -> None:
        """Remove an earlier plot of the gate (a new verdict without a plot replaces it)."""
        self._evidence_path(subject_sha256, check).with_suffix(".png").unlink(missing_ok=True)

    def get_evidence_plot(self, subject_sha256: str, check: str) -> bytes | None:
        path = self._evidence_path(subject_sha256, check).with_suffix(".png")
        return path.read_bytes() if path.is_file() else None

    def get_evidence(self, subject_sha256: str, check: str) -> dict[str, Any] | None:
        path = self._evidence_path(subject_sha256, check)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))
