"""Tier 1 on a private lab instance (prefix `arnabx`, 10.87-89.x; the main lab is left alone): a client streams
TCP from a server behind the data switch while its vAP moves ap1 (channel 6) -> ap2 (channel 1) and back;
state modules are idempotent; check mode changes nothing; bad input and a dead agent fail clearly and leave
every AP as it was. Emulated agents and radio, real Open vSwitch, real TCP; everything through ansible-runner
and the collection's playbooks and modules. Needs root and what `make setup` installs (gcc for the server).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "lab"))

from arnab_lab import runner, topology  # noqa: E402  pylint: disable=wrong-import-position

LABCTL = os.path.join(REPO, "lab", "labctl")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MODULE_PLAYBOOK = os.path.join(REPO, "tests", "lab", "playbooks", "tier1_module.yml")
PREFIX = "arnabx"
CLIENT_MAC = "02:c0:00:00:00:01"
STREAM_PORT = 8090

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("gcc"), reason="the lab needs root, and gcc")


class Lab:
    def __init__(self, inventory):
        self.inventory = inventory
        hosts = yaml.safe_load(open(os.path.join(inventory, "hosts.yml")))["all"]["children"]
        self.hosts = dict((h, hv) for group in hosts.values() for h, hv in group["hosts"].items())
        self.ap_names = sorted(hosts["aps"]["hosts"])
        lab = yaml.safe_load(open(os.path.join(inventory, "group_vars", "all", "lab.yml")))["lab"]
        self.prefix, self.switch_ip = lab["prefix"], lab["data"]["switch_ip"]
        self.server = None

    def ip(self, host):
        return self.hosts[host]["ansible_host"]

    def switches(self):
        return {"ap1": "tcp:%s:6634" % self.ip("ap1"), "ap2": "tcp:%s:6634" % self.ip("ap2"),
                "dsw": "tcp:%s:6634" % self.switch_ip}

    def aps(self):
        return [{"name": ap, "agent": self.ip(ap), "switch": self.switches()[ap]} for ap in ("ap1", "ap2")]

    def playbook(self, name, extravars=None, limit=None):
        return runner.run_playbook(name, extravars or {}, inventory=self.inventory, quiet=True, limit=limit)

    def module(self, module, margs=None, check=False, **extra):
        """One module call through tests/lab/playbooks/tier1_module.yml -> its result (PlaybookFailed if it fails)."""
        results = self.playbook(MODULE_PLAYBOOK, dict(extra, module=module, margs=margs or {}, check=check))
        return results["localhost"]["Call " + module]   # the task is named after the module

    def tables(self):
        """{ap: (vAP table text, channel)} read with odin_agent_info."""
        res = self.module("tables", agents=[self.ip("ap1"), self.ip("ap2")])
        return dict(("ap%d" % (i + 1), (r["agent_info"]["table"], r["agent_info"]["channel"]))
                    for i, r in enumerate(res["results"]))

    def flows(self):
        """{switch: sorted flow lines} read with ovs-ofctl (no statistics)."""
        out = {}
        for name, target in self.switches().items():
            proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", target],
                                  capture_output=True, text=True, check=True, timeout=20)
            out[name] = sorted(line.strip() for line in proc.stdout.splitlines() if "actions=" in line)
        return out

    def snapshot(self):
        return {"tables": self.tables(), "flows": self.flows()}

    def agent_pid(self, ap):
        proc = subprocess.run([LABCTL, "--inventory", self.inventory, "exec", ap, "--", "cat", "/tmp/odin-agent-%s-%s.pid" % (self.prefix, ap)],
                              capture_output=True, text=True, check=True)
        return int(proc.stdout.strip())


def labctl(inventory, *args):
    proc = subprocess.run([LABCTL, "--inventory", inventory] + list(args), capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab inventory with prefix arnabx and 10.87-89.x; up, APs and client placed, a stream server in
    edge1's namespace. Everything is removed at the end, whatever happened."""
    yield from private_lab(tmp_path_factory, PREFIX, (87, 88, 89))


