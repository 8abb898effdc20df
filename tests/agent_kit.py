"""A hall on a real Mosquitto and PostgreSQL, and an edge agent whose hardware is the
byte-level simulators: what a kiosk or window PC does, end to end, in a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from devices.registry import DeviceStatus
from devices.topics import DeviceKind
from drivers.agent import EdgeAgent, running
from drivers.agent_config import AgentConfig
from hall.config import DeviceEntry
from hall.device_link import DeviceLink
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import HALL

AGENT_DEVICES = (
    DeviceEntry("kiosk-1", DeviceKind.KIOSK, "一楼取号机", area="F1A"),
    DeviceEntry("reader-1", DeviceKind.CARD_READER, "1号窗口读卡器", area="F1A", window="W1"),
    DeviceEntry("term-w1", DeviceKind.CALL_TERMINAL, "1号窗口呼叫器", area="F1A", window="W1"),
    DeviceEntry("eval-w1", DeviceKind.EVALUATION_TERMINAL, "1号窗口评价器", area="F1A",
                window="W1"),
    DeviceEntry("led-w1", DeviceKind.LED_STRIP, "1号窗口条屏", area="F1A", window="W1"),
    DeviceEntry("voice-1", DeviceKind.ANNOUNCER, "一楼广播", area="F1A"),
)
AGENT_HALL = replace(HALL, devices=AGENT_DEVICES)


def agent_config(broker: Mosquitto, devices: list[dict[str, Any]],
                 receivers: list[dict[str, Any]] = ()) -> AgentConfig:  # type: ignore[assignment]
    return AgentConfig.model_validate({
        "agent": {"hall": "test", "hall_name": "测试政务服务中心", "mqtt_url": broker.url},
        "device": devices,
        "keypad_receiver": list(receivers),
    })


@contextlib.asynccontextmanager
async def agent_running(config: AgentConfig) -> AsyncIterator[EdgeAgent]:
    agent = EdgeAgent(config)
    async with running(agent):
        for device in agent.devices.values():
            await asyncio.wait_for(device.wait_connected(), 5)
        yield agent


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def status(link: DeviceLink, device_id: str) -> DeviceStatus:
    found = link.registry.status(device_id)
    assert found is not None, f"the hall never heard of {device_id}"
    return found
