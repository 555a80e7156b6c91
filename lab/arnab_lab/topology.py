"""The lab topology as data, derived from the lab inventory (the one source of truth).

Pure functions only: unit tests build a Topology from a dict shaped like `ansible-inventory --list`.
"""
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

IFNAMSIZ = 15  # Linux interface names are at most 15 characters

# Which inventory group makes which kind of node.
HOST_GROUPS = {"ocs_servers": "ocs", "aps": "ap", "edges": "edge", "clients": "client"}
# Switch nodes that are not SSH hosts: the data switch and the emulated air.
DATA_SWITCH = "dsw"
AIR = "air"
# lab.agent: what answers as each AP's Odin agent (the `click` on AP nodes).
AGENTS = ("emulated", "real")


class TopologyError(ValueError):
    """The inventory does not describe a lab we can build."""


@dataclass
class Node:
    name: str
    kind: str                      # ocs | ap | edge | client | dsw | air
    ctl_ip: str = None             # address on the control network, None for the air
    vars: dict = field(default_factory=dict)

    @property
    def ssh_host(self):
        return self.kind in ("ocs", "ap", "edge", "client")

    @property
    def ovs_bridge(self):
        """The Open vSwitch bridge this node runs, if any."""
        return {"ap": "br0", "dsw": "br-data", "air": "br-air"}.get(self.kind)


@dataclass
class Link:
    """A veth pair: (node, ifname) at each end."""
    a: tuple
    b: tuple
    rate: str = None               # tc tbf rate on both ends, e.g. "1gbit"


@dataclass
class Topology:
    prefix: str
    control_cidr: str
    control_bridge: str
    data_cidr: str
    backhaul_cidr: str
    openflow_port: int
    nodes: dict
    links: list
    inventory: dict = field(default_factory=dict, repr=False)   # the ansible-inventory --list it came from
    agent: str = "emulated"        # lab.agent: emulated (arnab_lab.odin_agent) or real (Click + OdinAgent)

    @property
    def run_dir(self):
        return "/run/%s-lab" % self.prefix

    @property
    def state_dir(self):
        return "/var/lib/%s-lab" % self.prefix

    def netns(self, node):
        return "%s-%s" % (self.prefix, node)

    @property
    def control_node_ip(self):
        return str(next(ipaddress.ip_network(self.control_cidr).hosts()))

    @property
    def cidrs(self):
        return [self.control_cidr, self.data_cidr, self.backhaul_cidr]

    def fingerprint(self):
        """Changes whenever the inventory changes what the lab looks like."""
        described = {"prefix": self.prefix, "cidrs": self.cidrs,
                     "nodes": {n.name: [n.kind, n.ctl_ip, n.vars] for n in self.nodes.values()},
                     "links": [[list(l.a), list(l.b), l.rate] for l in self.links]}
        if self.agent != "emulated":
            described["agent"] = self.agent   # only then: an emulated lab's fingerprint stays what it was
        return json.dumps(described, sort_keys=True, default=str)

    def nodes_of(self, kind):
        return [n for n in self.nodes.values() if n.kind == kind]


def _prefix_len(cidr):
    return ipaddress.ip_network(cidr).prefixlen


