"""The edge agent's configuration: what a PC's file may say, and how it says what's wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.agent_config import AgentConfigError, load_agent_config

CONFIG = Path(__file__).resolve().parent.parent / "config"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["agent-kiosk-1.toml", "agent-window-1.toml",
                                  "agent-hall-led.toml"])
def test_shipped_agent_files_load(name: str) -> None:
    config = load_agent_config(CONFIG / name)
    assert config.agent.hall == "jiangyang"
    assert config.devices


def test_kiosk_file_lists_its_printer_and_reader() -> None:
    config = load_agent_config(CONFIG / "agent-kiosk-1.toml")
    kiosk, reader = config.devices
    assert kiosk.printer is not None and kiosk.printer.url.startswith("tcp://")
    assert reader.card_reader is not None and reader.card_reader.driver == "idcard"


def test_mqtt_url_from_the_command_line_wins(tmp_path: Path) -> None:
    config = load_agent_config(CONFIG / "agent-hall-led.toml", mqtt_url="mqtt://10.0.0.9:1884")
    assert config.agent.mqtt_url == "mqtt://10.0.0.9:1884"


def test_an_mqtt_url_of_another_scheme_is_refused_with_its_key() -> None:
    with pytest.raises(AgentConfigError, match=r"agent\.mqtt_url: .*mqtt, mqtts, ssl, tcp"):
        load_agent_config(CONFIG / "agent-hall-led.toml", mqtt_url="http://10.0.0.9:1884")


def test_password_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_agent_config(CONFIG / "agent-kiosk-1.toml")
    monkeypatch.setenv("KIOSK_F1_PASSWORD", "s3cret")
    assert config.password(config.devices[0]) == "s3cret"
    assert config.password(config.devices[1]) is None


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
[agent]
hall = "bad/hall"

[[device]]
id = "k1"
kind = "kiosk"
colour = "red"
printer = { url = "tcp://127.0.0.1:9100" }

[[device]]
id = "r1"
kind = "toaster"
""")
    with pytest.raises(AgentConfigError) as raised:
        load_agent_config(path)
    lines = str(raised.value).splitlines()
    assert any(line.startswith(f"{path}: agent.hall:") for line in lines)
    assert any("device.0.colour" in line for line in lines)
    assert any("device.1.kind" in line for line in lines)


def test_hardware_must_fit_the_device_kind(tmp_path: Path) -> None:
    path = write(tmp_path, """
[agent]
hall = "h"

[[device]]
id = "led-1"
kind = "led_strip"
printer = { url = "tcp://127.0.0.1:9100" }
""")
    with pytest.raises(AgentConfigError, match="a led_strip has no printer"):
        load_agent_config(path)


def test_a_printer_needs_its_printer(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nhall = "h"\n[[device]]\nid = "p1"\nkind = "printer"\n')
    with pytest.raises(AgentConfigError, match="a printer needs its printer"):
        load_agent_config(path)


def test_keypads_must_act_as_a_terminal_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[agent]
hall = "h"

[[device]]
id = "announcer"
kind = "announcer"
announcer = {}

[[keypad_receiver]]
url = "/dev/ttyUSB0"
keypads = { "ABC" = "announcer", "DEF" = "call-w09" }
""")
    with pytest.raises(AgentConfigError) as raised:
        load_agent_config(path)
    assert "keypad ABC acts as announcer" in str(raised.value)
    assert "keypad DEF acts as call-w09" in str(raised.value)


def test_device_ids_are_unique(tmp_path: Path) -> None:
    device = '[[device]]\nid = "a1"\nkind = "evaluation_terminal"\n'
    path = write(tmp_path, '[agent]\nhall = "h"\n' + device + device)
    with pytest.raises(AgentConfigError, match="listed twice: a1"):
        load_agent_config(path)


def test_unreadable_and_broken_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="cannot read"):
        load_agent_config(tmp_path / "missing.toml")
    with pytest.raises(AgentConfigError, match="not valid TOML"):
        load_agent_config(write(tmp_path, "[agent\n"))


def test_a_keypad_call_terminal_needs_the_pause_reasons(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nhall = "h"\n[[device]]\nid = "c1"\nkind = "call_terminal"\n')
    with pytest.raises(AgentConfigError, match="needs the hall's pause_reasons"):
        load_agent_config(path)
