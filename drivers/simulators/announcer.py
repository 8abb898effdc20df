"""Stand-ins for the announcer's speech engine and loudspeaker, for tests and a headless demo.

``ToneSynth`` makes a deterministic WAV per text (no espeak-ng needed), ``RecordingSink``
is a loudspeaker that remembers what it played and when, and ``fake_player`` writes a
player program that behaves like ``aplay -q`` on stdin (reads the whole WAV, takes its
time, exits 0) while logging start and end times, so a test sees real subprocesses not
overlapping. WAVs are written with the Python ``wave`` module.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from drivers.announcer import WavFormat, write_wav
from drivers.errors import DriverError

FORMAT = WavFormat(channels=1, sample_width=2, frame_rate=16000)


def tone(seconds: float, frequency: float, fmt: WavFormat = FORMAT) -> bytes:
    """A sine tone as a 16-bit WAV."""
    count = round(seconds * fmt.frame_rate)
    samples = (round(8000 * math.sin(2 * math.pi * frequency * i / fmt.frame_rate))
               for i in range(count))
    frame = b"".join(struct.pack("<h", s) * fmt.channels for s in samples)
    return write_wav(fmt, frame)


def digest(wav: bytes) -> str:
    """Short name of a WAV, as the fake player logs it."""
    return hashlib.sha256(wav).hexdigest()[:12]


@dataclass
class ToneSynth:
    """A synth whose WAV depends only on the text: 20 ms per character at a pitch taken
    from the text's hash. ``fail_on`` texts raise, like a voice that is missing."""

    seconds_per_char: float = 0.02
    fail_on: Collection[str] = ()
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def synthesize(self, text: str, language: str) -> bytes:
        self.calls.append((text, language))
        if text in self.fail_on:
            raise DriverError(f"ToneSynth told to fail on {text!r}")
        pitch = 300 + int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 600
        return tone(max(1, len(text)) * self.seconds_per_char, pitch)


@dataclass(frozen=True)
class Played:
    wav: bytes
    start: float
    end: float


@dataclass
class RecordingSink:
    """A loudspeaker that takes ``hold`` seconds per WAV and remembers each one."""

    hold: float = 0.0
    played: list[Played] = field(default_factory=list)
    _started: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def play(self, wav: bytes) -> None:
        start = time.monotonic()
        self._started += 1
        self._changed.set()
        await asyncio.sleep(self.hold)
        self.played.append(Played(wav, start, time.monotonic()))

    async def wait_started(self, count: int) -> None:
        """Return once ``count`` WAVs have begun playing."""
        while self._started < count:
            self._changed.clear()
            await self._changed.wait()


_PLAYER = '''\
import sys, time
log, hold = sys.argv[1], float(sys.argv[2])
fail = {int(n) for n in sys.argv[3].split(",") if n}
with open(log, "a") as f:
    f.write(f"start {time.monotonic()!r}\\n")
data = sys.stdin.buffer.read()
with open(log) as f:
    index = sum(1 for line in f if line.startswith("start"))
import hashlib
name = hashlib.sha256(data).hexdigest()[:12]
time.sleep(hold)
with open(log, "a") as f:
    f.write(f"end {time.monotonic()!r} {name} {index}\\n")
if index in fail:
    sys.stderr.write(f"fake player: told to fail on play {index}\\n")
    sys.exit(3)
'''


def fake_player(directory: Path, log: Path, *, hold: float = 0.05,
                fail_on: Collection[int] = ()) -> tuple[str, ...]:
    """A player command line; play number ``n`` (1-based) in ``fail_on`` exits 3.

    ``log`` gets ``start <t>`` and ``end <t> <digest> <n>`` lines (``time.monotonic``,
    which is one clock for every process on Linux)."""
    script = directory / "fake_player.py"
    script.write_text(_PLAYER)
    return (sys.executable, str(script), str(log), str(hold),
            ",".join(str(n) for n in sorted(fail_on)))
