# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRIU / LXC driver: argv building, ``stats-dump`` parsing, feature checks.

Why ``lxc-checkpoint`` and not criu directly
--------------------------------------------
Checkpointing a container is only half of CRIU's job; the other half is the environment the restored tree needs:
LXC creates the container's cgroups and hands them to criu (``--cgroup-root``), mounts the rootfs (``--root``),
creates the host side of the veth pair, plugs it into the bridge and names it for criu
(``--external veth[eth0]:<host-veth>@<bridge>``), wires the console, and registers the container with its
monitor so ``lxc-info``/``lxc-stop``/``lxc-attach`` keep working after the restore. Re-implementing that would copy
a large part of ``src/lxc/criu.c`` and ``start.c``. So every container dump/restore goes through
``lxc-checkpoint``, and the criu options LXC has no flag for (``--lazy-pages --address --port``,
``--network-lock nftables``, ``--enable-fs ramfs``, ``--leave-stopped``, ``--track-mem``, ``--page-server``) are
handed to the criu that LXC execs through a CRIU configuration file named by ``CRIU_CONFIG_FILE`` (a documented
criu feature: one long option per line without the dashes). LXC execs criu with its own environment, so the file
reaches exactly that criu invocation and nothing else. The standalone criu commands (``criu lazy-pages``,
``criu page-server``, ``criu check``) are run directly.

All argv lists come from ONE helper, :func:`build_argv`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time

PAGE_SIZE = 4096

# CRIU image magics (criu/include/magic.h).
IMG_COMMON_MAGIC = 0x54564319
IMG_SERVICE_MAGIC = 0x55105940
STATS_MAGIC = 0x57093306
PAGEMAP_MAGIC = 0x56084025      # pagemap-<pid>.img and pagemap-shmem-<id>.img
# pagemap.proto's pagemap_entry.flags (criu/include/pagemap.h)
PE_PARENT = 1 << 0      # the pages are in the parent images (native pre-copy's chain)
PE_LAZY = 1 << 1        # the pages may be served lazily (post-copy)
PE_PRESENT = 1 << 2     # the pages are in this dump's pages-<pages_id>.img

# stats.proto: dump_stats_entry / restore_stats_entry field numbers.
DUMP_STATS_FIELDS = {
    1: "freezing_time",
    2: "frozen_time",
    3: "memdump_time",
    4: "memwrite_time",
    5: "pages_scanned",
    6: "pages_skipped_parent",
    7: "pages_written",
    8: "irmap_resolve",
    9: "pages_lazy",
    10: "page_pipes",
    11: "page_pipe_bufs",
    12: "shpages_scanned",
    13: "shpages_skipped_parent",
    14: "shpages_written",
}
RESTORE_STATS_FIELDS = {
    1: "pages_compared",
    2: "pages_skipped_cow",
    3: "forking_time",
    4: "restore_time",
    5: "pages_restored",
}
STATS_ENTRY_FIELDS = {1: "dump", 2: "restore"}
# Time fields are microseconds in the image.
TIME_FIELDS = ("freezing_time", "frozen_time", "memdump_time", "memwrite_time", "irmap_resolve",
               "forking_time", "restore_time")

ACTIONS = ("pre-dump", "dump", "restore", "lazy-pages", "page-server", "check")
# criu runs an action script through ``sh -c PATH`` (and reads it from a config line): only a plain path will do
PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]+$")
LEAVE_STATES = ("running", "stopped", "dead")

# Options LXC always gives criu (src/lxc/criu.c); used when driving criu directly on a process tree.
LXC_LIKE_DUMP_OPTIONS = ("--tcp-established", "--file-locks", "--link-remap", "--manage-cgroups=full",
                         "--ext-mount-map", "auto", "--enable-external-sharing", "--enable-external-masters")


class CriuError(Exception):
    """A criu / lxc-checkpoint step failed; ``log_tail`` holds the end of criu's own log."""

    def __init__(self, msg, rc=None, stdout="", stderr="", log_tail="", argv=None):
        super(CriuError, self).__init__(msg)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.log_tail = log_tail
        self.argv = argv


# --------------------------------------------------------------------------------------------------
# protobuf (just enough: varints and length-delimited fields)
# --------------------------------------------------------------------------------------------------

