# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's side of the migration channel: what the source edge sends to the destination's receiver
(:mod:`migrate_receiver`, the forced command of the migration key).

Every operation is an argv list (``[op, NAME, args...]``) checked by the receiver's own parser
(:func:`migrate_receiver.parse`) BEFORE anything is sent, then made into ONE SSH command string of
:func:`shlex.quote`-d words: the receiver splits it back with :func:`shlex.split` and sees the same words. No
shell runs on either side. rsync pushes name the receiver through ``--rsync-path`` (:meth:`Receiver.rsync_path`)
and always push into ``./`` (the receiver, not the client, decides the directory). The frozen window uses a
:class:`Session`: one SSH session opened before the freeze that carries framed requests (put, rm, restore,
status), so no SSH session or Python start-up is paid while the container is frozen.

Usage (the engine)::

    recv = Receiver(dest, name, key=key, port=port, control_path=cp, ssh_options=keepalives)
    facts = recv.probe(link="br-data", token=".arnab-probe-...")        # dict, or ReceiverError
    recv.prepare()
    pusher.push([src + "/"], "./", rsync_path=recv.rsync_path("fs"), ...)
    pusher.push_images(images, "./", dest_files, rsync_path=recv.rsync_path("images"))
    channel = recv.open_patch()                       # before the freeze; Pusher.push_page_delta(channel=...)
    session = recv.session()                          # before the freeze
    session.put_files(rootfs, changed, kind="fs"); session.rm(stale); rc, out, err = session.restore("eth0")
    recv.status() -> ("RUNNING", "0"); recv.commit(); recv.clean("eth0")
    guard.json: recv.argv("status", control=False), recv.argv("clean", "--ifname", "eth0", control=False)
    tunnel = recv.page_tunnel()       # post-copy, before the freeze: criu dump --ps-socket tunnel.criu_fd()
    session.restore("eth0", lazy=True, address="127.0.0.1", port=tunnel.port); tunnel.close()
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import select
import shlex
import socket
import subprocess
import tarfile
import time

from ansible_collections.arnab.testbed.plugins.module_utils import migrate_receiver
from ansible_collections.arnab.testbed.plugins.module_utils.criu import check_pem_cert, default_runner
from ansible_collections.arnab.testbed.plugins.module_utils.migration_guard import parse_status
from ansible_collections.arnab.testbed.plugins.module_utils.state_transfer import TransferError, ssh_argv

RECEIVER_COMMAND = "/usr/local/lib/arnab/arnab-migrate-receiver"
RSYNC_WORD = "arnab-rsync"
PUSH_DEST = "./"
SSH_UNREACHABLE = 255


class ReceiverError(Exception):
    """A request the receiver would refuse (checked here, before sending), or an operation that failed there."""

    def __init__(self, msg, rc=None, out="", err=""):
        super(ReceiverError, self).__init__(msg)
        self.rc, self.out, self.err = rc, out, err


def words(op, name, *args):
    """``[op, name, args...]`` as the receiver will parse them; raises ReceiverError if it would refuse them."""
    argv = [op, name] + [str(a) for a in args]
    try:
        migrate_receiver.parse(argv)
    except migrate_receiver.Refused as e:
        raise ReceiverError("the receiver would refuse %r: %s" % (argv[:6], e))
    return argv


def command_line(op, name, *args):
    """The SSH command string for one operation: validated words, each :func:`shlex.quote`-d."""
    return " ".join(shlex.quote(w) for w in words(op, name, *args))


def rsync_path(kind, name, subdir=None):
    """``--rsync-path`` value for a push into the container dir (``fs``) or an image dir (``images [DIR]``)."""
    if kind not in ("fs", "images"):
        raise ReceiverError("rsync target must be fs or images, not %r" % kind)
    out = [RSYNC_WORD, kind, words("status", name)[1]]
    if subdir is not None:
        if kind != "images":
            raise ReceiverError("only an images push takes a subdir")
        out.append(words("rm", name, "--dir", subdir, "x")[3])
    return " ".join(out + ["rsync"])


