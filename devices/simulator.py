"""Simulated hall devices on MQTT: a living hall without the hardware.

Every simulated device is a separate MQTT client that speaks only the device
protocol of docs/mqtt.md (``devices.topics`` and ``devices.messages``), exactly
as the edge agent on a kiosk PC would: its own connection and last will, a
retained birth and health state, requests with idempotency ids and replies
matched by ``re``. So the demo exercises the server's real device path (and any
broker in between), and the simulation runs against any hall server, local or
remote, without importing anything of it.

What the devices do:

- kiosks take tickets for citizens who arrive at random (a Poisson stream),
  for services drawn by weight among those the kiosk's menu shows open, now
  and then a priority ticket with a priority group's password (and, rarely, a
  mistyped one), and print them, or have their stand-alone printer print them
  and show the number when the hall says the printer failed;
- call terminals log their clerk in and work through the queue: call, wait
  for the citizen to walk up, serve for a realistic time, now and then ask for
  a rating or give up on a no-show;
- evaluation terminals rate when the hall asks them to (mostly 4 or 5 stars);
- window screens, hall boards and LED strips keep the latest view the hall
  sent them; announcers log what they would say.

Times are hall times: ``speed`` hall seconds pass per real second, which must
match the server's clock (1 for a server on the wall clock, its ``--speed``
for a demo server), or service times would not feel right.

This module must never import ``hall``: the edge agent runs without the server.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from devices import messages as m
from devices.client import REPLY_TIMEOUT, DeviceClient, redacted
from devices.registry import Paper
from devices.topics import DeviceKind

log = logging.getLogger(__name__)

FIRMWARE = "smarthall-simulator 1"
"""What simulated devices report as their firmware, so the status wall tells them apart."""

NO_SHOW = 0.05
"""The share of called citizens who never come to the window."""

EVALUATE = 0.5
"""The share of citizens a clerk asks for a rating."""

RATINGS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = (70, 22, 5, 2, 1)
PRAISE = ("态度热情", "一次办结", "效率高", "解释清楚")
COMPLAINTS = ("等候时间长", "材料要求不清楚", "态度一般")

MAX_REMEMBERED = 10_000
"""Tickets whose service time the simulation keeps: more than a busy hall issues in a day."""

PAPER_NEAR_END = 0.002
"""Chance per printed ticket that the roll runs low, so the status wall shows its alarm now
and then. Paper never runs out: an empty kiosk issues nothing, which the demo should not
do unprompted."""

PRIORITY = 0.05
"""The share of citizens who take a priority ticket, when the simulation knows passwords."""

MISTYPED = 0.1
"""The share of priority passwords typed wrong (the hall refuses, the citizen types again)."""

PAPER_REFILL_SECONDS = 20 * 60
"""Hall seconds until someone puts a new roll in a kiosk that reported paper near its end."""


class SimService(NamedTuple):
    """A service the kiosks offer: ``weight`` is how often citizens ask for it, relative to
    the others, and ``minutes`` the mean time a clerk spends on it."""

    id: str
    weight: float = 1.0
    minutes: float = 5.0


class SimDevice(NamedTuple):
    """A device to simulate, as the hall's ``[[devices]]`` lists it."""

    id: str
    kind: DeviceKind | str
    window: str | None = None
    screen: str | None = None


@dataclass
class SimStats:
    """What the simulated devices did and saw: for the demo's log and the tests."""

    issued: dict[str, str] = field(default_factory=dict)
    """Ticket id per ``kiosk.take_ticket`` id that was answered with a ticket."""
    refused: Counter[str] = field(default_factory=Counter)
    """Refusals by error code, of any request."""
    sent: Counter[str] = field(default_factory=Counter)
    """Requests published, by type, retries included."""
    retried: Counter[str] = field(default_factory=Counter)
    """Requests published again with the same id after their reply did not come."""
    lost_replies: int = 0
    called: int = 0
    served: int = 0
    skipped: int = 0
    ratings: int = 0
    printed: int = 0
    displays: int = 0
    shown: dict[str, set[str]] = field(default_factory=dict)
    """Every ticket number each display device has shown."""
    announced: list[str] = field(default_factory=list)
    priority: int = 0
    """Priority tickets taken (with the right password)."""
    print_failed: int = 0
    """``kiosk.print_failed`` commands kiosks got: the citizen was shown the number."""


