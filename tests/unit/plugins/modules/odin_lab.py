"""Fixture mini_lab: the emulated radio (no OVS) and two emulated agents on loopback ports (import it)."""
import socket
import threading

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from arnab_lab import odin_agent, radio

from module_harness import free_port

C1 = "02:c0:00:00:00:01"
INVENTORY = {
    "_meta": {"hostvars": {
        "ap1": {"ap_mac": "02:a0:00:00:00:01", "ap_channel": 6, "ap_position": [0, 0]},
        "ap2": {"ap_mac": "02:a0:00:00:00:02", "ap_channel": 1, "ap_position": [40, 0]},
        "client1": {"client_mac": C1, "client_position": [5, 0], "client_ap": "ap1"},
    }},
    "aps": {"hosts": ["ap1", "ap2"]},
    "clients": {"hosts": ["client1"]},
}


@pytest.fixture
def mini_lab(tmp_path):
    state, model = radio.state_from_inventory(INVENTORY)
    the_radio = radio.Radio(state, model, radio.AirSwitch(None))
    sock_path = str(tmp_path / "radio.sock")
    radio_server = radio.serve(the_radio, sock_path)
    threading.Thread(target=radio_server.serve_forever, daemon=True).start()
    master = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    master.bind(("127.0.0.1", 0))
    agents = {}
    for n, name in enumerate(("ap1", "ap2"), 1):
        config = tmp_path / ("%s.cli" % name)
        config.write_text(odin.render_agent_config(dict(
            ap_mac="02:a0:00:00:00:0%d" % n, master_ip="127.0.0.1", master_port=master.getsockname()[1],
            agent_ip="127.0.0.1", control_port=free_port(), channel=INVENTORY["_meta"]["hostvars"][name]["ap_channel"])))
        agents[name] = odin_agent.start(str(config), "127.0.0.1", sock_path, name=name)
    yield {"radio": the_radio, "agents": dict((n, a) for n, (a, _s) in agents.items()),
           "ports": dict((n, s.server_address[1]) for n, (_a, s) in agents.items())}
    for _agent, server in agents.values():
        odin_agent.stop(server)
    radio_server.shutdown()
    radio_server.server_close()
    master.close()
