"""Rows of several tables written in one statement, one array per column: how the
group commit stores a batch's events and the rows that go with them in a single round
trip (``hall.committer``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SideTable:
    """Where rows of one kind go: ``columns`` as (name, PostgreSQL type), after the
    ``hall_id`` every table of the hall starts with."""

    name: str
    columns: tuple[tuple[str, str], ...]
    on_conflict: str = ""
    """E.g. ``ON CONFLICT DO NOTHING`` for rows a retry may bring again."""

    def insert(self, first_param: int) -> str:
        """One INSERT of arrays, their elements zipped row by row by ``unnest``;
        ``$1`` is the hall id."""
        names = ", ".join(name for name, _ in self.columns)
        arrays = ", ".join(
            f"${first_param + i}::{kind}[]" for i, (_, kind) in enumerate(self.columns))
        return (f"INSERT INTO {self.name} (hall_id, {names}) SELECT $1, * FROM unnest({arrays})"
                f" {self.on_conflict}".rstrip())

    def arrays(self, rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
        """The rows as one list per column, for ``insert``'s parameters."""
        if not rows:
            return [[] for _ in self.columns]
        return [list(column) for column in zip(*rows, strict=True)]

    async def write(self, executor: Executor, hall_id: str,
                    rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows that go on their own, outside a group commit."""
        await executor.execute(self.insert(2), hall_id, *self.arrays(rows))


class Executor(Protocol):
    """A pool or a connection."""

    async def execute(self, query: str, *args: Any) -> str: ...
