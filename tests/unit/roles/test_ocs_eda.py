"""roles/ocs's OCS (tasks_from eda) on localhost: the real ansible-rulebook started detached with the pid file,
its variables and its event log, idempotent while it runs, then stopped. Skipped without ansible-rulebook or Java 17."""
import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VENV = os.path.dirname(os.path.dirname(sys.executable))
JVMS = sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*"))

PLAY = """
- name: OCS
  hosts: ocs_servers
  gather_facts: false
  tasks:
    - name: The OCS
      ansible.builtin.include_role:
        name: ocs
        tasks_from: eda
"""


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not os.path.exists(os.path.join(VENV, "bin", "ansible-rulebook")), reason="no ansible-rulebook")
@pytest.mark.skipif(not JVMS, reason="no Java 17 runtime (openjdk-17-jre-headless)")
def test_the_role_starts_and_stops_the_ocs(tmp_path):
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent.bind(("127.0.0.1", 0))
    run_dir = tmp_path / "run"
    inventory = {"all": {"children": {
        "ocs_servers": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "aps": {"hosts": {"ap1": {"odin_agent_ip": "127.0.0.1:%d" % agent.getsockname()[1], "ap_edge": "edge1"}}},
        "clients": {"hosts": {"client1": {"client_mac": "02:c0:00:00:00:01", "client_ap": "ap1"}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    port = free_udp_port()
    variables = {"ocs_eda_install": False, "ocs_eda_project_dir": ROOT, "ocs_eda_venv": VENV,
                 "ocs_eda_ansible_config": os.path.join(ROOT, "ansible.cfg"), "ocs_eda_run_dir": str(run_dir),
                 "ocs_eda_inventory": str(tmp_path / "hosts.yml"),
                 "ocs_eda_vars": {"ocs_host": "127.0.0.1", "ocs_port": port, "ocs_done_port": free_udp_port(),
                                  "ocs_identify_by": "address", "ocs_subscribe": False}}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))

    def play(state):
        argv = [os.path.join(VENV, "bin", "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                "-e", json.dumps(dict(variables, ocs_eda_state=state)), str(tmp_path / "play.yml")]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return json.loads(proc.stdout)["stats"]["localhost"]

    pid = None
    try:
        assert play("present")["changed"] == 0
        assert not (run_dir / "ocs.pid").exists()
        assert play("started")["changed"] > 0
        pid = int((run_dir / "ocs.pid").read_text())
        os.kill(pid, 0)
        assert yaml.safe_load((run_dir / "ocs-vars.yml").read_text())["ocs_port"] == port
        assert play("started")["changed"] == 0                       # running with the same variables: left alone
        assert int((run_dir / "ocs.pid").read_text()) == pid
        agent.sendto(b"ping\n", ("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
            if any(e["type"] == "agent_up" for e in events):
                break
            agent.sendto(b"ping\n", ("127.0.0.1", port))
            time.sleep(0.3)
        assert [e["ap"] for e in events if e["type"] == "agent_up"] == ["ap1"]
        assert play("stopped")["changed"] > 0
        assert not (run_dir / "ocs.pid").exists()
        with pytest.raises(ProcessLookupError):
            for dummy in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        assert play("stopped")["changed"] == 0
    finally:
        agent.close()
        if pid is not None and (run_dir / "ocs.pid").exists():
            subprocess.run(["start-stop-daemon", "--stop", "--pidfile", str(run_dir / "ocs.pid"), "--retry", "TERM/10/KILL/5",
                            "--oknodo"], check=False)
