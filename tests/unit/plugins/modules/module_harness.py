"""Module test helpers: run a module's main() with arguments, a stateful fake ovs-ofctl, a small lab."""
import socket
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.arnab.testbed.plugins.module_utils import openflow


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, **kwargs):
    raise AnsibleFailJson(kwargs)


def run_module(main, args, check_mode=False, diff=False, run_command=None):
    """-> (ok, result). ok False when the module failed."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    patches = [mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json),
               mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json)]
    if run_command is not None:
        patches.append(mock.patch.object(basic.AnsibleModule, "run_command",
                                         lambda self, argv, data=None, **kw: run_command(argv, data)))
    with patch_module_args(args):
        for p in patches:
            p.start()
        try:
            main()
        except AnsibleExitJson as exc:
            return True, exc.args[0]
        except AnsibleFailJson as exc:
            return False, exc.args[0]
        finally:
            for p in patches:
                p.stop()
    raise AssertionError("module neither exited nor failed")


class FakeOvs:
    """A stateful stand-in for ovs-ofctl over several switches: add-flow, del-flows [--strict],
    dump-flows, dump-ports-desc. Port names are resolved to numbers like OVS does."""

    def __init__(self, ports_by_target):
        self.ports = ports_by_target
        self.flows = dict((t, []) for t in ports_by_target)
        self.calls = []
        self.fail_on = None   # substring of a command line that should fail

    def __call__(self, argv, stdin=None):
        self.calls.append(argv)
        line = " ".join(argv)
        if self.fail_on and self.fail_on in line:
            return 1, "", "ovs-ofctl: injected failure"
        words = [w for w in argv[1:] if w not in ("-O", "OpenFlow10", "OpenFlow13", "--no-names", "--strict")]
        command, target, rest = words[0], words[1], words[2:]
        if target not in self.ports:
            return 1, "", "ovs-ofctl: %s: failed to connect to socket (Connection refused)" % target
        ports = self.ports[target]
        if command == "dump-ports-desc":
            return 0, "".join(" %s(%s): addr:00:00:00:00:00:%02x\n" % (n, name, int(n))
                              for name, n in ports.items()), ""
        if command == "dump-flows":
            cookie = int(rest[0].split("=")[1].split("/")[0], 16)
            return 0, "".join(" cookie=%#x, duration=1.0s, table=%d, n_packets=0, n_bytes=0, priority=%d,%s actions=%s\n"
                              % (f.cookie, f.table, f.priority, f.match_text(), f.actions)
                              for f in self.flows[target] if f.cookie == cookie), ""
        if command == "add-flows" and rest == ["-"]:
            for line in stdin.splitlines():
                verb, spec = line.split(" ", 1)
                if verb == "add":
                    self._add(target, spec)
                else:
                    self._delete_strict(target, spec)
            return 0, "", ""
        if command == "del-flows":
            cookie = int(rest[0].split("cookie=")[1].split("/")[0], 16)
            self.flows[target] = [f for f in self.flows[target] if f.cookie != cookie]
            return 0, "", ""
        return 1, "", "unsupported %s" % command

    def _add(self, target, spec):
        head, actions = spec.split(",actions=")
        flow = openflow.resolve_ports(openflow.parse_dump_flows(head + " actions=" + actions)[0],
                                      dict((k, str(v)) for k, v in self.ports[target].items()))
        self.flows[target] = [f for f in self.flows[target]
                              if (f.priority, f.match) != (flow.priority, flow.match)] + [flow]

    def _delete_strict(self, target, spec):
        cookie = int(spec.split("cookie=")[1].split("/")[0], 16)
        probe = openflow.parse_dump_flows(spec.replace("/-1", "") + " actions=drop")[0]
        self.flows[target] = [f for f in self.flows[target]
                              if not (f.cookie == cookie and f.priority == probe.priority and f.match == probe.match)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
