"""Every inventory's agent configurations, rendered by the ap role's own task (the odin_agent_config action plugin,
no Python on the "AP"), load in real Click with the OdinAgent element: the plugin's `click -q` check runs with
the real binary as the AP's `click`, and the test loads each file once more itself.

Needs a Click build (`make click`, docs/click.md); skips with that message when there is none.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
INVENTORIES = ("lab", "lab-guest", "paper")

PLAY = """
- name: Render each AP's agent configuration with the ap role's task
  hosts: aps
  gather_facts: false
  tasks:
    - name: The role's configuration task alone
      ansible.builtin.include_role:
        name: arnab.testbed.ap
        tasks_from: agent_config.yml
"""

# What this project used to render (a Queue before the push path into [0]odinagent, 3 of 5 outputs wired,
# booleans, DEBUG_CLICK): real Click refuses it, which shows the load test can fail.
OLD_GRAPH = """\
define($HW_ADDR 02:a0:00:00:00:01, $DEFAULT_GW 10.77.0.11);
odinagent :: OdinAgent(HWADDR $HW_ADDR, RT rates, CHANNEL 6, DEFAULT_GW $DEFAULT_GW, DEBUGFS /tmp/x, SSIDAGENT odin,
                       DEBUG_ODIN 0, TX_RATE 108, TX_POWER 20, HIDDEN false, MULTICHANNEL_AGENTS true,
                       DEFAULT_BEACON_INTERVAL 100, BURST_BEACON_INTERVAL 10, BURST 10,
                       MEASUREMENT_BEACON_INTERVAL 100, CAPTURE_MODE false, MAC_CAPTURE ff:ff:ff:ff:ff:ff,
                       DEBUG_CLICK 0);
rates :: AvailableRates(DEFAULT 2 4 11 12 18 22 24 36 48 72 96 108);
odinsocket :: Socket(UDP, 127.0.0.1, 2819, CLIENT true);
TimedSource(2, "ping\\n") -> odinsocket;
odinagent[3] -> odinsocket;
arp_resp :: ARPResponder($DEFAULT_GW $HW_ADDR);
FromHost(ap, HEADROOM 50) -> fhcl :: Classifier(12/0806 20/0001, -);
fhcl[0] -> arp_resp -> ToHost(ap);
fhcl[1] -> [1]odinagent;
odinagent[2] -> ToHost(ap);
odinagent[0] -> q_out :: Queue(50) -> SetTXRate(108) -> RadiotapEncap() -> ToDevice(mon0);
FromDevice(mon0, HEADROOM 50) -> q_in :: Queue(50) -> rx :: RadiotapDecap()
  -> ExtraDecap() -> FilterPhyErr() -> FilterTX() -> WifiDupeFilter() -> [0]odinagent;
FromDevice(mon1, HEADROOM 50) -> RadiotapDecap() -> ExtraDecap() -> FilterPhyErr()
  -> FilterTX() -> WifiDupeFilter() -> [2]odinagent;
odinagent[1] -> Discard;
"""


def click_q(click, text):
    return subprocess.run([click, "-q"], input=text, capture_output=True, text=True, timeout=60, check=False)


def render_inventory(tmp_path, inventory, click):
    """Run the role's configuration task over the inventory's APs (local connection, files under tmp_path)."""
    out = tmp_path / inventory
    out.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"))
    extra = {"ansible_connection": "local", "ansible_become": False,
             "ansible_python_interpreter": "/nonexistent/no-python",
             "ap_agent_config": str(out) + "/{{ inventory_hostname }}.cli",
             "ap_agent_pidfile": str(out) + "/{{ inventory_hostname }}.pid",   # the restart handler's
             "ap_click": click}
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(ROOT, "inventories", inventory),
                           "-e", json.dumps(extra), str(playbook)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tasks = [t for t in json.loads(proc.stdout)["plays"][0]["tasks"]
             if t["task"]["name"].endswith("Odin agent Click configuration")]
    assert len(tasks) == 1, proc.stdout[-4000:]
    return out, tasks[0]["hosts"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_config_loads_in_real_click(tmp_path, inventory, real_click):
    out, results = render_inventory(tmp_path, inventory, real_click)
    files = sorted(glob.glob(str(out / "*.cli")))
    assert files and len(files) == len(results), (files, list(results))
    for host, result in results.items():
        assert result["click_check"] == "passed", (host, result)
    for path in files:
        text = open(path).read()
        proc = click_q(real_click, odin.agent_config_for_check(text))
        assert proc.returncode == 0, (path, proc.stderr)
        conf = odin.parse_agent_config(text)   # and the emulated agent reads the same file
        assert conf["ap_mac"] and conf["agent_ip"]


@pytest.mark.parametrize("variant", [dict(click_debug=2), dict(hidden=True, multichannel=False, capture_mode=True),
                                     dict(channel=36, ssid="a;b`c(d)")])
def test_option_variants_load(real_click, variant):
    text = odin.render_agent_config(dict(ap_mac="02:a0:00:00:00:01", master_ip="10.77.0.10", agent_ip="10.77.0.11",
                                         **variant))
    proc = click_q(real_click, odin.agent_config_for_check(text))
    assert proc.returncode == 0, proc.stderr


def test_real_click_refuses_the_old_graph(real_click):
    proc = click_q(real_click, odin.agent_config_for_check(OLD_GRAPH))
    assert proc.returncode != 0
    assert "in mixed context" in proc.stderr or "unused" in proc.stderr or "invalid number" in proc.stderr, proc.stderr
