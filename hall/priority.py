"""Priority tickets with a password (Q2: 特殊人群优先，凭密码取号).

A priority group (the elderly, the disabled, service members...) goes past the
queue, and a kiosk is unattended, so the group's password is what lets someone
through. Both ways of taking a ticket, REST and MQTT, check it here, with one
count of failed attempts per caller (a kiosk's device id, or whoever holds a
REST token), so that a password cannot be guessed at the speed of a script.

Passwords are short and typed by people (a six-digit code, say), so the file
keeps them as argon2 hashes like staff passwords (``hall.auth``): a fast hash
such as SHA-256 of a six-digit code is reversed by trying all million codes in
a fraction of a second. Checking one costs tens of milliseconds of a worker
thread, which the attempt limit and a small semaphore keep bounded.

The password itself is never logged: refusals log the caller, the group and
the count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping

from hall.auth import verify_password
from hall.config import PriorityGroup

log = logging.getLogger(__name__)

MAX_FAILURES = 5
"""Failed attempts a caller may make within ``WINDOW_SECONDS``; the next are
refused unchecked, right password or not, until the oldest failure ages out."""
WINDOW_SECONDS = 60.0

WRONG_PASSWORD = "wrong_priority_password"
UNKNOWN_GROUP = "unknown_priority_group"
TOO_MANY_ATTEMPTS = "too_many_attempts"


class PriorityRefused(Exception):
    """No priority ticket: ``code`` is one of the three above, ``message`` is for
    the citizen at the kiosk."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        """Seconds until the caller may try again, for ``too_many_attempts``."""


class PriorityGate:
    """Checks priority passwords and counts each caller's failures."""

    def __init__(
        self,
        groups: Mapping[str, PriorityGroup],
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = WINDOW_SECONDS,
        max_hashing: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._groups = groups
        self._max_failures = max_failures
        self._window = window_seconds
        self._clock = clock
        self._hashing = asyncio.Semaphore(max_hashing)
        self._failures: dict[str, deque[float]] = {}

    def _recent_failures(self, caller: str) -> deque[float]:
        failures = self._failures.get(caller)
        if failures is None:
            return deque()
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[caller]
        return failures

    async def check(self, caller: str, group_id: str, password: str) -> PriorityGroup:
        """The group when ``password`` is its password; raises PriorityRefused."""
        failures = self._recent_failures(caller)
        if len(failures) >= self._max_failures:
            retry_after = max(0.0, failures[0] + self._window - self._clock())
            log.warning("%s: priority ticket refused unchecked, %d failed attempts in %.0f s",
                        caller, len(failures), self._window)
            raise PriorityRefused(
                TOO_MANY_ATTEMPTS, "优先取号密码错误次数过多，请稍后再试或联系大厅工作人员",
                retry_after)
        group = self._groups.get(group_id)
        if group is None:
            self._failed(caller, group_id, "unknown group")
            raise PriorityRefused(UNKNOWN_GROUP, "没有这个优先取号人群，请联系大厅工作人员")
        async with self._hashing:
            right = await asyncio.to_thread(verify_password, group.password_hash, password)
        if not right:
            self._failed(caller, group_id, "wrong password")
            raise PriorityRefused(WRONG_PASSWORD, "优先取号密码不正确")
        return group

    def _failed(self, caller: str, group_id: str, what: str) -> None:
        failures = self._failures.setdefault(caller, deque())
        failures.append(self._clock())
        log.warning("%s: priority ticket for group %r refused: %s (%d in the last %.0f s)",
                    caller, group_id, what, len(failures), self._window)
