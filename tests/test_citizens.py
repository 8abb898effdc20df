"""Citizens' identities are stored sealed in PostgreSQL and found by ID number
through the keyed hash alone (G3)."""

from __future__ import annotations

import asyncpg
import pytest

from hall.citizens import CitizenStore
from hall.pii import DataKey, Identity, Vault, VaultError

CLEAR = Identity(name="张小三", id_number="51010419900101123X", phone="13812345678")


@pytest.fixture
def vault() -> Vault:
    return Vault(DataKey.generate())


@pytest.fixture
def store(pool: asyncpg.Pool, vault: Vault) -> CitizenStore:
    return CitizenStore(pool, vault, "hall-1")


async def test_a_saved_identity_loads_back(store: CitizenStore) -> None:
    citizen_id = await store.save(CLEAR)
    assert await store.load(citizen_id) == CLEAR


async def test_missing_fields_load_back_as_none(store: CitizenStore) -> None:
    citizen_id = await store.save(Identity(phone="13812345678"))
    assert await store.load(citizen_id) == Identity(phone="13812345678")


async def test_the_table_holds_no_clear_text(store: CitizenStore, pool: asyncpg.Pool) -> None:
    citizen_id = await store.save(CLEAR)
    row = await pool.fetchrow(
        "SELECT id_number_enc, name_enc, phone_enc, id_number_hmac FROM citizens WHERE id = $1",
        citizen_id,
    )
    stored = b"".join(bytes(value) for value in row.values())
    for clear in (CLEAR.name, CLEAR.id_number, CLEAR.phone):
        assert clear is not None
        assert clear.encode("utf-8") not in stored
        assert clear.encode("utf-16-le") not in stored


async def test_a_citizen_is_found_by_id_number_whatever_the_case_of_the_x(
    store: CitizenStore,
) -> None:
    citizen_id = await store.save(Identity(id_number="51010419900101123x"))
    await store.save(Identity(id_number="510104199001011234"))
    assert await store.find_by_id_number("51010419900101123X") == [citizen_id]


async def test_an_id_number_loads_back_in_its_normal_spelling(store: CitizenStore) -> None:
    citizen_id = await store.save(Identity(id_number=" 51010419900101123x "))
    assert await store.load(citizen_id) == Identity(id_number="51010419900101123X")


async def test_an_unknown_id_loads_none(store: CitizenStore) -> None:
    assert await store.load(424242) is None


async def test_another_halls_citizens_are_neither_loaded_nor_found(
    store: CitizenStore, pool: asyncpg.Pool, vault: Vault
) -> None:
    citizen_id = await store.save(CLEAR)
    elsewhere = CitizenStore(pool, vault, "hall-2")
    assert await elsewhere.load(citizen_id) is None
    assert await elsewhere.find_by_id_number("51010419900101123X") == []


async def test_rows_sealed_under_another_key_do_not_load(
    store: CitizenStore, pool: asyncpg.Pool
) -> None:
    citizen_id = await store.save(CLEAR)
    rekeyed = CitizenStore(pool, Vault(DataKey.generate()), "hall-1")
    with pytest.raises(VaultError, match="another data key"):
        await rekeyed.load(citizen_id)