class Receiver(object):
    """One container's migration channel to one destination edge."""

    def __init__(self, host, name, user="root", key=None, port=None, control_path=None, ssh_options=(),
                 runner=None):
        self.host, self.name, self.user, self.key, self.port = host, name, user, key, port
        self.control_path = control_path
        self.ssh_options = tuple(ssh_options)
        self.run = runner or default_runner
        words("status", name)

    # -- building -------------------------------------------------------------------------------------
    def ssh_base(self, control=True):
        return ssh_argv(self.host, user=self.user, key=self.key, port=self.port,
                        control_path=self.control_path if control else None, extra=self.ssh_options)

    def argv(self, op, *args, **kw):
        """Full ssh argv for one operation (``control=False``: no shared master, e.g. for the source's guard,
        which outlives the engine)."""
        return self.ssh_base(kw.get("control", True)) + ["--", command_line(op, self.name, *args)]

    def rsync_path(self, kind, subdir=None):
        return rsync_path(kind, self.name, subdir)

    # -- operations -----------------------------------------------------------------------------------
    def call(self, op, *args, **kw):
        """Run one operation: ``(rc, out, err)``; ``check=True`` raises ReceiverError when rc != 0."""
        rc, out, err = self.run(self.argv(op, *args), timeout=kw.get("timeout"), input_text=kw.get("input_text"))
        if kw.get("check") and rc != 0:
            why = (err or out).strip()[-400:]
            raise ReceiverError("%s %s on %s failed (rc %s): %s" % (op, self.name, self.host, rc, why), rc, out, err)
        return rc, out, err

    def probe(self, link=None, token=None, timeout=20):
        args = (["--link", link] if link is not None else []) + (["--token", token] if token is not None else [])
        rc, out, err = self.call("probe", *args, timeout=timeout)
        if rc != 0:
            raise ReceiverError("probe of %s failed (rc %s): %s" % (self.host, rc, (err or out).strip()[-300:]),
                                rc, out, err)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ReceiverError("probe of %s: not a receiver answer: %r" % (self.host, out[-200:]), rc, out, err)

    def prepare(self, timeout=60):
        return self.call("prepare", timeout=timeout, check=True)

    def status(self, timeout=20):
        """``(state, restore)`` (see :func:`migration_guard.parse_status`), or None when it cannot be asked."""
        rc, out, _err = self.call("status", timeout=timeout)
        return parse_status(out) if rc == 0 else None

    def clean(self, ifname="eth0", timeout=90):
        """``(rc, out, err)``; the destination is clean iff rc == 0 and ``cleaned`` is in out."""
        return self.call("clean", "--ifname", ifname, timeout=timeout)

    def commit(self, timeout=60):
        return self.call("commit", timeout=timeout)

    def lazy_status(self, timeout=30):
        """The lazy-pages daemon's exit status (``'0'``...), ``'PENDING'``, ``'LOST'``; None if unreachable."""
        rc, out, _err = self.call("lazy-status", timeout=timeout)
        lines = out.strip().splitlines()
        return lines[-1].strip() if rc == 0 and lines else None

    def logs(self, timeout=30):
        return self.call("logs", timeout=timeout)[1]

    def rm(self, names, subdir="images", timeout=60):
        if not names:
            return 0, "", ""
        return self.call("rm", "--dir", subdir, *names, timeout=timeout, check=True)

    def restore(self, ifname, lazy=False, address=None, port=None, timeout=None, verbose=False, subdir="images",
                ts_shift_ms=None, tls=False, local=False):
        """``(rc, out, err)`` of a restore in its own SSH session (see :meth:`Session.restore` for the frozen
        window); rc 255/124 means the answer was lost, not that the restore failed."""
        args = restore_args(ifname, lazy, address, port, timeout, verbose, subdir, ts_shift_ms, tls, local)
        return self.call("restore", *args, timeout=(timeout or 120) + 30)

    def tls_exchange(self, own_pem, timeout=60):
        """Post-copy's TLS channel: send our certificate to be pinned there, get the destination's (checked) back."""
        _rc, out, _err = self.call("tls", timeout=timeout, input_text=own_pem, check=True)
        return check_pem_cert(out.strip() + "\n")

    def open_patch(self, subdir="images", parent=None):
        """Start ``patch NAME`` now (before the freeze): a process whose stdin takes a page patch stream, for
        ``Pusher.push_page_delta(..., channel=...)``; with ``parent`` (``it-N``) the dir then links to it."""
        args = ["--dir", subdir] + (["--parent", parent] if parent else [])
        return subprocess.Popen(self.argv("patch", *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def session(self):
        return Session(self.argv("session"))

    def page_tunnel(self, ssh_options=None, timeout=30):
        """Post-copy's page channel, opened before the freeze: see :class:`PageTunnel`. Its own SSH connection
        (not the shared master), so a drain never queues behind the session's requests; ``ssh_options`` replace
        this channel's (ssh takes the first value of an option: its keepalives cannot be overridden later)."""
        argv = ssh_argv(self.host, user=self.user, key=self.key, port=self.port,
                        extra=self.ssh_options if ssh_options is None else ssh_options)
        return PageTunnel(argv + ["--", command_line("pages", self.name)], timeout=timeout)


def restore_args(ifname, lazy=False, address=None, port=None, timeout=None, verbose=False, subdir="images",
                 ts_shift_ms=None, tls=False, local=False):
    """``lazy``: the restored copy runs before its memory is in; its pages come from the source's page server at
    ``address:port`` or, with ``local``, from the destination's own images."""
    args = ["--ifname", ifname, "--dir", subdir]
    if ts_shift_ms:
        args += ["--ts-shift-ms", int(ts_shift_ms)]
    if lazy and local:
        args += ["--lazy", "--local"]
    elif lazy:
        args += ["--lazy", "--address", address, "--port", port] + (["--tls"] if tls else [])
    if timeout:
        args += ["--timeout", int(timeout)]
    if verbose:
        args.append("--verbose")
    return args


class Session(object):
    """``session NAME`` kept open on the destination: requests are a JSON line ``{"argv": [op, args...],
    "size": N}`` and N payload bytes, answers a JSON line ``{"rc", "out", "err"}``. ``argv`` is the ssh argv."""

    def __init__(self, argv):
        self.argv = list(argv)
        self.name = shlex.split(self.argv[-1])[1]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self._buf = b""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def request(self, op, *args, **kw):
        """One request: ``(rc, out, err)``; 255 when the session is gone, 124 on timeout (the session is then
        closed: its answer would come out of order)."""
        payload = kw.get("payload") or b""
        timeout = kw.get("timeout")
        req = words(op, self.name, *args)
        if op not in migrate_receiver.SESSION_OPS:
            raise ReceiverError("%s is not a session operation" % op)
        if not self.alive():
            return SSH_UNREACHABLE, "", "session is gone"
        head = json.dumps({"argv": [req[0]] + req[2:], "size": len(payload)}).encode() + b"\n"
        try:
            self.proc.stdin.write(head + payload)
            self.proc.stdin.flush()
        except (IOError, OSError):
            return SSH_UNREACHABLE, "", "session is gone"
        deadline = None if timeout is None else time.time() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            wait = None if deadline is None else max(0.0, deadline - time.time())
            if deadline is not None and wait == 0.0:
                self.close()
                return 124, "", "no answer after %ss" % timeout
            ready, _w, _x = select.select([fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return SSH_UNREACHABLE, "", "session closed"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            ans = json.loads(line.decode("utf-8"))
            return int(ans["rc"]), ans.get("out", ""), ans.get("err", "")
        except (ValueError, KeyError, TypeError):
            self.close()
            return SSH_UNREACHABLE, "", "not a session answer: %r" % line[:200]

    def ping(self, timeout=10):
        return self.request("ping", timeout=timeout)[0] == 0

    def put_files(self, src_dir, names, kind="images", subdir="images", timeout=None):
        """Copy small files (or single tree entries: directories are not recursed, owners kept by number) into
        the container dir (``fs``) or an image dir, as one tar in one request (what ``RemoteShell.put_files``
        did). Returns ``{'bytes_sent', 'literal_bytes', 'duration_s', 'files'}``; raises TransferError."""
        t0 = time.time()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                tar.add(os.path.join(src_dir, name), arcname=name, recursive=False)
        data = buf.getvalue()
        args = [kind] + (["--dir", subdir] if kind == "images" else [])
        rc, out, err = self.request("put", *args, payload=data, timeout=timeout)
        if rc != 0:
            raise TransferError("copying %d files to %s (%s) through the session failed (rc %s): %s"
                                % (len(names), self.name, kind, rc, (err or out).strip()[-400:]))
        return {"bytes_sent": len(data), "literal_bytes": len(data), "duration_s": time.time() - t0,
                "files": len(names)}

    def rm(self, names, subdir="images", timeout=60):
        if not names:
            return 0, "", ""
        return self.request("rm", "--dir", subdir, *names, timeout=timeout)

    def status(self, timeout=20):
        rc, out, _err = self.request("status", timeout=timeout)
        return parse_status(out) if rc == 0 else None

    def restore(self, ifname, lazy=False, address=None, port=None, timeout=None, verbose=False, subdir="images",
                ts_shift_ms=None, tls=False, local=False):
        args = restore_args(ifname, lazy, address, port, timeout, verbose, subdir, ts_shift_ms, tls, local)
        return self.request("restore", *args, timeout=(timeout or 120) + 30)

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except (IOError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def loopback_pair():
    """Two connected TCP sockets on 127.0.0.1 (criu's page server wants a TCP socket: it sets TCP options on it).
    A connection that is not our own client's is refused, so nobody else can take our end."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        client = socket.create_connection(listener.getsockname(), timeout=10)
        client.settimeout(None)
        while True:
            server, peer = listener.accept()
            if peer == client.getsockname():
                for sock in (client, server):   # page requests are small: never wait for more to send (Nagle)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return client, server
            server.close()
    finally:
        listener.close()


class PageTunnel(object):
    """Post-copy pages inside the migration key's SSH connection. ``pages NAME`` on the destination listens on its
    127.0.0.1 and says the port (``LISTEN <port>`` on stderr); the SSH client's stdin and stdout are one end of a
    loopback TCP pair, the other end (:meth:`criu_fd`) is the source's criu page server (``--ps-socket``). The
    restore's lazy-pages daemon connects to 127.0.0.1:``port`` there. Nothing listens on the backhaul, pages are
    encrypted, and the channel is the receiver's: the peer key still grants nothing else."""

    def __init__(self, argv, timeout=30):
        self.argv = list(argv)
        self.port = None
        self.criu_sock, ssh_end = loopback_pair()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=ssh_end.fileno(), stdout=ssh_end.fileno(),
                                         stderr=subprocess.PIPE)
        except OSError:
            self.criu_sock.close()
            raise
        finally:
            ssh_end.close()
        self._err = b""
        deadline = time.time() + timeout
        fd = self.proc.stderr.fileno()
        while self.port is None:
            left = deadline - time.time()
            ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            chunk = os.read(fd, 4096) if ready else b""
            self._err += chunk
            for line in self._err.decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "LISTEN" and parts[1].isdigit():
                    self.port = int(parts[1])
            if self.port is None and (not chunk or left <= 0):
                err = self.close()
                raise ReceiverError("the destination's page channel did not open: %s"
                                    % (err or "no answer within %ss" % timeout).strip()[-300:])

    def criu_fd(self):
        """The fd criu's page server inherits (``--ps-socket``)."""
        return self.criu_sock.fileno()

    def criu_has_it(self):
        """criu holds its copy now: ours goes, so the channel ends when criu's does."""
        self.criu_sock.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self, timeout=5):
        """End the channel (criu's page server then sees its client leave); returns the SSH client's stderr."""
        self.criu_sock.close()
        if self.proc is None:
            return self._err.decode("utf-8", "replace")
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self._err += self.proc.stderr.read() or b""
        except (IOError, OSError, ValueError):
            pass
        self.proc.stderr.close()
        self.proc = None
        return self._err.decode("utf-8", "replace")
