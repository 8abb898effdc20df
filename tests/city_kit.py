"""A city for tests: hall files made from the demo hall, a city file, and city
processes (``run_hall.py city``) as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.test_crash_safety import DATA_KEY, ROOT, always_open_config, free_port


def write_city(folder: Path, halls: int, *, interval: float = 0.5,
               database_url: str | None = None) -> Path:
    """``halls`` copies of the demo hall, open round the clock, each with its own id
    and port, and the city file naming them."""
    template = always_open_config(folder / "template.toml").read_text(encoding="utf-8")
    (folder / "template.toml").unlink()
    (folder / "halls").mkdir()
    for index in range(halls):
        text, ids = re.subn(r'(?m)^id = "jiangyang"$', f'id = "hall-{index:02d}"', template)
        text, ports = re.subn(r"(?m)^port = 8080$", f"port = {free_port()}", text)
        assert (ids, ports) == (1, 1), "the demo hall's [hall] id or [http] port line moved"
        (folder / "halls" / f"hall-{index:02d}.toml").write_text(text, encoding="utf-8")
    database = f'\n[database]\nurl = "{database_url}"\n' if database_url else ""
    city = folder / "city.toml"
    city.write_text(
        '[city]\nname = "测试市"\nhalls = ["halls/*.toml"]\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\n\n'
        f"[leadership]\ninterval_seconds = {interval}\n{database}", encoding="utf-8")
    return city


class CityServer:
    """One ``run_hall.py city`` subprocess, output to a file nobody has to read."""

    def __init__(self, city: Path, name: str, db_url: str, mqtt_url: str, log: Path,
                 *options: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "HALL_DATABASE_URL": db_url, "HALL_MQTT_URL": mqtt_url,
               "HALL_DATA_KEY": DATA_KEY}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "run_hall.py", "city", "--config", str(city), "--name", name,
                 "--port", str(self.port), *options],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return f"--- {self.log.name} ---\n" + "\n".join(text.splitlines()[-lines:])


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, f"{url}: {response.status}"
        return await response.json()


async def leaders(session: aiohttp.ClientSession, process: CityServer) -> dict[str, str | None]:
    body = await get_json(session, f"{process.base}/city/halls")
    return {hall["hall_id"]: hall["leader"] for hall in body["halls"]}


async def wait_all_led(session: aiohttp.ClientSession, processes: list[CityServer],
                       halls: int, timeout: float,
                       allowed: set[str] | None = None) -> dict[str, str | None]:
    """Until every hall has a leader among ``allowed`` (default: any), each
    process leads what the others think it leads, and every process counts the
    others and holds its share; returns hall -> leader."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        for process in processes:
            if process.process.poll() is not None:
                raise AssertionError(f"{process.name} exited\n{process.tail()}")
        try:
            seen = await leaders(session, processes[0])
            told = {p.name: await get_json(session, f"{p.base}/city/process")
                    for p in processes}
        except (aiohttp.ClientError, AssertionError):
            await asyncio.sleep(0.1)
            continue
        leads = {name: set(answer["leads"]) for name, answer in told.items()}
        agreed = all(hall in leads.get(leader or "", set()) for hall, leader in seen.items())
        shared = all(answer["members"] == len(processes)
                     and len(answer["leads"]) == answer["fair_share"] for answer in told.values())
        if (len(seen) == halls and agreed and shared
                and all(leader is not None and (allowed is None or leader in allowed)
                        for leader in seen.values())):
            return seen
        await asyncio.sleep(0.1)
    logs = "\n".join(p.tail() for p in processes)
    raise AssertionError(f"not every hall was led within {timeout} s: {seen}\n{logs}")