def load_inventory(paths, ansible_inventory=None):
    """Run ansible-inventory on the inventory sources PATHS and return its --list JSON."""
    exe = ansible_inventory or os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(exe):
        exe = "ansible-inventory"
    argv = [exe, "--list"]
    for path in paths:
        argv += ["-i", path]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def from_inventory(inv):
    """Build the Topology from `ansible-inventory --list` output."""
    hostvars = inv.get("_meta", {}).get("hostvars", {})
    if not hostvars:
        raise TopologyError("the inventory has no hosts")
    lab = next((hv["lab"] for hv in hostvars.values() if "lab" in hv), None)
    if lab is None:
        raise TopologyError("the inventory has no 'lab' variable (see inventories/lab/group_vars/all/lab.yml)")
    nodes = {}
    for group, kind in HOST_GROUPS.items():
        for name in inv.get(group, {}).get("hosts", []):
            hv = hostvars[name]
            nodes[name] = Node(name, kind, hv.get("ansible_host"),
                               {k: v for k, v in hv.items() if k.startswith(("ap_", "data_", "backhaul_", "client_"))})
    for kind in ("ap", "edge", "client"):
        if not [n for n in nodes.values() if n.kind == kind]:
            raise TopologyError("the lab needs at least one host in group %r"
                                % next(g for g, k in HOST_GROUPS.items() if k == kind))
    agent = lab.get("agent", "emulated")
    if agent not in AGENTS:
        raise TopologyError("lab.agent %r: use one of %s" % (agent, ", ".join(AGENTS)))
    nodes[DATA_SWITCH] = Node(DATA_SWITCH, "dsw", lab["data"]["switch_ip"])
    nodes[AIR] = Node(AIR, "air")

    topo = Topology(prefix=lab["prefix"], control_cidr=lab["control"]["cidr"],
                    control_bridge=lab["control"]["bridge"], data_cidr=lab["data"]["cidr"],
                    backhaul_cidr=lab["backhaul"]["cidr"], openflow_port=int(lab.get("openflow_port", 6634)),
                    nodes=nodes, links=[], inventory=inv, agent=agent)
    _validate_addresses(topo)

    links = topo.links
    for ap in topo.nodes_of("ap"):
        links.append(Link((ap.name, "eth1"), (DATA_SWITCH, ap.name)))      # AP uplink to the data switch
        links.append(Link((ap.name, "ap"), (AIR, ap.name)))               # AP radio side on the air
    for edge in topo.nodes_of("edge"):
        links.append(Link((edge.name, "eth1"), (DATA_SWITCH, edge.name)))
    for client in topo.nodes_of("client"):
        if client.vars.get("client_ap") not in nodes or nodes[client.vars["client_ap"]].kind != "ap":
            raise TopologyError("client %s: client_ap must name an AP of the inventory" % client.name)
        links.append(Link((client.name, "wlan0"), (AIR, client.name)))
    edges = topo.nodes_of("edge")
    if len(edges) == 2:
        links.append(Link((edges[0].name, "bh0"), (edges[1].name, "bh0"), rate=lab["backhaul"]["rate"]))
    elif len(edges) > 2:
        raise TopologyError("the lab's backhaul joins exactly two edges (found %d)" % len(edges))

    for link in links:
        for node, ifname in (link.a, link.b):
            if len(ifname) > IFNAMSIZ:
                raise TopologyError("interface name %r on %s is longer than %d characters" % (ifname, node, IFNAMSIZ))
    longest = max((control_veth_name(topo, n) for n in nodes), key=len)
    if len(longest) > IFNAMSIZ or len(topo.control_bridge) > IFNAMSIZ:
        raise TopologyError("lab.prefix %r or a host name is too long for interface names (%s)"
                            % (topo.prefix, longest))
    return topo


def control_veth_name(topo, node):
    """Root-namespace end of a node's control link."""
    return "%sc-%s" % (topo.prefix, node)


def _validate_addresses(topo):
    nets = {}
    for label, cidr in (("control", topo.control_cidr), ("data", topo.data_cidr), ("backhaul", topo.backhaul_cidr)):
        try:
            nets[label] = ipaddress.ip_network(cidr)
        except ValueError as exc:
            raise TopologyError("lab.%s.cidr: %s" % (label, exc))
    labels = list(nets)
    for i, first in enumerate(labels):
        for second in labels[i + 1:]:
            if nets[first].overlaps(nets[second]):
                raise TopologyError("lab networks %s (%s) and %s (%s) overlap"
                                    % (first, nets[first], second, nets[second]))
    seen = {}
    for node in topo.nodes.values():
        for key, net in (("ctl_ip", "control"), ("data_ip", "data"), ("backhaul_ip", "backhaul")):
            addr = node.ctl_ip if key == "ctl_ip" else node.vars.get(key)
            if addr is None:
                continue
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                raise TopologyError("%s: %s %r is not an IP address" % (node.name, key, addr))
            if ip not in nets[net] or ip in (nets[net].network_address, nets[net].broadcast_address):
                raise TopologyError("%s: %s %s is not a host address of the %s network %s"
                                    % (node.name, key, ip, net, nets[net]))
            if str(ip) in seen:
                raise TopologyError("%s and %s both use %s" % (seen[str(ip)], node.name, ip))
            seen[str(ip)] = node.name
    if topo.control_node_ip in seen:
        raise TopologyError("%s uses %s, the control node's own address" % (seen[topo.control_node_ip],
                                                                            topo.control_node_ip))


def private_inventory(dest, prefix, nets, agent="emulated",
                      source=os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                          "inventories", "lab")):
    """A copy of the lab inventory at ``dest`` for a second lab instance beside the main one: netns prefix
    ``prefix``, 10.<nets>.x for 10.77-79.x, its own state dir and ``lab.agent`` ``agent``. Returns ``dest``."""
    shutil.copytree(source, dest, dirs_exist_ok=True)
    for rel in ("hosts.yml", os.path.join("group_vars", "all", "lab.yml"), os.path.join("group_vars", "edges.yml")):
        path = os.path.join(dest, rel)
        with open(path) as handle:
            text = handle.read()
        for old, new in zip((77, 78, 79), nets):
            text = text.replace("10.%d." % old, "10.%d." % new)
        text = text.replace("prefix: arnab ", "prefix: %s " % prefix).replace("bridge: arnab-ctl",
                                                                              "bridge: %s-ctl" % prefix)
        text = text.replace("/var/lib/arnab-lab/", "/var/lib/%s-lab/" % prefix)
        text = text.replace("  agent: emulated\n", "  agent: %s\n" % agent)
        with open(path, "w") as handle:
            handle.write(text)
    return dest
