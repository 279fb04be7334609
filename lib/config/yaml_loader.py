"""Read a YAML config safely, with bounded work, keeping a way back to each value's line.

Before anything is built, the file's size is checked and its event stream scanned (iteratively,
nothing kept but a few counters) against the bounds below: nesting depth, aliases used, and the
size the document would have with every alias (``*name``) expanded. An alias bomb is refused there,
after a few thousand events, in milliseconds. Only then is the node tree composed (with libyaml
when it is installed) and plain data constructed with ``yaml.safe_load`` semantics, plus:

- duplicate keys are refused (PyYAML silently keeps the last one);
- merge keys (``<<: *defaults``) are applied, as YAML 1.1 defines them;
- keys are text, floats are finite, and only JSON-like values are kept (no dates, sets or binary);
- top-level keys starting with ``x-`` are dropped: the place to park anchors (``x-defaults: &d``).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import yaml

from lib.errors import ConfigError, yaml_path

MAX_BYTES = 256 * 1024  # a config with 50 models is ~50 KB
MAX_DEPTH = 64  # nesting of lists and mappings, aliases included
MAX_ALIASES = 1000  # uses of *name
MAX_VALUES = 40_000  # values (scalars, lists, mappings) once every alias is expanded; ~1,000 models
MAX_TEXT = 4 * 1024 * 1024  # characters of text once every alias is expanded
MAX_INT_DIGITS = 30
PARKING_PREFIX = "x-"

_BASE_LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader  # libyaml: ~20x faster


class _StrictLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """safe_load's loader, refusing duplicate and non-scalar keys and over-long integers."""


