"""The lab-only radio modules (library/: lab_radio_move, lab_radio_replay, lab_radio_state) against a REAL emulated
radio process (`python -m arnab_lab.radio --air none --hold off`: no namespaces, no OVS) on a temporary socket."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import ansible.module_utils
import pytest

from ansible_collections.arnab.testbed.tests.unit.plugins.modules.module_harness import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LIBRARY = os.path.join(ROOT, "library")
# as ansible.cfg's `library` and `module_utils` make Ansible find them
sys.path.insert(0, LIBRARY)
if os.path.join(LIBRARY, "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(os.path.join(LIBRARY, "module_utils"))

import lab_radio_move  # noqa: E402
import lab_radio_replay  # noqa: E402
import lab_radio_state  # noqa: E402
from ansible.module_utils import lab_radio  # noqa: E402

from arnab_lab import radio  # noqa: E402

C1, C2 = "02:c0:00:00:00:01", "02:c0:00:00:00:02"
INVENTORY = {
    "_meta": {"hostvars": {
        "ap1": {"ap_mac": "02:a0:00:00:00:01", "ap_channel": 6, "ap_position": [0, 0], "ap_edge": "edge1"},
        "ap2": {"ap_mac": "02:a0:00:00:00:02", "ap_channel": 1, "ap_position": [40, 0], "ap_edge": "edge2"},
        "ap3": {"ap_mac": "02:a0:00:00:00:03", "ap_channel": 11, "ap_position": [80, 0], "ap_edge": "edge1"},
        "client1": {"client_mac": C1, "client_ap": "ap1", "client_position": [5, 0]},
        "client2": {"client_mac": C2, "client_ap": "ap2", "client_position": [42, 3]},
    }},
    "aps": {"hosts": ["ap1", "ap2", "ap3"]},
    "clients": {"hosts": ["client1", "client2"]},
}
WALK = os.path.join(ROOT, "scenarios", "walk.yml")


@pytest.fixture
def radio_socket():
    """A radio process of its own on a short temporary path (UNIX socket paths are limited to 107 bytes); stopped
    and its directory removed whatever the test does."""
    folder = tempfile.mkdtemp(prefix="arnab-radio-")
    path = os.path.join(folder, "radio.sock")
    with open(os.path.join(folder, "inv.json"), "w") as handle:
        json.dump(INVENTORY, handle)
    proc = subprocess.Popen([sys.executable, "-m", "arnab_lab.radio", "--inventory-json",
                             os.path.join(folder, "inv.json"), "--socket", path, "--air", "none", "--hold", "off"],
                            env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lab")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(path):
            assert proc.poll() is None, "the radio exited: %s" % proc.stderr.read()
            assert time.monotonic() < deadline, "no radio socket after 15 s"
            time.sleep(0.05)
        yield path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


def radio_state(path):
    return radio.ask(path, {"op": "state"})["state"]


def test_the_modules_default_socket_is_the_radios():
    assert lab_radio.DEFAULT_SOCKET == radio.DEFAULT_SOCKET


def test_state(radio_socket):
    ok, result = run_module(lab_radio_state.main, {"socket": radio_socket})
    assert ok and not result["changed"] and result["emulated"]
    assert result["links"] == {"client1": "ap1", "client2": "ap2"}     # before Odin: plain WiFi to client_ap
    assert result["hears"]["ap1"]["client1"] == pytest.approx(-41.0, abs=0.1)
    assert result["hears"]["ap3"]["client1"] == pytest.approx(-76.3, abs=0.1)   # 75 m, on the client's channel
    assert result["clients"]["client1"]["replay"] is None and sorted(result["aps"]) == ["ap1", "ap2", "ap3"]
    ok, result = run_module(lab_radio_state.main, {"socket": radio_socket, "clients": [C2]}, check_mode=True)
    assert ok and list(result["clients"]) == ["client2"] and result["hears"]["ap2"] == {"client2": -36.7}


def test_move_check_mode_idempotence_and_diff(radio_socket):
    args = {"socket": radio_socket, "client": "client1", "position": [37, 0]}
    ok, result = run_module(lab_radio_move.main, args, check_mode=True, diff=True)
    assert ok and result["changed"] and result["previous"] == [5.0, 0.0]
    assert result["diff"] == {"before": {"position": [5.0, 0.0], "replay": None},
                              "after": {"position": [37.0, 0.0], "replay": None}}
    assert radio_state(radio_socket)["clients"]["client1"]["position"] == [5.0, 0.0]   # nothing moved
    ok, result = run_module(lab_radio_move.main, args)
    assert ok and result["changed"] and result["position"] == [37.0, 0.0]
    assert result["heard"]["ap2"] == pytest.approx(-34.3, abs=0.1)
    assert radio_state(radio_socket)["clients"]["client1"]["position"] == [37.0, 0.0]
    ok, result = run_module(lab_radio_move.main, dict(args, client=C1))     # by MAC, where it already is
    assert ok and not result["changed"] and result["heard"]["ap2"] == pytest.approx(-34.3, abs=0.1)
    ok, result = run_module(lab_radio_move.main, dict(args, position=[37.001, 0]), check_mode=True)
    assert ok and not result["changed"]                                    # the radio's 0.01 m


def test_a_move_stops_a_replay(radio_socket):
    radio.ask(radio_socket, {"op": "signal", "client": "client1", "signal": [[0, {"ap1": -60}]]})
    args = {"socket": radio_socket, "client": "client1", "position": [5, 0]}     # where it already is
    ok, result = run_module(lab_radio_move.main, args)
    assert ok and result["changed"] and result["stopped_replay"] == "signal"
    assert radio_state(radio_socket)["clients"]["client1"]["replay"] is None
    assert not run_module(lab_radio_move.main, args)[1]["changed"]


@pytest.mark.parametrize("args, error", [
    ({"client": "client9", "position": [1, 2]}, "unknown client client9: the radio has client1, client2"),
    ({"client": "client1", "position": [1, 2, 3]}, "position must be [x, y] (two numbers), not [1.0, 2.0, 3.0]"),
    ({"client": "client1", "position": [1, float("inf")]}, "position must be finite"),
])
def test_move_failures_change_nothing(radio_socket, args, error):
    ok, result = run_module(lab_radio_move.main, dict(args, socket=radio_socket))
    assert not ok and error in result["msg"]
    assert radio_state(radio_socket)["clients"]["client1"]["position"] == [5.0, 0.0]


def test_no_radio(tmp_path):
    for main, args in ((lab_radio_move.main, {"client": "client1", "position": [1, 2]}),
                       (lab_radio_state.main, {}), (lab_radio_replay.main, {"scenario": WALK})):
        ok, result = run_module(main, dict(args, socket=str(tmp_path / "none.sock")))
        assert not ok and result["msg"] == ("no emulated radio socket at %s (is the lab up? make lab-up)"
                                            % (tmp_path / "none.sock"))
    (tmp_path / "stale.sock").write_text("")      # a file where no radio listens
    ok, result = run_module(lab_radio_state.main, {"socket": str(tmp_path / "stale.sock"), "timeout": 1})
    assert not ok and result["msg"].startswith("cannot talk to the emulated radio at %s" % (tmp_path / "stale.sock"))


def test_replay_a_scenario_file(radio_socket):
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "scenario": WALK}, check_mode=True)
    assert ok and result["changed"] and result["started"] is None and result["clients"] == ["client1", "client2"]
    assert [r["op"] for r in result["requests"]] == ["signal", "signal"] and result["duration_s"] == 260
    assert radio_state(radio_socket)["clients"]["client1"]["replay"] is None       # check mode: nothing started
    before = time.time()
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "scenario": WALK})
    assert ok and result["changed"] and before <= result["started"] <= time.time()
    state = radio_state(radio_socket)
    assert state["clients"]["client1"]["replay"]["kind"] == "signal"
    assert state["clients"]["client1"]["rssi"]["ap1"] == -45.0 and state["clients"]["client1"]["heard"]["ap3"] == -84.0
    assert state["clients"]["client2"]["heard"] == {"ap1": -76.0, "ap2": -50.0, "ap3": -78.0}
    # some clients only
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "scenario": WALK, "clients": [C2]})
    assert ok and result["requests"] == [{"op": "signal", "client": "client2",
                                          "signal": [[0.0, {"ap1": -76.0, "ap2": -50.0, "ap3": -78.0}]]}]


def test_replay_puts_clients_the_file_does_not_name_back_where_the_inventory_puts_them(radio_socket, tmp_path):
    radio.ask(radio_socket, {"op": "move", "client": "client2", "position": [1, 1]})
    path = tmp_path / "one.yml"
    path.write_text("duration_s: 10\nclients:\n  client1:\n    positions: [[0, 5, 0], [10, 35, 0]]\n")
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "scenario": str(path)})
    assert ok and [(r["op"], r["client"]) for r in result["requests"]] == [("trace", "client1"), ("reset", "client2")]
    state = radio_state(radio_socket)
    assert state["clients"]["client2"]["position"] == [42.0, 3.0]
    assert state["clients"]["client1"]["replay"]["kind"] == "trace"


def test_replay_inline_signal_and_trace(radio_socket):
    signal = [[0, {"ap1": -45, "ap2": -85}], [10, {"ap1": -85, "ap2": -45}]]
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "signal": signal,
                                                    "clients": ["client1", C2]})
    assert ok and result["clients"] == ["client1", "client2"] and result["duration_s"] == 10
    state = radio_state(radio_socket)
    assert state["clients"]["client2"]["heard"]["ap1"] == pytest.approx(-45, abs=1.0)
    assert state["clients"]["client2"]["heard"]["ap3"] is None           # not named: hears nothing
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "trace": [[0, 5, 0], [20, 38, 0]],
                                                    "clients": "client1"})
    assert ok and result["requests"][0]["op"] == "trace"
    state = radio_state(radio_socket)
    assert state["clients"]["client1"]["replay"]["kind"] == "trace"
    assert state["clients"]["client2"]["replay"]["kind"] == "signal"     # not in clients: untouched


@pytest.mark.parametrize("args, error", [
    ({"signal": [[0, {"ap9": -50}]], "clients": ["client1"]},
     "signal: client client1, signal point 1 (t=0): ap9 is not an AP of the inventory (ap1, ap2, ap3)"),
    ({"trace": [[0, 1, 1], [0, 2, 2]], "clients": ["client1"]},
     "trace: client client1, positions point 2 (t=0): times must increase"),
    ({"signal": [[0, {"ap1": "loud"}]], "clients": ["client1"]}, "ap1: 'loud' is not a level in dBm"),
    ({"signal": [[0, {"ap1": -50}]]}, "signal needs clients: the clients that follow it"),
    ({"signal": [[0, {"ap1": -50}]], "clients": ["client7"]}, "unknown client client7: the radio has client1, client2"),
    ({"scenario": WALK, "clients": ["client1", "client7"]}, "unknown client client7"),
    ({"scenario": "/nowhere/walk.yml"}, "/nowhere/walk.yml: cannot read it: No such file or directory"),
    ({"scenario": "BAD"}, "BAD.yml: client client2, signal point 2 (t=10): ap7 is not an AP of the inventory"),
    ({"scenario": "BAD", "signal": [[0, {"ap1": -50}]]}, "parameters are mutually exclusive: scenario|signal|trace"),
    ({}, "one of the following is required: scenario, signal, trace"),
])
def test_replay_failures_change_nothing(radio_socket, tmp_path, args, error):
    bad = tmp_path / "BAD.yml"
    bad.write_text("duration_s: 20\nclients:\n  client1:\n    positions: [[0, 5, 0]]\n  client2:\n    signal:\n"
                   "      - [0, {ap1: -45, ap2: -85}]\n      - [10, {ap1: -85, ap7: -45}]\n")
    if args.get("scenario") == "BAD":
        args = dict(args, scenario=str(bad))
    ok, result = run_module(lab_radio_replay.main, dict(args, socket=radio_socket))
    assert not ok and error in result["msg"], result["msg"]
    state = radio_state(radio_socket)
    assert [c["replay"] for c in state["clients"].values()] == [None, None]
    assert [e for e in radio.ask(radio_socket, {"op": "events"})["events"] if e["event"] in ("signal", "trace")] == []


def test_not_yaml(radio_socket, tmp_path):
    (tmp_path / "x.yml").write_text("duration_s: [\n")
    ok, result = run_module(lab_radio_replay.main, {"socket": radio_socket, "scenario": str(tmp_path / "x.yml")})
    assert not ok and result["msg"].startswith("%s: not YAML" % (tmp_path / "x.yml"))


def test_through_ansible_with_the_checkouts_config(radio_socket):
    """As a playbook finds them: ansible.cfg's `library` and `module_utils` (AnsiballZ ships module_utils/lab_radio)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1")
    base = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable]

    def adhoc(module, args, *extra):
        out = subprocess.run(base + list(extra) + ["-m", module, "-a", json.dumps(args)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    result = adhoc("lab_radio_move", {"client": "client1", "position": [20, 0], "socket": radio_socket}, "--check")
    assert result["changed"] and not result.get("failed")
    result = adhoc("lab_radio_replay", {"scenario": WALK, "socket": radio_socket})
    assert result["changed"] and result["clients"] == ["client1", "client2"]
    result = adhoc("lab_radio_state", {"socket": radio_socket})
    assert result["clients"]["client1"]["replay"]["kind"] == "signal" and result["links"]["client1"] == "ap1"
    result = adhoc("lab_radio_move", {"client": "nobody", "position": [1, 1], "socket": radio_socket})
    assert result["failed"] and result["msg"] == "unknown client nobody: the radio has client1, client2"