def decode_varint(buf, pos=0):
    """Decode one base-128 varint from ``buf`` at ``pos``; return ``(value, new_pos)``."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_varint(value):
    if value < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def iter_fields(buf):
    """Yield ``(field_number, wire_type, value)``; value is an int (varint/fixed) or bytes (length-delimited)."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = decode_varint(buf, pos)
        field, wtype = key >> 3, key & 7
        if wtype == 0:
            value, pos = decode_varint(buf, pos)
        elif wtype == 1:
            if pos + 8 > n:
                raise ValueError("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wtype == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > n:
                raise ValueError("truncated length-delimited field")
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wtype == 5:
            if pos + 4 > n:
                raise ValueError("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wtype)
        yield field, wtype, value


def decode_message(buf, names):
    """Decode a flat message of scalar fields into a dict keyed by ``names`` (unknown: ``field_N``)."""
    out = {}
    for field, _wtype, value in iter_fields(buf):
        out[names.get(field, "field_%d" % field)] = value
    return out


def encode_message(values, names):
    """Encode a flat dict of unsigned ints (the inverse of :func:`decode_message`, for fixtures)."""
    numbers = dict((v, k) for k, v in names.items())
    out = bytearray()
    for name, value in sorted(values.items(), key=lambda kv: numbers[kv[0]]):
        out += encode_varint(numbers[name] << 3 | 0) + encode_varint(int(value))
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# stats-dump / stats-restore
# --------------------------------------------------------------------------------------------------

def encode_stats(dump=None, restore=None):
    """Build a CRIU stats image (service magic, stats magic, u32 size, StatsEntry)."""
    entry = bytearray()
    if dump is not None:
        body = encode_message(dump, DUMP_STATS_FIELDS)
        entry += encode_varint(1 << 3 | 2) + encode_varint(len(body)) + body
    if restore is not None:
        body = encode_message(restore, RESTORE_STATS_FIELDS)
        entry += encode_varint(2 << 3 | 2) + encode_varint(len(body)) + body
    return struct.pack("<III", IMG_SERVICE_MAGIC, STATS_MAGIC, len(entry)) + bytes(entry)


def parse_stats(data):
    """Parse the bytes of ``stats-dump``/``stats-restore`` into ``{'dump': {...}, 'restore': {...}}``.

    Times are microseconds as in the image; :func:`summarize_dump_stats` converts.
    """
    if len(data) < 8:
        raise ValueError("stats image too short (%d bytes)" % len(data))
    pos = 0
    (first,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if first in (IMG_SERVICE_MAGIC, IMG_COMMON_MAGIC):
        (magic,) = struct.unpack_from("<I", data, pos)
        pos += 4
    else:
        magic = first
    if magic != STATS_MAGIC:
        raise ValueError("not a CRIU stats image (magic 0x%08x)" % magic)
    result = {}
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + size > len(data):
            raise ValueError("truncated stats entry")
        entry = data[pos:pos + size]
        pos += size
        for field, wtype, value in iter_fields(entry):
            if field == 1 and wtype == 2:
                result["dump"] = decode_message(value, DUMP_STATS_FIELDS)
            elif field == 2 and wtype == 2:
                result["restore"] = decode_message(value, RESTORE_STATS_FIELDS)
    return result


def read_stats(images_dir, kind="dump"):
    """Parse ``images_dir/stats-<kind>``; ``{}`` when criu did not write one."""
    path = os.path.join(images_dir, "stats-%s" % kind)
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        return parse_stats(f.read()).get(kind, {})


# --------------------------------------------------------------------------------------------------
# pagemap images: which virtual address each page of a pages-<id>.img belongs to
# --------------------------------------------------------------------------------------------------
# criu/images/pagemap.proto (criu 4.x; checked against criu 4.2.1's images here):
#   message pagemap_head  { required uint32 pages_id = 1; }
#   message pagemap_entry { required uint64 vaddr = 1; required uint32 compat_nr_pages = 2;
#                           optional bool in_parent = 3; optional uint32 flags = 4; optional uint64 nr_pages = 5; }
# criu 4.2.1 writes compat_nr_pages 0 and the count in nr_pages; older criu only compat_nr_pages (then nr_pages).
# A pagemap image is IMG_COMMON_MAGIC, PAGEMAP_MAGIC (u32 little-endian each), then entries, each a u32 size and a
# protobuf message: first a pagemap_head, then one pagemap_entry per run of pages. pages-<pages_id>.img (raw, no
# magic) holds the pages of the entries that are present (flags & PE_PRESENT; images without flags: not
# in_parent), 4 KiB each, in the order of the entries.

def encode_pagemap(pages_id, entries, compat=False):
    """Build a pagemap image: ``entries`` = [(vaddr, nr_pages, flags)] (flags None: the field is left out, like
    criu before flags existed). Like criu 4.2.1 (compat_nr_pages 0, the count in nr_pages), or with ``compat``
    like older criu (the count in compat_nr_pages only). For fixtures: the reference for :func:`parse_pagemap`."""
    out = bytearray(struct.pack("<II", IMG_COMMON_MAGIC, PAGEMAP_MAGIC))
    head = encode_varint(1 << 3) + encode_varint(pages_id)
    out += struct.pack("<I", len(head)) + head
    for vaddr, nr_pages, flags in entries:
        body = encode_varint(1 << 3) + encode_varint(vaddr) + encode_varint(2 << 3)
        body += encode_varint(nr_pages) if compat else encode_varint(0)
        if flags is not None:
            body += encode_varint(4 << 3) + encode_varint(flags)
        if not compat:
            body += encode_varint(5 << 3) + encode_varint(nr_pages)
        out += struct.pack("<I", len(body)) + body
    return bytes(out)


def parse_pagemap(data):
    """``(pages_id, [(vaddr, nr_pages, present)])`` from a pagemap image's bytes; ``present``: the entry's pages
    are in this dump's pages image. Raises ValueError on anything else."""
    pos = 0
    (first,) = struct.unpack_from("<I", data, 0) if len(data) >= 4 else (None,)
    if first == IMG_COMMON_MAGIC:
        pos = 4
    if len(data) < pos + 4 or struct.unpack_from("<I", data, pos)[0] != PAGEMAP_MAGIC:
        raise ValueError("not a CRIU pagemap image")
    pos += 4
    pages_id = None
    entries = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("truncated pagemap entry size")
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + size > len(data):
            raise ValueError("truncated pagemap entry")
        fields = {}
        for field, wtype, value in iter_fields(data[pos:pos + size]):
            if wtype == 0:
                fields[field] = value
        pos += size
        if pages_id is None:
            if 1 not in fields:
                raise ValueError("pagemap head without pages_id")
            pages_id = fields[1]
            continue
        if 1 not in fields or (2 not in fields and 5 not in fields):
            raise ValueError("pagemap entry without vaddr or nr_pages")
        present = bool(fields[4] & PE_PRESENT) if 4 in fields else not fields.get(3)
        entries.append((fields[1], fields[5] if 5 in fields else fields[2], present))
    if pages_id is None:
        raise ValueError("pagemap image without a head")
    return pages_id, entries


def page_layouts(images_dir):
    """``{pages file name: (pagemap file name, [(vaddr, nr_pages)])}``: which pagemap describes each
    ``pages-<id>.img`` of ``images_dir`` and the runs of pages it holds, in file order. A pagemap that cannot be
    parsed is left out (its pages image is then compared by offset)."""
    out = {}
    try:
        names = sorted(os.listdir(images_dir))
    except OSError:
        return out
    for name in names:
        if not (name.startswith("pagemap-") and name.endswith(".img")):
            continue
        try:
            with open(os.path.join(images_dir, name), "rb") as f:
                pages_id, entries = parse_pagemap(f.read())
        except (IOError, OSError, ValueError):
            continue
        out["pages-%d.img" % pages_id] = (name, [(v, n) for v, n, present in entries if present and n])
    return out


def summarize_dump_stats(dump):
    """Add seconds and bytes to a decoded dump_stats_entry (keeps the raw fields)."""
    out = dict(dump)
    for key in TIME_FIELDS:
        if key in dump:
            out[key + "_s"] = dump[key] / 1e6
    for key in ("pages_scanned", "pages_skipped_parent", "pages_written", "pages_lazy"):
        if key in dump:
            out[key.replace("pages", "bytes")] = dump[key] * PAGE_SIZE
    return out


# --------------------------------------------------------------------------------------------------
# argv: the ONE helper
# --------------------------------------------------------------------------------------------------

def build_argv(action, images_dir=None, container=None, lxcpath=None, pid=None, parent_dir=None,
               leave="running", track_mem=False, tcp_established=True, lazy_pages=False, page_server=False,
               address=None, port=None, network_lock=None, enable_fs=(), log_file=None, verbose=False,
               feature=None, backend="lxc", criu="criu", action_script=None, ps_socket=None, tls_dir=None,
               extra=()):
    """Return ``(argv, criu_options)`` for one CRIU step.

    ``backend='lxc'``: argv runs ``lxc-checkpoint``; ``criu_options`` are the long criu options LXC has no flag for,
    to be written to a CRIU config file (see :func:`config_text`) named by ``CRIU_CONFIG_FILE``.
    ``backend='criu'``: argv runs criu directly and ``criu_options`` is empty.

    ``parent_dir`` is the previous images dir; it is made relative to ``images_dir`` (criu wants
    ``--prev-images-dir`` relative to ``-D``). ``leave``: running (``--leave-running``), stopped
    (``--leave-stopped``: tasks stay stopped, resumable with SIGCONT), dead (criu kills them).
    ``action_script``: a dump's ``--action-script`` (the migration guard: criu waits in it at ``post-dump``).
    ``ps_socket``: a lazy dump serves its pages on this inherited, already connected fd (``--ps-socket``) instead of
    listening on ``address:port`` (the engine's SSH page channel, :class:`receiver.PageTunnel`).
    ``tls_dir``: a lazy dump's page server and the lazy-pages daemon speak TLS with the pinned credentials there
    (:func:`tls_options`).
    """
    if action not in ACTIONS:
        raise ValueError("unknown criu action %r" % action)
    if leave not in LEAVE_STATES:
        raise ValueError("leave must be one of %s" % ", ".join(LEAVE_STATES))
    if backend not in ("lxc", "criu"):
        raise ValueError("backend must be lxc or criu")
    if action in ("pre-dump", "dump", "restore", "lazy-pages") and not images_dir:
        raise ValueError("%s needs images_dir" % action)
    if (lazy_pages or page_server) and action in ("pre-dump", "dump") and not port and ps_socket is None:
        raise ValueError("lazy pages / page server need a port")
    if lazy_pages and action == "pre-dump":
        raise ValueError("lazy pages apply to dump and restore, not pre-dump")
    if lazy_pages and action == "dump" and leave == "running":
        raise ValueError("a lazy dump cannot leave the container running")
    if tls_dir and not ((action == "dump" and lazy_pages and ps_socket is None) or
                        (action == "lazy-pages" and address and port)):
        raise ValueError("TLS applies to a lazy dump's page server on a port and to the lazy-pages daemon it serves")
    tls = tls_options(tls_dir) if tls_dir else []

    rel_parent = None
    if parent_dir:
        rel_parent = parent_dir if not os.path.isabs(parent_dir) else os.path.relpath(parent_dir, images_dir)

    # criu long options (without "--") that both backends need; LXC passes the rest itself.
    opts = []
    if action in ("pre-dump", "dump"):
        if track_mem and action == "dump":
            opts.append(("track-mem", None))
        if action == "dump" and leave == "stopped":
            opts.append(("leave-stopped", None))
        if lazy_pages and ps_socket is not None:
            opts += [("lazy-pages", None), ("ps-socket", str(int(ps_socket)))]
        elif lazy_pages:
            opts += [("lazy-pages", None), ("address", address or "0.0.0.0"), ("port", str(port))] + tls
        elif page_server:
            opts += [("page-server", None), ("address", address), ("port", str(port))]
    if action_script and action in ("pre-dump", "dump", "restore"):
        if not PLAIN_PATH_RE.match(action_script):
            raise ValueError("action script path %r: criu runs it through sh -c, it must be a plain path"
                             % action_script)
        opts.append(("action-script", action_script))
    if action == "restore" and lazy_pages:
        opts.append(("lazy-pages", None))
    if action in ("pre-dump", "dump", "restore"):
        if network_lock == INBOUND_LOCK:
            if action == "restore":
                raise ValueError("the inbound-only lock is a dump's; a restore locks with nftables or iptables")
            opts.append(("network-lock", "skip"))     # the guard locks, at criu's network-lock hook
        elif network_lock:
            opts.append(("network-lock", network_lock))
        for fs in enable_fs:
            opts.append(("enable-fs", fs))

    if action in ("lazy-pages", "page-server", "check") or backend == "criu":
        argv = [criu, action]
        if action == "check":
            if feature:
                argv += ["--feature", feature]
            return argv + list(extra), []
        if images_dir:
            argv += ["-D", images_dir]
        if action == "lazy-pages":
            if address and port:
                argv += ["--page-server", "--address", address, "--port", str(port)]
                opts += tls
        elif action == "page-server":
            if address:
                argv += ["--address", address]
            argv += ["--port", str(port)]
        else:
            if action in ("pre-dump", "dump"):
                if pid is None:
                    raise ValueError("criu %s needs pid" % action)
                argv += ["-t", str(pid)]
                if rel_parent:
                    argv += ["--prev-images-dir", rel_parent]
                if track_mem and action == "pre-dump":
                    argv.append("--track-mem")
                if action == "dump" and leave == "running":
                    argv.append("--leave-running")
            if action == "restore":
                argv += ["--restore-detached"]
            if tcp_established:
                argv.append("--tcp-established")
        if log_file:
            argv += ["-o", log_file]
        if verbose:
            argv.append("-v4")
        for key, value in opts:
            argv.append("--" + key)
            if value is not None:
                argv.append(value)
        return argv + list(extra), []

    # backend == "lxc": pre-dump / dump / restore through lxc-checkpoint
    if not container:
        raise ValueError("lxc-checkpoint needs the container name")
    argv = ["lxc-checkpoint", "-n", container, "-D", images_dir]
    if lxcpath:
        argv += ["-P", lxcpath]
    if action == "pre-dump":
        argv.append("-p")
    if action in ("pre-dump", "dump") and rel_parent:
        argv.append("--predump-dir=%s" % rel_parent)
    if action == "dump" and leave in ("stopped", "dead"):
        argv.append("-s")   # without -s LXC adds --leave-running itself
    if action == "restore":
        argv += ["-r", "-d"]
    if verbose:
        argv.append("-v")
    if log_file:
        argv += ["-o", log_file]
    if not tcp_established:
        # LXC always passes --tcp-established; nothing to add, nothing to remove.
        pass
    return argv + list(extra), opts


def config_text(criu_options):
    """Render criu options as a CRIU configuration file (``option value`` per line, no dashes)."""
    lines = []
    for key, value in criu_options:
        lines.append(key if value is None else "%s %s" % (key, value))
    return "\n".join(lines) + ("\n" if lines else "")


def options_argv(criu_options):
    out = []
    for key, value in criu_options:
        out.append("--" + key)
        if value is not None:
            out.append(value)
    return out


# --------------------------------------------------------------------------------------------------
# running things
# --------------------------------------------------------------------------------------------------

def default_runner(argv, env=None, timeout=None, input_text=None):
    """Run argv; return ``(rc, stdout, stderr)``. Timeout -> rc 124 (like coreutils timeout)."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        p = subprocess.run(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           input=input_text.encode() if input_text is not None else None, timeout=timeout,
                           check=False)
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode("utf-8", "replace"), "timeout after %ss" % timeout
    except OSError as e:
        return 127, "", str(e)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def log_tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""
    return "\n".join(data.splitlines()[-lines:])


def find_criu_error(text):
    """The first line of a criu log that says what went wrong (``Error (...)``), or ''."""
    for line in text.splitlines():
        if ("Error (" in line or "ERROR" in line) and not any(n in line for n in HARMLESS_ERRORS):
            return line.strip()
    return ""


# criu prints these as errors but they do not fail anything (edges without CAP_SYS_RESOURCE: docs/edge.md).
HARMLESS_ERRORS = ("RLIMIT_NOFILE",)


LXC_INFO_RE = re.compile(r"^([A-Za-z ]+):\s*(.*)$")


def parse_lxc_info(text):
    """Parse ``lxc-info -n NAME`` output into a dict (state, pid, ips list, link, ...)."""
    info = {"ips": []}
    for line in text.splitlines():
        m = LXC_INFO_RE.match(line.strip())
        if not m:
            continue
        key = m.group(1).strip().lower().replace(" ", "_")
        value = m.group(2).strip()
        if key == "ip":
            info["ips"].append(value)
        elif key == "pid":
            info["pid"] = int(value) if value.isdigit() else None
        else:
            info[key] = value
    return info


# A gratuitous ARP in a few lines of Python, run inside the container's netns with nsenter: no arping needed.
# Run inside the restored container's network namespace, right after the restore, in ONE process (a Python start
# is tens of ms of downtime):
# 1. A gratuitous ARP (request and reply) from the container's address, so the data switch learns its new port.
# 2. The TCP kick. A restored socket's first packet (the window probe of criu's repair-off) needs the peer's MAC,
#    and the ARP reply to that request went to the OLD edge: the switch had not yet seen the container's new port.
#    The neighbour entry then waits out its retransmit time (1 s) and the stream stalls that long (seen with
#    tcpdump on both ends). So: drop the incomplete neighbour entries, and send each established socket's window
#    probe anew (TCP repair on and off), whose ARP now finds its way and whose answer, the peer's ACK, restarts the
#    stream. The sockets are borrowed from the container's processes with pidfd_getfd (Linux 5.6; the syscall
#    numbers are the same on every architecture).
NETFIX_SNIPPET = r"""
import ctypes, fcntl, os, socket, struct, subprocess, sys
ifname, init = sys.argv[1], sys.argv[2]
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    name = struct.pack('256s', ifname.encode()[:15])
    ip = fcntl.ioctl(s.fileno(), 0x8915, name)[20:24]
    mac = fcntl.ioctl(s.fileno(), 0x8927, name)[18:24]
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    r.bind((ifname, 0))
    for op in (1, 2):
        arp = struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, op, mac, ip,
                          b'\xff' * 6 if op == 2 else b'\x00' * 6, ip)
        r.send(b'\xff' * 6 + mac + b'\x08\x06' + arp)
    print('garp', socket.inet_ntoa(ip), ':'.join('%02x' % b for b in mac))
except (IOError, OSError) as e:
    print('GARP_FAILED', e)
subprocess.call(['ip', 'neigh', 'flush', 'dev', ifname, 'nud', 'incomplete'])
TCP_REPAIR, SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 19, 434, 438
libc = ctypes.CDLL(None, use_errno=True)
netns = os.stat('/proc/%s/ns/net' % init).st_ino
established = set()
for table in ('tcp', 'tcp6'):
    try:
        with open('/proc/%s/net/%s' % (init, table)) as f:
            established.update(line.split()[9] for line in list(f)[1:] if line.split()[3] == '01')
    except IOError:
        pass
kicked = 0
for pid in [p for p in os.listdir('/proc') if p.isdigit()] if established else []:
    try:
        if os.stat('/proc/%s/ns/net' % pid).st_ino != netns:
            continue
        fds = os.listdir('/proc/%s/fd' % pid)
    except OSError:
        continue
    pidfd = -1
    for fd in fds:
        try:
            link = os.readlink('/proc/%s/fd/%s' % (pid, fd))
        except OSError:
            continue
        inode = link[8:-1] if link.startswith('socket:[') else None
        if inode not in established:
            continue
        if pidfd < 0:
            pidfd = libc.syscall(SYS_PIDFD_OPEN, int(pid), 0)
            if pidfd < 0:
                break
        dup = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
        if dup < 0:
            continue
        sock = socket.socket(fileno=dup)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
            kicked += 1
            established.discard(inode)
        except OSError:
            pass
        finally:
            sock.close()
    if pidfd >= 0:
        os.close(pidfd)
print('kicked %d' % kicked)
"""


# The inbound-only network lock (network_lock "inbound": a dump through the migration guard, which installs it at
# criu's network-lock hook). criu's own lock drops both directions, so the segments the source's kernel sends between
# the freeze and the lock's end never reach the client, and the restored socket, which has no RTT sample, waits for
# its tail-loss probe (TCP_TIMEOUT_INIT, 1 s) before it sends them again (docs/benchmarks.md). Only inbound traffic
# must be dropped: a dumped socket must take in nothing the images do not hold, and the stopped source must answer
# nobody with a reset. criu carries the table over with the namespace: the destination removes it after the restore.
INBOUND_LOCK = "inbound"
INBOUND_LOCK_TABLE = "arnab_lock"
# A copy of what comes in goes to a netlink log group before the drop: the engine's holder (packet_hold.py) keeps it
# for the restored copy. With nobody bound to the group, the drop is all there is.
HOLD_GROUP = 7
INBOUND_LOCK_RULES = ("table inet %s {\n  chain input {\n    type filter hook input priority -150; policy drop;\n"
                      "    iifname \"lo\" accept\n    log group %d\n  }\n}\n" % (INBOUND_LOCK_TABLE, HOLD_GROUP))
# Once the images are written (criu's post-dump), outbound goes too: the dumped sockets' retransmission timers still
# run, and a segment sent after their state was captured carries a newer TCP timestamp than the restored socket will,
# so the client's PAWS check would drop the restored socket's segments (seen on the lab: a 1.9 s gap for 1.05 s
# frozen). A source held frozen while the outcome is uncertain says nothing at all.
OUTBOUND_LOCK_RULES = ("add chain inet %s output { type filter hook output priority -150; policy drop; }\n"
                       "add rule inet %s output oifname \"lo\" accept\n" % (INBOUND_LOCK_TABLE, INBOUND_LOCK_TABLE))


# A restore's action script (criu runs it at every hook; post-restore comes before criu lifts its own lock): the
# source's inbound-only lock, carried over with the namespace, goes then, or the restored sockets' first ACKs are
# dropped and they stall for their retransmission timeout. It leaves POST_RESTORE_RAN beside itself: the net fix then
# need not look for a lock left behind (an nft start, ~12 ms of downtime).
POST_RESTORE_RAN = ".post-restore.ran"
INBOUND_UNLOCK_SH = """#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
case "$CRTOOLS_INIT_PID" in ''|*[!0-9]*) exit 0 ;; esac
nsenter -t "$CRTOOLS_INIT_PID" -n nft delete table inet %s 2>/dev/null
: > "${0%%/*}/%s"
exit 0
""" % (INBOUND_LOCK_TABLE, POST_RESTORE_RAN)


def inbound_unlock_argv(pid):
    """Remove the inbound-only lock from the network namespace of ``pid`` (fails when it is not there)."""
    return ["nsenter", "-t", str(pid), "-n"] + _inbound_unlock_cmd()


def _inbound_unlock_cmd():
    return ["nft", "delete", "table", "inet", INBOUND_LOCK_TABLE]


def netfix_argv(pid, ifname="eth0", python="python3", tx_off=True):
    """Commands to run after a restore: TX checksum offload off (OVS userspace datapath), then the gratuitous ARP
    and the TCP kick of NETFIX_SNIPPET. For a caller that only has a remote shell (the source edge, over SSH); the
    receiver, on the container's own edge, runs the same steps with :func:`after_restore_in_netns`."""
    cmds = []
    if tx_off:
        cmds.append(["nsenter", "-t", str(pid), "-n"] + _txoff_argv(ifname))
    cmds.append(["nsenter", "-t", str(pid), "-n", python, "-c", NETFIX_SNIPPET, ifname, str(pid)])
    return cmds


def _txoff_argv(ifname):
    return ["ethtool", "-K", ifname, "tx", "off"]


CLONE_NEWNET = 0x40000000
AFTER_RESTORE_TIMEOUT_S = 10


def _quiet_call(argv):
    try:
        return subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return 127


def after_restore_in_netns(pid, ifname="eth0", env=None, timeout=AFTER_RESTORE_TIMEOUT_S, check_lock=True):
    """Everything the restored container's network needs, in a child of this process entered into the network
    namespace of ``pid``: the inbound-only lock removed if criu's post-restore hook left it (``INBOUND_LOCK_LEFT``;
    ``check_lock`` False: the hook ran, nothing to look for),
    TX offload off (``TXOFF_FAILED``), then NETFIX_SNIPPET run in that child itself. The downtime pays no ``nsenter``
    and no Python start-up (``make bench-netfix``: x0.65 of the ``nsenter`` commands' time on the lab). Returns ``(rc,
    output lines)``; rc 0 once the snippet ran; a child still running after ``timeout`` seconds is killed (rc 137).
    ``env``: the environment of the commands the child starts (``nft``, ``ethtool``, ``ip``), default this one's."""
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:      # pragma: no cover - runs in the forked child (the tests see its output)
        rc = 1
        try:
            os.close(rfd)
            os.dup2(wfd, 1)
            os.dup2(wfd, 2)
            sys.stdout = sys.stderr = os.fdopen(1, "w")     # never flush what the parent had buffered
            if env is not None:
                os.environ.clear()
                os.environ.update(env)
            nsfd = os.open("/proc/%d/ns/net" % int(pid), os.O_RDONLY)
            if ctypes.CDLL(None, use_errno=True).setns(nsfd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the network namespace of %s" % pid)
            if check_lock and _quiet_call(_inbound_unlock_cmd()) == 0:    # criu's post-restore hook did not run
                sys.stdout.write("INBOUND_LOCK_LEFT\n")
            if _quiet_call(_txoff_argv(ifname)) != 0:
                sys.stdout.write("TXOFF_FAILED\n")
            sys.argv = ["netfix", ifname, str(pid)]
            exec(compile(NETFIX_SNIPPET, "netfix", "exec"), {"__name__": "netfix"})    # pylint: disable=exec-used
            rc = 0
        except BaseException as e:  # pylint: disable=broad-except
            sys.stdout.write("GARP_FAILED %s: %s\n" % (type(e).__name__, e))
        finally:
            sys.stdout.flush()
            os._exit(rc)
    os.close(wfd)
    out, deadline, rc = b"", time.time() + timeout, None
    try:
        while True:
            ready = select.select([rfd], [], [], max(0.0, deadline - time.time()))[0]
            chunk = os.read(rfd, 65536) if ready else None
            if not chunk:
                break
            out += chunk
        if chunk is None:
            os.kill(child, signal.SIGKILL)
            rc = 137
    finally:
        os.close(rfd)
    status = os.waitpid(child, 0)[1]
    if rc is None:
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    return rc, out.decode("utf-8", "replace").splitlines()


# The restored sockets' TCP timestamp clock (network_lock "inbound"). criu saves each socket's timestamp clock when it
# dumps the socket and restores it as it was. The source's sockets go on until the guard's outbound fence at
# post-dump, and a segment they send in between carries a newer timestamp than the one the restored socket resumes
# from: the client's PAWS check then drops the restored socket's segments until its clock catches up or its
# retransmission timer fires (docs/benchmarks.md). The receiver moves each tcp-stream image's clock forward by the
# final dump's duration (an upper bound of that interval) before the restore. tcp_stream_entry (criu's
# images/tcp-stream.proto) has only varint fields; its `timestamp` is field 9, in ms (TCP_TIMESTAMP).
TCP_STREAM_MAGIC = 0x51465506
TCP_STREAM_TIMESTAMP_FIELD = 9


def shift_tcp_stream_timestamp(image, shift_ms):
    """``(new image bytes, old timestamp, new timestamp)`` of a tcp-stream image with the socket's timestamp clock
    moved ``shift_ms`` forward (modulo 2**32: TCP timestamps wrap). Without timestamps on the socket, the image comes
    back as it was, with None and None. ValueError on anything but one tcp_stream_entry of varints; the queued
    data after the entry is kept as it is."""
    if len(image) < 12 or struct.unpack_from("<II", image) != (IMG_COMMON_MAGIC, TCP_STREAM_MAGIC):
        raise ValueError("not a tcp-stream image")
    size = struct.unpack_from("<I", image, 8)[0]
    entry = image[12:12 + size]
    if len(entry) != size:
        raise ValueError("tcp-stream entry truncated (%d of %d bytes)" % (len(entry), size))
    fields, old, moved = [], None, None
    for field, wtype, value in iter_fields(entry):
        if wtype != 0:
            raise ValueError("tcp-stream entry: field %d is not a varint" % field)
        if field == TCP_STREAM_TIMESTAMP_FIELD:
            old, moved = value, (value + int(shift_ms)) & 0xFFFFFFFF
            value = moved
        fields.append(encode_varint(field << 3) + encode_varint(value))
    if old is None:
        return image, None, None
    body = b"".join(fields)
    return image[:8] + struct.pack("<I", len(body)) + body + image[12 + size:], old, moved


def shift_tcp_timestamps(images_dir, shift_ms):
    """Move every tcp-stream image's timestamp clock in ``images_dir`` ``shift_ms`` forward (each file replaced
    whole, never half-written); returns the number of sockets moved."""
    moved = 0
    for name in sorted(os.listdir(images_dir)):
        if not (name.startswith("tcp-stream-") and name.endswith(".img")):
            continue
        path = os.path.join(images_dir, name)
        with open(path, "rb") as f:
            image = f.read()
        new, old, dummy = shift_tcp_stream_timestamp(image, shift_ms)
        if old is None:
            continue
        tmp = path + ".shift"
        with open(tmp, "wb") as f:
            f.write(new)
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.rename(tmp, path)
        moved += 1
    return moved


# The container's cgroup freezer, which LXC hands to criu (--freeze-cgroup: its payload cgroup). criu freezes it and
# then polls it every 100 ms (criu/seize.c, freeze_processes), so a dump costs 100 ms of frozen time for a freeze
# that takes about 1 ms; a cgroup that is already frozen when criu looks is taken as it is. criu then puts it back
# to frozen when it leaves the tasks alive or stopped, and ``lxc-unfreeze`` does not thaw what LXC did not freeze:
# whoever resumes such a source writes the thawed state itself (migration_guard.thaw).
FREEZER_V1 = ("freezer.state", "FROZEN", "THAWED")
FREEZER_V2 = ("cgroup.freeze", "1", "0")
LXC_PAYLOAD_PREFIX = "lxc.payload."


def freezer_of(pid, proc="/proc", cgroup_root="/sys/fs/cgroup"):
    """The freezer of the LXC container whose init is ``pid``: ``{'file', 'frozen', 'thawed', 'events'}`` (cgroup
    v1: ``freezer.state``; v2: ``cgroup.freeze``, done when ``cgroup.events`` says ``frozen 1``), or None when its
    payload cgroup cannot be told (criu then freezes as it always does). The payload is the path up to its first
    ``lxc.payload.*`` directory: anything below it the container may have made itself."""
    try:
        with open("%s/%d/cgroup" % (proc, int(pid))) as f:
            lines = f.read().splitlines()
    except (IOError, OSError, ValueError, TypeError):
        return None
    v1 = v2 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "freezer" in parts[1].split(","):
            v1 = parts[2]
        elif len(parts) == 3 and parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
    rel, mount, (name, frozen, thawed) = ((v1, cgroup_root + "/freezer", FREEZER_V1) if v1 is not None
                                          else (v2, cgroup_root, FREEZER_V2))
    names = (rel or "").split("/")
    payload = next((i for i, n in enumerate(names) if n.startswith(LXC_PAYLOAD_PREFIX)), None)
    if payload is None:
        return None
    path = mount + "/".join(names[:payload + 1])
    if not PLAIN_PATH_RE.match(path) or ".." in names or not os.path.isfile(os.path.join(path, name)):
        return None
    return {"file": os.path.join(path, name), "frozen": frozen, "thawed": thawed,
            "events": os.path.join(path, "cgroup.events") if name == FREEZER_V2[0] else None}


PREFREEZE_TRIES = 2000      # ~1 ms each: a cgroup not frozen by then is thawed again and left to criu

PREFREEZE_SH = """f=%(file)s
frozen() { %(test)s; }
echo %(frozen)s > "$f" 2>/dev/null || exit 0
i=0
until frozen; do
  i=$((i + 1))
  if [ $i -gt %(tries)d ]; then echo %(thawed)s > "$f"; exit 0; fi
  sleep 0.001
done
exit 0"""


def prefreeze_sh(freezer, tries=PREFREEZE_TRIES):
    """Shell lines that freeze the cgroup and wait (1 ms steps) until it is frozen: criu's ``pre-dump`` hook runs
    them just before criu would freeze it itself. They never fail the dump: at worst criu freezes as it always did."""
    if freezer["events"]:
        test = 's=; while read -r k v; do [ "$k" = frozen ] && s=$v; done < %s; [ "$s" = 1 ]' % shlex.quote(
            freezer["events"])
    else:
        test = 'read -r s < "$f" && [ "$s" = %s ]' % freezer["frozen"]
    return PREFREEZE_SH % dict(file=shlex.quote(freezer["file"]), test=test, frozen=freezer["frozen"],
                               thawed=freezer["thawed"], tries=tries)


class LxcCriu(object):
    """Local LXC + CRIU operations on one edge. ``runner(argv, env=None, timeout=None)`` is injectable."""

    def __init__(self, lxcpath="/var/lib/lxc", criu="criu", runner=None, network_lock="nftables",
                 enable_fs=("ramfs",), verbose=True):
        self.lxcpath = lxcpath
        self.criu = criu
        self.run = runner or default_runner
        self.network_lock = network_lock
        self.enable_fs = tuple(enable_fs or ())
        self.verbose = verbose

    # -- containers --------------------------------------------------------------------------------
    def info(self, name):
        rc, out, err = self.run(["lxc-info", "-n", name, "-P", self.lxcpath])
        if rc != 0:
            return None
        return parse_lxc_info(out)

    def config_item(self, name, key):
        rc, out, _err = self.run(["lxc-info", "-n", name, "-P", self.lxcpath, "-c", key])
        if rc != 0:
            return None
        for line in out.splitlines():
            if "=" in line:
                return line.split("=", 1)[1].strip()
        return None

    def exists(self, name):
        return os.path.exists(os.path.join(self.lxcpath, name, "config"))

    # -- checkpoint / restore -----------------------------------------------------------------------
    def _config_env(self, images_dir, action, criu_options):
        if not criu_options:
            return {}
        path = os.path.join(images_dir, ".criu-%s.conf" % action)
        with open(path, "w") as f:
            f.write(config_text(criu_options))
        return {"CRIU_CONFIG_FILE": path}

    def checkpoint_command(self, name, images_dir, action="dump", parent_dir=None, leave="running",
                           track_mem=False, lazy_pages=False, address=None, port=None, action_script=None,
                           ps_socket=None, network_lock=None, tls_dir=None):
        """``(argv, env)`` of one pre-dump or dump, for a caller that runs it in the background (``network_lock``:
        this dump's, instead of this object's; ``tls_dir``: a lazy dump's pinned TLS page channel)."""
        if not os.path.isdir(images_dir):
            os.makedirs(images_dir, 0o700)
        argv, opts = build_argv(action, images_dir=images_dir, container=name, lxcpath=self.lxcpath,
                                parent_dir=parent_dir, leave=leave, track_mem=track_mem, lazy_pages=lazy_pages,
                                address=address, port=port, network_lock=network_lock or self.network_lock,
                                enable_fs=self.enable_fs, verbose=self.verbose, action_script=action_script,
                                ps_socket=ps_socket, tls_dir=tls_dir)
        return argv, self._config_env(images_dir, action, opts)

    def checkpoint(self, name, images_dir, action="dump", parent_dir=None, leave="running", track_mem=False,
                   lazy_pages=False, address=None, port=None, timeout=None):
        """Run one pre-dump or dump; return ``{'duration_s', 'stats', 'images_dir', 'bytes'}`` or raise CriuError."""
        argv, env = self.checkpoint_command(name, images_dir, action=action, parent_dir=parent_dir, leave=leave,
                                            track_mem=track_mem, lazy_pages=lazy_pages, address=address, port=port)
        t0 = time.time()
        rc, out, err = self.run(argv, env=env, timeout=timeout)
        dt = time.time() - t0
        if rc != 0:
            tail = log_tail(os.path.join(images_dir, "%s.log" % action))
            raise CriuError("%s of %s failed (rc %s): %s" % (action, name, rc,
                                                             find_criu_error(tail) or err.strip()[-300:]),
                            rc=rc, stdout=out, stderr=err, log_tail=tail, argv=argv)
        stats = summarize_dump_stats(read_stats(images_dir, "dump"))
        return {"duration_s": dt, "stats": stats, "images_dir": images_dir, "bytes": dir_bytes(images_dir),
                "argv": argv}

    def restore(self, name, images_dir, lazy_pages=False, timeout=None):
        argv, opts = build_argv("restore", images_dir=images_dir, container=name, lxcpath=self.lxcpath,
                                lazy_pages=lazy_pages, network_lock=self.network_lock,
                                enable_fs=self.enable_fs, verbose=self.verbose)
        env = self._config_env(images_dir, "restore", opts)
        # The restored container's monitor (lxc-checkpoint -r -d) keeps the stdout it inherited: give it a file,
        # not our pipe, or we would wait for EOF as long as the container lives.
        outfile = os.path.join(images_dir, "restore.out")
        t0 = time.time()
        rc, out, err = self.run(["sh", "-c", 'f=$1; shift; exec "$@" </dev/null >"$f" 2>&1', "sh", outfile] + argv,
                                env=env, timeout=timeout)
        dt = time.time() - t0
        if rc != 0:
            err = log_tail(outfile) or err
            tail = log_tail(os.path.join(images_dir, "restore.log"))
            why = find_criu_error(tail) or err.strip()[-300:]
            raise CriuError("restore of %s failed (rc %s): %s" % (name, rc, why),
                            rc=rc, stdout=out, stderr=err, log_tail=tail, argv=argv)
        return {"duration_s": dt, "stats": read_stats(images_dir, "restore"), "argv": argv}

    # -- features -----------------------------------------------------------------------------------
    def features(self):
        return check_features(self.run, self.criu)


def dir_bytes(path):
    total = 0
    for entry in os.listdir(path):
        p = os.path.join(path, entry)
        if os.path.isfile(p):
            total += os.path.getsize(p)
    return total


def read_int(path, default=None):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (IOError, OSError, ValueError):
        return default


# Without CAP_SYS_RESOURCE criu's page pipes cannot grow past fs.pipe-max-size; lazy pages then fail at the
# first request (docs/edge.md, sysctl). 16 MiB is what made them work here.
LAZY_PIPE_MAX_SIZE = 16 * 1024 * 1024


# Post-copy's TLS channel (postcopy_channel: tls): criu's own page server, encrypted and mutually authenticated. Each
# side makes a key and a self-signed certificate for this one migration and trusts only the other's, which the
# migration's SSH session carried: the pin is the trust, so no CA and no name check (--tls-no-cn-verify).
TLS_KEY, TLS_CERT, TLS_PEER = "own.key", "own.pem", "peer.pem"
MAX_PEM_BYTES = 8192
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]{64,%d}-----END CERTIFICATE-----\n?\Z"
                         % MAX_PEM_BYTES, re.ASCII)


