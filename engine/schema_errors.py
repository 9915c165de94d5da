"""Errors that name the file, the path inside it, the line and what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '<root>'}: {self.message}"


class SchemaError(ValueError):
    def __init__(self, file: str, problems: Sequence[Problem]):
        self.file = file
        self.problems = list(problems)
        lines = "\n  ".join(p.format(file) for p in self.problems)
        super().__init__(f"schema {file} has {len(self.problems)} problem(s):\n  {lines}")


class CallDataError(ValueError):
    """Call data that does not fit the schema; ``problems`` maps field → what is wrong."""

    def __init__(self, schema: str, problems: dict[str, str]):
        self.schema = schema
        self.problems = problems
        detail = "; ".join(f"{field}: {msg}" for field, msg in problems.items())
        super().__init__(f"invalid call data for schema {schema!r}: {detail}")


def format_path(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(root: yaml.Node | None, parts: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``parts`` (or of its deepest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
