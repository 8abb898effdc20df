"""Ordered lanes of waiting tickets.

A lane is a sorted list of entries ``(order, ordinal, ticket_id)``: ``order``
is the queue key (or an appointment's slot time), ``ordinal`` the ticket's
issue ordinal, which breaks ties and makes every entry unique. Sorted lists
give O(log n) insertion anywhere (a no-show goes back behind N people), O(log
n) removal of any ticket (a clerk picks one by name, a citizen cancels), and
O(log n) "how many are ahead of me".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedList

Entry = tuple[int, int, str]

KEY_SPACING = 1 << 20
"""Gap between the keys of consecutive tickets, so that a no-show can be put
back between two waiting tickets by halving the gap (20 times in one spot
before two keys touch); the result stays below 2**53 for JSON clients."""


class Lane:
    __slots__ = ("_entries", "_size")

    def __init__(self) -> None:
        self._entries: SortedList[Entry] = SortedList()
        self._size = 0
        """Kept here because strategies ask most lanes, usually empty ones,
        for their head on every call; an attribute beats ``len()`` there."""

    def add(self, entry: Entry) -> None:
        self._entries.add(entry)
        self._size += 1

    def remove(self, entry: Entry) -> None:
        self._entries.remove(entry)
        self._size -= 1

    def head(self) -> Entry | None:
        return self._entries[0] if self._size else None

    def at(self, index: int) -> Entry:
        return self._entries[index]

    def count_before(self, entry: Entry) -> int:
        return self._entries.bisect_left(entry)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def ticket_ids(self) -> list[str]:
        return [entry[2] for entry in self._entries]


@dataclass(slots=True)
class ServiceQueue:
    """The waiting tickets of one service.

    ``main`` holds every waiting ticket of the service in queue order;
    ``priority`` and ``appointments`` are indexes over the subsets the
    strategies need to reach directly, the latter ordered by slot time.
    Tickets sent to a named window wait in that window's lane instead.
    """

    main: Lane = field(default_factory=Lane)
    priority: Lane = field(default_factory=Lane)
    appointments: Lane = field(default_factory=Lane)


def key_behind(lane: Lane, people: int, fallback: int) -> int:
    """Queue key that puts a ticket behind the first ``people`` in ``lane``.

    ``fallback`` is the key for the end of the lane when it is that short.
    """
    if people <= 0:
        head = lane.head()
        return fallback if head is None else head[0] - 1
    if len(lane) <= people:
        return fallback
    before = lane.at(people - 1)[0]
    after = lane.at(people)[0]
    return before + max(1, (after - before) // 2) if after > before else before
