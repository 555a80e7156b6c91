"""The differential test's parts: the byte sequences, an agent configuration for a loopback run, real Click and the
emulated agent started on it, and the replies collected from each (one fresh connection per case, in order).

`python tests/click/differential.py` prints every case whose replies differ (a development aid).
"""
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

C1, C2 = "02:c0:00:00:00:01", "02:c0:00:00:00:02"
B1, B2 = "00:1b:b3:00:00:01", "00:1b:b3:00:00:02"
VAP1 = "%s 10.78.0.100 %s arnab" % (C1, B1)
VAP2 = "%s 10.78.0.101 %s arnab guest" % (C2, B2)
ANY = "00:00:00:00:00:00"


def _w(handler, args=None):
    return ("WRITE odinagent.%s%s\r\n" % (handler, "" if args is None else " " + args)).encode()


def _r(handler, args=None):
    return ("READ odinagent.%s%s\r\n" % (handler, "" if args is None else " " + args)).encode()


READS = ("table", "channel", "interval", "rxstats", "txstats", "subscriptions", "debug", "report_mean",
         "scan_client", "scan_APs", "scanning_flags", "txpower", "sta_rssi")
WRITES = ("add_vap", "set_vap", "remove_vap", "channel", "interval", "subscriptions", "debug", "send_probe_response",
          "testing_send_probe_request", "handler_update_signal_strength", "signal_strength_offset",
          "channel_switch_announcement", "scan_client", "scan_APs", "send_measurement_beacon", "scanning_flags")

