"""The announcer (D13): spoken forms, espeak-ng and clip synthesis, one-at-a-time playing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.announcer import (
    Announcer,
    CallAnnouncement,
    ClipSynth,
    CommandPlayer,
    EspeakSynth,
    Unit,
    cardinal,
    english_ssml,
    place_number,
    read_wav,
    render,
    spelled,
    to_pinyin,
    wav_duration,
    window_number,
)
from drivers.errors import DriverError
from drivers.simulators.announcer import (
    RecordingSink,
    ToneSynth,
    digest,
    fake_player,
    tone,
)

CALL = "请A013号到4号窗口办理"


def pinyin_of(units: Sequence[Unit]) -> str:
    return " ".join(u.pinyin for u in units)


# --- call texts ---------------------------------------------------------------------


def test_zh_template_renders_the_hall_call_text() -> None:
    call = CallAnnouncement(number="A013", window_name="4号窗口")
    assert render(call, "zh") == CALL


def test_en_template_uses_the_window_number_not_its_chinese_name() -> None:
    call = CallAnnouncement(number="K020", window_name="12A号窗口 发票")
    assert render(call, "en-GB") == "Ticket K020, please go to window 12A."


def test_templates_are_configurable_per_language() -> None:
    call = CallAnnouncement(number="B002", window_name="7号窗口", service_name="发票")
    templates = {"zh": "请{number}号到{window}办理{service}"}
    assert render(call, "zh", templates) == "请B002号到7号窗口办理发票"


def test_unknown_language_or_field_is_a_clear_error() -> None:
    call = CallAnnouncement(number="A013", window_name="4号窗口")
    with pytest.raises(ValueError, match="no call template for language 'fr'"):
        render(call, "fr")
    with pytest.raises(ValueError, match="not usable"):
        render(call, "zh", {"zh": "请{ticket}号"})


def test_window_number_is_the_part_before_hao() -> None:
    assert window_number("12A号窗口 发票") == "12A"
    assert window_number("4 号窗口") == "4"
    assert window_number("综合窗口") == "综合窗口"


# --- spoken forms -------------------------------------------------------------------


def test_typical_call_text_pinyin() -> None:
    assert to_pinyin(CALL) == (
        "qing3 A ling2 yi1 san1 hao4 dao4 si4 hao4 chuang1 kou3 ban4 li3")


def test_window_with_letter_is_numeral_then_letter() -> None:
    assert to_pinyin("请B102号到12A号窗口办理") == (
        "qing3 B yi1 ling2 er4 hao4 dao4 shi2 er4 A hao4 chuang1 kou3 ban4 li3")


def test_pure_digit_ticket_is_read_digit_by_digit_with_yi1() -> None:
    assert to_pinyin("请1011号到20号窗口") == (
        "qing3 yi1 ling2 yi1 yi1 hao4 dao4 er4 shi2 hao4 chuang1 kou3")


def test_window_range_and_words_between_hao_and_window() -> None:
    assert to_pinyin("请到一楼A区 4-6 号商事登记窗口") == (
        "qing3 dao4 yi1 lou2 A qu1 si4 dao4 liu4 hao4 shang1 shi4 deng1 ji4 chuang1 kou3")


def test_heteronyms_follow_phrases() -> None:
    assert to_pinyin("银行业务") == "yin2 hang2 ye4 wu4"
    assert to_pinyin("行政审批") == "xing2 zheng4 shen3 pi1"
    assert to_pinyin("提前还款") == "ti2 qian2 huan2 kuan3"
    assert to_pinyin("过号请重新取号") == "guo4 hao4 qing3 chong2 xin1 qu3 hao4"


def test_punctuation_becomes_one_pause_and_full_width_is_normalised() -> None:
    assert to_pinyin("请Ａ０１３号，，到4号窗口。") == (
        "qing3 A ling2 yi1 san1 hao4, dao4 si4 hao4 chuang1 kou3")


def test_short_plain_number_is_a_numeral() -> None:
    assert to_pinyin("请等候15分钟") == "qing3 deng3 hou4 shi2 wu3 fen1 zhong1"


def test_ticket_is_spelled() -> None:
    assert pinyin_of(spelled("A013")) == "A ling2 yi1 san1"
    assert pinyin_of(spelled("z100")) == "Z yi1 ling2 ling2"


@pytest.mark.parametrize(("n", "han", "pinyin"), [
    (0, "0", "ling2"),
    (4, "4", "si4"),
    (10, "十", "shi2"),
    (12, "十2", "shi2 er4"),
    (20, "2十", "er4 shi2"),
    (21, "2十1", "er4 shi2 yi1"),
    (100, "1百", "yi4 bai3"),
    (105, "1百05", "yi4 bai3 ling2 wu3"),
    (110, "1百1十", "yi4 bai3 yi1 shi2"),
    (1050, "1千05十", "yi4 qian1 ling2 wu3 shi2"),
    (2000, "两千", "liang3 qian1"),
])
def test_cardinal_numerals(n: int, han: str, pinyin: str) -> None:
    units = cardinal(n)
    assert "".join(u.token for u in units) == han
    assert pinyin_of(units) == pinyin


def test_place_number_with_leading_zero_is_spelled() -> None:
    assert pinyin_of(place_number("05")) == "ling2 wu3"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.text(st.sampled_from("请号到窗口办理楼区一二AbZ0123456789-，。 "),
                                      max_size=40))
def test_any_text_gives_only_syllables_letters_and_pauses(text: str) -> None:
    spoken = to_pinyin(text)
    for word in spoken.split():
        assert re.fullmatch(r"(?:[a-z]+[1-5]|[A-Z]),?", word), (text, spoken)


def test_english_ssml_spells_tickets_and_escapes_markup() -> None:
    assert english_ssml("Ticket A013 & <b>") == (
        '<speak>Ticket <say-as interpret-as="characters">A013</say-as> &amp; &lt;b&gt;</speak>')


# --- espeak-ng ----------------------------------------------------------------------


async def test_espeak_mandarin_call_is_a_plausible_wav(tmp_path: Path) -> None:
    wav = await EspeakSynth().synthesize(CALL, "zh")
    fmt, frames = read_wav(wav)
    assert (fmt.channels, fmt.sample_width) == (1, 2)
    assert frames.strip(b"\0"), "all silence"
    seconds = wav_duration(wav)
    assert 1.5 <= seconds <= 8.0
    path = tmp_path / "call.wav"
    path.write_bytes(wav)
    sox = subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True,
                         check=True)
    assert float(sox.stdout) == pytest.approx(seconds, abs=0.001)


async def test_espeak_english_call_is_a_plausible_wav() -> None:
    text = render(CallAnnouncement("A013", "4号窗口"), "en")
    seconds = wav_duration(await EspeakSynth().synthesize(text, "en"))
    assert 1.5 <= seconds <= 8.0


def test_espeak_command_reads_pinyin_for_zh_and_ssml_for_en() -> None:
    synth = EspeakSynth(speed_wpm=150)
    args, spoken = synth.command(CALL, "zh-CN")
    assert args[:3] == ["espeak-ng", "-v", "cmn-latn-pinyin"] and "-s" in args
    assert spoken.startswith("qing3 A ling2")
    args, spoken = synth.command("Ticket A013", "en")
    assert args[2] == "en" and "-m" in args and "<say-as" in spoken


async def test_missing_espeak_is_a_clear_driver_error(tmp_path: Path) -> None:
    synth = EspeakSynth(executable=str(tmp_path / "espeak-ng"))
    with pytest.raises(DriverError, match="espeak-ng not found"):
        await synth.synthesize(CALL, "zh")


async def test_hung_espeak_times_out(tmp_path: Path) -> None:
    script = tmp_path / "espeak-ng"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    with pytest.raises(DriverError, match="timed out"):
        await EspeakSynth(executable=str(script), timeout=0.3).synthesize(CALL, "zh")


# --- recorded clips -----------------------------------------------------------------


def make_clips(directory: Path, lengths: dict[str, float], rate: int = 16000) -> None:
    for name, seconds in lengths.items():
        subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16",
                        str(directory / f"{name}.wav"), "synth", str(seconds), "sine", "440"],
                       check=True)


CLIPS = {"请": 0.21, "A": 0.12, "0": 0.13, "1": 0.14, "3": 0.15, "号": 0.16, "到": 0.17,
         "4": 0.18, "窗口": 0.31, "办理": 0.33}


async def test_clips_concatenate_to_the_sum_of_their_durations(tmp_path: Path) -> None:
    make_clips(tmp_path, CLIPS)
    synth = ClipSynth(tmp_path)
    names = synth.clip_names(CALL)
    assert names == ["请", "A", "0", "1", "3", "号", "到", "4", "号", "窗口", "办理"]
    expected = sum(CLIPS[n] for n in names)
    assert wav_duration(await synth.synthesize(CALL, "zh")) == pytest.approx(expected, abs=0.001)


async def test_missing_clip_is_named(tmp_path: Path) -> None:
    make_clips(tmp_path, {k: v for k, v in CLIPS.items() if k != "窗口"})
    with pytest.raises(DriverError, match=r"missing clip '窗'.*窗\.wav"):
        await ClipSynth(tmp_path).synthesize(CALL, "zh")


async def test_clips_of_different_sample_rates_are_refused(tmp_path: Path) -> None:
    make_clips(tmp_path, CLIPS)
    make_clips(tmp_path, {"号": 0.16}, rate=22050)
    with pytest.raises(DriverError, match=r"号\.wav.*one sample format"):
        await ClipSynth(tmp_path).synthesize(CALL, "zh")


# --- the announcer ------------------------------------------------------------------


def played_log(log: Path) -> list[tuple[float, float, str, int]]:
    lines = log.read_text().split("\n")
    starts = [float(line.split()[1]) for line in lines if line.startswith("start")]
    ends = [line.split() for line in lines if line.startswith("end")]
    return [(s, float(e[1]), e[2], int(e[3])) for s, e in zip(starts, ends, strict=True)]


async def test_queued_announcements_play_in_order_one_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "played.log"
    synth = ToneSynth()
    texts = ["请A001号到1号窗口办理", "请A002号到2号窗口办理", "请A003号到3号窗口办理"]
    async with Announcer(synth, fake_player(tmp_path, log, hold=0.1)) as announcer:
        for text in texts:
            await announcer.say(text)
        await asyncio.wait_for(announcer.wait_idle(), 10)
    plays = played_log(log)
    assert [p[2] for p in plays] == [digest(await synth.synthesize(t, "zh")) for t in texts]
    for (_, end, _, _), (start, _, _, _) in itertools.pairwise(plays):
        assert start >= end, "two announcements overlapped"


async def test_failing_player_is_logged_and_the_next_one_plays(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "played.log"
    caplog.set_level(logging.ERROR, logger="drivers.announcer")
    async with Announcer(ToneSynth(), fake_player(tmp_path, log, fail_on={2})) as announcer:
        for text in ("请A001号到1号窗口办理", "请A002号到2号窗口办理", "请A003号到3号窗口办理"):
            await announcer.say(text)
        await asyncio.wait_for(announcer.wait_idle(), 10)
    assert [p[3] for p in played_log(log)] == [1, 2, 3]
    failures = [r.getMessage() for r in caplog.records]
    assert len(failures) == 1 and "A002" in failures[0] and "exited 3" in failures[0]


async def test_player_gets_a_file_where_asked(tmp_path: Path) -> None:
    out = tmp_path / "copy.wav"
    player = CommandPlayer([sys.executable, "-c",
                            f"import shutil, sys; shutil.copy(sys.argv[1], {str(out)!r})",
                            "{file}"])
    wav = tone(0.1, 440)
    await player.play(wav)
    assert out.read_bytes() == wav


async def test_missing_player_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="cannot start"):
        await CommandPlayer([str(tmp_path / "aplay")]).play(tone(0.05, 440))


async def test_recall_still_waiting_is_coalesced() -> None:
    sink = RecordingSink(hold=0.05)
    synth = ToneSynth()
    async with Announcer(synth, None, sink=sink) as announcer:
        await announcer.say("请A001号到1号窗口办理")
        await sink.wait_started(1)
        await announcer.say("请A002号到2号窗口办理")
        await announcer.say("请A003号到3号窗口办理")
        await announcer.say("请A002号到2号窗口办理")
        assert announcer.waiting == ("请A002号到2号窗口办理", "请A003号到3号窗口办理")
        await asyncio.wait_for(announcer.wait_idle(), 5)
    assert [t for t, _ in synth.calls] == [
        "请A001号到1号窗口办理", "请A002号到2号窗口办理", "请A003号到3号窗口办理"]


async def test_recall_of_the_one_playing_is_said_again() -> None:
    sink = RecordingSink(hold=0.05)
    async with Announcer(ToneSynth(), None, sink=sink) as announcer:
        await announcer.say(CALL)
        await sink.wait_started(1)
        await announcer.say(CALL)
        await asyncio.wait_for(announcer.wait_idle(), 5)
    assert len(sink.played) == 2


async def test_chime_then_speech_repeated(tmp_path: Path) -> None:
    chime = tmp_path / "chime.wav"
    chime.write_bytes(tone(0.05, 880))
    sink = RecordingSink()
    synth = ToneSynth()
    async with Announcer(synth, None, chime=chime, repeat=2, gap=0.0, sink=sink) as announcer:
        await announcer.say(CALL)
        await asyncio.wait_for(announcer.wait_idle(), 5)
    speech = await synth.synthesize(CALL, "zh")
    assert [p.wav for p in sink.played] == [chime.read_bytes(), speech, speech]


async def test_failing_synth_is_logged_and_the_next_one_plays(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    synth = ToneSynth(fail_on={"bad"})
    caplog.set_level(logging.ERROR, logger="drivers.announcer")
    async with Announcer(synth, None, sink=sink) as announcer:
        await announcer.say("bad")
        await announcer.say(CALL)
        await asyncio.wait_for(announcer.wait_idle(), 5)
    assert [p.wav for p in sink.played] == [await synth.synthesize(CALL, "zh")]
    assert any("told to fail" in r.getMessage() for r in caplog.records)


async def test_closed_announcer_refuses_more() -> None:
    announcer = Announcer(ToneSynth(), None, sink=RecordingSink())
    await announcer.aclose()
    with pytest.raises(DriverError, match="closed"):
        await announcer.say(CALL)
