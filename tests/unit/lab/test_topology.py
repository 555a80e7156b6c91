"""The lab topology is derived from the inventory: what a user edits there is what gets built."""
import copy

import pytest

from arnab_lab import topology

LAB = {"prefix": "arnab", "control": {"cidr": "10.77.0.0/24", "bridge": "arnab-ctl"},
       "data": {"cidr": "10.78.0.0/24", "switch_ip": "10.77.0.5"},
       "backhaul": {"cidr": "10.79.0.0/30", "rate": "1gbit"}, "openflow_port": 6634}


def inventory(**overrides):
    hostvars = {
        "ocs": {"ansible_host": "10.77.0.10"},
        "ap1": {"ansible_host": "10.77.0.11", "ap_channel": 6},
        "ap2": {"ansible_host": "10.77.0.12", "ap_channel": 1},
        "edge1": {"ansible_host": "10.77.0.21", "data_ip": "10.78.0.21", "backhaul_ip": "10.79.0.1"},
        "edge2": {"ansible_host": "10.77.0.22", "data_ip": "10.78.0.22", "backhaul_ip": "10.79.0.2"},
        "client1": {"ansible_host": "10.77.0.100", "data_ip": "10.78.0.100", "client_ap": "ap1"},
    }
    for host, hv in hostvars.items():
        hv["lab"] = copy.deepcopy(LAB)
    for key, value in overrides.items():
        host, var = key.split("__")
        hostvars[host][var] = value
    return {"_meta": {"hostvars": hostvars}, "ocs_servers": {"hosts": ["ocs"]}, "aps": {"hosts": ["ap1", "ap2"]},
            "edges": {"hosts": ["edge1", "edge2"]}, "clients": {"hosts": ["client1"]}}


def test_nodes_and_links_follow_the_paper_testbed():
    topo = topology.from_inventory(inventory())
    assert sorted(topo.nodes) == ["air", "ap1", "ap2", "client1", "dsw", "edge1", "edge2", "ocs"]
    assert [n.name for n in topo.nodes.values() if n.ssh_host] == ["ocs", "ap1", "ap2", "edge1", "edge2", "client1"]
    ends = {(l.a, l.b) for l in topo.links}
    assert (("ap1", "eth1"), ("dsw", "ap1")) in ends            # AP uplink on the data switch
    assert (("edge2", "eth1"), ("dsw", "edge2")) in ends
    assert (("client1", "wlan0"), ("air", "client1")) in ends   # the client is on the emulated air
    backhaul = [l for l in topo.links if l.rate]
    assert [(l.a, l.b, l.rate) for l in backhaul] == [(("edge1", "bh0"), ("edge2", "bh0"), "1gbit")]
    assert topo.control_node_ip == "10.77.0.1"
    assert topo.netns("ap1") == "arnab-ap1"
    assert topo.run_dir == "/run/arnab-lab"


def test_fingerprint_changes_with_the_inventory():
    assert (topology.from_inventory(inventory()).fingerprint()
            != topology.from_inventory(inventory(ap2__ap_channel=11)).fingerprint())


@pytest.mark.parametrize("override, message", [
    ({"edge1__data_ip": "10.99.0.21"}, "not a host address of the data network"),
    ({"edge1__data_ip": "10.78.0.22"}, "both use 10.78.0.22"),
    ({"ap1__ansible_host": "10.77.0.1"}, "the control node's own address"),
    ({"client1__client_ap": "edge1"}, "client_ap must name an AP"),
    ({"ocs__ansible_host": "not-an-ip"}, "is not an IP address"),
])
def test_bad_inventories_fail_with_a_clear_message(override, message):
    with pytest.raises(topology.TopologyError, match=message):
        topology.from_inventory(inventory(**override))


def test_overlapping_networks_are_refused():
    inv = inventory()
    for hv in inv["_meta"]["hostvars"].values():
        hv["lab"]["backhaul"]["cidr"] = "10.78.0.0/30"
    with pytest.raises(topology.TopologyError, match="overlap"):
        topology.from_inventory(inv)


def test_a_prefix_too_long_for_interface_names_is_refused():
    inv = inventory()
    for hv in inv["_meta"]["hostvars"].values():
        hv["lab"]["prefix"] = "averylongprefix"
    with pytest.raises(topology.TopologyError, match="too long"):
        topology.from_inventory(inv)
