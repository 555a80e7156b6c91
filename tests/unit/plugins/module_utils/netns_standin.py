"""A stand-in for a restored container, for the net fix's tests: a process in a network namespace of its own, with a
veth ``eth0`` that has an address, both ends of a loopback TCP connection, and the source's inbound-only lock left
in it. Needs root (the tests that use it skip without)."""
import contextlib
import os
import subprocess
import sys

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu

NO_SUCH_PID = 2 ** 22 + 1       # above the kernel's largest pid_max
ADDRESS = "192.0.2.50"
# run with `unshare --net sh -c`: the new namespace's loopback up, and a veth `eth0` with ADDRESS
NETNS_SETUP = ("ip link set lo up && ip link add eth0 type veth peer name eth1 && ip link set eth0 up && "
               "ip link set eth1 up && ip addr add %s/24 dev eth0" % ADDRESS)

RESTORED = r"""
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname())
peer = server.accept()[0]
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def restored_container():
    """Yields the stand-in's pid; the process and its namespace are gone afterwards, whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("a network namespace, setns, TCP_REPAIR and pidfd_getfd need root")
    setup = NETNS_SETUP + " && nft add table inet %s" % criu.INBOUND_LOCK_TABLE
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", setup + ' && exec "$0" -c "$1"', sys.executable,
                             RESTORED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def in_netns(pid, *argv):
    """stdout of a command run in the stand-in's network namespace."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n"] + list(argv), capture_output=True, text=True,
                          check=True).stdout
