"""Placeholders: ``{name}`` in a message text or a gateway's request template.

One small grammar for both, so that a hall manager learns it once, and the
configuration can be checked for names that nothing fills before any message
is sent. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

Body = str | int | float | bool | list["Body"] | dict[str, "Body"] | None


class TemplateError(ValueError):
    """A template names a placeholder that nothing fills."""


def names(template: str) -> Iterator[str]:
    for match in _PLACEHOLDER.finditer(template):
        if match[1] is not None:
            yield match[1]


def body_names(body: Body) -> Iterator[str]:
    """Every placeholder in a structured request body, at any depth."""
    if isinstance(body, str):
        yield from names(body)
    elif isinstance(body, list):
        for item in body:
            yield from body_names(item)
    elif isinstance(body, dict):
        for item in body.values():
            yield from body_names(item)


def render(template: str, values: Mapping[str, Any],
           quote: Callable[[str], str] = lambda text: text) -> str:
    """``quote`` escapes each value for where it goes (a URL, say), never the template."""
    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name is None:
            return match[0][0]
        if name not in values:
            raise TemplateError(f"nothing fills {{{name}}}")
        return quote(_text(values[name]))

    return _PLACEHOLDER.sub(replace, template)


def render_body(body: Body, values: Mapping[str, Any]) -> Body:
    """Values go in as values, never pasted into JSON text: a string that is exactly
    one placeholder becomes the value itself (``"{params}"`` becomes an object), any
    other string is rendered as text. Nothing a citizen's data holds can break the
    request's syntax."""
    if isinstance(body, str):
        whole = _PLACEHOLDER.fullmatch(body)
        if whole is not None and whole[1] is not None:
            if whole[1] not in values:
                raise TemplateError(f"nothing fills {body}")
            value: Body = values[whole[1]]
            return value
        return render(body, values)
    if isinstance(body, list):
        return [render_body(item, values) for item in body]
    if isinstance(body, dict):
        return {key: render_body(item, values) for key, item in body.items()}
    return body


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
