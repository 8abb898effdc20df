"""Calling strategies (Q7).

A strategy is a chain of rules. Each rule looks at what a window may call and
either picks a ticket or passes; the first pick wins. Rules that always pick
when anything is callable (the orderings) end the chain. A new rule is one
class in this file with ``@rule``; the manager names it in a strategy spec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from queueing.lanes import Entry, Lane, ServiceQueue


class StrategyError(ValueError):
    """A strategy spec names an unknown rule or a bad parameter."""


class CallView(Protocol):
    """What a rule may look at when a window calls."""

    @property
    def now(self) -> datetime: ...
    @property
    def services(self) -> Mapping[str, int]:
        """The window's services and their weights."""
    @property
    def own(self) -> Lane:
        """Tickets sent to this window by name (transfers, released holds)."""
    @property
    def queues(self) -> Mapping[str, ServiceQueue]: ...
    def waiting_since(self, ticket_id: str) -> datetime: ...
    def service_of(self, ticket_id: str) -> str: ...


class Rule(ABC):
    name: ClassVar[str]
    exhaustive: ClassVar[bool] = False
    """True when the rule picks whenever anything at all is callable."""
    defaults: ClassVar[Mapping[str, float]] = {}

    def __init__(self, **params: float) -> None:
        """Parameters are durations and counts: numbers, never negative."""
        unknown = params.keys() - self.defaults.keys()
        if unknown:
            raise StrategyError(f"rule {self.name!r} takes no parameter {sorted(unknown)[0]!r}")
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise StrategyError(f"rule {self.name!r}: {key!r} must be a number ≥ 0")
        self.params = {**self.defaults, **params}

    @abstractmethod
    def pick(self, view: CallView) -> str | None:
        """A ticket id to call, or None to let the next rule decide."""


RULES: dict[str, type[Rule]] = {}


def rule(cls: type[Rule]) -> type[Rule]:
    RULES[cls.name] = cls
    return cls


def _earliest(entries: Iterable[Entry | None]) -> Entry | None:
    best: Entry | None = None
    for entry in entries:
        if entry is not None and (best is None or entry < best):
            best = entry
    return best


def _all_heads(view: CallView) -> Iterable[Entry | None]:
    yield view.own.head()
    queues = view.queues
    for service_id in view.services:
        yield queues[service_id].main.head()


@rule
class TransfersFirst(Rule):
    """Tickets sent to this window by name come before everybody else."""

    name = "transfers_first"

    def pick(self, view: CallView) -> str | None:
        head = view.own.head()
        return None if head is None else head[2]


@rule
class PriorityGroupsFirst(Rule):
    """Priority-group tickets (elderly, disabled, military...) go first."""

    name = "priority_groups_first"

    def pick(self, view: CallView) -> str | None:
        queues = view.queues
        head = _earliest(queues[s].priority.head() for s in view.services)
        return None if head is None else head[2]


@rule
class AppointmentsDue(Rule):
    """An appointment whose slot starts within ``early_minutes`` (or has
    passed) is called ahead of walk-ins, earliest slot first."""

    name = "appointments_due"
    defaults: ClassVar[Mapping[str, float]] = {"early_minutes": 10.0}

    def pick(self, view: CallView) -> str | None:
        queues = view.queues
        head = _earliest(queues[s].appointments.head() for s in view.services)
        if head is None:
            return None
        due_from = view.now.timestamp() + self.params["early_minutes"] * 60
        return head[2] if head[0] <= due_from else None


@rule
class Fifo(Rule):
    """First come, first served across all the window's services."""

    name = "fifo"
    exhaustive = True

    def pick(self, view: CallView) -> str | None:
        head = _earliest(_all_heads(view))
        return None if head is None else head[2]


def _best_by(view: CallView, score: Callable[[Entry, int], float]) -> str | None:
    """Highest score wins; equal scores go to the earlier entry."""
    best: tuple[float, Entry] | None = None
    for entry in _all_heads(view):
        if entry is None:
            continue
        weight = view.services.get(view.service_of(entry[2]), 1)
        value = score(entry, weight)
        if best is None or value > best[0] or (value == best[0] and entry < best[1]):
            best = (value, entry)
    return None if best is None else best[1][2]


@rule
class ServicePriority(Rule):
    """Strictly by the window's service weight, first come first served
    within one weight."""

    name = "service_priority"
    exhaustive = True

    def pick(self, view: CallView) -> str | None:
        return _best_by(view, lambda _entry, weight: float(weight))


@rule
class Weighted(Rule):
    """Weight times time waited: a heavy service goes first but a light one
    is never starved, since its waiting time keeps growing."""

    name = "weighted"
    exhaustive = True

    def pick(self, view: CallView) -> str | None:
        now = view.now

        def score(entry: Entry, weight: int) -> float:
            return weight * ((now - view.waiting_since(entry[2])).total_seconds() + 1.0)

        return _best_by(view, score)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    params: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy as configured: rule names and parameters, in order."""

    rules: tuple[RuleSpec, ...]

    @classmethod
    def of(cls, *rules: str | tuple[str, Mapping[str, float]]) -> StrategySpec:
        """``StrategySpec.of("transfers_first", ("appointments_due", {...}), "fifo")``."""
        specs = []
        for item in rules:
            if isinstance(item, str):
                specs.append(RuleSpec(item))
            else:
                name, params = item
                specs.append(RuleSpec(name, tuple(sorted(params.items()))))
        return cls(tuple(specs))

    def to_json(self) -> list[dict[str, Any]]:
        return [{"rule": spec.name, **dict(spec.params)} for spec in self.rules]

    @classmethod
    def from_json(cls, data: object) -> StrategySpec:
        """Parse ``[{"rule": "fifo"}, ...]`` (or bare names); raises StrategyError."""
        if not isinstance(data, list) or not data:
            raise StrategyError("a strategy is a non-empty list of rules")
        items: list[str | tuple[str, Mapping[str, float]]] = []
        for position, item in enumerate(data):
            if isinstance(item, str):
                items.append(item)
                continue
            if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
                raise StrategyError(f"rule {position}: expected a name or {{'rule': name, ...}}")
            items.append((item["rule"], {k: v for k, v in item.items() if k != "rule"}))
        spec = cls.of(*items)
        build_strategy(spec)
        return spec


class Strategy:
    """A built, validated chain of rules."""

    __slots__ = ("rules", "spec")

    def __init__(self, spec: StrategySpec, rules: tuple[Rule, ...]) -> None:
        self.spec = spec
        self.rules = rules

    def pick(self, view: CallView) -> tuple[str, str] | None:
        """(ticket id, name of the rule that chose it), or None."""
        for chosen_by in self.rules:
            ticket_id = chosen_by.pick(view)
            if ticket_id is not None:
                return ticket_id, chosen_by.name
        return None


def build_strategy(spec: StrategySpec) -> Strategy:
    rules: list[Rule] = []
    for rule_spec in spec.rules:
        cls = RULES.get(rule_spec.name)
        if cls is None:
            raise StrategyError(
                f"unknown rule {rule_spec.name!r}; known rules: {', '.join(sorted(RULES))}"
            )
        rules.append(cls(**dict(rule_spec.params)))
    if not rules or not rules[-1].exhaustive:
        rules.append(Fifo())
    return Strategy(spec, tuple(rules))


DEFAULT_STRATEGY = StrategySpec.of(
    "transfers_first", "priority_groups_first", "appointments_due", "fifo"
)
