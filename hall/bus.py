"""The hall's one event bus.

Everything the engine decides goes out here, and every component that cares
(storage, screens, the backend link, statistics) subscribes instead of
polling. Delivery is synchronous and in order, in the engine's task: a
subscriber that has slow work to do hands it to its own task or queue, so one
slow consumer never stalls the hall or reorders what others see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from hall.eventstore import StoredEvent

Subscriber = Callable[[Sequence[StoredEvent]], None]

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(events)
            except Exception:
                log.exception("event subscriber %r failed; the others still get the events",
                              subscriber)
