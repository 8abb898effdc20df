"""Personal data at rest and on display (G3, Q5).

Citizens' names, ID numbers and phone numbers are stored sealed field by field
with AES-GCM, so a copy of the database or a backup leaks nothing without the
key. Everything that is shown to people who are not the citizen (screens,
logs, the status wall) gets a masked form; only the backend, over its
authenticated link, gets the clear identity to pre-fill its forms.

One master key is loaded (``DataKey``) and split with HKDF into an encryption
key and a lookup key: the keyed hash that lets us find a citizen by ID number
must not be usable to decrypt, and a leak of one must not give the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

NAME = "name"
ID_NUMBER = "id_number"
PHONE = "phone"

DEFAULT_ENV_VAR = "HALL_DATA_KEY"
DEFAULT_KEY_FILE = Path("var") / "data.key"

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = 1
"""First byte of every sealed value, so the format or key scheme can change
later while old rows stay readable."""

_ENCRYPTION_INFO = b"smarthall/pii/aes-256-gcm/v1"
_LOOKUP_INFO = b"smarthall/pii/lookup-hmac-sha256/v1"


class DataKeyError(ValueError):
    """The data key is missing, malformed or of the wrong size."""


class VaultError(Exception):
    """A sealed value could not be opened; it is never half-decrypted."""


def _decode_key(text: str, source: str) -> bytes:
    """Accept both base64 alphabets: operators paste keys from tools that emit
    either, and a rejected valid key is an outage for nothing."""
    standard = text.strip().replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as error:
        raise DataKeyError(f"{source} does not hold base64 text: {error}") from None
    if len(raw) != KEY_BYTES:
        raise DataKeyError(
            f"{source} holds a {len(raw)}-byte key; the data key is {KEY_BYTES} bytes "
            f"({KEY_BYTES * 8} bits) in base64"
        )
    return raw


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


def _fsync_directory(folder: Path) -> None:
    """A key that vanishes in a crash after data was sealed under it would make
    that data unreadable forever, so the directory entry is flushed too."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _create_key_file(path: Path) -> bytes:
    """O_EXCL so the file never exists with looser rights than 0600, and so an
    existing key is never overwritten: a replaced key orphans every sealed row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, base64.urlsafe_b64encode(raw) + b"\n")
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)
    _fsync_directory(path.parent)
    log.warning(
        "created a new data key in %s; back it up: without it the citizens' data cannot be read",
        path,
    )
    return raw


def _warn_if_exposed(path: Path) -> None:
    """Warn rather than refuse: the hall runs 7x24 (G1), and refusing to start
    over a mode bit would turn a hardening issue into an outage; some volumes
    (network shares, some container mounts) cannot even hold POSIX modes."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data key file %s is readable by group or others (mode %04o); run: chmod 600 %s",
            path,
            mode,
            path,
        )


def _read_key_file(path: Path) -> bytes:
    _warn_if_exposed(path)
    text = path.read_bytes().decode("ascii", errors="replace")
    return _decode_key(text, f"data key file {path}")


class DataKey:
    """The master key, kept only as its two derived subkeys."""

    __slots__ = ("encryption_key", "lookup_key")

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise DataKeyError(f"the data key is {KEY_BYTES} bytes, got {len(master)}")
        self.encryption_key = _derive(master, _ENCRYPTION_INFO)
        self.lookup_key = _derive(master, _LOOKUP_INFO)

    def __repr__(self) -> str:
        return "DataKey(<hidden>)"

    @classmethod
    def generate(cls) -> DataKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def load(cls, env_var: str = DEFAULT_ENV_VAR, key_file: Path = DEFAULT_KEY_FILE) -> DataKey:
        """The environment wins so deployments with a secret store need no file;
        a set but empty variable is an error, not a fallback, because falling
        back would silently make a new key and orphan the existing data."""
        configured = os.environ.get(env_var)
        if configured is not None:
            return cls(_decode_key(configured, f"environment variable {env_var}"))
        try:
            return cls(_read_key_file(key_file))
        except FileNotFoundError:
            pass
        try:
            return cls(_create_key_file(key_file))
        except FileExistsError:
            return cls(_read_key_file(key_file))


def _field_bytes(field: str) -> bytes:
    if not field or "\x00" in field:
        raise ValueError(f"invalid field name {field!r}")
    return field.encode("utf-8")


