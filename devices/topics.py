"""The MQTT topic scheme of the hall's devices (see docs/mqtt.md).

Every topic is ``hall/{hall_id}/{device_id}/{channel}``: one subtree per
device, so a broker ACL can give each device its own topics and nothing else,
and one wildcard subscription per channel gives the server every device.
The server and the edge agent on the kiosk PCs share this module; it imports
nothing of the hall, so the agent can ship without the server.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""Hall and device ids: safe in a topic level (no ``/``, ``+``, ``#`` or ``$``), a URL and a log."""

PREFIX = "hall"
"""The first topic level, so the hall's tree can share a broker with others."""

QOS = 1
"""Every channel is QoS 1: at least once. Retries are harmless because requests carry an
idempotency key and retained views are whole states."""

_ID = re.compile(ID_PATTERN)


class Channel(StrEnum):
    """The last topic level: what flows there and in which direction."""

    STATUS = "status"
    """Device → hall, retained: birth on connect, last will when the connection dies."""
    STATE = "state"
    """Device → hall, retained: health and telemetry, so the hall sees it on restart."""
    EVENT = "event"
    """Device → hall: requests and events, each with an idempotency key."""
    REPLY = "reply"
    """Hall → the one device that asked: the answer to one request."""
    CMD = "cmd"
    """Hall → device, not retained: an order that must not run late (print, announce)."""
    DISPLAY = "display"
    """Hall → screens, boards and LED strips, retained: the whole view, to resync from."""

    @property
    def from_device(self) -> bool:
        """Whether devices publish here (and the server subscribes)."""
        return self in _FROM_DEVICE

    @property
    def retained(self) -> bool:
        """Whether messages here are published with the retain flag."""
        return self in _RETAINED


_FROM_DEVICE = frozenset({Channel.STATUS, Channel.STATE, Channel.EVENT})
_RETAINED = frozenset({Channel.STATUS, Channel.STATE, Channel.DISPLAY})
_CHANNELS = {channel.value: channel for channel in Channel}


class DeviceKind(StrEnum):
    """What a device is; it says so in its birth message."""

    KIOSK = "kiosk"
    CALL_TERMINAL = "call_terminal"
    EVALUATION_TERMINAL = "evaluation_terminal"
    WINDOW_SCREEN = "window_screen"
    HALL_BOARD = "hall_board"
    LED_STRIP = "led_strip"
    PRINTER = "printer"
    CARD_READER = "card_reader"
    DOCUMENT_CAMERA = "document_camera"
    ANNOUNCER = "announcer"


class Topic(NamedTuple):
    """A topic of the scheme, taken apart."""

    hall_id: str
    device_id: str
    channel: Channel

    def __str__(self) -> str:
        return topic(self.hall_id, self.device_id, self.channel)


def is_valid_id(value: object) -> bool:
    """Whether ``value`` may be a hall or device id (see ``ID_PATTERN``)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _check_id(what: str, value: str) -> None:
    if not is_valid_id(value):
        raise ValueError(f"{what} {value!r} is not 1 to 64 letters, digits, '-' or '_'")


def topic(hall_id: str, device_id: str, channel: Channel | str) -> str:
    """The topic of one device's channel.

    Raises ``ValueError`` for an id or channel outside the scheme: a topic built
    from a bad id would either be refused by the broker's ACL or, worse, contain
    a wildcard and reach other devices.
    """
    _check_id("hall id", hall_id)
    _check_id("device id", device_id)
    return f"{PREFIX}/{hall_id}/{device_id}/{Channel(channel)}"


def parse_topic(text: object) -> Topic | None:
    """The parts of a topic of the scheme, or None for any other topic.

    Never raises, whatever it is given: the server feeds it whatever the broker
    delivers, and a foreign or malformed topic (or no text at all) is simply not ours.
    """
    if not isinstance(text, str):
        return None
    parts = text.split("/")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    _, hall_id, device_id, channel = parts
    found = _CHANNELS.get(channel)
    if found is None or not is_valid_id(hall_id) or not is_valid_id(device_id):
        return None
    return Topic(hall_id, device_id, found)


SERVER_LEVEL = "$server"
"""The last level of a hall's presence topic: a leading ``$`` no device id can have, so
it is never a device's subtree, and one level short of the device topics, so the
server's ``hall/<hall_id>/+/<channel>`` subscriptions never match it."""


def server_topic(hall_id: str) -> str:
    """``hall/<hall_id>/$server``: the hall server's presence, retained (docs/mqtt.md,
    "Hall presence"), which every device of the hall reads."""
    _check_id("hall id", hall_id)
    return f"{PREFIX}/{hall_id}/{SERVER_LEVEL}"


def subscriptions(hall_id: str) -> list[str]:
    """The server's subscriptions: what every device of the hall publishes."""
    _check_id("hall id", hall_id)
    return [f"{PREFIX}/{hall_id}/+/{channel}" for channel in Channel if channel.from_device]


def device_subscriptions(hall_id: str, device_id: str) -> list[str]:
    """A device's subscriptions: its own reply, cmd and display topics, nothing else."""
    return [topic(hall_id, device_id, channel) for channel in Channel if not channel.from_device]
