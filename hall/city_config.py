"""The city file: which hall files a city process may lead, and where it listens.

A city is several halls sharing one PostgreSQL and one broker, led by several
server processes (hall/city.py). Every process reads the same city file, so
they agree on the set of halls; each hall is an ordinary hall file with its
own id and HTTP port. Problems are reported like the hall file's, one line
per problem with its key, and the hall files are checked as a set: ids and
ports must be unique, since a hall is found by either.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.broker_url import BrokerAddress
from hall.config import (
    ConfigError,
    HallConfig,
    Problem,
    _problems_of,
    _read_toml,
    load_hall_config,
)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _CityTable(_Table):
    name: str = Field(min_length=1)
    halls: list[str] = Field(min_length=1)
    """Hall files or globs, relative to the city file."""


class _HttpTable(_Table):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    advertise: str | None = None
    """The scheme and host others reach this process's hall ports at
    (``http://10.0.0.5``); by default ``http://<host>``."""


class _UrlTable(_Table):
    url: str = Field(min_length=1)


class _DatabaseTable(_Table):
    url: str | None = Field(default=None, min_length=1)
    pool_size: int = Field(default=16, ge=2, le=200)
    """Connections per process for what the halls it leads ask the database."""
    writers: int = Field(default=4, ge=1, le=100)
    """Connections per process for its halls' group commits. The database's
    max_connections must cover every process's pool_size + writers + 1 (leadership)."""


class _LeadershipTable(_Table):
    interval_seconds: float = Field(default=1.0, gt=0, le=60)


class _CityFile(_Table):
    city: _CityTable
    http: _HttpTable = _HttpTable()
    database: _DatabaseTable = _DatabaseTable()
    mqtt: _UrlTable | None = None
    leadership: _LeadershipTable = _LeadershipTable()


@dataclass(frozen=True, slots=True)
class CityConfig:
    name: str
    halls: tuple[HallConfig, ...]
    http_host: str
    http_port: int
    advertise: str
    database_url: str | None
    pool_size: int
    writers: int
    mqtt_url: str | None
    interval_seconds: float

    def hall(self, hall_id: str) -> HallConfig | None:
        return next((h for h in self.halls if h.layout.hall_id == hall_id), None)

    def hall_url(self, hall: HallConfig) -> str:
        return f"{self.advertise}:{hall.http_port}"


def load_city_config(path: str | Path) -> CityConfig:
    """Read the city file and every hall file it names; raises ConfigError."""
    path = Path(path)
    source = str(path)
    try:
        city = _CityFile.model_validate(_read_toml(path, source))
    except ValidationError as exc:
        raise ConfigError(source, _problems_of(exc)) from None
    files, problems = _hall_files(path.parent, city.city.halls)
    halls = tuple(load_hall_config(file) for file in files)
    problems += _clashes(halls)
    from_env = os.environ.get("HALL_MQTT_URL")
    mqtt_url = from_env or (city.mqtt.url if city.mqtt else None)
    if mqtt_url:
        try:
            BrokerAddress.parse(mqtt_url)
        except ValueError as exc:
            problems.append(Problem("HALL_MQTT_URL" if from_env else "mqtt.url", str(exc)))
    if problems:
        raise ConfigError(source, problems)
    http = city.http
    return CityConfig(
        name=city.city.name,
        halls=halls,
        http_host=http.host,
        http_port=http.port,
        advertise=(http.advertise or f"http://{http.host}").rstrip("/"),
        database_url=os.environ.get("HALL_DATABASE_URL") or city.database.url,
        pool_size=city.database.pool_size,
        writers=city.database.writers,
        mqtt_url=mqtt_url,
        interval_seconds=city.leadership.interval_seconds,
    )


_GLOB = re.compile(r"[*?\[]")


def _hall_files(base: Path, patterns: list[str]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for index, pattern in enumerate(patterns):
        literal = base / pattern
        found = ([literal] if literal.is_file() else []) if not _GLOB.search(pattern) else sorted(
            base.glob(pattern))
        if not found:
            problems.append(Problem(f"city.halls[{index}]", f"no hall file matches {pattern!r}"))
        files += [file for file in found if file not in files]
    return files, problems


def _clashes(halls: tuple[HallConfig, ...]) -> list[Problem]:
    ids = Counter(hall.layout.hall_id for hall in halls)
    ports = Counter(hall.http_port for hall in halls)
    return [Problem("city.halls", f"hall id {hall_id!r} is in {n} hall files")
            for hall_id, n in ids.items() if n > 1] + [
            Problem("city.halls", f"HTTP port {port} is given to {n} halls")
            for port, n in ports.items() if n > 1]
