"""A citizen card on a window's PC/SC reader reaches the hall as a ``card.read``: the
agent's production PC/SC path against pcscd, the vpcd reader and an emulated card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from drivers.agent import CardReaderDevice
from tests.agent_kit import AGENT_HALL, agent_config, agent_running, eventually, status
from tests.bus_kit import hall_on_bus
from tests.mqtt_kit import Mosquitto
from tests.pcsc_kit import Pcscd, VirtualCard

AID = "A0000000031010"
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def citizen_card(pcscd: Pcscd, tmp_path: Path) -> Iterator[VirtualCard]:
    card = VirtualCard(tmp_path, aid=AID, files={
        "0101": ID_NUMBER.encode("ascii"), "0102": "王小明".encode("gb18030")})
    yield card
    card.remove(wait=False)


def reader_device() -> dict[str, object]:
    """A city's citizen card script: the steps named ``id_number`` and ``name`` are what
    the agent puts into the card read."""
    return {"id": "reader-1", "kind": "card_reader", "card_reader": {
        "driver": "pcsc", "reader": "Virtual PCD 00 00", "script": [
            {"name": "select_app", "apdu": f"00A4040C07{AID}"},
            {"name": "select_id", "apdu": "00A4020C020101"},
            {"name": "id_number", "apdu": "00B0000000"},
            {"name": "select_name", "apdu": "00A4020C020102"},
            {"name": "name", "apdu": "00B0000000"},
        ]}}


async def test_a_citizen_card_is_read_and_its_holder_looked_up(
    pool: asyncpg.Pool, mosquitto: Mosquitto, citizen_card: VirtualCard,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [reader_device()])) as agent:
        reader = agent.devices["reader-1"]
        assert isinstance(reader, CardReaderDevice)
        await eventually(lambda: status(bus.link, "reader-1").online)
        citizen_card.insert()
        await eventually(lambda: reader.last_reply is not None, timeout=10)
    reply = reader.last_reply
    assert reply is not None and reply.ok, reply
    assert reply.result is not None
    assert reply.result["holder"]["id_number"] == ID_NUMBER, reply.result
