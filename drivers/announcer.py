"""The announcer (D13): call texts from templates, spoken in Mandarin or English.

The hall sends ``announcer.say`` (``devices.messages.Announce``, docs/mqtt.md "Announcer")
with a rendered text such as ``请A013号到4号窗口办理``. This module turns that text into a
WAV and plays the WAVs one at a time.

Sources followed:

- espeak-ng(1) (1.51): ``-v``, ``-m`` (SSML), ``--stdin``, ``--stdout``. Measured on
  espeak-ng 1.51: the ``cmn`` voice reads many Han characters (请, 号, 到) as
  English-read pinyin, so Mandarin goes through ``cmn-latn-pinyin`` fed tone-numbered
  pinyin from pypinyin. That voice reads a lone capital letter with its own
  Chinese-style letter names (``espeak-ng -v cmn-latn-pinyin -q -x "A B C"`` gives
  ``'ei51 p'i51 s'ei55``), which is how a hall in China says a ticket prefix, so capital
  letters are passed through as they are. Switching voices inside SSML
  (``<voice name="en">A</voice>``) was measured too and rejected: espeak-ng 1.51 keeps the
  English voice for the rest of the sentence. espeak-ng applies the third-tone sandhi
  itself (``qing3 ni3`` comes out 35 214) but not the one of 一, which ``to_pinyin`` does
  for the numbers it writes out. ``--stdout`` leaves the RIFF sizes at 0x7ffff000 (it
  cannot seek a pipe), so the header is rewritten from the data actually received.
- espeak-ng docs/ssml.md: ``<say-as interpret-as="characters">`` spells an English ticket
  number (``A013`` → "A zero one three"; plain "A 0 1 3" reads the A as the article).
- pypinyin 0.55: ``lazy_pinyin(..., style=Style.TONE3, neutral_tone_with_five=True)``;
  its phrase dictionary settles heteronyms (银行 hang2, 行政 xing2, 呼号 hao2, 号 hao4).
- Python ``wave``: clip concatenation and durations.

How a run of ASCII letters and digits is read in Mandarin (``speech_units``):

- before a place word (号窗口, 窗口, 柜台, 楼, 层, 区, 室, or 号…窗口 as in
  ``4-6 号商事登记窗口``): digits as a Chinese numeral, letters by name
  (``12A号窗口`` → shi2 er4 A hao4 chuang1 kou3);
- otherwise a run with a letter, a leading zero or three digits or more is a ticket or a
  code, read one character at a time, 1 as yi1 (``A013`` → A ling2 yi1 san1);
- other short numbers are numerals (``等候5分钟``, ``15人``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import tempfile
import unicodedata
import wave
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

from pypinyin import Style, lazy_pinyin

from drivers.errors import DriverError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Call texts

DEFAULT_TEMPLATES: Mapping[str, str] = {
    "zh": "请{number}号到{window}办理",
    "en": "Ticket {number}, please go to window {window}.",
}
"""Fields: ``number``; ``window`` (the window name in Chinese, its number in any other
language); ``window_name`` (always the name as configured); ``service`` (may be empty)."""


@dataclass(frozen=True)
class CallAnnouncement:
    """One call of a ticket to a window, before it is put into words."""

    number: str
    window_name: str
    service_name: str | None = None


_WINDOW_NUMBER = re.compile(r"\s*([0-9A-Za-z]+(?:\s*-\s*[0-9A-Za-z]+)?)\s*号")


def primary_language(language: str) -> str:
    """``zh-CN``, ``zh_Hans`` and ``cmn`` all mean the Mandarin pipeline."""
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return "zh" if primary in ("zh", "cmn") else primary


def window_number(window_name: str) -> str:
    """The number part of a window name (``12A号窗口 发票`` → ``12A``), for languages
    that cannot say 号窗口; the whole name when it has no number."""
    match = _WINDOW_NUMBER.match(window_name)
    return match.group(1).replace(" ", "") if match else window_name.strip()


def render(
    call: CallAnnouncement,
    language: str,
    templates: Mapping[str, str] = DEFAULT_TEMPLATES,
) -> str:
    """The call text for ``language`` (exact tag first, then its primary subtag)."""
    template = templates.get(language) or templates.get(primary_language(language))
    if template is None:
        raise ValueError(f"no call template for language {language!r}")
    chinese = primary_language(language) == "zh"
    fields = {
        "number": call.number,
        "window": call.window_name if chinese else window_number(call.window_name),
        "window_name": call.window_name,
        "service": call.service_name or "",
    }
    try:
        return template.format_map(fields).strip()
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"call template {template!r} is not usable: {exc!r}") from exc


# ---------------------------------------------------------------------------------------
# Mandarin: text -> speech units -> pinyin


@dataclass(frozen=True)
class Unit:
    """One spoken piece: ``token`` names its recorded clip (``A``, ``0``, ``十``, ``号``),
    ``pinyin`` is what espeak-ng reads; a pause has ``pinyin == ","``."""

    token: str
    pinyin: str

    @property
    def is_pause(self) -> bool:
        return self.pinyin == ","


PAUSE = Unit(",", ",")
DIGIT_PINYIN = ("ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1", "ba1", "jiu3")
HAN_DIGITS = "零一二三四五六七八九"

# Words a service hall says that pypinyin 0.55 reads wrongly (it gives 还款 hai2 kuan3,
# in 提前还款 too); checked against some 50 hall words (办理, 银行, 行业, 重新, 会计...).
PHRASE_PINYIN: Mapping[str, tuple[str, ...]] = {
    "还款": ("huan2", "kuan3"),
}

_PLACE = re.compile(
    r"\s*(?:号窗口|号窗|窗口|号柜台|柜台|号台|号楼|楼|层|区|室"
    r"|号(?:(?![到请去至往前])[\u4e00-\u9fff]){1,8}窗口)"
)
_TOKEN = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<alnum>[A-Za-z0-9]+)"
    r"|(?P<dash>[-\u2013~])"  # NFKC made a full-width tilde a ~
    r"|(?P<pause>[,.;:!?、。，；：！？]+)"
    r"|(?P<space>\s+)"
)
_SYLLABLE = re.compile(r"[a-z]+[1-5]")


def cardinal(n: int) -> list[Unit]:
    """A number 0-9999 as a Chinese numeral (12 → 十二, 105 → 一百零五, 2000 → 两千).

    一 is yi4 before 百 and 千 (tone sandhi); elsewhere yi1."""
    if not 0 <= n <= 9999:
        raise ValueError(f"{n} is outside 0-9999")
    if n == 0:
        return [Unit("0", "ling2")]
    if 10 <= n < 20:
        return [Unit("十", "shi2")] + ([_digit(n - 10)] if n > 10 else [])
    units: list[Unit] = []
    zero_pending = False
    for value, name, pinyin in ((1000, "千", "qian1"), (100, "百", "bai3"), (10, "十", "shi2")):
        digit = n // value % 10
        if digit == 0:
            zero_pending = bool(units)
            continue
        if zero_pending:
            units.append(Unit("0", "ling2"))
            zero_pending = False
        if digit == 2 and value == 1000:
            units.append(Unit("两", "liang3"))
        elif digit == 1 and value >= 100:
            units.append(Unit("1", "yi4"))
        else:
            units.append(_digit(digit))
        units.append(Unit(name, pinyin))
    if n % 10:
        if zero_pending:
            units.append(Unit("0", "ling2"))
        units.append(_digit(n % 10))
    return units


def _digit(d: int) -> Unit:
    return Unit(str(d), DIGIT_PINYIN[d])


def _letter(c: str) -> Unit:
    upper = c.upper()
    return Unit(upper, upper)


def spelled(code: str) -> list[Unit]:
    """A ticket number read one character at a time (A013 → A ling2 yi1 san1)."""
    return [_digit(int(c)) if c.isdigit() else _letter(c) for c in code]


def place_number(code: str) -> list[Unit]:
    """A window or floor number: digits as a numeral, letters by name (12A → 十二 A)."""
    units: list[Unit] = []
    for run in re.findall(r"\d+|[A-Za-z]+", code):
        if run.isdigit() and len(run) <= 4 and not (len(run) > 1 and run[0] == "0"):
            units.extend(cardinal(int(run)))
        else:
            units.extend(spelled(run))
    return units


def _is_code(run: str) -> bool:
    return not run.isdigit() or (run[0] == "0" and len(run) > 1) or len(run) >= 3


def _han_units(run: str) -> list[Unit]:
    units: list[Unit] = []
    for part in re.split("(" + "|".join(map(re.escape, PHRASE_PINYIN)) + ")", run):
        if not part:
            continue
        if part in PHRASE_PINYIN:
            units.extend(Unit(c, p) for c, p in zip(part, PHRASE_PINYIN[part], strict=True))
            continue
        syllables = lazy_pinyin(part, style=Style.TONE3, neutral_tone_with_five=True)
        if len(syllables) != len(part):
            log.warning("pypinyin gave %d syllables for %r; reading it char by char",
                        len(syllables), part)
            syllables = [lazy_pinyin(c, style=Style.TONE3, neutral_tone_with_five=True)[0]
                         for c in part]
        for char, syllable in zip(part, syllables, strict=True):
            if _SYLLABLE.fullmatch(syllable):
                units.append(Unit(char, syllable))
            else:
                log.warning("no pinyin for %r; skipped", char)
    return units


def speech_units(text: str) -> list[Unit]:
    """What a Mandarin call text says, piece by piece (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    tokens = [(m.lastgroup or "", m.group(), m.end()) for m in _TOKEN.finditer(text)]
    units: list[Unit] = []
    i = 0
    while i < len(tokens):
        kind, value, _ = tokens[i]
        if kind == "han":
            units.extend(_han_units(value))
        elif kind == "pause":
            if units and not units[-1].is_pause:
                units.append(PAUSE)
        elif kind == "alnum":
            group = [value]
            j = i + 1
            while (j + 1 < len(tokens) and tokens[j][0] == "dash"
                   and tokens[j + 1][0] == "alnum"):
                group.append(tokens[j + 1][1])
                j += 2
            after = tokens[j - 1][2]
            place = _PLACE.match(text, after) is not None
            for k, run in enumerate(group):
                if k:
                    units.append(Unit("到", "dao4"))
                if place or not _is_code(run):
                    units.extend(place_number(run))
                else:
                    units.extend(spelled(run))
            i = j
            continue
        i += 1
    while units and units[-1].is_pause:
        units.pop()
    return units


def to_pinyin(text: str) -> str:
    """Tone-numbered pinyin for espeak-ng's ``cmn-latn-pinyin`` voice, capital letters
    left for its letter names: ``请A013号到4号窗口办理`` →
    ``qing3 A ling2 yi1 san1 hao4 dao4 si4 hao4 chuang1 kou3 ban4 li3``."""
    return " ".join(u.pinyin for u in speech_units(text)).replace(" ,", ",")


_ENGLISH_CODE = re.compile(r"\b(?:[A-Za-z]{1,3}\d+|0\d+)\b")


def english_ssml(text: str) -> str:
    """SSML for espeak-ng's English voice, ticket numbers spelled out."""
    parts: list[str] = []
    last = 0
    for match in _ENGLISH_CODE.finditer(text):
        parts.append(escape(text[last:match.start()]))
        parts.append(f'<say-as interpret-as="characters">{escape(match.group())}</say-as>')
        last = match.end()
    parts.append(escape(text[last:]))
    return "<speak>" + "".join(parts) + "</speak>"


# ---------------------------------------------------------------------------------------
# WAV helpers


@dataclass(frozen=True)
class WavFormat:
    channels: int
    sample_width: int
    frame_rate: int


def read_wav(data: bytes, *, trust_sizes: bool = True) -> tuple[WavFormat, bytes]:
    """Format and frames; ``trust_sizes=False`` for a streamed WAV whose header sizes are
    placeholders (the frames are then whatever follows the header)."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            fmt = WavFormat(reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
            frames = reader.readframes(reader.getnframes() if trust_sizes else 1 << 31)
    except (wave.Error, EOFError) as exc:
        raise DriverError(f"not a PCM WAV: {exc}") from exc
    frame_size = fmt.channels * fmt.sample_width
    return fmt, frames[: len(frames) - len(frames) % frame_size]


def write_wav(fmt: WavFormat, frames: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(fmt.channels)
        writer.setsampwidth(fmt.sample_width)
        writer.setframerate(fmt.frame_rate)
        writer.writeframes(frames)
    return out.getvalue()


def wav_duration(data: bytes) -> float:
    """Seconds of audio in a WAV."""
    fmt, frames = read_wav(data)
    return len(frames) / (fmt.channels * fmt.sample_width * fmt.frame_rate)


# ---------------------------------------------------------------------------------------
# Synthesizers


class Synth(Protocol):
    async def synthesize(self, text: str, language: str) -> bytes:
        """A complete WAV saying ``text``."""
        ...


class EspeakSynth:
    """espeak-ng in a subprocess: Mandarin through pinyin, English through SSML, any
    other language handed to the espeak-ng voice of that name as plain text."""

    def __init__(
        self,
        executable: str = "espeak-ng",
        *,
        voices: Mapping[str, str] | None = None,
        speed_wpm: int | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.executable = executable
        self.voices = dict(voices or {"zh": "cmn-latn-pinyin", "en": "en"})
        self.speed_wpm = speed_wpm
        self.timeout = timeout

    def command(self, text: str, language: str) -> tuple[list[str], str]:
        """The espeak-ng arguments and the text it reads on stdin."""
        primary = primary_language(language)
        voice = self.voices.get(language) or self.voices.get(primary) or language
        args = [self.executable, "-v", voice, "--stdin", "--stdout"]
        if self.speed_wpm is not None:
            args += ["-s", str(self.speed_wpm)]
        if primary == "zh":
            return args, to_pinyin(text)
        if primary == "en":
            return [*args, "-m"], english_ssml(text)
        return args, text

    async def synthesize(self, text: str, language: str) -> bytes:
        args, spoken = self.command(text, language)
        if not spoken.strip():
            raise DriverError(f"nothing to say in {text!r}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise DriverError(
                f"espeak-ng not found ({self.executable!r}); install the espeak-ng package "
                "or use ClipSynth") from exc
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(spoken.encode("utf-8")), self.timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise DriverError(f"espeak-ng timed out after {self.timeout} s on {text!r}") from exc
        if proc.returncode != 0:
            raise DriverError(
                f"espeak-ng exited {proc.returncode}: {err.decode(errors='replace').strip()}")
        fmt, frames = read_wav(out, trust_sizes=False)
        if not frames:
            raise DriverError(f"espeak-ng produced no audio for {text!r} (voice {args[2]!r})")
        return write_wav(fmt, frames)


class ClipSynth:
    """Recorded clips named by token (``0.wav``…``9.wav``, ``A.wav``, ``请.wav``,
    ``号.wav``, ``窗口.wav``…) joined into one WAV: a hall that wants a human voice.

    A Han word uses the longest clip that matches (``窗口.wav`` before ``窗.wav`` +
    ``口.wav``); a Han numeral falls back to the digit clip (二 → ``2.wav``). All clips must
    share one sample format. Only Mandarin texts are tokenised this way."""

    def __init__(self, directory: Path, *, pause: float = 0.15,
                 languages: Sequence[str] = ("zh",)) -> None:
        if not directory.is_dir():
            raise DriverError(f"clip directory {directory} does not exist")
        self.directory = directory
        self.pause = pause
        self.languages = tuple(languages)
        self.clips = {p.stem: p for p in sorted(directory.glob("*.wav"))}

    def clip_names(self, text: str) -> list[str]:
        """The clips that say ``text``, ``","`` for a pause; DriverError naming the first
        token without a clip."""
        units = speech_units(text)
        names: list[str] = []
        i = 0
        while i < len(units):
            unit = units[i]
            if unit.is_pause:
                names.append(",")
                i += 1
                continue
            for j in range(len(units), i, -1):
                word = "".join(u.token for u in units[i:j])
                if all(not u.is_pause for u in units[i:j]) and word in self.clips:
                    names.append(word)
                    i = j
                    break
            else:
                names.append(self._single(unit, text))
                i += 1
        return names

    def _single(self, unit: Unit, text: str) -> str:
        candidates = [unit.token, unit.token.lower()]
        if unit.token in HAN_DIGITS:
            candidates.append(str(HAN_DIGITS.index(unit.token)))
        for name in candidates:
            if name in self.clips:
                return name
        raise DriverError(
            f"missing clip {unit.token!r} ({unit.pinyin}) for {text!r}: record "
            f"{self.directory / (unit.token + '.wav')} or a word clip starting with it")

    async def synthesize(self, text: str, language: str) -> bytes:
        if primary_language(language) not in self.languages:
            raise DriverError(f"no clips for language {language!r} in {self.directory}")
        names = self.clip_names(text)
        if not names:
            raise DriverError(f"nothing to say in {text!r}")
        return await asyncio.to_thread(self._join, names)

    def _join(self, names: Sequence[str]) -> bytes:
        fmt: WavFormat | None = None
        first = ""
        pieces: list[bytes | None] = []
        for name in names:
            if name == ",":
                pieces.append(None)
                continue
            path = self.clips[name]
            try:
                clip_fmt, frames = read_wav(path.read_bytes())
            except (OSError, DriverError) as exc:
                raise DriverError(f"clip {path} unreadable: {exc}") from exc
            if fmt is None:
                fmt, first = clip_fmt, path.name
            elif clip_fmt != fmt:
                raise DriverError(
                    f"clip {path} is {clip_fmt}, but {first} is {fmt}; all clips must share "
                    "one sample format")
            pieces.append(frames)
        assert fmt is not None  # names held at least one clip: pauses never stand alone
        frame = fmt.channels * fmt.sample_width
        silence = bytes(round(self.pause * fmt.frame_rate) * frame)
        return write_wav(fmt, b"".join(silence if p is None else p for p in pieces))


# ---------------------------------------------------------------------------------------
# Playing


class AudioSink(Protocol):
    async def play(self, wav: bytes) -> None:
        """Return when the WAV has been heard."""
        ...


class DiscardSink:
    """A headless announcer: nothing to play on, so say what would have been played."""

    async def play(self, wav: bytes) -> None:
        log.info("no audio output; dropped %.2f s of audio", wav_duration(wav))


class CommandPlayer:
    """A player program (``aplay -q``, ``paplay``, ``play -q -``) fed the WAV on stdin, or
    as a temporary file wherever ``{file}`` appears among its arguments."""

    def __init__(self, command: Sequence[str], *, margin: float = 5.0) -> None:
        if not command:
            raise ValueError("empty player command")
        self.command = tuple(command)
        self.margin = margin

    async def play(self, wav: bytes) -> None:
        timeout = wav_duration(wav) + self.margin
        if "{file}" in self.command:
            fd, name = tempfile.mkstemp(prefix="announce-", suffix=".wav")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(wav)
                await self._run([name if a == "{file}" else a for a in self.command], None,
                                timeout)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(name)
        else:
            await self._run(list(self.command), wav, timeout)

    async def _run(self, args: list[str], stdin: bytes | None, timeout: float) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise DriverError(f"player {args[0]!r} cannot start: {exc}") from exc
        try:
            _, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise DriverError(f"player {args[0]!r} still running after {timeout:.1f} s") from exc
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise DriverError(
                f"player {args[0]!r} exited {proc.returncode}: "
                f"{err.decode(errors='replace').strip()[-300:]}")


@dataclass
class _Pending:
    key: str
    text: str
    language: str


class Announcer:
    """Says announcements one at a time, in the order asked.

    Nothing is dropped, but a recall of a call that is still waiting (same ``key``, by
    default the same text) updates the waiting one instead of queueing a second: the
    citizen hears it once, at its original place. A call already being spoken is queued
    again. A synthesis or player failure is logged and the next announcement goes on."""

    def __init__(
        self,
        synth: Synth,
        player: Sequence[str] | None = ("aplay", "-q"),
        chime: Path | None = None,
        repeat: int = 1,
        *,
        sink: AudioSink | None = None,
        gap: float = 0.4,
    ) -> None:
        if repeat < 1:
            raise ValueError("repeat must be at least 1")
        self.synth = synth
        self.output: AudioSink = (
            sink if sink is not None
            else CommandPlayer(player) if player is not None
            else DiscardSink())
        self.repeat = repeat
        self.gap = gap
        self.chime: bytes | None = None
        if chime is not None:
            try:
                self.chime = chime.read_bytes()
            except OSError as exc:
                raise DriverError(f"chime {chime} unreadable: {exc}") from exc
            wav_duration(self.chime)
        self._waiting: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def waiting(self) -> tuple[str, ...]:
        """Texts not yet started, in the order they will be said."""
        return tuple(p.text for p in self._waiting)

    async def say(self, text: str, language: str = "zh", *, key: str | None = None) -> None:
        """Queue an announcement and return at once."""
        if self._closed:
            raise DriverError("announcer is closed")
        key = text if key is None else key
        for pending in self._waiting:
            if pending.key == key:
                pending.text, pending.language = text, language
                log.info("recall of %r coalesced with the one still waiting", key)
                return
        self._waiting.append(_Pending(key, text, language))
        self._idle.clear()
        self._wake.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="announcer")

    async def wait_idle(self) -> None:
        """Return once everything queued has been said (or has failed)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def __aenter__(self) -> Announcer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            pending = self._waiting.popleft()
            try:
                await self._speak(pending)
            except DriverError as exc:
                log.error("announcement %r (%s) failed: %s", pending.text, pending.language, exc)
            except Exception:
                log.exception("announcement %r (%s) failed", pending.text, pending.language)

    async def _speak(self, pending: _Pending) -> None:
        wav = await self.synth.synthesize(pending.text, pending.language)
        if self.chime is not None:
            await self.output.play(self.chime)
        for i in range(self.repeat):
            if i:
                await asyncio.sleep(self.gap)
            await self.output.play(wav)


__all__ = [
    "DEFAULT_TEMPLATES",
    "Announcer",
    "AudioSink",
    "CallAnnouncement",
    "ClipSynth",
    "CommandPlayer",
    "DiscardSink",
    "EspeakSynth",
    "Synth",
    "Unit",
    "WavFormat",
    "cardinal",
    "english_ssml",
    "place_number",
    "primary_language",
    "read_wav",
    "render",
    "speech_units",
    "spelled",
    "to_pinyin",
    "wav_duration",
    "window_number",
    "write_wav",
]

