"""Every string option of odin_agent_info, odin_vap and vap_migrate with hostile payloads (command substitution,
backticks, `;`, quotes, and CR/LF that would end a ControlSocket command and inject another), against real
emulated agents on loopback: the module fails with a clear message before anything is sent, no agent's vAP table
changes, and nothing is ever executed."""
import copy
import os

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.modules import odin_agent_info, odin_vap, vap_migrate

from odin_lab import C1, mini_lab  # noqa: F401  # pylint: disable=unused-import
from module_harness import FakeOvs, run_module

MARK = "/tmp/arnab-payload-ran"
INJECT = "WRITE odinagent.add_vap 02:c0:00:00:00:09 10.78.0.9 00:1b:b3:00:00:09 evil"
PAYLOADS = {
    "subst": "$(touch %s)" % MARK,
    "backticks": "`touch %s`" % MARK,
    "semicolon": "x;touch %s" % MARK,
    "newline": "x\n" + INJECT,
    "cr": "x\r" + INJECT,
    "quotes": "a\"b'c",
}
AP1_SW, AP2_SW, DSW = "tcp:10.77.0.11:6634", "tcp:10.77.0.12:6634", "tcp:10.77.0.5:6634"


def base_info(lab):
    return dict(agent="127.0.0.1", port=lab["ports"]["ap1"], gather=["table", "channel"])


def base_vap(lab):
    return dict(agent="127.0.0.1", port=lab["ports"]["ap1"], sta_mac=C1, sta_ip="10.78.0.100", ssids=["arnab"],
                bssid="00:1b:b3:00:00:01", state="present")


def base_migrate(lab):
    aps = [dict(name=n, agent="127.0.0.1", port=lab["ports"][n], switch=sw, ap_port="ap", uplink_port="eth1",
                data_switch_port=n) for n, sw in (("ap1", AP1_SW), ("ap2", AP2_SW))]
    return dict(sta_mac=C1, sta_ip="10.78.0.100", ssids=["arnab"], target="ap2", aps=aps, data_switch=DSW,
                openflow_version="1.0", scan_time=0.05, ofctl="ovs-ofctl")


CASES = [(odin_agent_info, base_info, path) for path in ("agent", "gather.0")] + \
        [(odin_vap, base_vap, path) for path in ("agent", "sta_mac", "sta_ip", "ssids.0", "bssid", "state")] + \
        [(vap_migrate, base_migrate, path) for path in (
            "sta_mac", "sta_ip", "ssids.0", "target", "data_switch", "openflow_version", "ofctl",
            "aps.0.name", "aps.0.agent", "aps.0.switch", "aps.0.ap_port", "aps.0.uplink_port",
            "aps.0.data_switch_port", "aps.1.agent")]


CHOICES = ("gather.0", "state", "openflow_version")


def put(args, path, value):
    node, keys = args, path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return args


@pytest.mark.parametrize("module,base,path", CASES, ids=["%s:%s" % (m.__name__.rsplit(".", 1)[-1], p)
                                                         for m, _b, p in CASES])
def test_payloads_fail_cleanly_and_change_nothing(mini_lab, module, base, path):
    agents = mini_lab["agents"]
    agents["ap1"].write_add_vap(odin.Vap.build(C1, "10.78.0.100", "arnab").to_line())
    before = dict((n, copy.deepcopy(a.vaps)) for n, a in agents.items())
    for name, payload in sorted(PAYLOADS.items()):
        ovs = FakeOvs({AP1_SW: {"ap": 1, "eth1": 2}, AP2_SW: {"ap": 1, "eth1": 2}, DSW: {"ap1": 1, "ap2": 2}})
        ok, result = run_module(module.main, put(base(mini_lab), path, payload), run_command=ovs)
        assert not ok, (name, result)
        assert isinstance(result["msg"], str) and result["msg"], (name, result)
        if path in CHOICES:   # AnsibleModule's own check comes first
            assert "must be one" in result["msg"], (name, result["msg"])
        elif name in ("newline", "cr"):
            assert "control character" in result["msg"], (name, result["msg"])
        assert dict((n, a.vaps) for n, a in agents.items()) == before, name   # nothing injected, nothing moved
        assert not [argv for argv in ovs.calls if set(argv) & {"add-flow", "add-flows", "del-flows"}], ovs.calls
        assert not os.path.exists(MARK), name
