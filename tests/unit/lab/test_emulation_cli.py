"""The two emulations as the lab starts them: `python -m arnab_lab.radio` and `python -m arnab_lab.odin_agent`."""
import json
import os
import socket
import subprocess
import sys
import time

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.module_utils.odin_client import OdinAgentClient

from arnab_lab import radio
from test_radio import C1, INVENTORY

LAB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "lab")


def wait_for(predicate, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def radio_request(path, **request):
    return radio.ask(path, request)


def test_radio_and_agent_processes(tmp_path):
    (tmp_path / "inv.json").write_text(json.dumps(INVENTORY))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "agent.cli").write_text(odin.render_agent_config(dict(
        ap_mac="02:a0:00:00:00:01", master_ip="127.0.0.1", agent_ip="127.0.0.1", control_port=port)))
    sock_path = str(tmp_path / "radio.sock")
    env = dict(os.environ, PYTHONPATH=LAB)
    radio = subprocess.Popen([sys.executable, "-m", "arnab_lab.radio", "--inventory-json", str(tmp_path / "inv.json"),
                              "--socket", sock_path, "--air", "none"], env=env, stderr=subprocess.PIPE, text=True)
    agent = None
    try:
        assert wait_for(lambda: os.path.exists(sock_path))
        agent = subprocess.Popen([sys.executable, "-m", "arnab_lab.odin_agent", "--config", str(tmp_path / "agent.cli"),
                                  "--bind", "127.0.0.1", "--radio", sock_path, "--name", "ap1"],
                                 env=env, stderr=subprocess.PIPE, text=True)

        def answers():
            try:
                with OdinAgentClient("127.0.0.1", port, timeout=1) as client:
                    return client.channel() == 6
            except Exception:
                return False
        assert wait_for(answers)
        with OdinAgentClient("127.0.0.1", port) as client:
            client.add_vap(odin.Vap.build(C1, "10.78.0.100", "arnab"))
        state = radio_request(sock_path, op="state")["state"]
        assert state["emulated"] and state["clients"]["client1"]["link"] == "ap1"
        assert radio_request(sock_path, op="move", client="client1", position=[30, 0])["ok"]
        assert radio_request(sock_path, op="state")["state"]["clients"]["client1"]["rssi"]["ap1"] < -60
    finally:
        for proc in (agent, radio):
            if proc:
                proc.terminate()
                proc.wait(timeout=10)
    assert "EMULATED Odin agent ap1 (not Click)" in agent.stderr.read()
    assert "EMULATED radio" in radio.stderr.read()
    assert not os.path.exists(sock_path)
