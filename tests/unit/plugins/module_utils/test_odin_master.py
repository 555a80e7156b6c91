"""The Odin master's UDP protocol parser: every message kind, every malformed form, and agent liveness."""
import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.module_utils.odin_master import (
    ERROR_REASONS, AgentTracker, Counters, Message, ProtocolError, format_message, parse_datagram)

MAC = "02:c0:00:00:00:01"


@pytest.mark.parametrize("data, expected", [
    (b"ping\n", Message("ping", None, None, ())),
    (b"ping", Message("ping", None, None, ())),
    (b"ping\r\n", Message("ping", None, None, ())),
    (b"probe 02:c0:00:00:00:01 arnab\n", Message("probe", MAC, "arnab", ())),
    (b"probe 02:c0:00:00:00:01 \n", Message("probe", MAC, "", ())),             # broadcast probe
    (b"probe 02:c0:00:00:00:01", Message("probe", MAC, "", ())),
    (b"probe 02:c0:00:00:00:01 my home net", Message("probe", MAC, "my home net", ())),
    (b"publish 02:c0:00:00:00:01 1 1:-62\n", Message("publish", MAC, None, ((1, -62),))),
    (b"publish 02:C0:00:00:00:01 2 1:190 7:-61.5", Message("publish", MAC, None, ((1, 190), (7, -61.5)))),
    (b"association 02:c0:00:00:00:01\n", Message("association", MAC, None, ())),
    (b"deauthentication 02:c0:00:00:00:01\n", Message("deauthentication", MAC, None, ())),
    (b"detectedflow 10.0.0.1 10.0.0.2 6 1234 80", Message("detectedflow", None, None, ())),
    ("ping", Message("ping", None, None, ())),                                  # text is taken too
])
def test_every_kind(data, expected):
    assert parse_datagram(data) == expected


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"\n", "empty"),
    (b"   \r\n", "empty"),
    (b"ping" + b" " * 2000, "oversized"),
    (b"publish %s 1 1:-60 " % MAC.encode() + b"x" * 1100, "oversized"),
    (b"\x00\x01\x02", "binary"),
    (b"ping\x00", "binary"),
    (b"probe 02:c0:00:00:00:01 caf\xc3\xa9", "binary"),
    (b"\xff\xfe\xfd", "binary"),
    (b"ping\nping\n", "binary"),              # two messages in one datagram: a newline inside
    (b"PING", "unknown_kind"),
    (b"hello world", "unknown_kind"),
    (b"pong", "unknown_kind"),
    (b"ping 1", "bad_arity"),
    (b"association", "bad_arity"),
    (b"association 02:c0:00:00:00:01 extra", "bad_arity"),
    (b"deauthentication", "bad_arity"),
    (b"probe", "bad_arity"),
    (b"association 02:c0:00:00:00", "bad_mac"),
    (b"association 02:c0:00:00:00:0g", "bad_mac"),
    (b"association 02-c0-00-00-00-01", "bad_mac"),
    (b"association ff:ff:ff:ff:ff:ff", "bad_mac"),      # broadcast
    (b"association 01:00:5e:00:00:01", "bad_mac"),      # multicast
    (b"association 00:00:00:00:00:00", "bad_mac"),
    (b"probe nonsense arnab", "bad_mac"),
    (b"publish", "truncated"),
    (b"publish 02:c0:00:00:00:01", "truncated"),
    (b"publish 02:c0:00:00:00:01 2 1:-60", "truncated"),
    (b"publish 02:c0:00:00:00:01 1", "truncated"),
    (b"publish 02:c0:00:00:00:01 1 1", "truncated"),
    (b"publish 02:c0:00:00:00:01 1 1:-60 2:-61", "bad_count"),
    (b"publish 02:c0:00:00:00:01 0", "bad_count"),
    (b"publish 02:c0:00:00:00:01 999 1:1", "bad_count"),
    (b"publish 02:c0:00:00:00:01 x 1:1", "bad_number"),
    (b"publish 02:c0:00:00:00:01 -1 1:1", "bad_number"),
    (b"publish 02:c0:00:00:00:01 99999999999 1:1", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 a:-60", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:abc", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:nan", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:inf", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:1e308", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:0x10", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 1:", "bad_number"),
    (b"publish 02:c0:00:00:00:01 2 1:-60 2-61", "truncated"),
    (b"publish 02:c0:00:00:00:01 2 1-60 2:-61", "bad_number"),
    (b"publish 02:c0:00:00:00:01 1 99999999999:5", "bad_number"),
    (b"probe 02:c0:00:00:00:01 " + b"s" * 33, "bad_ssid"),
])
def test_every_malformed_form_is_one_counted_reason(data, reason):
    with pytest.raises(ProtocolError) as info:
        parse_datagram(data)
    assert info.value.reason == reason
    assert reason in ERROR_REASONS


def test_every_error_reason_is_exercised():
    reasons = set()
    for data in (b"", b"x" * 1025, b"\x00", b"zz", b"ping 1", b"association 0", b"publish 02:c0:00:00:00:01 x",
                 b"publish 02:c0:00:00:00:01 2 1:1", b"publish 02:c0:00:00:00:01 1 1:1 2:2",
                 b"probe 02:c0:00:00:00:01 " + b"s" * 40):
        try:
            parse_datagram(data)
        except ProtocolError as exc:
            reasons.add(exc.reason)
    assert reasons == set(ERROR_REASONS)


def test_round_trip_with_what_agents_send():
    for text in (format_message("ping"), format_message("probe", MAC, "arnab"), format_message("probe", MAC),
                 format_message("publish", MAC, values=[(1, -60), (2, 187.5)]),
                 format_message("association", MAC), format_message("deauthentication", MAC)):
        msg = parse_datagram(text.encode())
        assert format_message(msg.kind, msg.sta_mac, msg.ssid, msg.values) == text
    # the collection's own publish formatter (the emulated agent uses it) parses
    assert parse_datagram(odin.format_publish(MAC, [(1, -61)]).encode()).values == ((1, -61),)


def test_parser_never_raises_anything_else():
    import random
    rng = random.Random(7)
    seeds = [b"ping\n", b"publish 02:c0:00:00:00:01 1 1:-60\n", b"probe 02:c0:00:00:00:01 arnab\n",
             b"association 02:c0:00:00:00:01\n"]
    for dummy in range(5000):
        data = bytearray(rng.choice(seeds))
        for dummy2 in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(data) + 1)
            if op < 0.4 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            elif op < 0.7:
                data[pos:pos] = bytes([rng.randrange(256)])
            else:
                del data[pos:pos + rng.randint(1, 8)]
        try:
            parse_datagram(bytes(data))
        except ProtocolError:
            pass


def test_agent_tracker_up_and_down_after_six_seconds():
    tracker = AgentTracker()
    assert tracker.timeout == 6.0
    assert tracker.ping("10.0.0.1", 100.0) is True
    assert tracker.ping("10.0.0.1", 102.0) is False
    assert tracker.ping("10.0.0.2", 103.0) is True
    assert tracker.expire(107.9) == []
    assert tracker.expire(108.5) == [("10.0.0.1", 6.5)]
    assert tracker.agents() == ["10.0.0.2"] and not tracker.alive("10.0.0.1")
    assert tracker.ping("10.0.0.1", 109.0) is True         # back: up again


def test_counters():
    c = Counters()
    assert c.add("a") == 1 and c.add("a", 2) == 3 and dict(c) == {"a": 3}
