"""Personal data is sealed at rest and masked on display (G3, Q5)."""

from __future__ import annotations

import base64
import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from hall.pii import (
    ID_NUMBER,
    NAME,
    PHONE,
    DataKey,
    DataKeyError,
    Identity,
    Vault,
    VaultError,
    mask_id_number,
    mask_name,
    mask_phone,
)

ENV = "HALL_DATA_KEY"
CLEAR = Identity(name="张小三", id_number="51010419900101123X", phone="13812345678")


@pytest.fixture
def vault() -> Vault:
    return Vault(DataKey.generate())


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def test_a_sealed_value_opens_to_the_same_text(vault: Vault) -> None:
    assert vault.open(NAME, vault.seal(NAME, "欧阳娜娜")) == "欧阳娜娜"


def test_a_tampered_ciphertext_is_refused(vault: Vault) -> None:
    sealed = bytearray(vault.seal(PHONE, "13812345678"))
    sealed[-1] ^= 0x01
    with pytest.raises(VaultError, match="altered"):
        vault.open(PHONE, bytes(sealed))


def test_a_value_sealed_for_one_field_does_not_open_as_another(vault: Vault) -> None:
    sealed_name = vault.seal(NAME, "张三")
    with pytest.raises(VaultError, match="another field"):
        vault.open(PHONE, sealed_name)


def test_a_value_sealed_under_another_key_is_refused(vault: Vault) -> None:
    sealed = Vault(DataKey.generate()).seal(NAME, "张三")
    with pytest.raises(VaultError, match="another data key"):
        vault.open(NAME, sealed)


def test_a_truncated_or_unknown_version_value_is_refused(vault: Vault) -> None:
    sealed = vault.seal(NAME, "张三")
    with pytest.raises(VaultError, match="format"):
        vault.open(NAME, sealed[:5])
    with pytest.raises(VaultError, match="format"):
        vault.open(NAME, b"\x09" + sealed[1:])


def test_two_seals_of_the_same_value_differ(vault: Vault) -> None:
    assert vault.seal(NAME, "张三") != vault.seal(NAME, "张三")


def test_the_lookup_hash_is_stable_and_ignores_case_and_spaces_of_an_id_number(
    vault: Vault,
) -> None:
    expected = vault.lookup_hash(ID_NUMBER, "51010419900101123X")
    assert vault.lookup_hash(ID_NUMBER, " 51010419900101123x\n") == expected
    assert vault.lookup_hash(ID_NUMBER, "510104199001011234") != expected


def test_the_lookup_hash_differs_per_field(vault: Vault) -> None:
    assert vault.lookup_hash(NAME, "13812345678") != vault.lookup_hash(PHONE, "13812345678")


def test_the_lookup_hash_depends_on_the_key(vault: Vault) -> None:
    other = Vault(DataKey.generate())
    assert vault.lookup_hash(PHONE, "13812345678") != other.lookup_hash(PHONE, "13812345678")


def test_a_missing_key_file_is_created_0600_and_reused(tmp_path: Path, no_env_key: None) -> None:
    key_file = tmp_path / "var" / "data.key"
    sealed = Vault(DataKey.load(key_file=key_file)).seal(NAME, "张三")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Vault(DataKey.load(key_file=key_file)).open(NAME, sealed) == "张三"


def test_a_key_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, no_env_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "data.key"
    DataKey.load(key_file=key_file)
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="hall.pii"):
        DataKey.load(key_file=key_file)
    assert "chmod 600" in caplog.text


def test_a_corrupt_key_file_is_refused_not_replaced(tmp_path: Path, no_env_key: None) -> None:
    key_file = tmp_path / "data.key"
    key_file.write_text("")
    key_file.chmod(0o600)
    with pytest.raises(DataKeyError, match=r"data key file .*data\.key"):
        DataKey.load(key_file=key_file)
    assert key_file.read_text() == ""


def test_the_environment_key_is_used_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = bytes(range(32))
    monkeypatch.setenv(ENV, base64.b64encode(master).decode())
    key_file = tmp_path / "data.key"
    sealed = Vault(DataKey(master)).seal(NAME, "张三")
    assert Vault(DataKey.load(key_file=key_file)).open(NAME, sealed) == "张三"
    assert not key_file.exists()


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_the_environment_key_may_use_either_base64_alphabet(
    monkeypatch: pytest.MonkeyPatch, encode: Callable[[bytes], bytes]
) -> None:
    master = b"\xfb\xff" * 16
    monkeypatch.setenv(ENV, encode(master).decode().rstrip("="))
    sealed = Vault(DataKey(master)).seal(PHONE, "13812345678")
    assert Vault(DataKey.load()).open(PHONE, sealed) == "13812345678"


def test_an_environment_key_of_the_wrong_length_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, base64.b64encode(b"k" * 16).decode())
    with pytest.raises(DataKeyError, match=rf"{ENV} holds a 16-byte key"):
        DataKey.load()


def test_an_environment_key_that_is_not_base64_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "not a key!")
    with pytest.raises(DataKeyError, match=rf"{ENV} does not hold base64"):
        DataKey.load()


def test_an_empty_environment_key_is_refused_not_replaced_by_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "")
    with pytest.raises(DataKeyError, match=rf"{ENV} holds a 0-byte key"):
        DataKey.load(key_file=tmp_path / "data.key")
    assert not (tmp_path / "data.key").exists()


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("张小三", "张*三"),
        ("欧阳娜娜", "欧**娜"),
        ("阿卜杜拉·买买提", "阿******提"),
    ],
)
def test_names_keep_the_first_and_for_three_or_more_the_last_character(
    name: str, masked: str
) -> None:
    assert mask_name(name) == masked


def test_a_one_character_name_is_all_stars() -> None:
    assert mask_name("张") == "*"


def test_an_18_character_id_number_keeps_region_and_last_four() -> None:
    assert mask_id_number("51010419900101123X") == "510104********123X"


@pytest.mark.parametrize(
    ("id_number", "masked"),
    [("510104900101123", "51***********23"), ("12345678", "12****78"), ("1234567", "*******")],
)
def test_id_numbers_of_other_lengths_keep_two_at_each_end_or_nothing(
    id_number: str, masked: str
) -> None:
    assert mask_id_number(id_number) == masked


def test_an_11_digit_mobile_keeps_the_first_three_and_last_four() -> None:
    assert mask_phone("13812345678") == "138****5678"


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("87654321", "87****21"), ("0288765432", "02******32"), ("110", "***")],
)
def test_phones_of_other_lengths_hide_at_least_the_middle_half(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_masks_keep_none_as_none_and_blank_as_empty() -> None:
    assert (mask_name(None), mask_id_number(None), mask_phone(None)) == (None, None, None)
    assert (mask_name(" "), mask_id_number(""), mask_phone("")) == ("", "", "")


def test_masking_a_masked_value_changes_nothing() -> None:
    once = CLEAR.masked()
    assert once.masked() == once


def test_a_masked_identity_holds_only_masked_values() -> None:
    assert CLEAR.masked() == Identity(
        name="张*三", id_number="510104********123X", phone="138****5678"
    )


def test_an_identity_never_shows_clear_values_in_repr_or_str() -> None:
    shown = repr(CLEAR) + str(CLEAR) + f"{CLEAR}" + repr([CLEAR])
    for clear in (CLEAR.name, CLEAR.id_number, CLEAR.phone):
        assert clear is not None
        assert clear not in shown
    assert "张*三" in shown
