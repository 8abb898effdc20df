"""Write Mosquitto's password file for the hall's [[devices]].

The hall's configuration keeps each device's MQTT password only as SHA-256
(``password_sha256``), and Mosquitto wants its own salted PBKDF2 hash of the
clear password, so the file cannot be made from the configuration alone. This
script takes the clear passwords on standard input, one ``<user> <password>``
a line (``#`` comments and blank lines skipped; the server's user is
``hall-server``), checks each device's password against its ``password_sha256``
and refuses users the configuration does not list, then writes the file in
the format ``mosquitto_passwd`` writes (Mosquitto 2.0, ``$7$``: PBKDF2-HMAC-
SHA512, 101 iterations, a 12-byte random salt, both base64; see
mosquitto's src/password_mosq.c)::

    python config/mosquitto/passwd.py --config config/demo-hall.toml \\
        < passwords.txt > /etc/mosquitto/smarthall.passwd

The passwords never appear on a command line, where ``ps`` would show them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hall.config import ConfigError, load_hall_config

SERVER_USER = "hall-server"
ITERATIONS = 101
SALT_BYTES = 12


class PasswordError(ValueError):
    """A line of the input that cannot go into the file."""


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """One ``$7$`` entry's hash, as ``mosquitto_passwd`` makes it."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return (f"$7${ITERATIONS}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def password_lines(
    lines: Iterable[str], devices: Mapping[str, str]
) -> list[str]:
    """The password file's lines for ``<user> <password>`` input lines; ``devices``
    maps each configured device id to its ``password_sha256`` (empty: none set)."""
    out: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, _, password = line.partition(" ")
        password = password.strip()
        if not password:
            raise PasswordError(f"line {number}: expected '<user> <password>'")
        if user in seen:
            raise PasswordError(f"line {number}: {user!r} given twice")
        if user != SERVER_USER:
            if user not in devices:
                raise PasswordError(f"line {number}: {user!r} is not in the [[devices]] list")
            given = hashlib.sha256(password.encode()).hexdigest()
            expected = devices[user]
            if expected and not hmac.compare_digest(given, expected):
                raise PasswordError(
                    f"line {number}: the password of {user!r} does not match its password_sha256")
        seen.add(user)
        out.append(f"{user}:{mosquitto_hash(password)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/demo-hall.toml", help="hall TOML file")
    args = parser.parse_args(argv)
    try:
        config = load_hall_config(args.config)
        lines = password_lines(
            sys.stdin, {d.id: d.password_sha256 for d in config.devices})
    except (ConfigError, PasswordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    missing = {d.id for d in config.devices} - {line.split(":", 1)[0] for line in lines}
    if missing:
        print(f"note: no password given for {len(missing)} devices: {', '.join(sorted(missing))}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
