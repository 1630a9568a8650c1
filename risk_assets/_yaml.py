"""YAML loading and pydantic error formatting shared by the spec and policy loaders.

YAML from users is read with bounds: a file larger than :data:`MAX_YAML_BYTES` is refused
before it is parsed, a document whose aliases would expand to more than
:data:`MAX_ALIAS_NODES` nodes (a "billion laughs" document: a few hundred bytes that
expand to billions of values once validated or printed) is refused while it is composed,
and so is one nested more than :data:`MAX_NESTING` levels deep. A value the YAML cannot
be turned into (``2020-13-45`` as a date, ``!!int`` with nothing) is a YAML error too.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_NESTING",
    "MAX_YAML_BYTES",
    "SHIPPED_LOADER",
    "YamlBoundError",
    "format_validation_error",
    "read_yaml_mapping",
    "safe_load_bounded",
    "yaml_problem",
]

#: Largest spec or policy file read (1 MiB); the shipped ones are a few KiB.
MAX_YAML_BYTES = 1 << 20
#: Most nodes that the aliases of one document may stand for, counted as if each alias
#: were written out in full; a policy that reuses a few anchored blocks stays far below.
MAX_ALIAS_NODES = 10_000
#: Deepest nesting of lists and mappings in a document (the shipped files nest fewer than
#: ten levels); deeper documents are refused with the line and column where it is passed.
MAX_NESTING = 100
#: What PyYAML's safe constructor raises, besides its own errors, on a value it cannot
#: build (a date with month 13, a tag without a value, an integer past Python's limit).
_CONSTRUCTION_ERRORS = (ValueError, TypeError, IndexError, AttributeError, OverflowError)


class YamlBoundError(yaml.YAMLError):
    """A YAML document exceeds a bound (size, alias expansion or nesting) and is not
    parsed."""


def _limits_nesting(loader: Any) -> bool:
    """Whether ``loader`` refuses a document nested 1,001 levels deep with a YAML error.
    The libyaml of the pinned PyYAML wheel (6.0.4, libyaml 0.2.6) does; an older libyaml
    (the 6.0.2 wheel's 0.2.5, some distributions' builds) recurses without a limit, so a
    deep enough document would overflow the C stack."""
    probe = "[" * 1001 + "]" * 1001
    try:
        yaml.load(probe, Loader=loader)
    except yaml.YAMLError:
        return True
    except RecursionError:
        pass
    return False


def _fast_loader() -> Any:
    loader = getattr(yaml, "CSafeLoader", None)
    return loader if loader is not None and _limits_nesting(loader) else None


#: PyYAML's safe loader on libyaml's parser, where PyYAML has a libyaml that limits
#: nesting; otherwise None and every document is read by the counting loader.
_FAST_LOADER = _fast_loader()
#: The safe loader for the project's own files, which need no bounds: the fast one where
#: it is safe, else PyYAML's.
SHIPPED_LOADER = _FAST_LOADER or yaml.SafeLoader


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists, tuples, sets and mappings more than ``limit`` deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple, set)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts the nodes its aliases expand to and stops past a bound."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._node_sizes: dict[int, int] = {}
        self._open: list[Any] = []  # collections being composed (an alias to one recurses)

    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._composing(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._composing(super().compose_mapping_node, anchor)

    def _composing(self, compose: Any, anchor: Any) -> Any:
        if len(self._open) >= MAX_NESTING:
            mark = self.peek_event().start_mark
            raise YamlBoundError(
                f"nested too deeply: more than {MAX_NESTING} levels of lists and mappings "
                f"(MAX_NESTING) at line {mark.line + 1}, column {mark.column + 1}"
            )
        self._open.append(anchor)
        try:
            return compose(anchor)
        finally:
            self._open.pop()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            mark = event.start_mark
            if event.anchor in self._open:
                raise YamlBoundError(
                    f"alias *{event.anchor} at line {mark.line + 1}, column {mark.column + 1} "
                    "refers to a value that contains it (a recursive document)"
                )
            node = super().compose_node(parent, index)
            self._alias_nodes += self._size(node)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise YamlBoundError(
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes (MAX_ALIAS_NODES) "
                    f"at line {mark.line + 1}, column {mark.column + 1}; write the values "
                    "out, or use fewer anchors and aliases"
                )
            return node
        return super().compose_node(parent, index)

    def _size(self, node: Any) -> int:
        """Nodes under ``node``, counting shared (aliased) nodes each time they occur."""
        key = id(node)
        if key in self._node_sizes:
            return self._node_sizes[key]
        self._node_sizes[key] = 1  # a recursive alias counts once, never loops
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        else:
            size = 1
        # capped so that a deep bomb's sizes stay small integers
        self._node_sizes[key] = min(size, MAX_ALIAS_NODES + 1)
        return self._node_sizes[key]


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand past
    :data:`MAX_ALIAS_NODES` nodes or that nest more than :data:`MAX_NESTING` levels
    (raises :class:`YamlBoundError`, a ``yaml.YAMLError``), and turns a value the safe
    constructor cannot build into a ``yaml.YAMLError``. The caller bounds the size of
    ``text``.

    A document without a ``*`` has no alias, so nothing to count: it is parsed by libyaml
    where PyYAML has one that limits nesting (several times faster). A document libyaml
    refuses, or that nests too deeply, is read again by the counting loader, which has
    the last word on every error. On a few malformed documents libyaml is more lenient
    than PyYAML's own scanner (a tab inside a plain scalar; a bare ``!`` tag reads as
    ``''`` there and as ``None`` here); a spec or policy is then validated either way."""
    if _FAST_LOADER is not None and "*" not in text:
        try:
            value = yaml.load(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, *_CONSTRUCTION_ERRORS):
            pass
        else:
            if not _deeper_than(value, MAX_NESTING):
                return value
    return _load_counting(text)


