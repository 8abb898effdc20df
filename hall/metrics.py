"""Prometheus metrics for one hall server, in a registry of its own (tests can
run many servers in one process without their numbers mixing)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from devices.registry import Registry
from hall.eventstore import StoredEvent
from hall.runtime import HallRuntime
from hall.stream import EventStream

COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _LiveState(Collector):
    """Read at scrape time from the engine itself, so it cannot drift."""

    def __init__(self, runtime: HallRuntime, stream: EventStream) -> None:
        self.runtime = runtime
        self.stream = stream

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hall = self.runtime.hall_id
        engine = self.runtime.engine
        waiting = GaugeMetricFamily(
            "hall_waiting_tickets", "Tickets waiting, by service", labels=["hall", "service"]
        )
        for service_id in engine.layout.services:
            waiting.add_metric([hall, service_id], engine.waiting_count(service_id))
        yield waiting
        windows = GaugeMetricFamily(
            "hall_windows", "Windows by state", labels=["hall", "state"]
        )
        counts: dict[str, int] = {}
        for window in engine.windows():
            state = engine.window_state(window.id).value
            counts[state] = counts.get(state, 0) + 1
        for state, count in sorted(counts.items()):
            windows.add_metric([hall, state], count)
        yield windows
        yield GaugeMetricFamily(
            "hall_event_subscribers", "Open event-stream connections",
            value=len(self.stream.subscriptions),
        )
        queued = [subscription.queue.qsize() for subscription in self.stream.subscriptions]
        yield GaugeMetricFamily(
            "hall_event_stream_queued_max",
            "Committed events the furthest-behind stream client has not been sent yet "
            f"(it is disconnected to resume at {self.stream.max_queue})",
            value=max(queued, default=0),
        )
        yield GaugeMetricFamily(
            "hall_ready", "1 while the hall takes changes", value=int(self.runtime.ready)
        )


class _Devices(Collector):
    def __init__(self, hall: str, registry: Registry) -> None:
        self.hall = hall
        self.devices = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        online = GaugeMetricFamily(
            "hall_devices_online", "Devices online, by kind", labels=["hall", "kind"]
        )
        for kind, count in self.devices.online_counts().items():
            online.add_metric([self.hall, kind.value], count)
        yield online
        alerts = GaugeMetricFamily(
            "hall_device_alerts", "Device problems needing a person, by problem",
            labels=["hall", "problem"],
        )
        counts: dict[str, int] = {}
        for alert in self.devices.alerts():
            counts[str(alert.problem)] = counts.get(str(alert.problem), 0) + 1
        for problem, count in sorted(counts.items()):
            alerts.add_metric([self.hall, problem], count)
        yield alerts


class HallMetrics:
    def __init__(self, runtime: HallRuntime, stream: EventStream) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "hall_events", "Committed events by type", ["hall", "type"], registry=self.registry
        )
        self.commit_seconds = Histogram(
            "hall_commit_seconds", "Time to commit one group of events",
            buckets=COMMIT_BUCKETS, registry=self.registry,
        )
        self.commit_size = Histogram(
            "hall_commit_events", "Events per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=self.registry,
        )
        self.registry.register(_LiveState(runtime, stream))
        self._hall = runtime.hall_id
        runtime.bus.subscribe(self._count)
        runtime.committer.observe = self._observe_commit

    def watch_devices(self, registry: Registry) -> None:
        self.registry.register(_Devices(self._hall, registry))

    def _count(self, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            self.events.labels(self._hall, stored.event.type).inc()

    def _observe_commit(self, seconds: float, size: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_size.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
