"""A contactless citizen card for vpcd, run by Debian's /usr/bin/python3 (not the venv).

It plugs a card OS into virtualsmartcard's own ``VirtualICC`` connection loop (the code
``vicc`` runs), so the bytes cross the real vpcd driver inside pcscd. The stock ``vicc``
card types cannot stand in for a citizen card: their ISO 7816 OS reads CLA FF as
proprietary secure messaging, so the PC/SC ``GET DATA`` for the UID (FF CA 00 00 00, PC/SC
part 3 section 3.2.2.1.3) raises inside its SM wrapper and kills the process.

On a real contactless reader FF CA is answered by the reader itself; here the card answers
it, as vpcd passes every APDU through. The rest is the ISO/IEC 7816-4 subset a citizen
card read needs: SELECT by AID (P1=04) or by file id (P1=02, P2=0C), READ BINARY.

``--die-on HEX`` makes the card vanish (the process exits) when it receives an APDU that
starts with HEX: a card pulled out of the field in the middle of a read.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys

try:
    import Cryptodome  # type: ignore[import-not-found]
except ImportError:
    sys.exit("vicc_citizen_card: needs Debian package python3-pycryptodome (module Cryptodome)")
# virtualsmartcard imports PyCrypto's ``Crypto``; Debian ships PyCryptodome as ``Cryptodome``.
sys.modules.setdefault("Crypto", Cryptodome)

from virtualsmartcard.VirtualSmartcard import (  # type: ignore[import-not-found]  # noqa: E402
    SmartcardOS,
    VirtualICC,
)

OK = b"\x90\x00"
FILE_NOT_FOUND = b"\x6a\x82"
WRONG_P1P2 = b"\x6a\x86"
FUNC_NOT_SUPPORTED = b"\x6a\x81"
INS_NOT_SUPPORTED = b"\x6d\x00"
CLA_NOT_SUPPORTED = b"\x6e\x00"
WRONG_LENGTH = b"\x67\x00"
OFFSET_OUTSIDE = b"\x6b\x00"
NO_EF_SELECTED = b"\x69\x86"


def contactless_atr(historical: bytes) -> bytes:
    """PC/SC part 3 section 3.1.3.2.3 ATR of an ISO 14443-4 card: 3B 8n 80 01 hist TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


class CitizenCardOS(SmartcardOS):  # type: ignore[misc]
    def __init__(self, uid: bytes, aid: bytes, files: dict[bytes, bytes], die_on: bytes) -> None:
        self.uid = uid
        self.aid = aid
        self.files = files
        self.die_on = die_on
        self.atr = contactless_atr(b"CITIZEN1")
        self.app_selected = False
        self.current: bytes | None = None

    def getATR(self) -> bytes:
        return self.atr

    def powerUp(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.app_selected = False
        self.current = None

    def execute(self, msg: bytes) -> bytes:
        if self.die_on and msg.startswith(self.die_on):
            logging.info("leaving the field on %s", msg.hex())
            os._exit(0)
        if len(msg) < 4:
            return WRONG_LENGTH
        cla, ins, p1, p2 = msg[0], msg[1], msg[2], msg[3]
        body = msg[4:]
        if cla == 0xFF:
            return self.reader_command(ins, p1, p2)
        if cla != 0x00:
            return CLA_NOT_SUPPORTED
        if ins == 0xA4:
            return self.select(p1, p2, body)
        if ins == 0xB0:
            return self.read_binary((p1 << 8) | p2, body)
        return INS_NOT_SUPPORTED

    def reader_command(self, ins: int, p1: int, p2: int) -> bytes:
        if ins != 0xCA:
            return INS_NOT_SUPPORTED
        if (p1, p2) != (0x00, 0x00) or not self.uid:
            return FUNC_NOT_SUPPORTED
        return self.uid + OK

    def select(self, p1: int, p2: int, body: bytes) -> bytes:
        if not body or len(body) < 1 + body[0]:
            return WRONG_LENGTH
        name = body[1 : 1 + body[0]]
        if p1 == 0x04:
            self.app_selected = name == self.aid
            self.current = None
            return OK if self.app_selected else FILE_NOT_FOUND
        if p1 == 0x02 and p2 == 0x0C:
            if self.app_selected and name in self.files:
                self.current = name
                return OK
            return FILE_NOT_FOUND
        return WRONG_P1P2

    def read_binary(self, offset: int, body: bytes) -> bytes:
        if self.current is None:
            return NO_EF_SELECTED
        data = self.files[self.current]
        if offset > len(data):
            return OFFSET_OUTSIDE
        wanted = (body[0] or 256) if body else 256
        return data[offset : offset + wanted] + OK


def parse_files(specs: list[str]) -> dict[bytes, bytes]:
    files: dict[bytes, bytes] = {}
    for spec in specs:
        fid, _, content = spec.partition("=")
        files[bytes.fromhex(fid)] = bytes.fromhex(content)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=35963)
    parser.add_argument("--uid", default="04A1B2C3D4E5F6", help="empty: FF CA gets 6A81")
    parser.add_argument("--aid", default="A0000000031010")
    parser.add_argument("--file", action="append", default=[], help="FID=HEX, repeatable")
    parser.add_argument("--die-on", default="")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    card = CitizenCardOS(
        bytes.fromhex(args.uid),
        bytes.fromhex(args.aid),
        parse_files(args.file),
        bytes.fromhex(args.die_on),
    )
    # VirtualICC.__init__ builds a stock card (and needs PyCrypto) before it connects; the
    # loop in run() only needs the OS and the socket, so set those two up directly.
    icc = VirtualICC.__new__(VirtualICC)
    icc.os = card
    icc.type = "citizen"
    icc.host, icc.port = args.host, args.port
    icc.server_sock = None
    try:
        icc.sock = socket.create_connection((args.host, args.port), timeout=5)
    except OSError as error:
        sys.exit(f"vicc_citizen_card: cannot reach vpcd at {args.host}:{args.port}: {error}")
    icc.sock.settimeout(None)
    print("connected", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        icc.run()


if __name__ == "__main__":
    main()