class Simulation:
    """The hall's devices, simulated, on the broker at ``broker_url``.

    ``devices`` are ``(id, kind, window, screen)`` as the hall's configuration lists
    them. ``services`` are the kiosks' choices, as ids or ``SimService`` with weights
    and mean service minutes. ``staff`` are ``(staff id, password)`` accounts the
    call terminals log in with, one each in the order the terminals are listed;
    a terminal left without one stays connected but idle (the hall checks
    passwords, so there is no making up a clerk). ``arrivals_per_hour`` is per
    kiosk, in hall time. ``lose_replies`` is the chance that a device ignores a
    reply as if the network had lost it, and ``reply_timeout`` how many real
    seconds it then waits before asking again with the same id: to show (and
    test) that a retry never makes a second ticket or a second call.
    ``device_password`` is for a broker that checks devices (username = device id).
    ``priority`` are ``(group id, password)`` pairs of the hall's priority groups:
    with them, now and then a citizen takes a priority ticket.
    """

    def __init__(
        self,
        hall_id: str,
        broker_url: str,
        devices: Iterable[tuple[str, DeviceKind | str, str | None, str | None]],
        services: Iterable[str | SimService],
        staff: Iterable[tuple[str, str]] = (),
        *,
        speed: float = 1.0,
        seed: int = 0,
        arrivals_per_hour: float = 30.0,
        reply_timeout: float = REPLY_TIMEOUT,
        lose_replies: float = 0.0,
        device_password: str | None = None,
        priority: Iterable[tuple[str, str]] = (),
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.hall_id = hall_id
        self.broker_url = broker_url
        self.speed = speed
        self.seed = seed
        self.arrivals_per_hour = arrivals_per_hour
        self.reply_timeout = reply_timeout
        self.lose_replies = lose_replies
        self.device_password = device_password
        self.priority = list(priority)
        self.services = [s if isinstance(s, SimService) else SimService(s) for s in services]
        self.stats = SimStats()
        self.ticket_minutes: dict[str, float] = {}
        """Mean service minutes of the tickets our kiosks issued, for the clerks' timing."""
        accounts = iter(list(staff))
        self.devices: list[_Device] = []
        for entry in devices:
            spec = SimDevice(*entry)
            kind = DeviceKind(spec.kind)
            spec = spec._replace(kind=kind)
            if kind is DeviceKind.CALL_TERMINAL:
                self.devices.append(_CallTerminal(self, spec, next(accounts, None)))
            else:
                self.devices.append(_KINDS.get(kind, _Device)(self, spec))

    @property
    def driven_windows(self) -> frozenset[str]:
        """The windows whose call terminal has a clerk to log in: the simulation calls
        there, so nobody else may (two drivers would steal each other's citizens)."""
        return frozenset(
            d.spec.window for d in self.devices
            if isinstance(d, _CallTerminal) and d.account is not None and d.spec.window
        )

    def remember_minutes(self, ticket_id: str, minutes: float) -> None:
        """Keep a ticket's mean service time for the clerk who calls it; the oldest go
        first, since clerks outside the simulation serve tickets too and never say so."""
        self.ticket_minutes[ticket_id] = minutes
        while len(self.ticket_minutes) > MAX_REMEMBERED:
            del self.ticket_minutes[next(iter(self.ticket_minutes))]

    @property
    def default_minutes(self) -> float:
        """The mean service time for a ticket our kiosks did not issue."""
        if not self.services:
            return 5.0
        return sum(s.minutes for s in self.services) / len(self.services)

    async def pause(self, hall_seconds: float) -> None:
        """Let ``hall_seconds`` of hall time pass."""
        await asyncio.sleep(hall_seconds / self.speed)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run every device until ``stop`` is set (or the task is cancelled); each says
        it is offline on the way out, since a clean disconnect cancels its last will."""
        log.info("simulating %d devices of hall %s on %s at %gx",
                 len(self.devices), self.hall_id, redacted(self.broker_url), self.speed)
        stop = stop or asyncio.Event()
        async with asyncio.TaskGroup() as group:
            for device in self.devices:
                group.create_task(device.run(stop), name=f"simulated {device.id}")


def new_id() -> str:
    """A fresh idempotency key: a new id is a new action by a person."""
    return uuid.uuid4().hex


class _Device(DeviceClient):
    """One simulated device: a real device connection (devices.client) whose requests
    and replies the simulation counts, and which loses replies on purpose when asked
    to. Subclasses give it something to do (``behave``) and react to commands and
    displays."""

    def __init__(self, sim: Simulation, spec: SimDevice) -> None:
        super().__init__(
            sim.hall_id, spec.id, DeviceKind(spec.kind), sim.broker_url,
            password=sim.device_password, firmware=FIRMWARE, config_version="simulated",
            reply_timeout=sim.reply_timeout,
            rng=random.Random(f"{sim.seed}/{spec.id}"),  # the same whatever else runs
        )
        self.sim = sim
        self.spec = spec
        self.stats = sim.stats

    def state(self) -> m.DeviceState:
        return m.DeviceState(detail={"simulated": True})

    async def request(self, message: m.Request) -> m.Reply:
        reply = await super().request(message)
        if not reply.ok and reply.error is not None:
            self.stats.refused[reply.error.code] += 1
        return reply

    def on_sent(self, message: m.Request, retry: bool) -> None:
        self.stats.sent[message.type] += 1
        if retry:
            self.stats.retried[message.type] += 1

    def lose_reply(self, reply: m.Reply) -> bool:
        if self.sim.lose_replies and self.rng.random() < self.sim.lose_replies:
            self.stats.lost_replies += 1
            log.debug("%s: pretending the reply to %s was lost", self.id, reply.re)
            return True
        return False


class _Printer(_Device):
    """Prints what the hall sends and says so; a kiosk's printer is built in."""

    def __init__(self, sim: Simulation, spec: SimDevice) -> None:
        super().__init__(sim, spec)
        self.printed = 0
        self.paper: Paper = "ok"

    def state(self) -> m.DeviceState:
        return m.DeviceState(health=m.Health(paper=self.paper),
                             detail={"simulated": True, "printed_today": self.printed})

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.PrintJob):
            self.spawn(self._print(command))
        else:
            super().on_command(command)

    async def _print(self, job: m.PrintJob) -> None:
        await self.sim.pause(self.rng.uniform(2, 4))
        self.printed += 1
        self.stats.printed += 1
        log.debug("%s: printed %s", self.id, job.ticket.number)
        await self.request(m.PrintDone(id=new_id(), job=job.id))
        if self.paper == "ok" and self.rng.random() < PAPER_NEAR_END:
            self.spawn(self._run_low())

    async def _run_low(self) -> None:
        self.paper = "near_end"
        log.info("%s: paper near its end", self.id)
        await self.publish_state()
        await self.sim.pause(PAPER_REFILL_SECONDS)
        self.paper = "ok"
        log.info("%s: paper refilled", self.id)
        await self.publish_state()


