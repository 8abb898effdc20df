"""A real PC/SC stack for driver tests: pcscd with the vpcd virtual reader, and a card.

vpcd (Debian vsmartcard-vpcd, /etc/reader.conf.d/vpcd) is a reader driver inside pcscd
that listens on TCP 35963 for slot 0 ("Virtual PCD 00 00") and 35964 for slot 1. A card
is a process that connects to that port: while it is connected the reader holds a card,
when it exits the card is gone. So ``insert`` starts the emulator and ``remove`` stops it,
exactly as putting a card on the reader and taking it away.

The emulator is ``tests/vicc_citizen_card.py`` (a contactless citizen card on
virtualsmartcard's VirtualICC loop) or Debian's stock ``vicc`` (``kind="iso7816"``),
both run by Debian's /usr/bin/python3 with virtualsmartcard on PYTHONPATH. Stock vicc
imports PyCrypto's ``Crypto``; Debian ships PyCryptodome as ``Cryptodome``, so a shim
package named ``Crypto`` is written to the test's tmp dir, never into the system.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from smartcard.Exceptions import SmartcardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.scard import (
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_STATE_PRESENT,
    SCARD_STATE_UNAWARE,
    SCardEstablishContext,
    SCardGetStatusChange,
    SCardReleaseContext,
)
from smartcard.System import readers

SYSTEM_PYTHON = "/usr/bin/python3"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VICC_PATH = Path("/usr/lib/python3/site-packages/virtualsmartcard")
CARD_SCRIPT = Path(__file__).with_name("vicc_citizen_card.py")
SLOT0 = "Virtual PCD 00 00"
VPCD_PORT = 35963
# pcscd polls a serial reader's card presence every 400 ms (PCSCLITE_STATUS_POLL_RATE). A card
# that dies inside a transmit is marked absent at once, but when the next card connects before
# that poll, vpcd hands the poll the new connection, pcscd sees "still present" and never
# reports the insertion. Measured here: a 0 s gap loses the new card, 0.3 s is enough. A card
# taken away while idle is seen gone by that poll itself, so ``remove`` needs no such gap.
SETTLE_S = 0.5
# A pcsc-lite call into a pcscd that stopped answering never returns, and no signal
# interrupts it: made on the test's own thread it would hang the test worker for good
# (pytest-timeout's alarm never gets its turn). So the kit asks pcscd from a daemon thread
# and gives up after this long, failing the test with what pcscd was asked.
PCSCD_ANSWER_S = 10.0
T = TypeVar("T")


def answer_of(ask: Callable[[], T], what: str) -> T:
    """``ask()`` on a daemon thread; AssertionError when pcscd is stuck."""
    outcome: list[tuple[T | None, BaseException | None]] = []

    def run() -> None:
        try:
            outcome.append((ask(), None))
        except BaseException as error:  # re-raised on the test's thread below
            outcome.append((None, error))

    thread = threading.Thread(target=run, name=f"pcscd {what}", daemon=True)
    thread.start()
    thread.join(PCSCD_ANSWER_S)
    if not outcome:
        raise AssertionError(f"pcscd did not answer {what} within {PCSCD_ANSWER_S:g} s: stuck")
    result, error = outcome[0]
    if error is not None:
        raise error
    return result  # type: ignore[return-value]


def require_system() -> None:
    """Fail (never skip) naming the Debian package that is missing."""
    needs = [
        (shutil.which("pcscd") is not None, "pcscd", "pcscd"),
        (VPCD_DRIVER.exists() and VPCD_CONF.exists(), str(VPCD_DRIVER), "vsmartcard-vpcd"),
        ((VICC_PATH / "virtualsmartcard").is_dir(), str(VICC_PATH), "python3-virtualsmartcard"),
        (Path(SYSTEM_PYTHON).exists(), SYSTEM_PYTHON, "python3"),
    ]
    for ok, what, package in needs:
        if not ok:
            pytest.fail(f"{what} is missing: install the Debian package {package}")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import Cryptodome"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.fail("Cryptodome is missing for /usr/bin/python3: install python3-pycryptodome")


def reader_names() -> list[str] | None:
    """Reader names, or None when pcscd does not run (AssertionError when it is stuck)."""

    def ask() -> list[str] | None:
        try:
            return [str(reader) for reader in readers()]
        except (SmartcardException, BaseSCardException):
            return None

    return answer_of(ask, "the reader list")


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def vpcd_port_free() -> bool:
    """Whether vpcd could listen on its port now. It binds without SO_REUSEADDR, so for a
    minute after a pcscd stopped with a card connected (TIME_WAIT on the port) a new
    pcscd would start with no reader at all."""
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", VPCD_PORT))
        except OSError:
            return False
    return True


def card_present(reader: str) -> bool:
    def ask() -> bool:
        hresult, context = SCardEstablishContext(SCARD_SCOPE_USER)
        if hresult != SCARD_S_SUCCESS:
            return False
        try:
            hresult, states = SCardGetStatusChange(context, 0, [(reader, SCARD_STATE_UNAWARE)])
            return hresult == SCARD_S_SUCCESS and bool(states[0][1] & SCARD_STATE_PRESENT)
        finally:
            SCardReleaseContext(context)

    return answer_of(ask, f"whether a card is in {reader}")


class Pcscd:
    """The machine's pcscd when one runs, else one started here (and stopped by ``stop``)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "pcscd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        if reader_names() is None:
            wait_until(vpcd_port_free, 75, f"port {VPCD_PORT} to be free for vpcd")
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    ["pcscd", "--foreground", "--apdu"], stdout=log, stderr=subprocess.STDOUT
                )
        try:
            wait_until(lambda: SLOT0 in (reader_names() or []), 5, f"pcscd to list {SLOT0}")
        except AssertionError:
            self.stop()
            raise AssertionError(
                f"pcscd runs but shows no {SLOT0!r} reader (readers: {reader_names()}); "
                f"is vsmartcard-vpcd's {VPCD_CONF} loaded? log: {self.log_path}"
            ) from None

    def revive_if_stuck(self) -> None:
        try:
            reader_names()
        except AssertionError as stuck:
            if self.process is None:
                raise AssertionError(f"the machine's own pcscd is stuck: {stuck}") from None
            self.process.kill()
            self.process.wait()
            self.process = None
            self.start()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class VirtualCard:
    """A card in slot 0 of vpcd for as long as its emulator process runs."""

    def __init__(
        self,
        work_dir: Path,
        *,
        kind: str = "citizen",
        uid: str = "04A1B2C3D4E5F6",
        aid: str = "A0000000031010",
        files: dict[str, bytes] | None = None,
        die_on: str = "",
    ) -> None:
        self.work_dir = work_dir
        self.kind = kind
        self.uid, self.aid, self.die_on = uid, aid, die_on
        self.files = files or {}
        self.log_path = work_dir / f"vicc-{kind}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.kind == "citizen":
            env["PYTHONPATH"] = str(VICC_PATH)
            command = [SYSTEM_PYTHON, str(CARD_SCRIPT), "--port", str(VPCD_PORT)]
            command += ["--uid", self.uid, "--aid", self.aid, "-v"]
            for fid, content in self.files.items():
                command += ["--file", f"{fid}={content.hex()}"]
            if self.die_on:
                command += ["--die-on", self.die_on]
        else:
            shim = self.work_dir / "crypto-shim" / "Crypto"
            shim.mkdir(parents=True, exist_ok=True)
            (shim / "__init__.py").write_text(
                "import sys\nimport Cryptodome\nsys.modules[__name__] = Cryptodome\n"
            )
            env["PYTHONPATH"] = f"{shim.parent}:{VICC_PATH}"
            command = [SYSTEM_PYTHON, "/usr/bin/vicc", "-t", self.kind, "-P", str(VPCD_PORT)]
            command += ["-vvv"]
        env.pop("PYTHONHOME", None)
        return command, env

    last_left = 0.0

    @property
    def inserted(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def insert(self, wait: bool = True) -> None:
        if self.inserted:
            return
        assert not card_present(SLOT0), f"another card is already in {SLOT0}"
        time.sleep(max(0.0, VirtualCard.last_left + SETTLE_S - time.monotonic()))
        command, env = self._command()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work_dir
            )
        if wait:
            wait_until(lambda: card_present(SLOT0) or not self.inserted, 5, "the card")
            assert self.inserted, f"card emulator exited, see {self.log_path}"

    def remove(self, wait: bool = True) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
            else:
                # It died inside a transmit (SETTLE_S): the next card has to wait a poll.
                VirtualCard.last_left = time.monotonic()
            process.wait(timeout=5)
        if wait:
            wait_until(lambda: not card_present(SLOT0), 5, "the card to leave the reader")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
