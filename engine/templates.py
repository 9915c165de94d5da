"""Pre-compiled ``{name}`` templates.

A template is parsed once at schema load into literal and field parts, so rendering is a
join, never a parse. Call-data fields are fixed for a call, so the text up to the first
per-turn field (a slot) can be rendered once and streamed first.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[tuple[str, str | None], ...]  # (literal, field name or None)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.parts if name is not None)

    def render(self, values: Mapping[str, object]) -> str:
        return "".join(self.iter_render(values))

    def iter_render(self, values: Mapping[str, object]) -> Iterator[str]:
        for literal, name in self.parts:
            if literal:
                yield literal
            if name is not None:
                value = values.get(name)
                yield "" if value is None else str(value)

    def split_at_first(self, dynamic: frozenset[str]) -> tuple[Template, Template]:
        """Split into (static prefix, rest) at the first field in ``dynamic``."""
        for index, (_, name) in enumerate(self.parts):
            if name in dynamic:
                literal = self.parts[index][0]
                head = (*self.parts[:index], (literal, None))
                tail = (("", name), *self.parts[index + 1 :])
                return Template(self.source, head), Template(self.source, tail)
        return self, Template(self.source, ())


def compile_template(source: str) -> Template:
    parts: list[tuple[str, str | None]] = []
    try:
        parsed = list(_FORMATTER.parse(source))
    except ValueError as exc:
        raise TemplateError(f"bad template syntax: {exc}") from exc
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if not name.isidentifier():
                raise TemplateError(f"bad template field {{{name}}}: use a plain {{name}}")
            if spec or conversion:
                raise TemplateError(f"template field {{{name}}} may not carry a format spec or conversion")
        parts.append((literal, name))
    return Template(source, tuple(parts))