# (name, chunks): each case is sent on a fresh connection, chunk by chunk, then the client half-closes and reads
# to the end. Cases run in this order on both agents, so their state evolves alike.
CASES = [("connect-only", [b""])]
CASES += [("read-" + h, [_r(h)]) for h in READS]
CASES += [("checkread-" + h, [b"CHECKREAD odinagent.%s\r\n" % h.encode()]) for h in READS + WRITES]
CASES += [("checkwrite-" + h, [b"CHECKWRITE odinagent.%s\r\n" % h.encode()]) for h in READS + WRITES]
CASES += [
    # commands, aliases, syntax
    ("get-alias", [b"GET odinagent.channel\r\n"]),
    ("lower-case", [b"read odinagent.interval\r\nget odinagent.debug\r\n"]),
    ("read-with-args", [b"READ odinagent.channel now please\r\n"]),
    ("read-table-with-args", [_r("table", "x")]),
    ("read-no-handler", [b"READ\r\n"]),
    ("write-no-handler", [b"WRITE\r\n"]),
    ("set-alias", [b"SET odinagent.interval 100\r\n"]),
    ("no-element", [b"READ nosuch.table\r\nWRITE nosuch.add_vap x\r\n"]),
    ("no-handler", [b"READ odinagent.nosuch\r\nWRITE odinagent.nosuch 1\r\n"]),
    ("read-write-only", [_r("add_vap")]),
    ("write-read-only", [_w("table", "x"), _w("txpower", "3")]),
    ("checkread-missing", [b"CHECKREAD odinagent.nosuch\r\nCHECKREAD nosuch.x\r\nCHECKWRITE nosuch.x\r\n"]),
    ("check-arity", [b"CHECKREAD\r\nCHECKWRITE a b\r\n"]),
    ("readdata", [b"READDATA odinagent.channel 0\r\n"]),
    ("readdata-args", [b"READDATA odinagent.channel 3\r\nabc"]),
    ("writedata", [b"WRITEDATA odinagent.interval 3\r\n100", b"READ odinagent.interval\r\n"]),
    ("setdata", [b"SETDATA odinagent.interval 3\r\n100"]),
    ("writedata-arity", [b"WRITEDATA odinagent.interval\r\n"]),
    ("writedata-bad-length", [b"WRITEDATA odinagent.interval abc\r\nWRITEDATA odinagent.interval -1\r\n"]),
    ("writedata-short", [b"WRITEDATA odinagent.interval 5\r\n10"]),
    ("writeuntil", [b"WRITEUNTIL odinagent.interval END\r\n100\r\nEND\r\nREAD odinagent.interval\r\n"]),
    ("readuntil", [b"READUNTIL odinagent.table .\r\n.\r\n"]),
    ("writeuntil-unterminated", [b"WRITEUNTIL odinagent.interval END\r\n100\r\n"]),
    ("llrpc", [b"LLRPC odinagent#1\r\n"]),
    ("llrpc-bad", [b"LLRPC\r\nLLRPC odinagent#zz\r\nLLRPC nosuch#1\r\n"]),
    ("help", [b"HELP\r\n"]),
    ("unknown", [b"FROB odinagent.table\r\n"]),
    ("quit", [b"QUIT\r\nREAD odinagent.channel\r\n"]),
    ("close", [b"close\r\n"]),
    ("quit-extra", [b"QUIT now\r\n"]),
    ("blank-lines", [b"\r\n\r\n   \t\r\nREAD odinagent.channel\r\n"]),
    ("lf-only", [b"READ odinagent.channel\nREAD odinagent.interval\n"]),
    ("cr-only", [b"READ odinagent.channel\rREAD odinagent.interval\r"]),
    ("no-final-newline", [b"READ odinagent.channel"]),
    ("pipelined", [_r("channel") + _w("interval", "120") + _r("interval") + _w("interval", "100") + _r("debug")]),
    ("partial", [b"RE", b"AD odina", b"gent.chan", b"nel\r", b"\nREAD odinagent.", b"interval\r\n"]),
    ("split-crlf", [b"READ odinagent.channel\r", b"\nREAD odinagent.debug\r\n"]),
    ("binary-command", [b"\x00\x01\x02\x7f\r\n"]),
    ("binary-handler", [b"READ odinagent.\x01\xff\xfe\r\n"]),
    ("binary-element", [b"READ \x1b[2J.table\r\n"]),
    ("binary-args", [b"WRITE odinagent.remove_vap \x00\xff\r\n"]),
    ("tab-separated", [b"READ\todinagent.channel\r\n"]),
    ("vertical-space", [b"READ\x0bodinagent.channel\x0c\r\n"]),
    # names
    ("global-version", [b"READ version\r\nREAD .version\r\nREAD 0.version\r\n"]),
    ("element-handlers", [b"READ odinagent.name\r\nREAD odinagent.class\r\n"]),
    ("dot-only", [b"READ .\r\nREAD odinagent.\r\n"]),
    # vAPs
    ("add_vap", [_w("add_vap", VAP1), _r("table")]),
    ("add_vap-duplicate", [_w("add_vap", VAP1)]),
    ("add_vap-second", [_w("add_vap", VAP2), _r("table")]),
    ("add_vap-bad-mac", [_w("add_vap", "nope 10.78.0.102 %s arnab" % B1)]),
    ("add_vap-bad-ip", [_w("add_vap", "02:c0:00:00:00:03 10.78.0 %s arnab" % B1)]),
    ("add_vap-bad-bssid", [_w("add_vap", "02:c0:00:00:00:03 10.78.0.103 zz arnab")]),
    ("add_vap-missing-ip", [_w("add_vap", "02:c0:00:00:00:03")]),
    ("add_vap-missing-bssid", [_w("add_vap", "02:c0:00:00:00:03 10.78.0.103")]),
    ("add_vap-empty", [_w("add_vap")]),
    ("set_vap", [_w("set_vap", "%s 10.78.0.100 %s arnab other" % (C1, B1)), _r("table")]),
    ("set_vap-absent", [_w("set_vap", "02:c0:00:00:00:09 10.78.0.109 %s arnab" % B1)]),
    ("set_vap-bad", [_w("set_vap", "x y z")]),
    ("remove_vap", [_w("remove_vap", C2), _r("table")]),
    ("remove_vap-absent", [_w("remove_vap", C2)]),
    ("remove_vap-bad", [_w("remove_vap", "nope")]),
    ("remove_vap-extra", [_w("remove_vap", C1 + " extra")]),
    ("remove_vap-empty", [_w("remove_vap")]),
    ("dash-mac", [_w("add_vap", "02-C0-00-00-00-05 10.78.0.105 00-1B-B3-00-00-05 arnab"), _r("table"),
                  _w("remove_vap", "02-c0-00-00-00-05")]),
    # radio
    ("channel-same", [_w("channel", "6"), _r("channel")]),
    ("channel-bad", [_w("channel", "x"), _w("channel"), _w("channel", "6 7")]),
    ("interval", [_w("interval", "50"), _r("interval"), _w("interval", "y"), _w("interval", "100")]),
    ("debug", [_w("debug", "true"), _r("debug"), _w("debug", "x"), _w("debug", "0"), _r("debug")]),
    ("csa", [_w("channel_switch_announcement", "%s %s 1 arnab" % (C1, B1))]),
    ("csa-bad", [_w("channel_switch_announcement", "%s %s x arnab" % (C1, B1)),
                 _w("channel_switch_announcement", C1)]),
    ("probe-response", [_w("send_probe_response", "%s %s arnab" % (C1, B1)), _w("send_probe_response", "x")]),
    ("probe-request", [_w("testing_send_probe_request", C1 + " arnab"), _w("testing_send_probe_request", "")]),
    ("signal-offset", [_w("signal_strength_offset", "3"), _w("signal_strength_offset", "z"),
                       _w("signal_strength_offset", "0")]),
    ("update-signal-bad", [_w("handler_update_signal_strength", "x 1"), _w("handler_update_signal_strength", C1)]),
    ("sta_rssi-before-scan", [_r("sta_rssi")]),
    ("update-signal", [_w("handler_update_signal_strength", C1 + " -50"), _r("rxstats"), _r("rxstats")]),
    ("channel-change", [_w("channel", "11"), _r("channel"), _w("channel", "6"), _r("channel")]),
    # subscriptions
    ("subscriptions", [_w("subscriptions", "2 7 %s signal 1 -90 8 %s signal 2 -60.5" % (ANY, C1)),
                       _r("subscriptions")]),
    ("subscriptions-bad", [_w("subscriptions", "x"), _w("subscriptions", "1 7 %s signal" % ANY),
                           _w("subscriptions", "1 7 nope signal 1 2"), _r("subscriptions")]),
    ("subscriptions-bad-value", [_w("subscriptions", "1 7 %s signal 1 abc" % ANY),
                                 _w("subscriptions", "1 7 %s signal 5 -1e3" % ANY), _r("subscriptions")]),
    ("subscriptions-extra", [_w("subscriptions", "0 extra"), _w("subscriptions", "0"), _r("subscriptions")]),
    # scans
    ("scanning-flags", [_w("scanning_flags", "0 0 0"), _r("scanning_flags"), _w("scanning_flags", "1 x 0"),
                        _w("scanning_flags", "0 0")]),
    ("scan-client", [_w("scan_client", C1 + " 6"), _r("scanning_flags"), _r("scan_client"), _r("scanning_flags")]),
    ("scan-while-scanning", [_w("scan_client", C1 + " 6"), _w("scan_client", "garbage"),
                             _w("scan_APs", "x"), _w("scanning_flags", "0 0 0")]),
    ("scan-client-bad", [_w("scan_client", "nope 6"), _w("scan_client", C1)]),
    ("scan-aps", [_w("scan_APs", "* 6"), _r("scanning_flags"), _r("scan_APs"), _r("scanning_flags")]),
    ("scan-aps-bad", [_w("scan_APs", "*")]),
    ("measurement-beacon", [_w("send_measurement_beacon", "arnab 6"), _r("scanning_flags"),
                            _w("scanning_flags", "0 0 0")]),
    ("measurement-beacon-bad", [_w("send_measurement_beacon", "arnab")]),
    ("report-mean", [_r("report_mean")]),
    ("txpower", [_r("txpower")]),
    ("remove-all", [_w("remove_vap", C1), _r("table")]),
]


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_config(odin, control_port, master_port, debugfs):
    """The agent configuration for a loopback run: real Click on idle radio inputs, the ControlSocket on
    127.0.0.1 only, the master's UDP socket on 127.0.0.1, a debugfs file in a temporary directory."""
    text = odin.render_agent_config(dict(ap_mac="02:a0:00:00:00:01", master_ip="127.0.0.1", master_port=master_port,
                                         agent_ip="127.0.0.1", control_port=control_port, debugfs_path=debugfs,
                                         ssid="arnab", channel=6))
    text = re.sub(r"\b(FromDevice|FromHost|ChatterSocket)\s*\([^()]*\)", "Idle", text)
    text = re.sub(r"\b(ToDevice|ToHost)\s*\([^()]*\)", "Discard", text)
    return text.replace('ControlSocket("TCP", $CONTROL_PORT)', 'ControlSocket("TCP", $CONTROL_PORT, LOCALHOST true)')


