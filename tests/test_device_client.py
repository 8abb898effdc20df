"""devices.client.DeviceClient's life: what a device does while it stops."""

from __future__ import annotations

import asyncio

from devices.client import DeviceClient
from devices.messages import DeviceKind
from tests.mqtt_kit import Mosquitto


async def test_work_handed_to_a_device_while_it_stops_does_not_keep_it_running(
    mosquitto: Mosquitto,
) -> None:
    device = DeviceClient("test", "kiosk-1", DeviceKind.KIOSK, mosquitto.url)
    stop = asyncio.Event()
    running = asyncio.create_task(device.run(stop))
    await asyncio.wait_for(device.wait_connected(), 5)
    stop.set()
    await asyncio.sleep(0)  # the device has begun to stop its tasks
    device.spawn(asyncio.Event().wait())  # a command that came in just then
    await asyncio.wait_for(running, 5)
