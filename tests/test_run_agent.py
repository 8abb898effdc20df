"""`run_hall.py agent` as an installer runs it on a kiosk PC: it puts the PC's devices on
the broker, each with its birth, and takes them off cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from drivers.simulators.escpos import EscPosSimulator
from tests.mqtt_kit import Mosquitto, mqtt_client, next_message
from tests.test_run_hall import ROOT, read_until

AGENT_FILE = """
[agent]
hall = "test"
hall_name = "测试政务服务中心"
mqtt_url = "{url}"

[[device]]
id = "kiosk-1"
kind = "kiosk"
printer = {{ url = "tcp://127.0.0.1:{port}", status_seconds = 0.2 }}
"""


def start_agent(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "run_hall.py", "agent", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def statuses(broker: Mosquitto, until: str) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    async with mqtt_client(broker, "watcher") as client:
        await client.subscribe("hall/test/kiosk-1/status", qos=1)
        while not seen or seen[-1]["state"] != until:
            seen.append(json.loads((await next_message(client, timeout=15)).payload))  # type: ignore[arg-type]
    return seen


async def test_the_agent_puts_its_devices_on_the_bus_and_stops_cleanly_on_sigterm(
    mosquitto: Mosquitto, tmp_path: Path,
) -> None:
    printer = EscPosSimulator()
    port = await printer.start()
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_FILE.format(url=mosquitto.url, port=port), encoding="utf-8")
    agent = start_agent(config)
    try:
        births = await statuses(mosquitto, "online")
        assert births[-1]["kind"] == "kiosk"
        read_until(agent, "Ctrl-C stops")
        await asyncio.sleep(0.5)  # a few status polls reach the printer
        assert printer.status_requests > 0
        agent.send_signal(signal.SIGTERM)
        _out, err = await asyncio.to_thread(agent.communicate, timeout=15)
        assert agent.returncode == 0, err
        assert (await statuses(mosquitto, "offline"))[-1]["state"] == "offline"
    finally:
        if agent.poll() is None:
            agent.kill()
        await printer.stop()


def test_a_broken_agent_file_is_named_with_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nhall = "test"\n[[device]]\nid = "x"\nkind = "kiosk"\n'
                      'printer = { url = 9100 }\n', encoding="utf-8")
    agent = start_agent(config)
    _out, err = agent.communicate(timeout=20)
    assert agent.returncode == 2
    assert f"{config}: device.0.printer.url:" in err
