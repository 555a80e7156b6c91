"""roles/ocs and roles/odin_master rendered on localhost into a temp dir: file contents and idempotence."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

INVENTORY = """
all:
  vars:
    odin_ssid: arnab
    lab: {openflow_port: 6634, data: {switch_ip: 10.77.0.5}}
  children:
    ocs_servers:
      hosts:
        ocs: {ansible_host: 127.0.0.1, ansible_connection: local, ansible_python_interpreter: PYTHON}
    aps:
      hosts:
        ap1: {ansible_host: 10.77.0.11, ap_channel: 6, ap_mac: "02:a0:00:00:00:01"}
        ap2: {ansible_host: 10.77.0.12, ap_channel: 1, ap_mac: "02:a0:00:00:00:02"}
    edges:
      hosts:
        edge1: {ansible_host: 10.77.0.21}
    clients:
      hosts:
        client1: {ansible_host: 10.77.0.100, data_ip: 10.78.0.100, client_mac: "02:C0:00:00:00:01"}
"""

PLAY = """
- name: OCS
  hosts: ocs_servers
  gather_facts: false
  roles:
    - role: ocs
"""


@pytest.fixture
def ocs(tmp_path):
    (tmp_path / "hosts.yml").write_text(INVENTORY.replace("PYTHON", sys.executable))
    (tmp_path / "play.yml").write_text(PLAY)
    base = {"ocs_config_dir": str(tmp_path / "arnab"), "odin_master_dir": str(tmp_path / "odin"),
            "odin_master_unit_path": str(tmp_path / "odin-master.service"), "odin_master_jar": "/opt/odin/floodlight.jar",
            "odin_master_clients": [{"sta_mac": "02:c0:00:00:00:02", "sta_ip": "10.78.0.101", "ssid": "guest"}]}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))

    def play(**variables):
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                "-e", json.dumps(dict(base, **variables)), str(tmp_path / "play.yml")]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=180, check=False)
        out = json.loads(proc.stdout)
        return proc.returncode, out["stats"]["ocs"], out

    return play, tmp_path


def test_ocs_and_odin_master_files(ocs):
    play, tmp_path = ocs
    rc, stats, out = play()
    assert rc == 0, json.dumps(out)[-3000:]
    assert stats["changed"] >= 5
    odin = tmp_path / "odin"
    assert (odin / "poolfile").read_text().splitlines()[1:] == [
        "NAME pool-1", "NODES 10.77.0.11 10.77.0.12", "NETWORKS arnab",
        "APPLICATION net.floodlightcontroller.odin.applications.MobilityManager", "MOBILITY 30 60 15 -56 1 5 2"]
    assert (odin / "odin_client_list").read_text() == (
        "02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab\n02:c0:00:00:00:02 10.78.0.101 00:1b:b3:00:00:02 guest\n")
    props = (odin / "floodlightdefault.properties").read_text()
    for line in ("net.floodlightcontroller.odin.master.OdinMaster.masterPort = 2819",
                 "net.floodlightcontroller.odin.master.OdinMaster.poolFile = %s/poolfile" % odin,
                 "net.floodlightcontroller.odin.master.OdinMaster.clientList = %s/odin_client_list" % odin,
                 "net.floodlightcontroller.odin.master.OdinMaster.idleLvapTimeout = 60",
                 "net.floodlightcontroller.core.FloodlightProvider.openflowport = 6633",
                 "net.floodlightcontroller.restserver.RestApiServer.port = 8080"):
        assert line in props.splitlines()
    assert "net.floodlightcontroller.odin.master.OdinMaster" in props
    unit = (tmp_path / "odin-master.service").read_text()
    assert "ExecStart=/usr/bin/java -jar /opt/odin/floodlight.jar -cf %s/floodlightdefault.properties" % odin in unit
    testbed = json.loads((tmp_path / "arnab" / "testbed.json").read_text())
    assert testbed["aps"][0] == {"name": "ap1", "agent": "10.77.0.11", "port": 6777, "switch": "tcp:10.77.0.11:6634",
                                 "ap_port": "ap", "uplink_port": "eth1", "data_switch_port": "ap1"}
    assert testbed["data_switch"] == "tcp:10.77.0.5:6634" and testbed["ap_channels"] == {"ap1": 6, "ap2": 1}

    rc, stats, out = play()
    assert rc == 0 and stats["changed"] == 0, json.dumps(out)[-3000:]


def test_missing_jar_fails_clearly(ocs):
    play, _tmp = ocs
    rc, _stats, out = play(odin_master_service_state="started")
    assert rc != 0 and "does not exist" in json.dumps(out)
    rc, _stats, out = play(odin_master_jar="", ocs_odin_master=True)
    assert rc != 0 and "odin_master_jar" in json.dumps(out)
