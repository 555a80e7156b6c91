"""Real Click with OdinAgent and the emulated agent get the same bytes; their replies must be equal byte for byte,
but for the short allow-list below. Every command, alias and error path of the ControlSocket, pipelined, partial,
CR-only and binary input, and every OdinAgent handler with good and bad arguments (differential.CASES), one fresh
connection per case, in the same order on both, so both agents' state evolves alike.

Real Click runs the rendered agent configuration with its radio side on idle inputs (Idle/Discard instead of
FromDevice/ToDevice/FromHost/ToHost), its ControlSocket on 127.0.0.1 only and its master socket to 127.0.0.1, and a
harmless hostapd_cli on PATH. Needs a Click build (`make click`); skips saying so when there is none.
"""
import re
import socket

import pytest

import differential
from ansible_collections.arnab.testbed.plugins.module_utils import odin
from arnab_lab import odin_agent

_MAC_LINE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}( |$)")

# What may differ, and why. Each entry rewrites one kind of value in both replies before they are compared.
ALLOW_LIST = {
    "hash-order": "OdinAgent keeps vAPs, station statistics and scanned stations in Click HashTables and prints them in "
                  "hash-bucket order; the emulated agent prints them in insertion order. Lines that start with a MAC "
                  "(table, rxstats, txstats, sta_rssi, scan_APs) are compared as a sorted set; every reader parses "
                  "them into a map.",
    "wall-clock": "rxstats/txstats first_received/last_received are the wall-clock times at which each agent handled "
                  "the write (Click's Timestamp format is still compared: a zero time is 0.000000 on both).",
    "measured-delay": "report_mean's first number is the measured delay between a probe request and the beacon that "
                      "answered it (real beacon timer vs. emulation); the sample count and variance are compared.",
}


def items(reply):
    """The reply as (status or banner line) and (DATA block) items; DATA lengths are implied by the blocks."""
    out, rest = [], reply
    while rest:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            out.append(("tail", rest))
            break
        out.append(("line", line))
        rest = after
        match = re.match(rb"^DATA (\d+)$", line)
        if match:
            size = int(match.group(1))
            out[-1] = ("data", rest[:size])
            rest = rest[size:]
    return out


def normalize(reply, used):
    result = []
    for kind, value in items(reply):
        if kind == "data":
            text = value.decode("latin-1")
            lines = text.split("\n")
            if len(lines) > 2 and all(_MAC_LINE.match(l) for l in lines[:-1]):
                lines = sorted(lines[:-1]) + [""]
                used.add("hash-order")
            text = "\n".join(lines)
            stamped = re.sub(r"((?:first|last)_received:)(?!0\.000000 )\d+\.\d+", r"\1<time>", text)
            if stamped != text:
                used.add("wall-clock")
            text = stamped
            if re.fullmatch(r"\S+ \d+ \S+\n", text) and text.split()[1] != "0":   # report_mean with samples
                text = "<delay> " + text.split(" ", 1)[1]
                used.add("measured-delay")
            value = text.encode("latin-1")
        result.append((kind, value))
    return result


@pytest.fixture
def agents(tmp_path, real_click, harmless_hostapd_cli):
    """(real Click's port, the emulated agent's port): both started here, both stopped here, even on failure."""
    bindir, _log = harmless_hostapd_cli
    master = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    master.bind(("127.0.0.1", 0))
    ports = differential.free_port(), differential.free_port()
    paths = []
    for n, port in enumerate(ports):
        path = tmp_path / ("agent%d.cli" % n)
        path.write_text(differential.loopback_config(odin, port, master.getsockname()[1],
                                                     str(tmp_path / ("bssid_extra%d" % n))))
        paths.append(str(path))
    proc = differential.start_real(real_click, paths[0], ports[0], bindir)
    server = None
    try:
        _agent, server = odin_agent.start(paths[1], "127.0.0.1")
        yield ports + (_log,)
    finally:
        differential.stop_real(proc)
        if server is not None:
            odin_agent.stop(server)
        master.close()
    assert proc.returncode is not None


def test_allow_list_is_short():
    assert len(ALLOW_LIST) <= 5


def test_real_click_and_the_emulated_agent_answer_alike(agents):
    real_port, emulated_port, hostapd_log = agents
    used, mismatches = set(), []
    for name, chunks in differential.CASES:
        real = differential.exchange(real_port, chunks)
        emulated = differential.exchange(emulated_port, chunks)
        assert real.startswith(b"Click::ControlSocket/1.3\r\n"), (name, real)
        if real != emulated and normalize(real, used) != normalize(emulated, set()):
            sent = b"".join(chunks)
            mismatches.append("%s\n  sent     %r\n  real     %r\n  emulated %r" % (name, sent, real, emulated))
    assert not mismatches, "%d of %d cases differ:\n%s" % (len(mismatches), len(differential.CASES),
                                                           "\n".join(mismatches))
    assert used <= set(ALLOW_LIST)
    # real OdinAgent ran the harmless hostapd_cli for the channel change and the scans
    assert "-i wlan0 chan_switch" in hostapd_log.read_text() and "-i wlan1 chan_switch 0 2437" in hostapd_log.read_text()


def test_the_allow_list_hides_nothing_else(agents):
    """Two vAPs make the tables' order differ (allowed); a scalar read without its newline, another status code or
    lower-case MACs must still be caught after the rewriting."""
    real_port, emulated_port, _log = agents
    case = [b"WRITE odinagent.add_vap 02:c0:00:00:00:07 10.78.0.107 00:1b:b3:00:00:07 arnab\r\n"
            b"WRITE odinagent.add_vap 02:c0:00:00:00:05 10.78.0.105 00:1b:b3:00:00:05 arnab\r\n"
            b"READ odinagent.table\r\nREAD odinagent.channel x\r\nREAD odinagent.channel\r\n"]
    real, emulated = differential.exchange(real_port, case), differential.exchange(emulated_port, case)
    assert b"590 read handler 'odinagent.channel' does not take parameters" in real
    assert normalize(real, set()) == normalize(emulated, set())
    for old, new in ((b"DATA 2\r\n6\n", b"DATA 1\r\n6"), (b"590 ", b"520 "), (b"02:C0:00:00:00:05", b"02:c0:00:00:00:05")):
        assert old in real
        assert normalize(real.replace(old, new, 1), set()) != normalize(real, set()), old
