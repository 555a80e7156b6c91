"""The real ansible-rulebook runs extensions/eda/rulebooks/ocs.yml with the odin_master source on 127.0.0.1: a
handoff decision runs the playbook (a harmless stand-in for double_tier.yml) with the client, target AP, edge and
container, and ocs_done.yml reports its end back to the source. Skipped when ansible-rulebook or Java 17 is missing."""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))
RULEBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-rulebook")
C1 = "02:c0:00:00:00:01"


def java_home():
    if os.environ.get("JAVA_HOME") and os.path.isdir(os.environ["JAVA_HOME"]):
        return os.environ["JAVA_HOME"]
    found = sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*"))
    return found[0] if found else None


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not os.path.exists(RULEBOOK_BIN), reason="ansible-rulebook is not installed (make setup)")
@pytest.mark.skipif(java_home() is None, reason="no Java 17 runtime (openjdk-17-jre-headless)")
def test_rulebook_runs_the_playbook_for_a_handoff(tmp_path):
    agents = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for dummy in range(2)]
    for agent in agents:
        agent.bind(("127.0.0.1", 0))
    port, done_port = free_udp_port(), free_udp_port()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ocs_mobility": {"scan": "passive", "triggers": 1, "hysteresis_s": 0}},
        "children": {
            "ocs_servers": {"hosts": {"localhost": {"ansible_connection": "local",
                                                    "ansible_python_interpreter": sys.executable}}},
            "aps": {"hosts": dict(("ap%d" % (i + 1), {"odin_agent_ip": "127.0.0.1:%d" % a.getsockname()[1],
                                                      "ap_edge": "edge%d" % (i + 1), "ap_channel": 1 + 5 * i})
                                  for i, a in enumerate(agents))},
            "clients": {"hosts": {"client1": {"client_mac": C1, "client_ap": "ap1", "client_service": "video"}}}}}}))
    state_file = tmp_path / "state.json"
    variables = tmp_path / "vars.yml"
    variables.write_text(yaml.safe_dump(dict(
        ocs_inventory=str(inventory), ocs_host="127.0.0.1", ocs_port=port, ocs_done_port=done_port,
        ocs_report_dir=str(tmp_path / "reports"), ocs_state_file=str(state_file), ocs_identify_by="address", ocs_subscribe=False,
        ocs_playbook=os.path.join(ROOT, "tests/unit/extensions/eda/rulebooks/files/handoff_probe.yml"),
        ocs_method="pre-copy", ocs_event_log=str(tmp_path / "events.jsonl"))))
    (tmp_path / "reports").mkdir()
    env = dict(os.environ, JAVA_HOME=java_home(), ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    log = open(tmp_path / "rulebook.log", "w")
    proc = subprocess.Popen([RULEBOOK_BIN, "-r", "extensions/eda/rulebooks/ocs.yml", "-i", str(inventory),
                             "--vars", str(variables), "-v"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def state():
            try:
                return json.loads(state_file.read_text())
            except (OSError, ValueError):
                return None

        def until(check, timeout, what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    log = (tmp_path / "rulebook.log").read_text()[-3000:]
                    pytest.fail("ansible-rulebook exited (%s): %s" % (proc.returncode, log))
                for agent in agents:
                    agent.sendto(b"ping\n", ("127.0.0.1", port))
                result = check()
                if result:
                    return result
                time.sleep(0.3)
            pytest.fail("%s: not within %d s; log:\n%s" % (what, timeout, (tmp_path / "rulebook.log").read_text()[-3000:]))

        until(lambda: (state() or {}).get("stats", {}).get("master", {}).get("msg_ping", 0) >= 2, 90, "source up")
        agents[1].sendto(("publish %s 1 1:-50\n" % C1).encode(), ("127.0.0.1", port))
        agents[0].sendto(("publish %s 1 1:-80\n" % C1).encode(), ("127.0.0.1", port))
        report = tmp_path / "reports" / "handoff-1-client1.json"
        until(lambda: report.exists() and report.stat().st_size > 0, 90, "the handoff playbook ran")
        assert json.loads(report.read_text()) == {"ok": True, "client": "client1", "service": "video",
                                                  "method": "pre-copy", "dest": "edge2", "tier1": {"to_ap": "ap2"}}
        done = until(lambda: [h for h in (state() or {}).get("handoffs", []) if h.get("state") == "done"], 90,
                     "ocs_done.yml reported the end")
        assert done[0]["ok"] is True and done[0]["to_ap"] == "ap2"
        logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert [e["to_ap"] for e in logged if e["type"] == "handoff"] == ["ap2"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()
        for agent in agents:
            agent.close()
