"""devices/broker_url.py: the one reading of a broker URL that devices and the hall
server share (docs/mqtt.md, "Connecting")."""

from __future__ import annotations

import pytest

from devices.broker_url import BrokerAddress


def test_mqtt_without_a_port_is_plain_mqtt_on_1883() -> None:
    broker = BrokerAddress.parse("mqtt://broker.hall")
    assert (broker.host, broker.port, broker.tls) == ("broker.hall", 1883, False)
    assert broker.tls_context() is None


def test_mqtts_without_a_port_is_tls_on_8883() -> None:
    broker = BrokerAddress.parse("mqtts://broker.hall")
    assert (broker.host, broker.port, broker.tls) == ("broker.hall", 8883, True)
    assert broker.tls_context() is not None


def test_ssl_is_tls_and_tcp_is_plain() -> None:
    assert BrokerAddress.parse("ssl://broker.hall").tls
    assert not BrokerAddress.parse("tcp://broker.hall").tls


def test_an_explicit_port_is_kept() -> None:
    assert BrokerAddress.parse("mqtts://10.0.0.9:18883").port == 18883
    assert BrokerAddress.parse("mqtt://10.0.0.9:1884").port == 1884


def test_user_name_and_password_are_percent_decoded() -> None:
    broker = BrokerAddress.parse("mqtt://hall%2Dserver:p%40ss%3Aw%2Frd%25@broker.hall")
    assert (broker.username, broker.password) == ("hall-server", "p@ss:w/rd%")


def test_without_credentials_there_is_no_user_name_or_password() -> None:
    broker = BrokerAddress.parse("mqtt://127.0.0.1:1883")
    assert (broker.username, broker.password) == (None, None)


def test_the_password_is_not_in_the_repr() -> None:
    assert "secret" not in repr(BrokerAddress.parse("mqtt://server:secret@broker.hall"))


def test_the_tls_context_verifies_the_broker() -> None:
    context = BrokerAddress.parse("mqtts://broker.hall").tls_context()
    assert context is not None and context.check_hostname


@pytest.mark.parametrize("url", ["http://broker.hall:1883", "broker.hall:1883",
                                 "127.0.0.1:1883"])
def test_an_unknown_scheme_is_refused_naming_the_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"mqtt, mqtts, ssl, tcp"):
        BrokerAddress.parse(url)


def test_a_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="host"):
        BrokerAddress.parse("mqtt://:1883")


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_port_that_is_no_port_is_refused(port: str) -> None:
    with pytest.raises(ValueError, match="port"):
        BrokerAddress.parse(f"mqtt://broker.hall:{port}")


def test_the_refusal_does_not_repeat_the_password() -> None:
    with pytest.raises(ValueError) as refused:
        BrokerAddress.parse("http://server:secret@broker.hall")
    assert "secret" not in str(refused.value)
