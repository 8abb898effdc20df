"""The device protocol on MQTT: topics, payload schemas and their documentation.

Everything here is pure: no broker, no database. The decoders face whatever a
device (or anyone on the hall's network) sends, so the fuzz tests hold them to
one promise: a typed message or a ``MessageError``, never another exception.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.messages import (
    COMMAND_TYPES,
    COMMANDS_BY_KIND,
    CREATING,
    DECODERS,
    DISPLAY_TYPES,
    EXAMPLES,
    MAX_MESSAGE_BYTES,
    REQUEST_TYPES,
    REQUESTS_BY_KIND,
    Announce,
    BoardDisplay,
    CallView,
    DeviceState,
    ErrorCode,
    EvaluationRequest,
    Health,
    Identity,
    MessageError,
    PositionView,
    PrintJob,
    Rate,
    Reply,
    TakeTicket,
    TicketPrint,
    WaitingView,
    WindowDisplay,
    decode_command,
    decode_display,
    decode_reply,
    decode_request,
    decode_state,
    decode_status,
    encode,
)
from devices.topics import (
    ID_PATTERN,
    Channel,
    DeviceKind,
    Topic,
    device_subscriptions,
    parse_topic,
    subscriptions,
    topic,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"
DECODE_ALL = [
    decode_status, decode_state, decode_request, decode_reply, decode_command, decode_display,
]
HALL_SENT = {Channel.STATUS, Channel.STATE, Channel.REPLY, Channel.CMD, Channel.DISPLAY}


def raw(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


def request(type_: str, **fields: Any) -> bytes:
    return raw({"v": 1, "type": type_, "id": "test-0001", **fields})


def refused(decode: Any, payload: Any) -> MessageError:
    with pytest.raises(MessageError) as caught:
        decode(payload)
    return caught.value


def doc_json_blocks() -> list[Any]:
    text = DOC.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


# ---------------------------------------------------------------------- topics

ids = st.from_regex(rf"\A{ID_PATTERN}\Z")


@given(hall=ids, device=ids, channel=st.sampled_from(Channel))
def test_topic_round_trip(hall: str, device: str, channel: Channel) -> None:
    text = topic(hall, device, channel)
    assert text == f"hall/{hall}/{device}/{channel.value}"
    assert parse_topic(text) == Topic(hall, device, channel)
    assert str(Topic(hall, device, channel)) == text


@pytest.mark.parametrize(
    "text",
    [
        "", "hall", "hall/h1/d1", "hall/h1/d1/state/x", "halls/h1/d1/state", "HALL/h1/d1/state",
        "/hall/h1/d1/state", "hall//d1/state", "hall/h1//state", "hall/h1/d1/", "hall/h1/d1/nope",
        "hall/h1/d1/State", "hall/+/d1/state", "hall/h1/#", "hall/h1/+/event", "hall/h1/d 1/event",
        "hall/h1/d.1/event", "hall/h1/设备/event", "$SYS/broker/uptime", f"hall/h1/{'d' * 65}/cmd",
        None, b"hall/h1/d1/state", 42,
    ],
)
def test_parse_topic_returns_none_for_topics_outside_the_scheme(text: Any) -> None:
    assert parse_topic(text) is None


@given(st.text(max_size=80))
def test_parse_topic_never_raises(text: str) -> None:
    parsed = parse_topic(text)
    assert parsed is None or topic(*parsed) == text


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "d 1", "x" * 65])
def test_topic_refuses_ids_that_would_leave_the_device_subtree(bad: str) -> None:
    with pytest.raises(ValueError):
        topic(bad, "d1", Channel.STATE)
    with pytest.raises(ValueError):
        topic("h1", bad, Channel.STATE)


def test_server_subscribes_to_what_devices_publish() -> None:
    assert subscriptions("jiangyang") == [
        "hall/jiangyang/+/status", "hall/jiangyang/+/state", "hall/jiangyang/+/event",
    ]


def test_device_subscribes_to_its_own_topics_only() -> None:
    assert device_subscriptions("jiangyang", "k01") == [
        "hall/jiangyang/k01/reply", "hall/jiangyang/k01/cmd", "hall/jiangyang/k01/display",
    ]


def test_retained_channels_are_those_a_reconnecting_peer_resyncs_from() -> None:
    assert {c for c in Channel if c.retained} == {Channel.STATUS, Channel.STATE, Channel.DISPLAY}


# -------------------------------------------------------------------- examples


def test_every_message_type_has_a_documented_example() -> None:
    shown = {example.message.get("type") for example in EXAMPLES.values()}
    assert set(REQUEST_TYPES) | set(COMMAND_TYPES) | set(DISPLAY_TYPES) <= shown
    states = {e.message.get("state") for e in EXAMPLES.values() if e.channel is Channel.STATUS}
    assert states == {"online", "offline"}
    assert {e.channel for e in EXAMPLES.values()} == set(Channel)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_decodes_on_its_channel(name: str) -> None:
    example = EXAMPLES[name]
    message = DECODERS[example.channel](raw(example.message))
    assert getattr(message, "type", example.message.get("type")) == example.message.get("type")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_show_every_example_verbatim(name: str) -> None:
    assert EXAMPLES[name].message in doc_json_blocks()


@pytest.mark.parametrize(
    "type_", sorted(set(REQUEST_TYPES) | set(COMMAND_TYPES) | set(DISPLAY_TYPES))
)
def test_docs_name_every_message_type(type_: str) -> None:
    assert f"`{type_}`" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name", sorted(k for k, e in EXAMPLES.items() if e.channel in HALL_SENT)
)
def test_what_the_hall_sends_is_exactly_the_documented_json(name: str) -> None:
    example = EXAMPLES[name]
    assert json.loads(encode(DECODERS[example.channel](raw(example.message)))) == example.message


@pytest.mark.parametrize(
    "name", sorted(k for k, e in EXAMPLES.items() if e.channel is Channel.EVENT)
)
def test_requests_survive_an_encode_decode_round_trip(name: str) -> None:
    message = decode_request(raw(EXAMPLES[name].message))
    assert decode_request(encode(message)) == message


# -------------------------------------------------------------------- requests


def test_take_ticket_with_both_service_and_appointment_code_is_refused() -> None:
    payload = request("kiosk.take_ticket", service="a", appointment_code="Y1")
    error = refused(decode_request, payload)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert "appointment_code" in error.message
    with pytest.raises(MessageError):
        TakeTicket("test-0001", service="a", appointment_code="Y1")


def test_take_ticket_with_neither_service_nor_appointment_code_is_refused() -> None:
    assert refused(decode_request, request("kiosk.take_ticket")).code == "invalid_message"
    with pytest.raises(MessageError):
        TakeTicket("test-0001")


def test_priority_group_without_its_password_is_refused() -> None:
    payload = request("kiosk.take_ticket", service="a", priority_group="veterans")
    assert "priority_password" in refused(decode_request, payload).message


@pytest.mark.parametrize(
    ("fields", "source"),
    [
        ({"service": "a"}, "walk_in"),
        ({"service": "a", "identity": {"name": "王小明", "id_number": "11010519491231002X"}},
         "id_card"),
        ({"service": "a", "phone": "13800138000"}, "phone"),
        ({"appointment_code": "YY0316A7K2"}, "appointment"),
        ({"service": "a", "priority_group": "veterans", "priority_password": "1"}, "priority"),
    ],
)
def test_take_ticket_says_which_way_the_ticket_came_in(fields: dict[str, Any], source: str) -> None:
    message = decode_request(request("kiosk.take_ticket", **fields))
    assert isinstance(message, TakeTicket)
    assert message.source == source


def test_passwords_and_personal_data_stay_out_of_repr() -> None:
    for name in ("kiosk.take_ticket/id_card", "kiosk.take_ticket/priority", "terminal.login",
                 "card.read"):
        shown = repr(decode_request(raw(EXAMPLES[name].message)))
        for secret in ("王小明", "11010519491231002X", "826451", "******"):
            assert secret not in shown
        assert "***" in shown


@pytest.mark.parametrize("rating", [0, 6, -1, 100, 3.5, "5", True, None])
def test_rating_out_of_range_is_refused(rating: Any) -> None:
    payload = request("evaluation.rate", ticket_id="20260316-A013", rating=rating)
    assert refused(decode_request, payload).code == ErrorCode.INVALID_MESSAGE


def test_rating_out_of_range_cannot_be_built_either() -> None:
    with pytest.raises(MessageError):
        Rate("test-0001", ticket_id="20260316-A013", rating=6)


def test_more_than_ten_reasons_are_refused() -> None:
    payload = request("evaluation.rate", ticket_id="t1", rating=4, reasons=["x"] * 11)
    assert refused(decode_request, payload).code == ErrorCode.INVALID_MESSAGE


def test_an_empty_identity_is_refused() -> None:
    payload = request("kiosk.take_ticket", service="a", identity={})
    assert refused(decode_request, payload).code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(MessageError):
        Identity()


def test_a_card_read_needs_the_id_number() -> None:
    payload = request("card.read", identity={"name": "王小明"})
    assert "id_number" in refused(decode_request, payload).message


def test_a_transfer_needs_a_service_or_a_window() -> None:
    assert refused(decode_request, request("terminal.transfer")).code == "invalid_message"


@pytest.mark.parametrize("key", ["short", "x" * 65, 12345678, None])
def test_a_request_without_a_usable_idempotency_key_is_refused(key: Any) -> None:
    payload = raw({"v": 1, "type": "terminal.call_next", "id": key})
    error = refused(decode_request, payload)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert error.request_id is None


def test_a_misspelt_field_is_refused_not_ignored() -> None:
    payload = request("kiosk.take_ticket", service="a", apointment_code="Y1")
    error = refused(decode_request, payload)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert "apointment_code" in error.message


def test_a_broken_request_keeps_its_id_so_the_hall_can_answer_it() -> None:
    error = refused(decode_request, request("kiosk.take_ticket", service=7))
    assert error.request_id == "test-0001"
    assert "kiosk.take_ticket" in error.message


def test_an_unknown_request_type_is_refused_as_such() -> None:
    error = refused(decode_request, request("kiosk.make_coffee"))
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.request_id == "test-0001"
    assert "kiosk.make_coffee" in error.message


def test_a_command_is_not_a_request() -> None:
    assert refused(decode_request, raw(EXAMPLES["printer.print"].message)).code == "unknown_type"


def test_requests_whose_repetition_would_repeat_an_effect_are_marked() -> None:
    assert {"kiosk.take_ticket", "terminal.call_next", "terminal.call"} <= CREATING
    assert "kiosk.services" not in CREATING
    assert set(REQUEST_TYPES) >= CREATING


def test_each_request_type_says_which_kinds_of_device_may_send_it() -> None:
    for type_, cls in REQUEST_TYPES.items():
        assert cls.sender in cls.senders
        assert {k for k in DeviceKind if type_ in REQUESTS_BY_KIND[k]} == cls.senders
    assert "terminal.call_next" not in REQUESTS_BY_KIND[DeviceKind.KIOSK]
    assert "printer.done" in REQUESTS_BY_KIND[DeviceKind.KIOSK]
    assert REQUESTS_BY_KIND[DeviceKind.WINDOW_SCREEN] == frozenset()


def test_each_command_says_which_kinds_of_device_take_it() -> None:
    assert COMMANDS_BY_KIND[DeviceKind.KIOSK] == {"printer.print", "kiosk.print_failed"}
    assert COMMANDS_BY_KIND[DeviceKind.PRINTER] == {"printer.print"}
    assert COMMANDS_BY_KIND[DeviceKind.ANNOUNCER] == {"announcer.say"}
    assert COMMANDS_BY_KIND[DeviceKind.EVALUATION_TERMINAL] == {"evaluation.request"}


# ------------------------------------------------------------ the whole payload


def test_a_payload_over_16_kib_is_refused() -> None:
    filler = "x" * (MAX_MESSAGE_BYTES - len(raw({"v": 1, "detail": {"f": ""}})))
    fits = raw({"v": 1, "detail": {"f": filler}})
    assert len(fits) == MAX_MESSAGE_BYTES
    assert decode_state(fits).detail["f"] == filler
    over = raw({"v": 1, "detail": {"f": filler + "x"}})
    for payload in (over, over.decode(), bytearray(over), memoryview(over)):
        assert refused(decode_state, payload).code == ErrorCode.TOO_LARGE


@pytest.mark.parametrize("version", [2, 0, -1, "1", 1.0, True, None, [1]])
def test_a_wrong_version_is_refused(version: Any) -> None:
    for decode, message in [
        (decode_request, EXAMPLES["terminal.call_next"].message),
        (decode_status, EXAMPLES["status.online"].message),
        (decode_state, EXAMPLES["state.printer"].message),
        (decode_display, EXAMPLES["display.board"].message),
    ]:
        error = refused(decode, raw({**message, "v": version}))
        assert error.code == ErrorCode.UNSUPPORTED_VERSION
        assert "v=1" in error.message


def test_a_missing_version_means_version_1() -> None:
    message = dict(EXAMPLES["terminal.call_next"].message)
    del message["v"]
    assert decode_request(raw(message)).v == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"\xff\xfe{}", "malformed_json"),
        (b'{"v":1,"type":"terminal.skip","id":"test-0001"} trailing', "malformed_json"),
        (b"[]", "invalid_message"),
        (b"null", "invalid_message"),
        (b'"kiosk.services"', "invalid_message"),
        (b'{"v":1,"id":"test-0001"}', "invalid_message"),
        (b'{"v":1,"type":5,"id":"test-0001"}', "unknown_type"),
        (b"[" * 5000 + b"]" * 5000, "invalid_message"),
        (b'{"v":1,"type":' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid_message"),
        (None, "invalid_message"),
        (42, "invalid_message"),
        ("\ud800", "malformed_json"),
    ],
)
def test_garbage_gets_a_precise_error_code(payload: Any, code: str) -> None:
    assert refused(decode_request, payload).code == code


def test_status_is_a_birth_or_a_last_will() -> None:
    birth = decode_status(raw(EXAMPLES["status.online"].message))
    assert (birth.state, getattr(birth, "kind", None)) == ("online", DeviceKind.KIOSK)
    assert decode_status(b'{"v":1,"state":"offline"}').state == "offline"
    assert refused(decode_status, b'{"v":1,"state":"asleep"}').code == ErrorCode.UNKNOWN_TYPE
    assert refused(decode_status, b'{"v":1,"state":"online"}').code == ErrorCode.INVALID_MESSAGE
    bad_kind = b'{"v":1,"state":"online","kind":"toaster"}'
    assert refused(decode_status, bad_kind).code == ErrorCode.INVALID_MESSAGE


def test_state_ignores_telemetry_it_does_not_know_but_checks_health() -> None:
    state = decode_state(b'{"v":1,"health":{"paper":"out"},"battery":80}')
    assert state == DeviceState(Health(paper="out"))
    assert refused(decode_state, b'{"v":1,"health":{"paper":"low"}}').code == "invalid_message"


# ------------------------------------------------------ what the hall sends out


def test_replies_encode_to_json_that_decodes_back_equal() -> None:
    success = Reply.success("k01-8d2e44b1", {"ticket": {"number": "A013"}, "print_job": "p1"})
    failure = Reply.failure("k01-8d2e44b1", ErrorCode.PRINTER_OFFLINE, "打印机离线")
    for reply in (success, failure, Reply.success("k01-8d2e44b1")):
        assert decode_reply(encode(reply)) == reply
    error = {"code": "printer_offline", "message": "打印机离线"}
    assert json.loads(encode(failure))["error"] == error


def test_a_reply_is_either_a_success_or_a_failure() -> None:
    with pytest.raises(MessageError):
        Reply("k01-8d2e44b1", False)
    assert refused(decode_reply, b'{"v":1,"re":"x","ok":true,"error":{"code":"c"}}').code == (
        "invalid_message"
    )


def test_commands_encode_to_json_that_decodes_back_equal() -> None:
    ticket = TicketPrint(
        "A013", "企业设立登记", 7, 35.0, "请到4号窗口", ["身份证"], "过号重取",
        datetime(2026, 3, 16, 1, 41, 7, tzinfo=UTC),
    )
    commands = [
        PrintJob("k01-8d2e44b1", ticket),
        Announce("call-0001", "请A013号到4号窗口办理"),
        EvaluationRequest("eval-0001", "20260316-A013", "A013", "w04", "张伟"),
    ]
    for command in commands:
        assert decode_command(encode(command)) == command
        assert json.loads(encode(command))["type"] == command.type


def test_displays_encode_to_json_that_decodes_back_equal() -> None:
    window = WindowDisplay(
        [PositionView("w04", "4号窗口", "张伟", "calling", "A013", None)], seq=7
    )
    board = BoardDisplay(
        [CallView("A013", "4号窗口")], [], [WaitingView("biz-setup", "企业设立登记", 7)], seq=8
    )
    for display in (window, board):
        assert decode_display(encode(display)) == display


def test_a_window_screen_shows_one_or_two_positions() -> None:
    position = EXAMPLES["display.window"].message["positions"][0]
    for positions in ([], [position] * 3):
        payload = raw({**EXAMPLES["display.window"].message, "positions": positions})
        assert refused(decode_display, payload).code == ErrorCode.INVALID_MESSAGE


# ------------------------------------------------------------------------ fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)
example_messages = st.sampled_from(sorted(EXAMPLES)).map(lambda name: EXAMPLES[name].message)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(payload: Any) -> None:
    for decode in DECODE_ALL:
        try:
            decode(payload)
        except MessageError as error:
            assert error.code in set(ErrorCode)
            assert error.message


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_message_error(payload: bytes) -> None:
    decodes_or_refuses(payload)


@FUZZ
@given(example_messages, st.data())
def test_mutated_messages_never_raise_anything_but_message_error(
    message: dict[str, Any], data: st.DataObject
) -> None:
    mutated = dict(message)
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["replace", "delete", "add", "nest"]))
        keys = sorted(mutated)
        if action == "replace" and keys:
            mutated[data.draw(st.sampled_from(keys))] = data.draw(json_values)
        elif action == "delete" and keys:
            del mutated[data.draw(st.sampled_from(keys))]
        elif action == "add":
            mutated[data.draw(st.text(max_size=10))] = data.draw(json_values)
        else:
            nested = {k: v for k, v in mutated.items() if isinstance(v, dict) and v}
            if nested:
                key = data.draw(st.sampled_from(sorted(nested)))
                inner = dict(nested[key])
                inner[data.draw(st.sampled_from(sorted(inner)))] = data.draw(json_values)
                mutated[key] = inner
    decodes_or_refuses(raw(mutated))


@FUZZ
@given(example_messages, st.data())
def test_byte_mutated_messages_never_raise_anything_but_message_error(
    message: dict[str, Any], data: st.DataObject
) -> None:
    payload = bytearray(raw(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(payload):
            payload[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del payload[at:at + data.draw(st.integers(1, 4))]
        else:
            del payload[at:]
    decodes_or_refuses(bytes(payload))
