"""Read YAML while remembering where each value came from.

Config errors should point at a line, not just a field path. :func:`load_yaml`
returns the plain data and a :class:`YamlLocator` that maps a field path such as
``("targets", 0, "query_budget")`` back to the line it was written on.

Examples
--------
>>> data, where = load_yaml_text("seed: 1\\ntarget:\\n  path: m.onnx\\n", "cfg.yaml")
>>> data["target"]["path"]
'm.onnx'
>>> where.line(("target", "path"))
3
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError

__all__ = ["YamlLocator", "load_yaml", "load_yaml_text"]


class YamlLocator:
    """Maps field paths to 1-based line numbers in the source text."""

    def __init__(self, root: yaml.Node | None, source: str) -> None:
        self.root = root
        self.source = source

    def line(self, path: Sequence[str | int]) -> int | None:
        """Line of the deepest node on ``path`` that exists, or None."""
        node = self.root
        found = node.start_mark.line + 1 if node is not None else None
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        child = value
                        found = key.start_mark.line + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                child = node.value[part]
                found = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return found

    def has_top_level(self, key: str) -> bool:
        """True when the document's top-level mapping has ``key``."""
        if not isinstance(self.root, yaml.MappingNode):
            return False
        return any(isinstance(k, yaml.ScalarNode) and k.value == key for k, _ in self.root.value)

    def where(self, path: Sequence[str | int]) -> str:
        """``"cfg.yaml, line 7"`` style location (or just the file name)."""
        line = self.line(path)
        return f"{self.source}, line {line}" if line else self.source


def load_yaml_text(text: str, source: str) -> tuple[Any, YamlLocator]:
    """Parse YAML text; syntax errors become :class:`ConfigError` with the line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{source}{line}: not valid YAML ({err.problem}); fix the syntax there."
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err}).") from None
    return data, YamlLocator(root, source)


def load_yaml(path: Path) -> tuple[Any, YamlLocator]:
    """Read and parse a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}; check the path.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give the path of a YAML config file.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read config file {path}: {err}.") from None
    return load_yaml_text(text, str(path))
