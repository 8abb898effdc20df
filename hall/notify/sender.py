"""Delivery: claim due messages, hand them to their gateway, record the answer.

At least once: a message is sent, then recorded as sent. If the hall stops
between the gateway's answer and the record, the message goes again at the
next start, with the same idempotency key, which the gateway may use to drop
the repeat. The other order (record, then send) would lose the message
instead; a citizen told twice that his number is near is the lesser harm.

A failed try is retried after an exponential backoff with jitter
(``base × 2^(n-1)``, capped, then a random 50-100 % of it, so a gateway that
comes back is not hit by every waiting message at once) until
``max_attempts``; a gateway that refuses a message for good (a 4xx other
than "later") fails it at once. The sender sleeps until the next message is
due or a new one is written: it never polls an empty outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import asyncpg

from hall.notify.contacts import Contact
from hall.notify.gateways import Delivery, Gateway, Message
from hall.notify.outbox import Claimed, OutboxStore
from hall.notify.settings import NotificationsConfig

log = logging.getLogger(__name__)

STORAGE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
IDLE_SECONDS = 3600.0
"""Longest sleep with nothing due: a safety net, not a poll."""


def backoff(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
            ) -> float:
    """Seconds before try ``attempt + 1``, after ``attempt`` failed tries."""
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return float(ceiling * (0.5 + 0.5 * rand()))


class Sender:
    def __init__(self, config: NotificationsConfig, store: OutboxStore,
                 gateways: Mapping[str, Gateway],
                 contact_of: Callable[[int], Awaitable[Contact | None]]) -> None:
        self.config = config
        self.store = store
        self.gateways = gateways
        self.contact_of = contact_of
        self.on_attempt: Callable[[str, str], None] = lambda gateway, outcome: None
        """Told (gateway, outcome) after every attempt; metrics plug in here."""
        self.on_idle: Callable[[], Awaitable[None]] | None = None
        """Awaited whenever the sender runs out of due messages (metrics refresh)."""
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                taken = await self.store.take_back_interrupted()
                if taken:
                    log.warning("%d notifications interrupted by the last stop go out again",
                                taken)
                break
            except STORAGE_ERRORS as exc:
                log.warning("outbox not readable (%s); trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        while True:
            try:
                await self._round()
                delay = 0.5
            except STORAGE_ERRORS as exc:
                log.warning("outbox not reachable (%s); trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _round(self) -> None:
        self._wakeup.clear()  # before looking: a wake-up from here on is not lost
        claimed = await self.store.claim(self.config.concurrency, self.config.lease_seconds)
        if claimed:
            await asyncio.gather(*(self._deliver(item) for item in claimed))
            return
        if self.on_idle is not None:
            await self.on_idle()
        wait = await self.store.seconds_to_next()
        if wait is not None and wait <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), IDLE_SECONDS if wait is None else wait)

    async def _deliver(self, claimed: Claimed) -> None:
        delivery = await self._send(claimed)
        if delivery.ok:
            outcome, retry_in = "sent", 0.0
        elif delivery.retry and claimed.attempts < self.config.max_attempts:
            outcome = "error"
            retry_in = backoff(claimed.attempts, self.config.retry_base_seconds,
                               self.config.retry_max_seconds)
        else:
            outcome, retry_in = "failed", 0.0
        if outcome != "sent":
            log.warning("notification %s attempt %d by %s: %s (%s)", claimed.idem_key,
                        claimed.attempts, claimed.gateway, delivery.error, outcome)
        await self.store.finish(claimed, outcome, delivery, retry_in)
        self.on_attempt(claimed.gateway, outcome)

    async def _send(self, claimed: Claimed) -> Delivery:
        gateway = self.gateways.get(claimed.gateway)
        if gateway is None:
            return Delivery(ok=False, retry=False,
                            error=f"no gateway {claimed.gateway!r} is configured any more")
        contact = None if claimed.citizen_id is None else await self.contact_of(claimed.citizen_id)
        address = None if contact is None else contact.address(claimed.channel)
        if address is None:
            return Delivery(ok=False, retry=False, error="the citizen has no address for "
                            f"{claimed.channel} any more")
        message = Message(claimed.idem_key, claimed.rule, claimed.channel, address,
                          claimed.template_id, claimed.text, claimed.params, claimed.ticket_id)
        try:
            return await gateway.send(message)
        except Exception as exc:  # an adapter's bug must not stop every other message
            log.exception("gateway %s failed on %s", claimed.gateway, claimed.idem_key)
            return Delivery(ok=False, retry=True, error=f"gateway error: {exc!r}")
