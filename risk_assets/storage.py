"""Where files go: a local folder (the embedded default) or an object store named by an
fsspec URL (``s3://bucket/prefix`` and any other file system fsspec knows), through
``universal-pathlib`` as Dagster's ``UPathIOManager`` does.

``RISK_ASSETS_OBJECT_STORE`` (see :mod:`risk_assets.settings`) moves the data snapshots,
the gate evidence beside them and the asset values there; S3 credentials and endpoint come
from the usual AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``).

Writes never leave a half-written file under its final name: on a local disk a temporary
file is renamed into place; on an object store, an object becomes visible only once its
upload completes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from risk_assets.errors import ConfigError
from risk_assets.settings import OBJECT_STORE_ENV

__all__ = [
    "OBJECT_STORE_ENV",
    "StorageError",
    "as_path",
    "is_local",
    "location_uri",
    "read_bytes",
    "remove",
    "write_atomic",
]


class StorageError(ConfigError):
    """The storage could not be reached or refused a read or write: the message names the
    location and the setting that chose it."""


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def as_path(location: str | os.PathLike[str] | Any) -> Any:
    """A ``pathlib.Path`` for a local folder or ``file://`` URL; a ``UPath`` for any other
    URL (``s3://...``). A path object is returned as it is.

    Raises:
        ConfigError: a URL while universal-pathlib (the ``s3`` extra) is not installed.
    """
    if not isinstance(location, str | os.PathLike):
        return location  # already a UPath
    text = os.fspath(location)
    if not _is_url(text):
        return Path(text[len("file://") :] if text.startswith("file://") else text)
    try:
        from upath import UPath
    except ImportError:
        raise ConfigError(
            f"{text}: storage at a URL needs universal_pathlib and the file system's fsspec "
            "package (s3fs for s3://): pip install 'risk-assets[s3]'"
        ) from None
    return UPath(text)


def is_local(path: Any) -> bool:
    """True for a path on this machine's file system."""
    return isinstance(path, Path)


def location_uri(path: Any) -> str:
    """A URI for ``path``: ``file://...`` for a local one, the URL itself otherwise."""
    if isinstance(path, str):
        path = as_path(path)
    return path.resolve().as_uri() if is_local(path) else str(path)


def _failed(path: Any, action: str, exc: BaseException) -> StorageError:
    where = (
        f" (the object store {OBJECT_STORE_ENV}; credentials and endpoint from AWS_*)"
        if not is_local(path)
        else ""
    )
    return StorageError(f"{path}: could not {action}{where}: {type(exc).__name__}: {exc}")


def write_atomic(path: Any, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)``, never leaving a partial file under its name.

    Raises:
        StorageError: the storage refused the write (naming the path).
    """
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    try:
        with path.open("wb") as out:  # the object appears when the upload completes
            write(out)
    except OSError as exc:
        raise _failed(path, "write", exc) from exc


def read_bytes(path: Any) -> bytes | None:
    """The content of ``path``, or None when there is no such file.

    Raises:
        StorageError: the storage could not be read (other than a missing file).
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if is_local(path):
            raise
        raise _failed(path, "read", exc) from exc


def remove(path: Any) -> None:
    """Remove ``path`` if it exists."""
    try:
        path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
