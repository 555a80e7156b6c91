# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenFlow flows through ``ovs-ofctl``: argv building, dump-flows parsing, want-vs-have by cookie.

A switch is named by ``target``: a local bridge name (``br0``) or a connection string
(``tcp:10.77.0.11:6634``, ``ssl:...``, ``unix:/run/.../br0.mgmt``). Flows are owned by cookie: a
caller only ever reads, adds or deletes flows carrying its own cookie, so flows of others survive.
Pure standard library; ``run`` is injected (AnsibleModule.run_command or a subprocess wrapper).

What goes to ovs-ofctl: every command is an argv list built by :func:`ofctl_argv`; the only text ovs-ofctl reads
from its standard input (``add-flows -``) is built by :func:`batch_command` from :class:`Flow` objects whose match
and actions passed :func:`check_match` / :func:`check_actions` (no control character, so no extra line; no space or
reserved key in a match, so no ``cookie=`` of someone else's flows), and the batch refuses a line that would hold
one anyway.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import shlex

from ansible_collections.arnab.testbed.plugins.module_utils import validate

PROTOCOLS = {"1.0": "OpenFlow10", "1.3": "OpenFlow13"}
TARGET_PREFIXES = ("tcp:", "ssl:", "unix:")
ODIN_COOKIE = 12345      # the original Odin master's cookie for per-client flows
ODIN_PRIORITY = 200      # and their priority
CLIENT_COOKIE_TAG = 0x0D1A  # top 16 bits of a per-client cookie; low 48 bits = the client's MAC

# ovs-ofctl shorthands -> the fields they stand for (dump-flows prints the shorthand).
_SHORTHANDS = {
    "ip": {"dl_type": 0x0800}, "arp": {"dl_type": 0x0806}, "ipv6": {"dl_type": 0x86DD},
    "icmp": {"dl_type": 0x0800, "nw_proto": 1}, "tcp": {"dl_type": 0x0800, "nw_proto": 6},
    "udp": {"dl_type": 0x0800, "nw_proto": 17}, "rarp": {"dl_type": 0x8035},
}
# Synonyms OVS accepts; we compare under one name.
_SYNONYMS = {"eth_type": "dl_type", "eth_src": "dl_src", "eth_dst": "dl_dst", "ip_src": "nw_src",
             "ip_dst": "nw_dst", "ip_proto": "nw_proto", "vlan_vid": "dl_vlan"}
# dump-flows bookkeeping fields that are not part of a flow's identity.
_STATISTICS = {"duration", "n_packets", "n_bytes", "idle_age", "hard_age", "reset_counts",
               "n_offload_packets", "n_offload_bytes", "send_flow_rem", "check_overlap", "no_packet_counts",
               "no_byte_counts", "importance", "idle_timeout", "hard_timeout"}
_PORT_FIELDS = {"in_port"}
# Keys that are part of a flow mod but not of its match: the module sets them from its own options; in a match
# they would override ours (a later cookie= wins in ovs-ofctl: a delete_strict could then reach other cookies).
_RESERVED_MATCH_KEYS = {"cookie", "table", "priority", "actions", "out_port", "out_group"} | _STATISTICS
_MATCH_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*", re.ASCII)
_MATCH_VALUE = re.compile(r"[A-Za-z0-9_.:/+-]+", re.ASCII)
_ACTIONS_BAD = re.compile(r"[^A-Za-z0-9_.:/+,()=\[\]> -]", re.ASCII)


class OpenFlowError(Exception):
    """ovs-ofctl failed or printed something we do not understand."""


def validate_target(target):
    """A bridge name (an interface name) or a connection string: ``tcp:HOST[:PORT]``, ``ssl:HOST[:PORT]`` (IPv6
    in brackets) or ``unix:/ABSOLUTE/PATH``. Anything else, a control character included, is refused."""
    text = str(target)
    try:
        validate.no_control_chars(text, "target")
        if text.startswith(("tcp:", "ssl:")):
            rest = text[4:]
            m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", rest) or re.fullmatch(r"([^:\[\]]+)(?::(\d+))?", rest)
            if not m:
                raise validate.ValidationError("target %r: write tcp:HOST:PORT or ssl:HOST:PORT" % text)
            validate.host(m.group(1), "target %r: host" % text)
            if m.group(2) is not None:
                validate.port(m.group(2), "target %r: port" % text)
            return text
        if text.startswith("unix:"):
            validate.abs_path(text[5:], "target %r: socket" % text)
            return text
        validate.ifname(text, "target %r: bridge name" % text)
    except validate.ValidationError as exc:
        raise OpenFlowError("%s (target is a bridge name or a tcp:/ssl:/unix: connection string)" % exc)
    return text


def ofctl_argv(subcommand, target, *args, **options):
    """The one place an ovs-ofctl command line is built.

    options: version ("1.0"/"1.3"), strict (bool, for del-flows/mod-flows), names (bool or None),
    ofctl (binary path).
    """
    version = options.get("version", "1.0")
    if version not in PROTOCOLS:
        raise OpenFlowError("OpenFlow version %r: use one of %s" % (version, ", ".join(PROTOCOLS)))
    argv = [options.get("ofctl", "ovs-ofctl"), "-O", PROTOCOLS[version]]
    if options.get("strict"):
        argv.append("--strict")
    if options.get("names") is False:
        argv.append("--no-names")  # numbers in dump output so comparison never depends on a tty
    argv += [subcommand, validate_target(target)]
    argv += [str(a) for a in args]
    return argv


def command_text(argv):
    """argv -> a shell-quoted line (what modules return in ``commands``)."""
    return " ".join(shlex.quote(a) for a in argv)


def _no_control_chars(value, what):
    try:
        return validate.no_control_chars(value, what)
    except validate.ValidationError as exc:
        raise OpenFlowError(str(exc))


def check_match(match, what="match"):
    """A match as the module takes it, refused unless every ``key=value`` word is one field: no control
    character, no space (ovs-ofctl splits at spaces too), no reserved key (cookie, table, priority, actions...),
    values of letters, digits and ``_.:/+-`` only. Returns the text."""
    text = _no_control_chars(match, what)
    for word in _split_top(text):
        key, sep, value = word.partition("=")
        if not _MATCH_KEY.fullmatch(key):
            raise OpenFlowError("%s %r: %r is not a match field (write key=value or a shorthand such as ip, arp, "
                                "tcp, separated by commas, no spaces)" % (what, text, word))
        if key in _RESERVED_MATCH_KEYS:
            raise OpenFlowError("%s %r: %r does not belong in a match; cookie, table and priority are options of "
                                "their own, actions go in actions" % (what, text, key))
        if sep and not _MATCH_VALUE.fullmatch(value):
            raise OpenFlowError("%s %r: the value of %s (%r) may hold letters, digits and '_.:/+-' only"
                                % (what, text, key, value))
    return text


def check_actions(actions, what="actions"):
    """Actions as the module takes them: letters, digits and ``_.:/+-,()=[]>`` only (what ovs-ofctl's actions
    are written with: ``output:eth1``, ``set_field:10.0.0.1->nw_dst``, ``load:0x1->NXM_NX_REG0[0..15]``,
    ``ct(commit,zone=1)``), spaces only around commas, balanced parentheses. So no control character (a newline
    would start another flow mod), no ``#`` (a comment in ovs-ofctl's flow file), no quote. Returns the text."""
    text = _no_control_chars(actions, what)
    bad = _ACTIONS_BAD.search(text)
    if bad:
        raise OpenFlowError("%s %r: %r at position %d is not allowed; actions hold letters, digits and "
                            "'_.:/+-,()=[]>' only" % (what, text, bad.group(0), bad.start()))
    for action in _split_top(text):
        if re.search(r"\s", action):
            raise OpenFlowError("%s %r: %r holds a space; separate actions with commas and write each without "
                                "spaces" % (what, text, action))
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth:
        raise OpenFlowError("%s %r: unbalanced parentheses" % (what, text))
    return text


def client_cookie(sta_mac):
    """Per-client cookie: tag in the top 16 bits, the client's MAC in the low 48 (unique, readable)."""
    mac = int(str(sta_mac).replace(":", "").replace("-", ""), 16)
    return (CLIENT_COOKIE_TAG << 48) | mac


# -- flows -------------------------------------------------------------------------------------------

class Flow:
    """A flow's identity: cookie, table, priority, normalized match, normalized actions."""

    def __init__(self, match, actions, cookie=0, priority=32768, table=0):
        self.cookie = int(cookie)
        self.table = int(table)
        self.priority = int(priority)
        self.match = normalize_match(match)
        self.actions = normalize_actions(actions)

    def key(self):
        return (self.cookie, self.table, self.priority, tuple(sorted(self.match.items())), self.actions)

    def __eq__(self, other):
        return isinstance(other, Flow) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "Flow(%s)" % self.spec()

    def match_text(self):
        """Match fields in a stable order, dl_type first (OVS requires it before L3 fields)."""
        order = sorted(self.match, key=lambda k: (k not in ("in_port", "dl_type"), k != "in_port", k))
        return ",".join("%s=%s" % (k, _field_text(k, self.match[k])) for k in order)

    def spec(self, with_actions=True):
        """ovs-ofctl flow text: add-flow wants actions; del-flows --strict must not have them."""
        parts = ["cookie=%#x" % self.cookie, "table=%d" % self.table, "priority=%d" % self.priority]
        if self.match:
            parts.append(self.match_text())
        text = ",".join(parts)
        return text + (",actions=%s" % self.actions if with_actions else "")

    def delete_spec(self):
        """del-flows --strict text: the exact match and priority, only if the cookie is ours."""
        return "cookie=%#x/-1,table=%d,priority=%d%s" % (
            self.cookie, self.table, self.priority, ("," + self.match_text()) if self.match else "")

    def to_dict(self):
        return {"cookie": self.cookie, "table": self.table, "priority": self.priority,
                "match": self.match_text(), "actions": self.actions}


def _field_text(key, value):
    if key in ("dl_type", "nw_proto") and isinstance(value, int):
        return "0x%04x" % value if key == "dl_type" else str(value)
    return str(value)


def _split_top(text, sep=","):
    """Split at commas outside parentheses (actions like learn(...) contain commas)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _int_value(text):
    return int(text, 0) if isinstance(text, str) else int(text)


def normalize_match(match):
    """A match (text ``in_port=1,ip,nw_src=10.0.0.1`` or a dict) -> {field: canonical value}."""
    if isinstance(match, dict):
        words = ["%s=%s" % (k, v) if v is not None else k for k, v in match.items()]
    else:
        words = _split_top(str(match or ""))
    fields = {}
    for word in words:
        key, sep, value = word.partition("=")
        key = _SYNONYMS.get(key.strip(), key.strip())
        if not sep:
            if key not in _SHORTHANDS:
                raise OpenFlowError("unknown match keyword %r" % key)
            fields.update(_SHORTHANDS[key])
            continue
        fields[key] = value.strip()
    if "dl_type" in fields:
        fields["dl_type"] = _int_value(fields["dl_type"])
    if "nw_proto" in fields:
        fields["nw_proto"] = _int_value(fields["nw_proto"])
    if fields.get("dl_type") == 0x0806:
        # For ARP, OVS reads nw_src/nw_dst as the sender/target protocol addresses and prints arp_spa/arp_tpa.
        for generic, arp in (("nw_src", "arp_spa"), ("nw_dst", "arp_tpa")):
            if generic in fields:
                fields[arp] = fields.pop(generic)
    for key, value in list(fields.items()):
        if key in ("nw_src", "nw_dst", "arp_spa", "arp_tpa"):
            fields[key] = _normalize_prefix(value)
        elif key in ("dl_src", "dl_dst", "arp_sha", "arp_tha"):
            fields[key] = value.lower()
    return fields


def _normalize_prefix(value):
    net = ipaddress.ip_network(value, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def normalize_actions(actions):
    """Canonical action text: ``output:N`` for bare port numbers, lower-case keywords kept."""
    if isinstance(actions, (list, tuple)):
        actions = ",".join(actions)
    parts = []
    for action in _split_top(str(actions)):
        if re.match(r"^\d+$", action):
            action = "output:%s" % action
        parts.append(action)
    return ",".join(parts) or "drop"


def resolve_ports(flow, ports):
    """Replace port names by numbers (in_port and output:NAME) using a {name: number} map."""
    if not ports:
        return flow
    match = dict(flow.match)
    for field in _PORT_FIELDS:
        if field in match and match[field] in ports:
            match[field] = str(ports[match[field]])
    actions = re.sub(r"output:([\w.-]+)",
                     lambda m: "output:%s" % ports.get(m.group(1), m.group(1)), flow.actions)
    resolved = Flow({}, actions, flow.cookie, flow.priority, flow.table)
    resolved.match = match
    return resolved


# -- parsing ovs-ofctl output -------------------------------------------------------------------------

def parse_dump_flows(text):
    """``ovs-ofctl dump-flows`` output -> [Flow] (statistics dropped)."""
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "actions=" not in line or line.startswith(("NXST_FLOW", "OFPST_FLOW")):
            continue
        head, actions = line.split("actions=", 1)
        # OF1.3 dumps put flags before the priority with a space ("reset_counts priority=200,ip,...")
        head = ",".join(head.replace(",", " ").split())
        cookie, table, priority, match = 0, 0, 32768, []
        for word in _split_top(head):
            key, _sep, value = word.partition("=")
            if key == "cookie":
                cookie = int(value, 16)
            elif key == "table":
                table = int(value)
            elif key == "priority":
                priority = int(value)
            elif key not in _STATISTICS:
                match.append(word)
        flows.append(Flow(",".join(match), actions.strip(), cookie, priority, table))
    return flows


def parse_port_desc(text):
    """``ovs-ofctl dump-ports-desc`` (or ``show``) -> {port name: port number}."""
    ports = {}
    for match in re.finditer(r"^\s*(\d+|LOCAL)\(([^)]+)\):", text, re.M):
        ports[match.group(2)] = match.group(1)
    return ports


# -- want vs have ---------------------------------------------------------------------------------------

def diff_flows(want, have, exclusive=True):
    """-> (to_add, to_delete). ``have`` holds only our cookies' flows; exclusive removes unwanted ones.

    Gapless: an add with the match and priority of an existing flow replaces it in place (OpenFlow
    semantics), so such a flow is only added, never deleted first (no moment without a flow)."""
    want = list(dict.fromkeys(want))
    have_set, want_set = set(have), set(want)
    to_add = [f for f in want if f not in have_set]
    replaced = set(_slot(f) for f in to_add)
    to_delete = [f for f in have if f not in want_set and _slot(f) not in replaced] if exclusive else []
    return to_add, to_delete


def _slot(flow):
    """What OpenFlow identifies a flow by: table, priority, match (not cookie or actions)."""
    return (flow.table, flow.priority, tuple(sorted(flow.match.items())))


class Command:
    """One ovs-ofctl run: argv plus optional stdin (flow-mod lines for ``add-flows -``). A batch also keeps
    its flows (``flows`` = (to_add, to_delete)) and a cookie deletion its cookies, so a FlowTable with an
    OpenFlow connection can send the same change without starting ovs-ofctl."""

    def __init__(self, argv, stdin=None, flows=None, cookies=None):
        self.argv, self.stdin = argv, stdin
        self.flows, self.cookies = flows, cookies

    def text(self):
        line = command_text(self.argv)
        return line if self.stdin is None else "%s <<'EOF'\n%sEOF" % (line, self.stdin)

    def __repr__(self):
        return "Command(%s)" % self.text()


def batch_command(target, to_add, to_delete, version="1.0"):
    """All changes of one switch in ONE ovs-ofctl: ``add`` lines first, then ``delete_strict`` lines,
    applied in order (one process start instead of one per flow: tens of ms each)."""
    lines = ["add %s" % f.spec() for f in to_add] + ["delete_strict %s" % f.delete_spec() for f in to_delete]
    for line in lines:
        # Last line of defence: one flow mod per line, whatever a caller put into a Flow.
        if validate.control_char(line):
            raise OpenFlowError("refusing a flow mod with a control character: %r" % line)
    stdin = "".join(line + "\n" for line in lines)
    return Command(ofctl_argv("add-flows", target, "-", version=version), stdin, flows=(list(to_add), list(to_delete)))


def delete_cookie_command(target, cookie, version="1.0"):
    return Command(ofctl_argv("del-flows", target, "cookie=%#x/-1" % int(cookie), version=version),
                   cookies=[int(cookie)])


def dump_cookie_argv(target, cookie, version="1.0"):
    return ofctl_argv("dump-flows", target, "cookie=%#x/-1" % int(cookie), version=version, names=False)


def ports_argv(target, version="1.0"):
    return ofctl_argv("dump-ports-desc", target, version=version)


class FlowTable:
    """A switch's flows for a set of cookies, read and changed through an injected runner.

    ``run(argv, stdin) -> (rc, stdout, stderr)``, e.g. a wrapper of AnsibleModule.run_command.
    ``wire`` (optional, OpenFlow 1.3 only): module_utils.ofp13 or alike; after ``connect()`` changes go over
    that one connection instead of an ovs-ofctl run each (reads stay with ovs-ofctl); any wire failure
    falls back to ovs-ofctl, which is safe because adds and strict deletes are idempotent.
    """

    def __init__(self, run, target, version="1.0", wire=None):
        self.run = run
        self.target = validate_target(target)
        self.version = version
        self._ports = None
        self.wire = wire if version == "1.3" else None
        self.connection = None

    def connect(self):
        """Open the OpenFlow connection now (off a migration's critical path); False if there is none."""
        if self.connection is None and self.wire is not None and self.wire.Connection.supports(self.target):
            try:
                self.connection = self.wire.Connection(self.target).connect()
            except self.wire.WireError:
                self.connection = None
        return self.connection is not None

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _over_wire(self, command):
        if self.connection is None:
            return False
        encodable = command.flows and all(self.wire.encodable(f) for f in command.flows[0] + command.flows[1])
        if not command.cookies and not encodable:
            return False
        try:
            if command.cookies:
                self.connection.delete_cookies(command.cookies)
            else:
                self.connection.apply(*command.flows)
            return True
        except self.wire.WireError:
            self.close()
            return False

    def _run(self, command):
        rc, out, err = self.run(command.argv, command.stdin)
        if rc != 0:
            raise OpenFlowError("%s failed (rc=%s): %s" % (command_text(command.argv), rc, (err or out).strip()))
        return out

    def ports(self):
        if self._ports is None:
            self._ports = parse_port_desc(self._run(Command(ports_argv(self.target, self.version))))
        return self._ports

    def resolve(self, flows):
        """Port names -> numbers, so wanted flows compare equal to dump-flows output."""
        needs_names = any(_port_names(f) for f in flows)
        ports = self.ports() if needs_names else {}
        unknown = [p for f in flows for p in _port_names(f) if p not in ports]
        if unknown:
            raise OpenFlowError("switch %s has no port named %s (ports: %s)"
                                % (self.target, ", ".join(sorted(set(unknown))), ", ".join(sorted(ports)) or "none"))
        return [resolve_ports(f, ports) for f in flows]

    def flows(self, cookies):
        have = []
        for cookie in sorted(set(cookies)):
            have += parse_dump_flows(self._run(Command(dump_cookie_argv(self.target, cookie, self.version))))
        return have

    def plan(self, want, cookies=None, exclusive=True):
        """-> ([Command], to_add, to_delete) to make our cookies' flows equal ``want``."""
        want = self.resolve(want)
        cookies = set(cookies or ()) | set(f.cookie for f in want)
        to_add, to_delete = diff_flows(want, self.flows(cookies), exclusive)
        commands = [batch_command(self.target, to_add, to_delete, self.version)] if to_add or to_delete else []
        return commands, to_add, to_delete

    def plan_absent(self, flows=None, cookies=None):
        """Delete the given flows (those present), or every flow of the given cookies."""
        if flows:
            present = set(self.flows(set(f.cookie for f in flows)))
            gone = [f for f in self.resolve(flows) if f in present]
            return ([batch_command(self.target, [], gone, self.version)] if gone else []), gone
        have = self.flows(cookies or ())
        commands = [delete_cookie_command(self.target, c, self.version) for c in sorted(set(f.cookie for f in have))]
        return commands, have

    def apply(self, commands):
        for command in commands:
            if not self._over_wire(command):
                self._run(command)


def _port_names(flow):
    names = []
    in_port = flow.match.get("in_port")
    if in_port is not None and not str(in_port).isdigit() and in_port not in ("LOCAL", "ANY"):
        names.append(in_port)
    for name in re.findall(r"output:([\w.-]+)", flow.actions):
        if not name.isdigit() and name not in ("LOCAL", "IN_PORT", "NORMAL", "FLOOD", "ALL", "CONTROLLER"):
            names.append(name)
    return names


# -- Odin shorthands ----------------------------------------------------------------------------------------

def odin_client_pair(sta_ip, ap_port, uplink_port, cookie=ODIN_COOKIE, priority=ODIN_PRIORITY, arp=True):
    """Odin's per-client flows at an AP: IPv4 both ways, plus the ARP pair so the client can resolve.

    ``in_port=<ap>,dl_type=0x0800,nw_src=<ip> -> output:<uplink>`` and the reverse with nw_dst;
    with ARP: ``dl_type=0x0806,arp_spa=<ip>`` up and ``arp_tpa=<ip>`` down.
    """
    ip = _ipv4(sta_ip, "sta_ip")
    ap_port = _port_name(ap_port, "ap_port")
    uplink_port = _port_name(uplink_port, "uplink_port")
    flows = [
        Flow("in_port=%s,dl_type=0x0800,nw_src=%s" % (ap_port, ip), "output:%s" % uplink_port, cookie, priority),
        Flow("in_port=%s,dl_type=0x0800,nw_dst=%s" % (uplink_port, ip), "output:%s" % ap_port, cookie, priority),
    ]
    if arp:
        flows += [
            Flow("in_port=%s,dl_type=0x0806,arp_spa=%s" % (ap_port, ip), "output:%s" % uplink_port, cookie, priority),
            Flow("in_port=%s,dl_type=0x0806,arp_tpa=%s" % (uplink_port, ip), "output:%s" % ap_port, cookie, priority),
        ]
    return flows


def data_switch_steering(sta_ip, toward_port, cookie=ODIN_COOKIE, priority=ODIN_PRIORITY):
    """Data switch flows sending the client's IPv4 and ARP traffic toward the port of its current AP
    (a learning switch would keep sending to the old AP until the client speaks again)."""
    ip = _ipv4(sta_ip, "sta_ip")
    toward_port = _port_name(toward_port, "toward_port")
    return [
        Flow("dl_type=0x0800,nw_dst=%s" % ip, "output:%s" % toward_port, cookie, priority),
        Flow("dl_type=0x0806,arp_tpa=%s" % ip, "output:%s" % toward_port, cookie, priority),
    ]


def _ipv4(value, what):
    try:
        return str(ipaddress.IPv4Address(validate.no_control_chars(value, what)))
    except (ValueError, validate.ValidationError):
        raise OpenFlowError("%s %r is not an IPv4 address like 10.78.0.100" % (what, value))


def _port_name(value, what):
    """An OVS port: a number, LOCAL, or an interface name."""
    text = str(value)
    if re.fullmatch(r"[0-9]+", text, re.ASCII):
        return text
    try:
        return validate.ifname(text, what)
    except validate.ValidationError as exc:
        raise OpenFlowError(str(exc))


def flows_from_params(items, cookie, priority):
    """Module option ``flows`` (list of {match, actions, priority?, table?}) -> [Flow], each match and actions
    checked (:func:`check_match`, :func:`check_actions`) before anything reads or changes a switch."""
    flows = []
    for i, item in enumerate(items or ()):
        if "match" not in item or "actions" not in item:
            raise OpenFlowError("each flow needs 'match' and 'actions': %r" % (item,))
        check_match(item["match"], "flows[%d].match" % i)
        check_actions(item["actions"], "flows[%d].actions" % i)
        flows.append(Flow(item["match"], item["actions"], cookie,
                          item.get("priority") if item.get("priority") is not None else priority,
                          item.get("table") or 0))
    return flows
