"""The systemd units of config/systemd/ start what the code accepts and stop within
their time: each ExecStart is a command line run_hall.py's own parser takes, each
variable of the example environment files is one the code reads, and the hall's, the
city's and the agent's commands, run as their units run them, serve and stop cleanly in
less than the unit's TimeoutStopSec (docs/operations.md).

Paths in the units are the installed ones (/opt/smarthall, /etc/smarthall); the tests
map them onto this checkout and its example files.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import functools
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from aiohttp import web

import run_hall
from drivers.agent_config import load_agent_config
from hall.city_config import load_city_config
from hall.notify.settings import GatewayConfig, NotificationsTable, build
from tests.city_kit import write_city
from tests.mqtt_kit import Mosquitto, mqtt_client
from tests.test_run_hall import free_port

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "config" / "systemd"
INSTALLED_CODE = "/opt/smarthall"
INSTALLED_CONFIG = "/etc/smarthall"
USER = "smarthall"
INSTANCES = {
    "smarthall-hall.service": "",
    "smarthall-city@.service": "a",
    "smarthall-agent@.service": "kiosk-1",
}
"""Each unit with the instance the tests give it: the agent's names an example file."""
COMMANDS = {
    "smarthall-hall.service": None,
    "smarthall-city@.service": "city",
    "smarthall-agent@.service": "agent",
}
"""run_hall.py's subcommand each unit must run (None: the hall server itself)."""
SERVER_ENV = UNITS / "smarthall.env.example"
AGENT_ENV = UNITS / "agent-kiosk-1.env.example"
SOURCES = [ROOT / "run_hall.py", *sorted(
    path for package in ("hall", "drivers", "devices") for path in (ROOT / package).rglob("*.py"))]
"""Where the code reads its environment."""
DATA_KEY = base64.b64encode(bytes(range(32))).decode("ascii")
START_LIMIT = 30.0
SETTLE_SECONDS = 1.0
"""After its birth, until a device's first state publish is acknowledged."""

Unit = dict[str, dict[str, list[str]]]


# ------------------------------------------------------------------ reading the files


def read_unit(path: Path, instance: str = "") -> Unit:
    """Sections → key → every value in order (systemd keys repeat, which configparser
    cannot keep), with continuation lines joined and %i / %% expanded."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    logical: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical.append(line[:-1])
            continue
        line = " ".join([*logical, line])
        logical = []
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        value = value.strip().replace("%i", instance).replace("%%", "%")
        section.setdefault(key.strip(), []).append(value)
    return unit


def value(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] has no {key}="
    return values[-1]


def read_env_file(path: Path) -> dict[str, str]:
    """VAR="value" lines, as systemd's EnvironmentFile= reads them."""
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, text = line.partition("=")
        assert sep, f"{path}: {raw!r} is not VAR=value"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{path}: {name!r} is not a variable"
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
        found[name] = text
    return found


def run_hall_arguments(unit: Unit) -> list[str]:
    """What ExecStart passes to run_hall.py, after the interpreter and the script."""
    words = shlex.split(value(unit, "Service", "ExecStart"))
    assert words[0] == f"{INSTALLED_CODE}/.venv/bin/python", words
    assert words[1] == f"{INSTALLED_CODE}/run_hall.py", words
    return words[2:]


def checkout_path(installed: str) -> Path:
    """An installed config file's example in this checkout: /etc/smarthall/X is config/X."""
    assert installed.startswith(f"{INSTALLED_CONFIG}/"), installed
    return ROOT / "config" / installed.removeprefix(f"{INSTALLED_CONFIG}/")


def units() -> Iterator[tuple[str, Unit]]:
    for name, instance in INSTANCES.items():
        yield name, read_unit(UNITS / name, instance)


ALL_UNITS = dict(units())


def test_config_systemd_holds_exactly_the_units_these_tests_know() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(INSTANCES)


# ------------------------------------------------------------------ what must hold


@pytest.mark.parametrize("name", INSTANCES)
def test_the_unit_restarts_on_failure_and_never_gives_up(name: str) -> None:
    unit = ALL_UNITS[name]
    assert value(unit, "Service", "Restart") == "on-failure"
    assert value(unit, "Unit", "StartLimitIntervalSec") == "0"


@pytest.mark.parametrize("name", INSTANCES)
def test_the_unit_runs_as_the_dedicated_user(name: str) -> None:
    unit = ALL_UNITS[name]
    assert value(unit, "Service", "User") == USER
    assert value(unit, "Service", "Group") == USER


