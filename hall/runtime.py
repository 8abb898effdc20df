"""One hall at run time: its engine, its clock, and the bus its events go to.

Every change to the hall goes through ``apply``, which hands the engine the
hall's current time and publishes what happened; the only timer is the one
that lets the clock itself raise attendance anomalies and roll the day over.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial
from typing import Protocol

from hall.bus import EventBus
from hall.clock import Clock
from hall.config import HallConfig, StrategyAssignment
from queueing import Engine, Event

log = logging.getLogger(__name__)



class Operation(Protocol):
    """An engine operation waiting for the time: ``partial(engine.call_next, "W1")``."""

    def __call__(self, *, now: datetime) -> list[Event]: ...


class HallRuntime:
    def __init__(self, config: HallConfig, clock: Clock, bus: EventBus) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus
        self.engine = Engine(config.layout)

    def apply(self, operation: Operation) -> list[Event]:
        """Run one engine operation at the hall's current time and publish its
        events; ``Rejected`` propagates with nothing changed."""
        events = operation(now=self.clock.now())
        if events:
            self.bus.publish(events)
        return events

    def open_day(self) -> list[Event]:
        """Start today's business day with the configured strategies; the most
        specific assignment is applied last, so it wins where they overlap."""
        engine = self.engine
        events = self.apply(partial(engine.start_day, self.clock.now().date()))
        for assignment in sorted(self.config.strategy_assignments, key=_specificity):
            events += self.apply(
                partial(
                    engine.set_strategy,
                    assignment.spec,
                    scope=assignment.scope,
                    target=assignment.target,
                )
            )
        return events

    def is_next_day(self, now: datetime) -> bool:
        return (
            self.engine.day is not None
            and now.date() > self.engine.day
            and now.hour >= self.config.rollover_hour
        )

    async def keep_time(self, every_hall_seconds: float = 30.0) -> None:
        """Raise and clear anomalies as time passes; roll over at the set hour."""
        while True:
            await asyncio.sleep(self.clock.seconds(every_hall_seconds))
            if self.is_next_day(self.clock.now()):
                log.info("rolling over to %s", self.clock.now().date())
                self.open_day()
            self.apply(self.engine.check_clock)


SPECIFICITY = {"area": 0, "group": 1, "window": 2}


def _specificity(assignment: StrategyAssignment) -> int:
    return SPECIFICITY[assignment.scope]