def _checked_mapping(loader: _StrictLoader, node: yaml.Node, deep: bool = False) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, f"expected a mapping, found {node.id}",
                                                node.start_mark)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a word or quoted text, not a {kind} (write 'key: value')",
                key_node.start_mark)
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`, applied by flatten_mapping below
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first defined on line {seen[key].start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)  # SafeConstructor's: applies merge keys first


def _construct_map(loader: _StrictLoader, node: yaml.MappingNode):
    data: dict = {}
    yield data  # filled after, as safe_load does: no recursion per nesting level
    data.update(_checked_mapping(loader, node))


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    if len(str(node.value)) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a number with more than {MAX_INT_DIGITS} digits is not a setting; if it is text, "
            "put it in quotes", node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Refused(Exception):
    def __init__(self, line: int, parts: list, message: str) -> None:
        super().__init__(message)
        self.line, self.parts, self.message = line, parts, message


class _Frame:
    __slots__ = ("is_map", "anchor", "values", "text", "depth", "index", "key", "at_key")

    def __init__(self, is_map: bool, anchor: str | None) -> None:
        self.is_map, self.anchor = is_map, anchor
        self.values, self.text, self.depth = 1, 0, 1
        self.index, self.key, self.at_key = 0, None, True

    def child_done(self, values: int, text: int, depth: int, scalar: Any = None) -> None:
        self.values += values
        self.text += text
        self.depth = max(self.depth, depth + 1)
        if self.is_map:
            if self.at_key:
                self.key = scalar if isinstance(scalar, str) else "?"
            self.at_key = not self.at_key
        else:
            self.index += 1


def _where(stack: list[_Frame]) -> list:
    parts: list = []
    for frame in stack:
        if frame.is_map:
            if frame.at_key or frame.key is None:
                break
            parts.append(frame.key)
        else:
            parts.append(frame.index)
    return parts


def _scan(text: str) -> None:
    """Walk the event stream once and refuse a document over the bounds, before anything is built."""
    stack: list[_Frame] = []
    anchors: dict[str, tuple[int, int, int]] = {}  # name -> (values, text, depth) once closed
    first_line: dict[str, int] = {}  # anchor -> line it was defined on
    total_values = total_text = aliases = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        anchor = getattr(event, "anchor", None)
        if anchor and not isinstance(event, yaml.AliasEvent):
            if anchor in first_line:
                raise _Refused(line, _where(stack), f"the anchor &{anchor} is defined twice (lines "
                               f"{first_line[anchor]} and {line}): give each anchor its own name")
            first_line[anchor] = line
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _Refused(line, _where(stack), f"the YAML is nested more than {MAX_DEPTH} levels deep; "
                               "a config needs a handful")
            stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor))
            total_values += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            if frame.anchor:
                anchors[frame.anchor] = (frame.values, frame.text, frame.depth)
            if stack:
                stack[-1].child_done(frame.values, frame.text, frame.depth)
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size = len(event.value)
            if event.anchor:
                anchors[event.anchor] = (1, size, 0)
            total_values += 1
            total_text += size
            if stack:
                stack[-1].child_done(1, size, 0, event.value)
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            where = _where(stack)
            if event.anchor not in anchors:
                opened = any(f.anchor == event.anchor for f in stack)
                raise _Refused(line, where, f"the alias *{event.anchor} refers to the list or mapping it is in "
                               "(a loop)" if opened else
                               f"the alias *{event.anchor} has no anchor &{event.anchor} before it")
            if aliases > MAX_ALIASES:
                raise _Refused(line, where, f"more than {MAX_ALIASES} aliases (*name): far more than a config "
                               "needs; write the values out or use fewer anchors")
            values, size, depth = anchors[event.anchor]
            if len(stack) + depth > MAX_DEPTH:
                raise _Refused(line, where, f"the alias *{event.anchor} nests the YAML more than {MAX_DEPTH} "
                               "levels deep")
            total_values += values
            total_text += size
            if stack:
                stack[-1].child_done(values, size, depth)
        else:
            continue
        if total_values > MAX_VALUES:
            raise _Refused(line, _where(stack), f"the document expands to more than {MAX_VALUES:,} values once "
                           "its aliases (*name) are expanded: an alias bomb, or far more than any config needs")
        if total_text > MAX_TEXT:
            raise _Refused(line, _where(stack), f"the document expands to more than {MAX_TEXT // 2**20} MB of "
                           "text once its aliases (*name) are expanded: an alias bomb, or far more than any "
                           "config needs")


_KINDS = {str: "text", bool: "the boolean", int: "the number", float: "the number", type(None): "empty (null)",
          datetime.date: "a date", datetime.datetime: "a date and time", bytes: "binary data",
          set: "a set", tuple: "a pair", list: "a list", dict: "a mapping"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")


_NO_KEY = object()


def _check_plain(data: dict, refuse) -> None:
    """Keys are text, floats finite, values JSON-like. Iterative; each container visited once."""
    stack: list[tuple[Any, list]] = [(data, [])]
    seen: set[int] = set()
    while stack:
        value, parts = stack.pop()
        if isinstance(value, dict):
            if id(value) in seen:
                continue
            seen.add(id(value))
            for key, child in value.items():
                if not isinstance(key, str):
                    shown = "null" if key is None else str(key).lower() if isinstance(key, bool) else key
                    refuse(parts, key, f"the key {shown!s} is read as {_kind(key)}, but keys are text: put it in "
                           f"quotes ('{shown!s}': ...)")
                stack.append((child, parts + [key]))
        elif isinstance(value, list):
            if id(value) in seen:
                continue
            seen.add(id(value))
            stack.extend((child, parts + [i]) for i, child in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            refuse(parts, _NO_KEY, "is not a finite number (.inf, .nan and numbers too large for a float are "
                   "refused): give an ordinary number")
        elif not isinstance(value, (str, int, float, type(None))):
            refuse(parts, _NO_KEY, f"this is read as {_kind(value)}, which a config does not hold: put it in quotes "
                   "to make it text")


def _scalar_is(node: yaml.Node, value: Any) -> bool:
    """Whether the non-text key ``node`` reads as ``value`` (1, true, null...)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:str" or len(node.value) > 40:
        return False
    try:
        return yaml.load(node.value, Loader=_StrictLoader) == value  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return False


class LoadedYaml:
    """The data of one YAML file plus a way back from a YAML path to its line."""

    def __init__(self, path: Path, data: dict, root: yaml.Node) -> None:
        self.path = path
        self.data = data
        self._root = root

    def _walk(self, parts: list[str | int] | tuple[str | int, ...]) -> tuple[yaml.Node, int, bool]:
        """(deepest node along ``parts`` that exists, its line, whether all of ``parts`` was found)."""
        node = self._root
        line = node.start_mark.line + 1
        for part in parts:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:  # merge keys are applied in place by now
                    if key_node.value == part or (not isinstance(part, str) and _scalar_is(key_node, part)):
                        child = value_node
                        line = key_node.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                return node, line, False
            node = child
        return node, line, True

    def line_of(self, parts: list[str | int] | tuple[str | int, ...]) -> int | None:
        """1-based line of the deepest node along ``parts`` that exists."""
        return self._walk(parts)[1]

    def source_text(self, parts: list[str | int] | tuple[str | int, ...]) -> str | None:
        """The text a scalar was written as (``2.10`` for what YAML reads as the number 2.1), or None."""
        node, _, found = self._walk(parts)
        return node.value if found and isinstance(node, yaml.ScalarNode) else None

    def error(self, parts: list[str | int] | tuple[str | int, ...], message: str) -> ConfigError:
        return ConfigError(str(self.path), yaml_path(parts), message, self.line_of(parts))


def _read(path: Path) -> str:
    try:
        regular, exists = path.is_file(), path.exists()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise ConfigError(str(path)[:200], "", f"cannot read the file: {exc}") from None
    if not regular:
        raise ConfigError(str(path), "", "file not found" if not exists else
                          "not a regular file (a config is a YAML file)")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(str(path), "", f"the file is {size:,} bytes; a config is at most "
                              f"{MAX_BYTES // 1024} KB (is this the right file?)")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(str(path), "", f"the file is over {MAX_BYTES // 1024} KB; a config is smaller")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(str(path), "", f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} at column "
                          f"{column} cannot be decoded; save it as UTF-8", line) from None


def _yaml_error(path: Path, exc: yaml.YAMLError, text: str) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: no mark, a position
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        char = exc.character if isinstance(exc.character, str) else chr(exc.character or 0)
        return ConfigError(str(path), "", f"the character U+{ord(char):04X} is a control character, which YAML "
                           "does not allow; remove it", line)
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    if isinstance(exc, yaml.constructor.ConstructorError):
        problem = exc.problem or str(exc)
        if "could not determine a constructor for the tag" in problem:
            tag = problem.split("tag", 1)[1].strip(" '")
            problem = (
                f"the YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is not allowed: configs are plain "
                "data and are read with yaml.safe_load, so no Python object is ever constructed"
            )
        return ConfigError(str(path), "", problem, line)
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if mark and (_char_at(text, mark.line, mark.column) == "\t" or "tab character" in problem):
            return ConfigError(str(path), "", f"a tab at column {mark.column + 1}: YAML indents with spaces only; "
                               "replace the tab with spaces", line)
        return ConfigError(str(path), "", f"invalid YAML: {problem}", line)
    return ConfigError(str(path), "", f"invalid YAML: {exc}")


def _char_at(text: str, line: int, column: int) -> str | None:
    lines = text.split("\n")
    return lines[line][column] if line < len(lines) and column < len(lines[line]) else None


def load_yaml(path: str | Path) -> LoadedYaml:
    """Load a YAML mapping within the bounds above; raise ConfigError on anything else."""
    path = Path(path)
    text = _read(path)
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise ConfigError(str(path), "", "the file is empty; expected a YAML mapping of settings")
    try:
        _scan(text)
        loader = _StrictLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ConfigError(str(path), yaml_path(exc.parts), exc.message, exc.line or None) from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own bound (1000), met before ours
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(str(path), "", f"the YAML is nested more than {MAX_DEPTH} levels deep; a config "
                              "needs a handful", mark.line + 1 if mark else None) from None
        raise _yaml_error(path, exc, text) from None
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:  # a scalar no constructor takes
        raise ConfigError(str(path), "", f"invalid YAML: {type(exc).__name__}: {exc}") from None
    if data is None:
        raise ConfigError(str(path), "", "the file is empty; expected a YAML mapping of settings")
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "", f"the top level must be a mapping of settings (key: value), not {_kind(data)}"
            .replace("not the number", "not a number").replace("not the boolean", "not true/false"), 1
        )
    doc = LoadedYaml(path, data, root)
    for key in [k for k in data if isinstance(k, str) and k.startswith(PARKING_PREFIX)]:
        del data[key]  # anchor parking: `x-defaults: &defaults {...}`

    def refuse(parts: list, key: Any, message: str) -> None:
        if key is _NO_KEY:
            written = doc.source_text(parts)
            message = f"{written!r} {message}" if message.startswith("is ") and written else message
        line = doc.line_of(parts if key is _NO_KEY else [*parts, key])
        raise ConfigError(str(path), yaml_path(parts), message, line)

    _check_plain(data, refuse)
    return doc