def _load_counting(text: str) -> Any:
    """The document in ``text`` read by the counting loader, which has the last word on
    every error: a value it cannot build is a ``ConstructorError``."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _CONSTRUCTION_ERRORS as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"a value cannot be read: {exc}", None
        ) from exc
    finally:
        loader.dispose()


def load_file_bounded(path: Path) -> Any:
    """The YAML document in ``path``, refused past :data:`MAX_YAML_BYTES` bytes (before
    parsing) or :data:`MAX_ALIAS_NODES` alias nodes: a :class:`YamlBoundError` (a
    ``yaml.YAMLError``) naming the file. ``OSError`` and ``UnicodeDecodeError`` propagate."""
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise YamlBoundError(
            f"{path}: {size:,} bytes, more than the {MAX_YAML_BYTES:,} a YAML file may have"
        )
    try:
        return safe_load_bounded(path.read_text(encoding="utf-8"))
    except YamlBoundError as exc:
        raise YamlBoundError(f"{path}: {exc}") from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, with the line and column of the problem: PyYAML's own
    text spans several lines, quotes the source and calls the file ``<unicode string>``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + (f"{context}: " if context else "") + " ".join(problem.split())


def read_yaml_mapping(path: Path, *, error: type[Exception], what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; raise ``error`` naming the file otherwise.

    Raises:
        error: the file is missing, larger than :data:`MAX_YAML_BYTES`, not valid YAML,
            its aliases expand past :data:`MAX_ALIAS_NODES` nodes, or its top level is not
            a mapping; the message names the file.
    """
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(
                f"{path}: {what} file is {size} bytes, larger than the {MAX_YAML_BYTES} bytes "
                "(1 MiB, MAX_YAML_BYTES) a spec or policy may have"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)  # the file may grow after stat
        if len(data) > MAX_YAML_BYTES:
            raise error(f"{path}: {what} file is larger than {MAX_YAML_BYTES} bytes (1 MiB)")
        loaded = safe_load_bounded(data.decode("utf-8"))
    except YamlBoundError as exc:
        raise error(f"{path}: {what} file refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {yaml_problem(exc)}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what} file: {exc}") from exc
    except RecursionError:
        raise error(f"{path}: {what} file is nested too deeply to read") from None
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