class _Kiosk(_Printer):
    """Citizens arrive at random and take a ticket for a service the menu shows open."""

    MENU_SECONDS = 10 * 60
    """Hall seconds a kiosk trusts its menu (which services are open) before asking again."""

    def __init__(self, sim: Simulation, spec: SimDevice) -> None:
        super().__init__(sim, spec)
        self._open: set[str] | None = None
        self._menu_age = float("inf")

    async def behave(self) -> None:
        rate = self.sim.arrivals_per_hour / 3600.0
        if rate <= 0 or not self.sim.services:
            return
        while True:
            gap = self.rng.expovariate(rate)
            self._menu_age += gap
            await self.sim.pause(gap)
            await self._citizen()

    async def _citizen(self) -> None:
        offered = await self._menu()
        if not offered:
            log.debug("%s: a citizen found nothing open and left", self.id)
            self._menu_age = float("inf")  # ask again for the next one: windows may open
            return
        service = self.rng.choices(offered, [s.weight for s in offered])[0]
        request = m.TakeTicket(id=new_id(), service=service.id)
        if self.sim.priority and self.rng.random() < PRIORITY:
            request = await self._priority(service.id)
        reply = await self.request(request)
        if not reply.ok or reply.result is None:
            log.debug("%s: no ticket for %s: %s", self.id, service.id, reply.error)
            self._menu_age = float("inf")  # the menu was out of date
            return
        ticket = reply.result["ticket"]
        self.stats.issued[request.id] = ticket["id"]
        self.stats.priority += request.priority_group is not None
        self.sim.remember_minutes(ticket["id"], service.minutes)
        log.debug("%s: issued %s for %s, %s ahead", self.id, ticket["number"], service.id,
                  ticket["people_ahead"])

    async def _priority(self, service: str) -> m.TakeTicket:
        """A priority ticket's request; a mistyped password is refused and typed again."""
        group, password = self.rng.choice(self.sim.priority)
        if self.rng.random() < MISTYPED:
            wrong = m.TakeTicket(id=new_id(), service=service, priority_group=group,
                                 priority_password=password + "0")
            reply = await self.request(wrong)
            log.debug("%s: a mistyped priority password: %s", self.id, reply.error)
        return m.TakeTicket(id=new_id(), service=service, priority_group=group,
                            priority_password=password)

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.KioskPrintFailed):
            self.stats.print_failed += 1
            log.info("%s: %s", self.id, command.message)
        else:
            super().on_command(command)

    async def _menu(self) -> list[SimService]:
        """The services to choose from: those the hall says are open now, as the
        kiosk's screen would show them."""
        if self._menu_age >= self.MENU_SECONDS:
            reply = await self.request(m.KioskServices(id=new_id()))
            if reply.ok and reply.result is not None:
                self._open = {s["id"] for s in reply.result["services"] if s["open"]}
                self._menu_age = 0.0
        return [s for s in self.sim.services if self._open is None or s.id in self._open]