def tls_identity(tls_dir, openssl="openssl", env=None, run=subprocess.run):
    """Make ``tls_dir`` anew (0700; whatever was there goes) with a fresh P-256 key and its self-signed certificate;
    returns the certificate (PEM text), the part the peer pins."""
    _plain_tls_dir(tls_dir)
    if os.path.isdir(tls_dir) and not os.path.islink(tls_dir):
        shutil.rmtree(tls_dir)
    elif os.path.lexists(tls_dir):
        os.unlink(tls_dir)
    os.makedirs(tls_dir, 0o700)
    os.chmod(tls_dir, 0o700)
    cert = os.path.join(tls_dir, TLS_CERT)
    proc = run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", os.path.join(tls_dir, TLS_KEY), "-out", cert, "-days", "2", "-subj", "/CN=arnab-postcopy"],
               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)
    if proc.returncode != 0:
        raise CriuError("openssl could not make the page channel's key (rc %s): %s"
                        % (proc.returncode, (proc.stderr or b"").decode("utf-8", "replace").strip()[-300:]))
    with open(cert) as f:
        return check_pem_cert(f.read())


def check_pem_cert(text):
    """One PEM certificate and nothing else (what a peer sends us to pin); returns it, else ValueError."""
    if not isinstance(text, str) or not PEM_CERT_RE.match(text):
        raise ValueError("not one PEM certificate")
    return text if text.endswith("\n") else text + "\n"


