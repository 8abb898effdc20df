"""Events to and from plain JSON-able dicts.

The server stores and publishes events in this form, and a replay reads them
back; a round trip must give an equal event, which the tests check for every
type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from typing import Any

from queueing.events import EVENT_TYPES, Event
from queueing.strategies import StrategySpec


class CodecError(ValueError):
    """A dict that is not a well-formed event."""


_FIELD_TYPES: dict[type[Event], dict[str, Any]] = {}


def _field_types(cls: type[Event]) -> dict[str, Any]:
    known = _FIELD_TYPES.get(cls)
    if known is None:
        hints = typing.get_type_hints(cls)
        known = _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return known


def _defaults(cls: type[Event]) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, StrategySpec):
        return value.to_json()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin is types.UnionType or origin is typing.Union:
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _decode(inner, value)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            raise CodecError(f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        return tuple(_decode(arg, item) for arg, item in zip(args, value, strict=True))
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is StrategySpec:
        return StrategySpec.from_json(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CodecError(f"expected {kind.__name__}, got {value!r}")
    return value


def event_to_dict(item: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"type": item.type}
    for name in _field_types(type(item)):
        data[name] = _encode(getattr(item, name))
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise CodecError(f"unknown event type {data.get('type')!r}")
    values = {}
    defaults = _defaults(cls)
    for name, kind in _field_types(cls).items():
        if name not in data:
            if name in defaults:
                continue  # stored before the field existed (day.started's service_terms)
            raise CodecError(f"{cls.type}: missing field {name!r}")
        try:
            values[name] = _decode(kind, data[name])
        except (ValueError, TypeError) as exc:
            raise CodecError(f"{cls.type}.{name}: {exc}") from exc
    return cls(**values)