class _CallTerminal(_Device):
    """A clerk at a window: log in, then call, wait, serve and finish, all day long."""

    IDLE_SECONDS = (20.0, 60.0)
    """How long a clerk with nobody waiting waits before pressing "next" again."""
    CLOSED_SECONDS = 300.0
    """How often a clerk tries again while the window is closed (lunch, evening)."""

    def __init__(self, sim: Simulation, spec: SimDevice, account: tuple[str, str] | None) -> None:
        super().__init__(sim, spec)
        self.account = account

    async def behave(self) -> None:
        if self.account is None:
            log.info("%s: no staff account left to log in with; the terminal stays idle",
                     self.id)
            return
        await self._log_in()
        while True:
            reply = await self.request(m.CallNext(id=new_id()))
            if reply.ok and reply.result is not None:
                window = reply.result["window"]
                self.stats.called += 1
                await self._serve(window["ticket_id"], window["number"])
                continue
            code = reply.error.code if reply.error is not None else ""
            if code == "not_logged_in":
                await self._log_in()
            elif code == "window_busy":
                await self._clear()  # a citizen left over from before we (re)started
            elif code in ("window_closed", "outside_hours"):
                await self.sim.pause(self.CLOSED_SECONDS)
            else:  # nothing waiting (or paused): wait a little
                await self.sim.pause(self.rng.uniform(*self.IDLE_SECONDS))

    async def _log_in(self) -> None:
        assert self.account is not None
        staff_id, password = self.account
        while True:
            reply = await self.request(m.Login(id=new_id(), staff_id=staff_id, password=password))
            code = reply.error.code if reply.error is not None else ""
            if reply.ok or code == "already_logged_in":
                log.info("%s: %s is at window %s", self.id, staff_id, self.spec.window)
                return
            log.warning("%s: %s may not log in (%s); trying again later", self.id, staff_id,
                        code)
            await self.sim.pause(300)

    async def _serve(self, ticket_id: str, number: str) -> None:
        if self.rng.random() < NO_SHOW:
            await self.sim.pause(60)
            await self._do(m.Recall(id=new_id()))
            await self.sim.pause(60)
            if await self._do(m.Skip(id=new_id())):
                self.stats.skipped += 1
                log.debug("%s: %s did not come", self.id, number)
            self.sim.ticket_minutes.pop(ticket_id, None)
            return
        await self.sim.pause(self.rng.uniform(20, 90))  # the citizen walks up
        await self._do(m.StartService(id=new_id()))
        minutes = self.sim.ticket_minutes.pop(ticket_id, self.sim.default_minutes)
        # Right-skewed around the mean, as real service times are: most are quick,
        # a few take long (a missing document, a complicated case).
        await self.sim.pause(max(30.0, self.rng.gammavariate(4.0, minutes * 60 / 4.0)))
        if self.rng.random() < EVALUATE and await self._do(m.AskEvaluation(id=new_id())):
            await self.sim.pause(self.rng.uniform(20, 40))  # time to press a star
        if await self._do(m.FinishService(id=new_id())):
            self.stats.served += 1
            log.debug("%s: served %s", self.id, number)

    async def _clear(self) -> None:
        if not await self._do(m.FinishService(id=new_id())):
            await self._do(m.Skip(id=new_id()))

    async def _do(self, message: m.Request) -> bool:
        reply = await self.request(message)
        if not reply.ok:
            log.debug("%s: %s refused: %s", self.id, message.type, reply.error)
        return reply.ok


