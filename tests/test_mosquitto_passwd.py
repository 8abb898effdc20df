"""config/mosquitto/passwd.py: a Mosquitto password file from the devices' clear
passwords, checked against their password_sha256 and accepted by a real Mosquitto."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import aiomqtt
import pytest

from hall.broker import mosquitto_conf
from tests.mqtt_kit import mqtt_client, start_mosquitto

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "config" / "mosquitto" / "passwd.py"
DEMO_DEVICE_PASSWORD = "device-demo-2026"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mosquitto_passwd_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--config", "config/demo-hall.toml"],
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=30,
                          check=False)


def test_the_hash_is_mosquitto_passwds_pbkdf2_sha512_format() -> None:
    script = load_script()
    entry = script.mosquitto_hash("secret", salt=b"\x00" * 12)
    digest = hashlib.pbkdf2_hmac("sha512", b"secret", b"\x00" * 12, 101)
    assert entry.split("$")[1:3] == ["7", "101"]
    assert entry.endswith(__import__("base64").b64encode(digest).decode())


def test_a_password_that_does_not_match_the_config_is_refused() -> None:
    done = run("kiosk-f1 not-the-password\n")
    assert done.returncode == 2
    assert "does not match its password_sha256" in done.stderr and done.stdout == ""


def test_a_user_the_config_does_not_list_is_refused() -> None:
    done = run(f"kiosk-99 {DEMO_DEVICE_PASSWORD}\n")
    assert (done.returncode, "not in the [[devices]] list" in done.stderr) == (2, True)


async def test_mosquitto_lets_in_exactly_the_passwords_of_the_file(tmp_path: Path) -> None:
    done = run(f"# the server\nhall-server server-pass-1\nkiosk-f1 {DEMO_DEVICE_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert "no password given for" in done.stderr
    passwd = tmp_path / "smarthall.passwd"
    passwd.write_text(done.stdout)
    broker = start_mosquitto(
        tmp_path / "broker",
        lambda port: mosquitto_conf(port, anonymous=False, extra=f"password_file {passwd}\n"))
    try:
        async with mqtt_client(broker, "kiosk-f1", username="kiosk-f1",
                               password=DEMO_DEVICE_PASSWORD) as kiosk:
            await kiosk.publish("hall/jiangyang/kiosk-f1/state", b"{}", qos=1)
        async with mqtt_client(broker, "hall-server", username="hall-server",
                               password="server-pass-1"):
            pass
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt_client(broker, "kiosk-f1", username="kiosk-f1", password="wrong"):
                pass
    finally:
        broker.stop()
