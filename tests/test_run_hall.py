"""`make run` as a newcomer sees it: the server starts, says where to look,
serves the living demo hall, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def start_server(*args: str, database: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "HALL_DATABASE_URL": database} if database else None
    return subprocess.Popen(
        [sys.executable, "run_hall.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(server: subprocess.Popen[str], marker: str, timeout: float = 20.0) -> list[str]:
    assert server.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in the server's output: {lines}")


def test_the_demo_hall_starts_serves_and_stops_cleanly_on_ctrl_c(db_url: str) -> None:
    port = free_port()
    server = start_server("--demo", "--speed", "600", "--port", str(port), database=db_url)
    try:
        banner = "".join(read_until(server, "Ctrl-C stops"))
        assert f"http://127.0.0.1:{port}/api/v1/hall" in banner
        assert get_json(f"http://127.0.0.1:{port}/healthz") == {"status": "ok"}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            hall = get_json(f"http://127.0.0.1:{port}/api/v1/hall")
            if any(w["ticket"] for w in hall["windows"]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no window called anybody in the demo hall")
        assert hall["hall"]["name"] == "江阳区政务服务中心"
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=15)
        assert server.returncode == 0, err
        assert "SmartHall: stopped" in out
        assert "Traceback" not in err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_a_broken_config_stops_start_up_with_the_key_and_exit_code_2(tmp_path: Path) -> None:
    broken = tmp_path / "hall.toml"
    text = (ROOT / "config" / "demo-hall.toml").read_text(encoding="utf-8")
    broken.write_text(text.replace('[[windows]]', '[[windows]]\nflavour = "mint"', 1), "utf-8")
    server = start_server("--config", str(broken), "--port", str(free_port()))
    _out, err = server.communicate(timeout=30)
    assert server.returncode == 2
    assert "windows[0].flavour" in err
    assert "Traceback" not in err


def test_a_port_in_use_is_reported_with_what_to_do(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server("--port", str(port), database=db_url)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "HALL_PORT" in err


def test_json_logs_are_one_object_per_line_with_their_fields() -> None:
    import logging

    from hall.logs import JsonFormatter

    record = logging.makeLogRecord(
        {"name": "hall.runtime", "levelname": "INFO", "msg": "restored %d events",
         "args": (12,), "hall": "jiangyang"}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["logger"], entry["level"], entry["msg"]) == ("hall.runtime", "info",
                                                               "restored 12 events")
    assert entry["hall"] == "jiangyang"


def start_up_with(**env: str) -> subprocess.CompletedProcess[str]:
    """``run_hall.py`` with these variables added, run until it exits on its own."""
    return subprocess.run([sys.executable, "run_hall.py", "--port", str(free_port())],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=30, check=False)


def test_a_malformed_data_key_stops_start_up_with_exit_code_2(db_url: str) -> None:
    server = start_up_with(HALL_DATABASE_URL=db_url, HALL_DATA_KEY="not-a-key")
    assert server.returncode == 2
    assert "the data key cannot be used" in server.stderr
    assert "HALL_DATA_KEY" in server.stderr
    assert "Traceback" not in server.stderr


def test_a_malformed_mqtt_url_stops_start_up_with_exit_code_2() -> None:
    server = start_up_with(HALL_MQTT_URL="http://127.0.0.1:1883")
    assert server.returncode == 2
    assert "HALL_MQTT_URL cannot be used" in server.stderr
    assert "mqtt, mqtts, ssl, tcp" in server.stderr
    assert "Traceback" not in server.stderr