def normalize(field: str, value: str) -> str:
    """One spelling per value, so a lookup hash matches however the value was typed:
    the check character of an ID number is written both ``x`` and ``X``."""
    cleaned = value.strip()
    return cleaned.upper() if field == ID_NUMBER else cleaned


class Vault:
    """Seals and opens personal data fields. The field name is the associated
    data, so a sealed name moved into the phone column does not open."""

    __slots__ = ("_aead", "_lookup_key")

    def __init__(self, key: DataKey) -> None:
        self._aead = AESGCM(key.encryption_key)
        self._lookup_key = key.lookup_key

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    def seal(self, field: str, plaintext: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _field_bytes(field))
        return bytes([VERSION]) + nonce + sealed

    def open(self, field: str, sealed: bytes) -> str:
        associated = _field_bytes(field)
        if len(sealed) < 1 + NONCE_BYTES or sealed[0] != VERSION:
            raise VaultError(f"the sealed {field} is not in a format this hall can read")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            clear = self._aead.decrypt(nonce, body, associated)
        except InvalidTag:
            raise VaultError(
                f"the sealed {field} does not open: it was altered, belongs to another "
                "field, or was sealed under another data key"
            ) from None
        return clear.decode("utf-8")

    def lookup_hash(self, field: str, value: str) -> bytes:
        """Keyed, so the hash of a guessed ID number cannot be computed without
        the key; the field is in the message so equal values in different
        fields do not hash alike."""
        message = _field_bytes(field) + b"\x00" + normalize(field, value).encode("utf-8")
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()


def _keep_ends(value: str, head: int, tail: int) -> str:
    hidden = len(value) - head - tail
    return value[:head] + "*" * hidden + value[len(value) - tail :]


@overload
def mask_name(name: str) -> str: ...
@overload
def mask_name(name: None) -> None: ...
def mask_name(name: str | None) -> str | None:
    """张三 → 张*, 张小三 → 张*三, 欧阳娜娜 → 欧**娜. A one-character name
    would be shown whole by any rule that keeps a character, so it is all stars.
    None stays None (nothing known) and blank gives "" (known to be empty)."""
    if name is None:
        return None
    cleaned = name.strip()
    if len(cleaned) <= 1:
        return "*" * len(cleaned)
    if len(cleaned) == 2:
        return cleaned[0] + "*"
    return _keep_ends(cleaned, 1, 1)


@overload
def mask_id_number(id_number: str) -> str: ...
@overload
def mask_id_number(id_number: None) -> None: ...
def mask_id_number(id_number: str | None) -> str | None:
    """An 18-character resident ID keeps its region code and last four, the
    forms staff and citizens already recognise. Anything else keeps two at
    each end while at least half stays hidden, else is all stars."""
    if id_number is None:
        return None
    cleaned = id_number.strip()
    if len(cleaned) == 18:
        return _keep_ends(cleaned, 6, 4)
    if len(cleaned) >= 8:
        return _keep_ends(cleaned, 2, 2)
    return "*" * len(cleaned)


@overload
def mask_phone(phone: str) -> str: ...
@overload
def mask_phone(phone: None) -> None: ...
def mask_phone(phone: str | None) -> str | None:
    """Eleven characters (a mainland mobile) keep the first three and last four.
    Other lengths keep a quarter at each end, rounded down, so at least half is
    hidden. The rules look at length only, so masking a masked value changes
    nothing."""
    if phone is None:
        return None
    cleaned = phone.strip()
    if len(cleaned) == 11:
        return _keep_ends(cleaned, 3, 4)
    quarter = len(cleaned) // 4
    return _keep_ends(cleaned, quarter, quarter)


@dataclass(frozen=True, slots=True, repr=False)
class Identity:
    """A citizen's identity in the clear. Its repr is masked so that a stray
    ``log.info("%s", identity)`` or a traceback cannot leak it."""

    name: str | None = None
    id_number: str | None = None
    phone: str | None = None

    def masked(self) -> Identity:
        return Identity(
            name=mask_name(self.name),
            id_number=mask_id_number(self.id_number),
            phone=mask_phone(self.phone),
        )

    def __repr__(self) -> str:
        shown = self.masked()
        return (
            f"Identity(name={shown.name!r}, id_number={shown.id_number!r}, phone={shown.phone!r})"
        )
