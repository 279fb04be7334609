"""Read a YAML config safely: plain data only, duplicate keys refused, line numbers kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lib.errors import ConfigError, yaml_path


class _StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first defined on line {seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class LoadedYaml:
    """The data of one YAML file plus a way back from a YAML path to its line."""

    def __init__(self, path: Path, data: dict, root: yaml.Node) -> None:
        self.path = path
        self.data = data
        self._root = root

    def line_of(self, parts: list[str | int] | tuple[str | int, ...]) -> int | None:
        """1-based line of the deepest node along ``parts`` that exists."""
        node = self._root
        line = node.start_mark.line + 1
        for part in parts:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == part:
                        child = value_node
                        line = key_node.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def error(self, parts: list[str | int] | tuple[str | int, ...], message: str) -> ConfigError:
        return ConfigError(str(self.path), yaml_path(parts), message, self.line_of(parts))


def load_yaml(path: str | Path) -> LoadedYaml:
    """Load a YAML mapping with ``yaml.safe_load`` semantics; raise ConfigError on anything else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "", "file not found" if not path.exists() else "not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read the file: {exc}") from None
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise ConfigError(str(path), "", "the file is empty; expected a YAML mapping of settings")
    try:
        root = yaml.compose(text, Loader=_StrictSafeLoader)
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = exc.problem or str(exc)
        if "could not determine a constructor for the tag" in problem:
            tag = problem.split("tag", 1)[1].strip(" '")
            problem = (
                f"the YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is not allowed: configs are plain "
                "data and are read with yaml.safe_load, so no Python object is ever constructed"
            )
        raise ConfigError(str(path), "", problem, line) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(str(path), "", f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(str(path), "", "the file is empty; expected a YAML mapping of settings")
    if not isinstance(data, dict):
        kind = type(data).__name__.replace("str", "a string").replace("list", "a list")
        raise ConfigError(
            str(path), "", f"the top level must be a mapping of settings (key: value), not {kind}", 1
        )
    return LoadedYaml(path, data, root)