def pin_tls_peer(tls_dir, pem):
    """Trust exactly the peer's certificate ``pem`` (checked) for this migration's page channel."""
    pem = check_pem_cert(pem)
    path = os.path.join(tls_dir, TLS_PEER)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, pem.encode("ascii"))
    finally:
        os.close(fd)


def _plain_tls_dir(tls_dir):
    if not PLAIN_PATH_RE.match(tls_dir):
        raise ValueError("TLS dir %r: criu reads it from a config line, it must be a plain path" % tls_dir)


def tls_options(tls_dir):
    """criu's long options for the pinned TLS page channel whose files are in ``tls_dir``."""
    _plain_tls_dir(tls_dir)
    return [("tls", None), ("tls-cacert", os.path.join(tls_dir, TLS_PEER)),
            ("tls-cert", os.path.join(tls_dir, TLS_CERT)), ("tls-key", os.path.join(tls_dir, TLS_KEY)),
            ("tls-no-cn-verify", None)]


def check_features(run, criu="criu"):
    """Ask criu what this kernel can do: ``{'criu_version', 'mem_dirty_track', 'uffd_noncoop', ...}``."""
    feats = {"criu": criu}
    rc, out, err = run([criu, "--version"])
    m = re.search(r"Version:\s*(\S+)", out or "")
    feats["criu_version"] = m.group(1) if (rc == 0 and m) else None
    feats["criu_ok"] = rc == 0
    for feature in ("mem_dirty_track", "uffd-noncoop"):
        if rc != 0:
            feats[feature.replace("-", "_")] = False
            continue
        argv, _opts = build_argv("check", feature=feature, criu=criu)
        frc, fout, ferr = run(argv)
        feats[feature.replace("-", "_")] = frc == 0
    feats["pipe_max_size"] = read_int("/proc/sys/fs/pipe-max-size")
    feats["lazy_pages_ready"] = bool(feats.get("uffd_noncoop")) and (feats["pipe_max_size"] or 0) >= LAZY_PIPE_MAX_SIZE
    return feats


def version_tuple(v):
    parts = []
    for p in (v or "").split("."):
        m = re.match(r"\d+", p)
        parts.append(int(m.group(0)) if m else 0)
    return tuple(parts)
