"""roles/ap on a Python-less 'AP' (localhost, interpreter /nonexistent): fake ovs-vsctl/ovs-ofctl keep state
in files, and `click` runs the real emulated Odin agent. First run changes, second run changes nothing."""
import json
import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from arnab_lab import lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

FAKE_OVS = r'''#!{python}
"""Just enough ovs-vsctl / ovs-ofctl for the ap role, state in $FAKE_OVS_STATE (JSON)."""
import json, os, sys
path = os.environ["FAKE_OVS_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {{"bridges": {{}}, "log": []}}
tool, args = os.path.basename(sys.argv[0]), [a for a in sys.argv[1:] if a not in ("--names", "--no-stats")]
state["log"].append([tool] + args)
def br(name):
    return state["bridges"][name]
if tool == "ovs-vsctl":
    cmd = args[0]
    if cmd == "br-exists":
        sys.exit(0 if args[1] in state["bridges"] else 2)
    elif cmd == "add-br":
        state["bridges"][args[1]] = {{"controllers": [], "fail_mode": "", "ports": [], "flows": []}}
    elif cmd == "get-controller":
        print("\n".join(br(args[1])["controllers"]))
    elif cmd == "set-controller":
        br(args[1])["controllers"] = args[2:]
    elif cmd == "get-fail-mode":
        print(br(args[1])["fail_mode"])
    elif cmd == "set-fail-mode":
        br(args[1])["fail_mode"] = args[2]
    elif cmd == "list-ports":
        print("\n".join(br(args[1])["ports"]))
    elif cmd == "add-port":
        br(args[1])["ports"].append(args[2])
else:
    cmd, bridge = args[0], args[1]
    cookie = args[2].split("=")[1].split("/")[0] if len(args) > 2 else None
    flows = br(bridge)["flows"]
    if cmd == "dump-flows":
        print("NXST_FLOW reply (xid=0x4):")
        for f in flows:
            if f.startswith("cookie=%s," % cookie):
                head, actions = f.split(",actions=")
                c, rest = head.split(",", 1)
                print(" %s, %s actions=%s" % (c, rest, actions))
    elif cmd == "del-flows":
        br(bridge)["flows"] = [f for f in flows if not f.startswith("cookie=%s," % cookie)]
    elif cmd == "add-flow":
        flows.append(args[2])
json.dump(state, open(path, "w"))
'''


INVENTORY = """
all:
  children:
    ocs_servers:
      hosts:
        ocs: {ansible_host: 127.0.0.9}
    aps:
      hosts:
        ap1:
          ansible_host: 127.0.0.1
          ansible_connection: local
          ansible_python_interpreter: /nonexistent/no-python-on-this-ap
          ap_mac: "02:a0:00:00:00:01"
          ap_channel: 6
"""

PLAY = """
- name: AP
  hosts: aps
  gather_facts: false
  roles:
    - role: ap
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ap_env(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ovs-vsctl", "ovs-ofctl"):
        (bindir / tool).write_text(FAKE_OVS.format(python=sys.executable))
        (bindir / tool).chmod(0o755)
    # the lab's own shim: `click CONFIG` runs the emulated Odin agent, `click -q` checks a configuration
    (bindir / "click").write_text(lab.CLICK_SHIM.format(lab=os.path.join(ROOT, "lab"), python=sys.executable,
                                                        ip="127.0.0.1", radio="''", name="ap1"))
    (bindir / "click").chmod(0o755)
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "play.yml").write_text(PLAY)
    port = free_port()
    extra = {"ap_agent_config": str(tmp_path / "etc" / "agent.cli"), "ap_agent_pidfile": str(tmp_path / "agent.pid"),
             "ap_agent_log": str(tmp_path / "agent.log"), "ap_agent_port": port}
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), FAKE_OVS_STATE=str(tmp_path / "ovs.json"),
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))

    def play(**variables):
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                "-e", json.dumps(dict(extra, **variables)), str(tmp_path / "play.yml")]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=180, check=False)
        out = json.loads(proc.stdout)
        return proc.returncode, out["stats"]["ap1"], out

    yield play, tmp_path, port
    pidfile = tmp_path / "agent.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (OSError, ValueError):
            pass


def test_ap_role_converges_and_is_idempotent(ap_env):
    play, tmp_path, port = ap_env
    rc, stats, out = play()
    assert rc == 0, json.dumps(out)[-3000:]
    assert stats["changed"] >= 6 and stats["failures"] == 0
    state = json.load(open(tmp_path / "ovs.json"))
    bridge = state["bridges"]["br0"]
    assert sorted(bridge["controllers"]) == ["ptcp:6634:127.0.0.1", "tcp:127.0.0.9:6633"]
    assert bridge["fail_mode"] == "secure" and bridge["ports"] == ["eth1", "ap"]
    assert bridge["flows"] == ["cookie=0xd4c9,priority=300,udp,in_port=ap,tp_dst=67,actions=output:eth1",
                               "cookie=0xd4c9,priority=300,udp,in_port=eth1,tp_dst=68,actions=output:ap"]
    conf = odin.parse_agent_config((tmp_path / "etc" / "agent.cli").read_text())
    assert (conf["master_ip"], conf["agent_ip"], conf["channel"], conf["control_port"]) == \
        ("127.0.0.9", "127.0.0.1", 6, port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:   # the agent answers
        assert sock.makefile("rb").readline() == b"Click::ControlSocket/1.3\r\n"

    rc, stats, out = play()
    assert rc == 0 and stats["changed"] == 0, json.dumps(out)[-3000:]

    rc, stats, _out = play(ap_agent_state="stopped")
    assert rc == 0 and stats["changed"] == 1
    assert not (tmp_path / "agent.pid").exists()


def test_a_stale_pid_file_naming_another_process_does_not_pass_for_the_agent(ap_env):
    """The PID in a stale pid file was reused by some other process: the role starts the agent all the same, and
    stopping it leaves that other process alone."""
    play, tmp_path, port = ap_env
    other = subprocess.Popen(["sleep", "300"])
    try:
        (tmp_path / "agent.pid").write_text("%d\n" % other.pid)
        rc, stats, out = play()
        assert rc == 0, json.dumps(out)[-3000:]
        assert int((tmp_path / "agent.pid").read_text()) != other.pid
        agent = int((tmp_path / "agent.pid").read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:   # our agent answers
            assert sock.makefile("rb").readline() == b"Click::ControlSocket/1.3\r\n"
        (tmp_path / "agent.pid").write_text("%d\n" % other.pid)
        rc, stats, out = play(ap_agent_state="stopped")
        assert rc == 0 and stats["changed"] == 0 and other.poll() is None    # not ours: not killed
        (tmp_path / "agent.pid").write_text("%d\n" % agent)                 # the fixture stops our agent
    finally:
        other.kill()
        other.wait()