@pytest.mark.parametrize("name", INSTANCES)
def test_execstart_is_a_command_line_run_halls_parser_accepts(name: str) -> None:
    arguments = run_hall_arguments(ALL_UNITS[name])
    try:
        parsed = run_hall.parse_args(arguments)
    except SystemExit as refused:
        raise AssertionError(f"run_hall.py refuses {arguments}") from refused
    assert parsed.command == COMMANDS[name]
    assert parsed.log_format == "json"
    assert parsed.config.startswith(f"{INSTALLED_CONFIG}/")


def test_the_city_unit_names_its_process_after_the_instance() -> None:
    parsed = run_hall.parse_args(run_hall_arguments(ALL_UNITS["smarthall-city@.service"]))
    assert parsed.name == INSTANCES["smarthall-city@.service"]


def test_the_agent_unit_runs_the_agent_file_named_after_its_instance() -> None:
    parsed = run_hall.parse_args(run_hall_arguments(ALL_UNITS["smarthall-agent@.service"]))
    config = load_agent_config(checkout_path(parsed.config))
    assert config.devices


@pytest.mark.parametrize("name", INSTANCES)
def test_the_units_environment_file_has_its_example_here(name: str) -> None:
    installed = value(ALL_UNITS[name], "Service", "EnvironmentFile")
    assert not installed.startswith("-"), "a missing environment file must stop the unit"
    assert (UNITS / f"{Path(installed).name}.example").is_file(), installed