def private_lab(tmp_path_factory, prefix, nets, agent=None):
    """A private lab instance: the lab inventory with `prefix` and 10.<nets>.x for 10.77-79.x (and lab.agent
    `agent`), up, APs and client placed, a stream server in edge1's namespace; all removed at the end."""
    inv = topology.private_inventory(str(tmp_path_factory.mktemp("inv")), prefix, nets, agent or "emulated")
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = VENV_BIN + os.pathsep + old_path   # ansible-runner runs the venv's ansible-playbook
    the_lab = Lab(str(inv))
    started = time.monotonic()
    try:
        rc, out = labctl(str(inv), "up")
        assert rc == 0, out
        the_lab.playbook("aps.yml")
        binary = str(tmp_path_factory.mktemp("bin") / "arnab-workload")
        source = os.path.join(REPO, "roles", "edge", "files", "arnab_workload.c")
        subprocess.run(["gcc", "-O2", "-static", "-o", binary, source], check=True)
        the_lab.server = subprocess.Popen(["ip", "netns", "exec", "%s-edge1" % prefix, binary, "video", "--port",
                                           str(STREAM_PORT), "--rss-mib", "1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("private lab up, APs and client placed: %.1f s" % (time.monotonic() - started))
        yield the_lab
    finally:
        if the_lab.server and the_lab.server.poll() is None:
            the_lab.server.send_signal(signal.SIGTERM)
            the_lab.server.wait(10)
        labctl(str(inv), "down")
        os.environ["PATH"] = old_path


def holder(tables):
    return [ap for ap, (table, dummy) in sorted(tables.items()) if any(v["sta_mac"] == CLIENT_MAC for v in table)]


def client_flow_switches(flows):
    cookie = "cookie=0xd1a%s" % CLIENT_MAC.replace(":", "")
    return sorted(name for name, lines in flows.items() if any(cookie in line for line in lines))


def test_stream_survives_ap1_to_ap2_and_back(lab, tmp_path):
    """No reset, no lost byte, the vAP and the client's flows only where they should be, the gap measured."""
    assert holder(lab.tables()) == ["ap1"]
    for source, target in (("ap1", "ap2"), ("ap2", "ap1")):
        report_path = str(tmp_path / ("vap-%s.json" % target))
        lab.playbook("migrate_vap.yml", {"client": "client1", "target": target, "report": report_path,
                                         "stream_host": lab.hosts["edge1"]["data_ip"], "stream_port": STREAM_PORT})
        report = json.load(open(report_path))
        stream = report["client_stream"]
        print("%s -> %s: control path %.1f ms, total %.1f ms, client gap %s ms, stream %d bytes"
              % (source, target, report["control_path_ms"], report["total_ms"], report["client_gap_ms"],
                 stream["bytes"]))
        assert (report["from_ap"], report["to_ap"], report["channel_switch"]) == (source, target, True)
        assert stream["reset"] is None and stream["problem"] is None, stream
        assert stream["ok"] and report["ok"] and stream["packets"] > 100
        # a gap exists (the client leaves its channel) and stays far below what a WiFi re-association costs
        assert 0 < report["client_gap_ms"] < 1000
        assert report["control_path_ms"] > 0
        tables, flows = lab.tables(), lab.flows()
        assert holder(tables) == [target]
        assert client_flow_switches(flows) == sorted([target, "dsw"])


def test_second_run_of_the_state_modules_changes_nothing(lab):
    """aps.yml again: odin_agent_config (ap role), odin_vap and openflow_rule (client placement) all report ok."""
    before = lab.snapshot()
    results = lab.playbook("aps.yml")
    for ap in ("ap1", "ap2"):
        assert results[ap]["Odin agent Click configuration"]["changed"] is False
    assert results["client1"]["The client's vAP on its AP"]["changed"] is False
    assert results["client1"]["The client's flows at its AP"]["changed"] is False
    assert lab.snapshot() == before
    # and module by module: a first run changes, a second does not
    flow = {"target": lab.switches()["ap2"], "cookie": 0x7e57, "flows": [
        {"match": "in_port=ap,dl_type=0x0800,nw_src=10.88.0.199", "actions": "output:eth1", "priority": 150}]}
    vap = {"agent": lab.ip("ap2"), "sta_mac": "02:c0:00:00:00:99", "sta_ip": "10.88.0.199", "ssids": ["arnab"]}
    try:
        for module, margs in (("openflow_rule", flow), ("odin_vap", vap)):
            assert lab.module(module, margs)["changed"] is True
            assert lab.module(module, margs)["changed"] is False
    finally:
        lab.module("openflow_rule", dict(flow, state="absent"))
        lab.module("odin_vap", {"agent": lab.ip("ap2"), "sta_mac": "02:c0:00:00:00:99", "state": "absent"})
    assert lab.snapshot() == before


def test_check_mode_changes_nothing(lab):
    before = lab.snapshot()
    result = lab.module("vap_migrate", {"sta_mac": CLIENT_MAC, "target": "ap2", "aps": lab.aps(),
                                        "data_switch": lab.switches()["dsw"]}, check=True)
    assert result["changed"] is True and result["to_ap"] == "ap2" and result["commands"]
    result = lab.module("odin_vap", {"agent": lab.ip("ap2"), "sta_mac": "02:c0:00:00:00:98", "sta_ip": "10.88.0.198",
                                     "ssids": ["arnab"]}, check=True)
    assert result["changed"] is True
    result = lab.module("odin_vap", {"agent": lab.ip("ap1"), "sta_mac": CLIENT_MAC, "state": "absent"}, check=True)
    assert result["changed"] is True
    result = lab.module("openflow_rule", {"target": lab.switches()["ap2"],
                                          "odin_client_pair": {"sta_ip": "10.88.0.100", "sta_mac": CLIENT_MAC}},
                        check=True)
    assert result["changed"] is True
    assert lab.snapshot() == before


def _fails(lab, module, margs, expected):
    with pytest.raises(runner.PlaybookFailed) as failed:
        lab.module(module, margs)
    message = "; ".join(failed.value.failures)
    assert expected in message, message
    return message


def test_bad_input_fails_clearly_and_changes_nothing(lab):
    before = lab.snapshot()
    migrate = {"sta_mac": "02:c0:00:00:00:zz", "target": "ap2", "aps": lab.aps(), "data_switch": lab.switches()["dsw"]}
    print(_fails(lab, "vap_migrate", migrate, "02:c0:00:00:00:zz"))
    print(_fails(lab, "odin_vap", {"agent": lab.ip("ap2"), "sta_mac": "02:c0:00:00:00", "sta_ip": "10.88.0.100",
                                   "ssids": ["arnab"]}, "02:c0:00:00:00"))
    print(_fails(lab, "vap_migrate", dict(migrate, sta_mac=CLIENT_MAC, target="ap9"), "'ap9' is not one of the APs"))
    with pytest.raises(runner.PlaybookFailed) as failed:
        lab.playbook("migrate_vap.yml", {"client": "client1", "target": "ap9", "probe": False})
    assert "unknown AP ap9" in str(failed.value)
    assert lab.snapshot() == before


def test_a_dead_agent_fails_clearly_and_changes_nothing(lab):
    before = lab.snapshot()
    os.kill(lab.agent_pid("ap2"), signal.SIGKILL)
    try:
        message = _fails(lab, "vap_migrate", {"sta_mac": CLIENT_MAC, "target": "ap2", "aps": lab.aps(),
                                              "data_switch": lab.switches()["dsw"], "timeout": 2},
                         "nothing changed; unreachable: ap2 (%s)" % lab.ip("ap2"))
        print(message)
        ap1_table = lab.module("tables", agents=[lab.ip("ap1")])["results"][0]["agent_info"]["table"]
        assert ap1_table == before["tables"]["ap1"][0]
        assert lab.flows() == before["flows"]
    finally:
        # the ap role starts the agent again; the clients' play gives back the vAPs it lost (client2 starts on ap2)
        lab.playbook("aps.yml", limit="ap2:clients")
    assert lab.snapshot() == before