def wait_port(port, proc=None, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("Click exited with %s: %s" % (proc.returncode, proc.stderr.read().decode()[-2000:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d" % port)


def exchange(port, chunks, timeout=5.0):
    """One case on a fresh connection: every byte the server sent (banner included) until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        received = b""
        for n, chunk in enumerate(chunks):
            if chunk:
                sock.sendall(chunk)
            if n + 1 < len(chunks):
                time.sleep(0.05)   # let each piece arrive on its own (partial commands)
        sock.shutdown(socket.SHUT_WR)
        while True:
            data = sock.recv(65536)
            if not data:
                return received
            received += data


def start_real(click, config_path, control_port, path_prefix):
    env = dict(os.environ, PATH=path_prefix + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.Popen([click, config_path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        wait_port(control_port, proc)
    except Exception:
        stop_real(proc)
        raise
    return proc


def stop_real(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main():
    import tempfile
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    sys.path.insert(0, os.path.join(ROOT, "lab"))
    from ansible_collections.arnab.testbed.plugins.module_utils import odin
    from arnab_lab import odin_agent
    click = os.environ.get("ARNAB_CLICK") or os.path.join(ROOT, "build", "click")
    with tempfile.TemporaryDirectory() as tmp:
        hostapd = os.path.join(tmp, "bin")
        os.mkdir(hostapd)
        with open(os.path.join(hostapd, "hostapd_cli"), "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(os.path.join(hostapd, "hostapd_cli"), 0o755)
        master = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        master.bind(("127.0.0.1", 0))
        ports = free_port(), free_port()
        paths = []
        for n, port in enumerate(ports):
            path = os.path.join(tmp, "agent%d.cli" % n)
            with open(path, "w") as f:
                f.write(loopback_config(odin, port, master.getsockname()[1], os.path.join(tmp, "bssid%d" % n)))
            paths.append(path)
        proc = start_real(click, paths[0], ports[0], hostapd)
        _agent, server = odin_agent.start(paths[1], "127.0.0.1")
        try:
            only = sys.argv[1:]
            for name, chunks in CASES:
                real, emulated = exchange(ports[0], chunks), exchange(ports[1], chunks)
                if (only and name in only) or (not only and real != emulated):
                    print("== %s %r\n  real:     %r\n  emulated: %r" % (name, b"".join(chunks), real, emulated))
        finally:
            stop_real(proc)
            odin_agent.stop(server)
            master.close()


if __name__ == "__main__":
    main()