@pytest.mark.parametrize("name", INSTANCES)
def test_the_unit_is_hardened_and_may_write_only_var(name: str) -> None:
    service = ALL_UNITS[name]["Service"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ProtectHome"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    var = f"{value(ALL_UNITS[name], 'Service', 'WorkingDirectory')}/var"
    assert service["ReadWritePaths"] == [var]
    assert f"/var/lib/{service['StateDirectory'][0]}" == var


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match, f"{text!r}: write TimeoutStopSec= in s or min"
    return int(match[1]) * (60 if match[2] == "min" else 1)


@pytest.mark.parametrize("name", ["smarthall-hall.service", "smarthall-city@.service"])
def test_the_stop_timeout_outlasts_the_servers_wait_for_requests_in_flight(name: str) -> None:
    """A clean stop waits for the requests in flight up to aiohttp's shutdown timeout,
    then drains the last commit: systemd must not SIGKILL it in the middle."""
    aiohttp_wait = inspect.signature(web.TCPSite).parameters["shutdown_timeout"].default
    stop = seconds(value(ALL_UNITS[name], "Service", "TimeoutStopSec"))
    assert stop >= aiohttp_wait + 15
    assert value(ALL_UNITS[name], "Service", "KillMode") == "mixed"


# ------------------------------------------------------------------ the environment


class _EnvironmentReads(ast.NodeVisitor):
    """Names the code reads with os.environ.get(X), os.environ[X] or os.getenv(X), where
    X is a string, a module constant, or a parameter whose default is one of those
    (hall/pii.py's ``DataKey.load(env_var=DEFAULT_ENV_VAR)``)."""

    def __init__(self, constants: dict[str, str]) -> None:
        self.constants = constants
        self.defaults: list[dict[str, ast.expr]] = []
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = node.args.posonlyargs + node.args.args
        positional = dict(zip([a.arg for a in arguments[len(arguments)
                                                      - len(node.args.defaults):]],
                              node.args.defaults, strict=True))
        keyword = {a.arg: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults,
                                            strict=True) if d is not None}
        self.defaults.append(positional | keyword)
        self.generic_visit(node)
        self.defaults.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _resolve(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            for scope in reversed(self.defaults):
                if node.id in scope:
                    return self._resolve(scope[node.id])
            return self.constants.get(node.id)
        return None

    def _note(self, node: ast.expr) -> None:
        if (name := self._resolve(node)) is not None:
            self.names.add(name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if node.args and isinstance(func, ast.Attribute) and (
            (func.attr == "get" and _is_environ(func.value))
            or (func.attr == "getenv" and isinstance(func.value, ast.Name)
                and func.value.id == "os")):
            self._note(node.args[0])
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _is_environ(node.value):
            self._note(node.slice)
        self.generic_visit(node)


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


@functools.cache
def environment_read_by_the_code() -> frozenset[str]:
    names: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        constants = {
            target.id: statement.value.value
            for statement in tree.body if isinstance(statement, ast.Assign | ast.AnnAssign)
            and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
            for target in (statement.targets if isinstance(statement, ast.Assign)
                           else [statement.target]) if isinstance(target, ast.Name)
        }
        visitor = _EnvironmentReads(constants)
        visitor.visit(tree)
        names |= visitor.names
    return frozenset(names)


def notification_gateways_of_the_docs_example() -> list[GatewayConfig]:
    """The [notifications] example of docs/notifications.md, as the hall builds it."""
    text = (ROOT / "docs" / "notifications.md").read_text(encoding="utf-8")
    for block in re.findall(r"```toml\n(.*?)```", text, re.S):
        table = tomllib.loads(block).get("notifications")
        if table is not None:
            return list(build(NotificationsTable.model_validate(table)).gateways.values())
    raise AssertionError("docs/notifications.md shows no [notifications] example")


def test_the_environment_reader_finds_the_servers_own_variables() -> None:
    assert {"HALL_DATABASE_URL", "HALL_MQTT_URL", "HALL_DATA_KEY",
            "HALL_PORT"} <= environment_read_by_the_code()


def test_the_server_env_example_sets_only_what_the_code_or_a_gateway_reads() -> None:
    example = read_env_file(SERVER_ENV)
    read_by_gateways: set[str] = set()
    for gateway in notification_gateways_of_the_docs_example():
        secrets = gateway.secret_values(example)
        read_by_gateways |= set(gateway.secrets.values())
        assert set(secrets.values()) <= set(example.values())
    unknown = set(example) - environment_read_by_the_code() - read_by_gateways
    assert not unknown, f"{SERVER_ENV.name} sets variables nothing reads: {sorted(unknown)}"


def test_the_server_env_example_sets_what_a_production_server_needs() -> None:
    """Without them the server starts an embedded database, a demo broker and a key
    file of its own: right for a laptop, wrong for a hall."""
    assert {"HALL_DATABASE_URL", "HALL_MQTT_URL", "HALL_DATA_KEY"} <= set(
        read_env_file(SERVER_ENV))


def test_the_agent_env_example_gives_every_device_of_its_file_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = read_env_file(AGENT_ENV)
    for name, text in example.items():
        monkeypatch.setenv(name, text)
    config = load_agent_config(ROOT / "config" / "agent-kiosk-1.toml")
    named = {d.password_env for d in config.devices} | {d.token_env for d in config.devices}
    assert set(example) - (named | environment_read_by_the_code()) == set()
    for device in config.devices:
        assert device.password_env is not None, f"{device.id} has no password_env"
        assert config.password(device) == example[device.password_env]


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """systemd's own check (`make test` installs Debian's systemd when it is missing);
    the installed paths become this checkout's so that it finds the interpreter."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: apt-get install systemd"
    files = []
    for name, instance in INSTANCES.items():
        text = (UNITS / name).read_text(encoding="utf-8")
        text = text.replace(f"{INSTALLED_CODE}/.venv/bin/python", sys.executable)
        text = text.replace(INSTALLED_CODE, str(ROOT))
        (tmp_path / name).write_text(text, encoding="utf-8")
        files.append(str(tmp_path / name.replace("@.", f"@{instance}.")))
    result = subprocess.run([analyze, "verify", *files], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)


# ------------------------------------------------------------------ the commands, run


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return (self.stdout.read_text(errors="replace")
                + self.stderr.read_text(errors="replace"))[-4000:]

    def stop(self) -> tuple[int, float]:
        """SIGTERM, as systemd stops a unit; the exit code and the seconds it took."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        return code, time.monotonic() - began


def start_as_the_unit_does(name: str, cwd: Path, env: dict[str, str],
                           config: Path) -> Started:
    """The unit's ExecStart on this checkout, in a working directory of the test's own,
    with the unit's config file replaced by ``config``."""
    arguments = run_hall_arguments(ALL_UNITS[name])
    at = arguments.index("--config") + 1
    arguments[at] = str(config)
    stdout, stderr = cwd / "stdout.log", cwd / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_hall.py"), *arguments], cwd=cwd,
            env={**os.environ, **env}, stdout=out, stderr=err)
    return Started(process, stdout, stderr)


async def wait_ready(started: Started, url: str) -> None:
    deadline = time.monotonic() + START_LIMIT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert started.process.poll() is None, started.logs()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready in {START_LIMIT} s\n{started.logs()}")


async def test_the_hall_units_command_serves_and_stops_cleanly_within_its_stop_timeout(
    tmp_path: Path, db_url: str, mosquitto: Mosquitto,
) -> None:
    port = free_port()
    env = {"HALL_DATABASE_URL": db_url, "HALL_MQTT_URL": mosquitto.url,
           "HALL_DATA_KEY": DATA_KEY, "HALL_PORT": str(port)}
    server = start_as_the_unit_does("smarthall-hall.service", tmp_path, env,
                                    ROOT / "config" / "demo-hall.toml")
    try:
        await wait_ready(server, f"http://127.0.0.1:{port}/readyz")
        code, took = await asyncio.to_thread(server.stop)
    finally:
        if server.process.poll() is None:
            server.process.kill()
    limit = seconds(value(ALL_UNITS["smarthall-hall.service"], "Service", "TimeoutStopSec"))
    assert code == 0, server.logs()
    assert took < limit
    for line in server.stderr.read_text(encoding="utf-8").splitlines():
        assert isinstance(json.loads(line), dict), line
    assert not (tmp_path / "var").exists(), "with its environment set it writes no var/"


async def test_the_city_units_command_leads_under_the_instances_name_and_stops_cleanly(
    tmp_path: Path, db_url: str, mosquitto: Mosquitto,
) -> None:
    city = write_city(tmp_path, halls=1)
    base = f"http://127.0.0.1:{load_city_config(city).http_port}"
    env = {"HALL_DATABASE_URL": db_url, "HALL_MQTT_URL": mosquitto.url,
           "HALL_DATA_KEY": DATA_KEY}
    process = start_as_the_unit_does("smarthall-city@.service", tmp_path, env, city)
    try:
        await wait_ready(process, f"{base}/healthz")
        async with aiohttp.ClientSession() as session:
            told = await wait_leading(session, f"{base}/city/process", process)
        code, took = await asyncio.to_thread(process.stop)
    finally:
        if process.process.poll() is None:
            process.process.kill()
    limit = seconds(value(ALL_UNITS["smarthall-city@.service"], "Service", "TimeoutStopSec"))
    assert told["name"] == INSTANCES["smarthall-city@.service"]
    assert code == 0, process.logs()
    assert took < limit
    assert "released hall hall-00" in process.stderr.read_text(encoding="utf-8")


async def wait_leading(session: aiohttp.ClientSession, url: str,
                       process: Started) -> dict[str, object]:
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        async with session.get(url) as response:
            told: dict[str, object] = await response.json()
        if told["leads"]:
            return told
        await asyncio.sleep(0.1)
    raise AssertionError(f"the city process led no hall in {START_LIMIT} s\n{process.logs()}")


async def test_the_agent_units_command_runs_the_example_file_and_says_goodbye_on_stop(
    tmp_path: Path, mosquitto: Mosquitto,
) -> None:
    """config/agent-kiosk-1.toml's hardware is not on this machine: the agent carries
    on without it, each device online with its health saying so.

    The stop comes a moment after the births, once the devices' first states are
    acknowledged: a SIGTERM that lands just as a publish is acknowledged can be lost
    on Python 3.11 (asyncio.wait_for in aiomqtt's publish), and the agent then runs
    until systemd kills it; that is a fault of the device client, not of the unit."""
    env = {**read_env_file(AGENT_ENV), "HALL_MQTT_URL": mosquitto.url}
    config = load_agent_config(ROOT / "config" / "agent-kiosk-1.toml")
    topics = {f"hall/{config.agent.hall}/{d.id}/status": d.id for d in config.devices}
    async with mqtt_client(mosquitto, "watcher") as watcher:
        for topic in topics:
            await watcher.subscribe(topic, qos=1)
        agent = start_as_the_unit_does("smarthall-agent@.service", tmp_path, env,
                                       ROOT / "config" / "agent-kiosk-1.toml")
        try:
            online = await states(watcher, topics, "online", agent)
            await asyncio.sleep(SETTLE_SECONDS)
            code, took = await asyncio.to_thread(agent.stop)
            offline = await states(watcher, topics, "offline", agent)
        finally:
            if agent.process.poll() is None:
                agent.process.kill()
    limit = seconds(value(ALL_UNITS["smarthall-agent@.service"], "Service", "TimeoutStopSec"))
    assert code == 0, agent.logs()
    assert took < limit
    assert online == offline == set(topics.values())


async def states(watcher: aiomqtt.Client, topics: dict[str, str], state: str,
                 agent: Started) -> set[str]:
    """The devices whose status became ``state``, waiting until all of them did."""
    seen: set[str] = set()
    try:
        async with asyncio.timeout(START_LIMIT):
            async for message in watcher.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                if payload and json.loads(payload).get("state") == state:
                    seen.add(topics[str(message.topic)])
                if seen == set(topics.values()):
                    return seen
    except TimeoutError:
        pass
    raise AssertionError(f"only {sorted(seen)} became {state}\n{agent.logs()}")