class _EvaluationTerminal(_Device):
    """The citizen rates when the clerk asks, after a moment's thought."""

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.EvaluationRequest):
            self.spawn(self._rate(command))
        else:
            super().on_command(command)

    async def _rate(self, asked: m.EvaluationRequest) -> None:
        await self.sim.pause(self.rng.uniform(5, 20))
        rating = self.rng.choices(RATINGS, RATING_WEIGHTS)[0]
        reasons = [self.rng.choice(PRAISE if rating >= 4 else COMPLAINTS)]
        reply = await self.request(
            m.Rate(id=new_id(), ticket_id=asked.ticket_id, rating=rating, reasons=reasons))
        if reply.ok:
            self.stats.ratings += 1
            log.debug("%s: %s rated %d", self.id, asked.number, rating)


class _Display(_Device):
    """A window screen, hall board or LED strip: it shows the latest whole view."""

    def __init__(self, sim: Simulation, spec: SimDevice) -> None:
        super().__init__(sim, spec)
        self.view: m.Display | None = None

    def on_display(self, display: m.Display) -> None:
        self.stats.displays += 1
        if isinstance(display, m.SignageDisplay):
            log.debug("%s shows layout %s with %d notices", self.id, display.layout,
                      len(display.notices))
            return  # laid out around the live view, which stays self.view
        self.view = display
        if isinstance(display, m.WindowDisplay):
            numbers = [p.number for p in display.positions if p.number]
            summary = ", ".join(f"{p.window} {p.state} {p.number or '-'}"
                                for p in display.positions)
        else:
            numbers = [c.number for c in display.calling]
            summary = "calling " + (", ".join(
                f"{c.number}→{c.window_name}" for c in display.calling) or "nobody")
        self.stats.shown.setdefault(self.id, set()).update(numbers)
        log.debug("%s shows: %s", self.id, summary)


class _Announcer(_Device):
    """Says calls aloud; here, in the log."""

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.Announce):
            self.stats.announced.append(command.text)
            del self.stats.announced[:-100]  # a day of calls would be a lot to keep
            log.info("%s: %s", self.id, command.text)
        else:
            super().on_command(command)


_KINDS: dict[DeviceKind, type[_Device]] = {
    DeviceKind.KIOSK: _Kiosk,
    DeviceKind.PRINTER: _Printer,
    DeviceKind.EVALUATION_TERMINAL: _EvaluationTerminal,
    DeviceKind.WINDOW_SCREEN: _Display,
    DeviceKind.HALL_BOARD: _Display,
    DeviceKind.LED_STRIP: _Display,
    DeviceKind.ANNOUNCER: _Announcer,
}
"""The behaviour of each kind; card readers and document cameras only stay online."""
