"""Tier 1 against real Click with the OdinAgent element (`lab.agent: real`), on a private lab instance (prefix
`arnabr`, 10.67-69.x; the main lab is left alone): every test of test_tier1.py (the stream survives ap1 -> ap2 and
back, idempotent state modules, check mode, bad input, a dead agent) with real Click on both APs, its radio side
idle and the emulated radio reading each agent's vAP table and CSA beacons (lab/arnab_lab/real_agent.py). The
control path (add/set/remove vAP, channel switch announcement, subscriptions, UDP to the master) is the real
element's. Needs root, gcc and a Click build with OdinAgent (`make click`); skips saying so without one.
"""
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_tier1  # noqa: E402  pylint: disable=wrong-import-position
from test_tier1 import CLIENT_MAC  # noqa: E402  pylint: disable=wrong-import-position
# test_tier1's tests, in its order, on this module's lab (real Click)
from test_tier1 import test_stream_survives_ap1_to_ap2_and_back  # noqa: E402,F401  pylint: disable=all
from test_tier1 import test_second_run_of_the_state_modules_changes_nothing  # noqa: E402,F401  pylint: disable=all
from test_tier1 import test_check_mode_changes_nothing  # noqa: E402,F401  pylint: disable=all
from test_tier1 import test_bad_input_fails_clearly_and_changes_nothing  # noqa: E402,F401  pylint: disable=all
from test_tier1 import test_a_dead_agent_fails_clearly_and_changes_nothing  # noqa: E402,F401  pylint: disable=all

REPO = test_tier1.REPO
PREFIX = "arnabr"
NETS = (67, 68, 69)


def click_binary():
    path = os.environ.get("ARNAB_CLICK") or os.path.join(REPO, "build", "click")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("gcc"), reason="the lab needs root, and gcc"),
    pytest.mark.skipif(click_binary() is None,
                       reason="no Click build with OdinAgent: `make click` builds one from ARNAB_CLICK_SRC "
                              "(docs/click.md) and links build/click; or point ARNAB_CLICK at a click binary"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from test_tier1.private_lab(tmp_path_factory, PREFIX, NETS, agent="real")


def node(lab, name, *argv):
    return subprocess.run([test_tier1.LABCTL, "--inventory", lab.inventory, "exec", name, "--"] + list(argv),
                          capture_output=True, text=True, check=False)


def test_the_agents_are_real_click_with_odinagent(lab):
    """Each AP's agent process is real Click on the lab's copy of the AP's configuration, and says so."""
    for ap in ("ap1", "ap2"):
        pid = lab.agent_pid(ap)
        exe = os.path.realpath("/proc/%d/exe" % pid)
        assert exe == os.path.realpath(click_binary()), exe
        cmdline = open("/proc/%d/cmdline" % pid).read().split("\0")
        assert cmdline[1] == "/run/%s-lab/nodes/%s/agent-lab.cli" % (PREFIX, ap)
    from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlClient
    for ap, channel in (("ap1", "6"), ("ap2", "1")):
        with ClickControlClient(lab.ip(ap)) as agent:
            assert "emulated" not in agent.read("version")
            assert agent.read("odinagent.class").strip() == "OdinAgent"
            assert agent.read("odinagent.channel").strip() == channel


SNIFF_MASTER = """
import socket, struct, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
sock.bind(("ctl0", 0))
sock.settimeout(1.0)
seen, deadline = set(), time.monotonic() + 6
while len(seen) < int(sys.argv[1]) and time.monotonic() < deadline:
    try:
        frame = sock.recv(2048)
    except socket.timeout:
        continue
    ip = frame[14:]
    if ip[9] == 17 and struct.unpack("!H", ip[(ip[0] & 15) * 4 + 2:][:2])[0] == 2819:
        payload = ip[(ip[0] & 15) * 4 + 8:]
        seen.add((socket.inet_ntoa(ip[12:16]), payload.decode("latin-1").strip()))
print(sorted(seen))
"""


def test_subscriptions_and_the_master_channel_on_the_real_element(lab):
    """A subscription written and read back in the real element's formats; every real agent pings the master over
    UDP from its own address."""
    from ansible_collections.arnab.testbed.plugins.module_utils import odin
    from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlClient
    subs = [odin.Subscription(7, CLIENT_MAC, "signal", "greater_than", -70.0)]
    with ClickControlClient(lab.ip("ap2")) as agent:
        agent.write("odinagent.subscriptions", odin.format_subscriptions(subs))
        assert odin.parse_subscription_lines(agent.read("odinagent.subscriptions")) == subs
        agent.write("odinagent.subscriptions", "0")
        assert agent.read("odinagent.subscriptions") == ""
    sniffed = node(lab, "ocs", "python3", "-c", SNIFF_MASTER, str(len(lab.ap_names)))
    assert sniffed.stdout.strip() == str(sorted((lab.ip(ap), "ping") for ap in lab.ap_names)), sniffed.stderr
