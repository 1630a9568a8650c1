"""YAML loading and pydantic error formatting shared by the spec and policy loaders."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml


def read_yaml_mapping(path: Path, *, error: type[Exception], what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; raise ``error`` naming the file otherwise."""
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what} file: {exc}") from exc
    if not isinstance(loaded, dict):
        raise error(
            f"{path}: expected a mapping of keys at the top level, found {type(loaded).__name__}"
        )
    return loaded


def format_validation_error(path: Path, exc: Any, *, tags: Collection[str] = ()) -> str:
    """Turn a pydantic ValidationError into lines naming the file, the key and what was
    expected. ``tags`` are the tags of a tagged union, which pydantic puts in the location
    (``control.drift.params``) but the file does not have (``control.params``)."""
    lines = [f"{path}: invalid"]
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "control" and p in tags)]
        key = ".".join(loc) or "(top level)"
        msg = err.get("msg", "invalid value")
        found = err.get("input")
        if err.get("type") == "missing":
            lines.append(f"  {key}: required key is missing")
        elif err.get("type") == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            shown = repr(found)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"  {key}: {msg} (found {shown})")
    return "\n".join(lines)
