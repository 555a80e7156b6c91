# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push state directories to another edge with rsync over SSH.

Change detection follows ansible.posix.synchronize: rsync prints ``<<CHANGED>>%i %n%L`` for every item it
changes. ``--stats`` gives the bytes on the wire and the literal (new) data.

Choosing how to send (measured on the lab machine, 1 GiB, 20% of 4 KiB pages changed): rsync's default block for a 1 GiB
file is 32 KiB, so scattered page changes touch 83% of its blocks and it sends 891 MB - worse than
``--whole-file``; ``-B 4096`` sends 215 MB. CRIU page images change in 4 KiB pages, so:

* a page image (``pages-*.img``) that already exists at the destination from the previous iteration is sent as a
  delta with ``-B 4096 --inplace`` (only changed pages move, only they are written);
* everything else (fresh files, the small metadata images) goes ``--whole-file``: there is no basis to diff
  against, and checksumming a small file costs more than sending it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import fnmatch
import itertools
import os
import re
import struct
import time

try:
    from ansible_collections.arnab.testbed.plugins.module_utils.criu import default_runner, page_layouts
except ImportError:     # installed beside criu.py (the migration receiver on an edge)
    from criu import default_runner, page_layouts

CHANGED_MARKER = "<<CHANGED>>"
OUT_FORMAT = CHANGED_MARKER + "%i %n%L"
PAGE_BLOCK = 4096
PAGE_IMAGE_GLOB = "pages-*.img"
# criu's own logs and our criu config files stay on the source (a verbose dump log is megabytes).
IMAGE_EXCLUDES = ("*.log", ".criu-*.conf")
# A delta needs a basis and pays a checksum pass; below this size a file always goes whole.
DELTA_MIN_SIZE = 1024 * 1024

# Every SSH to a peer edge verifies its host key against the known_hosts the edge role writes (root's
# ~/.ssh/known_hosts: every address of every peer, the backhaul address the engine dials included): a host
# that is not known, or whose key changed, is refused, never trusted on first use.
SSH_BASE_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
                    "-o", "ConnectTimeout=10")


def ssh_argv(host, user="root", key=None, port=None, control_path=None, extra=()):
    """ssh argv (without the remote command). With ``control_path`` a persistent master connection is shared,
    so commands in the frozen window pay no TCP/SSH handshake."""
    argv = ["ssh"] + list(SSH_BASE_OPTIONS)
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if port:
        argv += ["-p", str(port)]
    if control_path:
        argv += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s" % control_path, "-o", "ControlPersist=300"]
    argv += list(extra)
    argv.append("%s@%s" % (user, host) if user else host)
    return argv


def _shell_quote(s):
    if re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def build_rsync_argv(sources, dest, host=None, user="root", key=None, ssh_port=None, control_path=None,
                     mode="whole", block_size=None, inplace=None, compress=False, bwlimit=None, delete=False,
                     excludes=(), ignore_times=False, archive_extras=(), dry_run=False, rsync="rsync",
                     rsync_path=None, extra=()):
    """Build the rsync argv for a push.

    ``mode``: ``whole`` (``--whole-file``) or ``delta`` (``--no-whole-file``, block ``block_size`` default 4096,
    ``--inplace`` unless ``inplace=False``). ``bwlimit`` is KiB/s as rsync takes it. ``archive_extras`` e.g.
    ``('-H', '-A', '-X', '--numeric-ids')`` for a root filesystem.
    """
    if mode not in ("whole", "delta"):
        raise ValueError("mode must be whole or delta")
    if isinstance(sources, str):
        sources = [sources]
    argv = [rsync, "-a", "--stats", "--out-format=" + OUT_FORMAT]
    argv += list(archive_extras)
    if mode == "whole":
        argv.append("--whole-file")
    else:
        argv += ["--no-whole-file", "--block-size=%d" % (block_size or PAGE_BLOCK)]
        if inplace is None or inplace:
            argv.append("--inplace")
    if ignore_times:
        # Dumps a second apart can have equal size and mtime: never trust the quick check for images.
        argv.append("--ignore-times")
    if compress:
        argv.append("--compress")
    if bwlimit:
        argv.append("--bwlimit=%s" % bwlimit)
    if delete:
        argv.append("--delete")
    for pattern in excludes:
        argv.append("--exclude=%s" % pattern)
    if dry_run:
        argv.append("--dry-run")
    if rsync_path:
        argv.append("--rsync-path=%s" % rsync_path)
    argv += list(extra)
    if host:
        ssh = ssh_argv(host, user=None, key=key, port=ssh_port, control_path=control_path)[:-1]
        argv += ["-e", " ".join(_shell_quote(a) for a in ssh)]
        target = "%s@%s:%s" % (user, host, dest) if user else "%s:%s" % (host, dest)
    else:
        target = dest
    return argv + list(sources) + [target]


_STATS_KEYS = {
    "number of files": "files",
    "number of created files": "created_files",
    "number of deleted files": "deleted_files",
    "number of regular files transferred": "files_transferred",
    "total file size": "total_file_size",
    "total transferred file size": "transferred_file_size",
    "literal data": "literal_bytes",
    "matched data": "matched_bytes",
    "file list size": "file_list_size",
    "total bytes sent": "bytes_sent",
    "total bytes received": "bytes_received",
}


def _number(text):
    m = re.match(r"\s*([0-9][0-9,.]*)([KMGT]?)", text)
    if not m:
        return None
    digits = m.group(1).replace(",", "")
    try:
        value = float(digits) if "." in digits else int(digits)
    except ValueError:
        return None
    mult = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}[m.group(2)]
    return int(value * mult)


def parse_rsync_output(stdout):
    """Return ``{'changed', 'items': [{'flags', 'path'}], 'stats': {...}}`` from rsync's stdout."""
    items = []
    stats = {}
    for line in stdout.splitlines():
        if line.startswith(CHANGED_MARKER):
            rest = line[len(CHANGED_MARKER):]
            if len(rest) > 12 and rest[11] == " ":     # %i is 11 characters wide ("*deleting  " included)
                flags, path = rest[:11].rstrip(), rest[12:]
            else:
                flags, _sep, path = rest.partition(" ")
            items.append({"flags": flags, "path": path})
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        name = _STATS_KEYS.get(key.strip().lower())
        if name:
            num = _number(value)
            if num is not None:
                stats[name] = num
    # Like synchronize: an item counts as a change unless rsync only reports it as up to date ('.' with no
    # attribute letters set), e.g. '.d..t......' is a changed directory time, '.f         ' is unchanged.
    changed = [i for i in items if i["flags"] and not (i["flags"][0] == "." and set(i["flags"][2:]) <= {".", " "})]
    return {"changed": bool(changed), "items": items, "changed_items": [i["path"] for i in changed],
            "stats": stats}


def list_files(path):
    """``{name: size}`` of the regular files directly in ``path`` (image dirs are flat)."""
    out = {}
    if not os.path.isdir(path):
        return out
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isfile(p) and not os.path.islink(p):
            out[name] = os.path.getsize(p)
    return out


def plan_image_transfer(src_files, dest_files, delta_glob=PAGE_IMAGE_GLOB, delta_min_size=DELTA_MIN_SIZE):
    """Split image files into ``{'delta': [...], 'whole': [...]}``.

    ``src_files``/``dest_files``: ``{name: size}``; ``dest_files`` is what the destination already holds (from the
    previous iteration). A page image goes delta when the destination has a basis for it and it is big enough
    for a checksum pass to pay; everything else goes whole.
    """
    plan = {"delta": [], "whole": []}
    for name in sorted(src_files):
        size = src_files[name]
        if fnmatch.fnmatch(name, delta_glob) and name in dest_files and size >= delta_min_size:
            plan["delta"].append(name)
        else:
            plan["whole"].append(name)
    return plan


def sum_stats(results):
    total = {}
    for r in results:
        for k, v in r.get("stats", {}).items():
            total[k] = total.get(k, 0) + v
    return total


class Pusher(object):
    """rsync pushes to one destination host over one shared SSH master connection."""

    def __init__(self, host, user="root", key=None, ssh_port=None, control_path=None, compress=False,
                 bwlimit=None, runner=None, rsync="rsync"):
        self.host = host
        self.user = user
        self.key = key
        self.ssh_port = ssh_port
        self.control_path = control_path
        self.compress = compress
        self.bwlimit = bwlimit
        self.run = runner or default_runner
        self.rsync = rsync

    def ssh(self, command, timeout=None):
        """Run a shell command on the destination: ``(rc, out, err)``."""
        argv = ssh_argv(self.host, user=self.user, key=self.key, port=self.ssh_port,
                        control_path=self.control_path) + ["--", command]
        return self.run(argv, timeout=timeout)

    def rsync_argv(self, sources, dest, **kw):
        return build_rsync_argv(sources, dest, host=self.host, user=self.user, key=self.key,
                                ssh_port=self.ssh_port, control_path=self.control_path,
                                compress=kw.pop("compress", self.compress), bwlimit=kw.pop("bwlimit", self.bwlimit),
                                rsync=self.rsync, **kw)

    def push(self, sources, dest, check_mode=False, **kw):
        """One rsync run; returns ``{'rc', 'argv', 'duration_s', 'changed', 'stats', ...}``; raises on failure."""
        argv = self.rsync_argv(sources, dest, dry_run=check_mode, **kw)
        t0 = time.time()
        rc, out, err = self.run(argv)
        dt = time.time() - t0
        parsed = parse_rsync_output(out)
        result = {"rc": rc, "argv": argv, "duration_s": dt, "changed": parsed["changed"],
                  "changed_items": parsed["changed_items"], "stats": parsed["stats"],
                  "bytes_sent": parsed["stats"].get("bytes_sent", 0), "stderr": err.strip()[-2000:]}
        if rc not in (0, 24):   # 24: files vanished during the transfer (a live root filesystem)
            raise TransferError("rsync to %s:%s failed (rc %s): %s" % (self.host, dest, rc, err.strip()[-500:]),
                                result)
        return result

    def push_page_delta(self, src_dir, prev_dir, dest_dir, dest_files, channel, all_files=False):
        """Send ``src_dir``'s page images as deltas against ``prev_dir`` (whose bytes the destination holds),
        pages compared by virtual address (:func:`plan_page_images`), streamed through one SSH session into the
        destination receiver's ``patch`` (``migrate_receiver.apply_patch``). Returns the sent names and the
        figures. Files the destination lacks go whole inside the same stream; with ``all_files`` the metadata
        images ride along whole too. ``channel``: a process whose stdin takes the stream, the destination
        receiver's ``patch`` (``receiver.Receiver.open_patch``)."""
        names = [n for n in sorted(list_files(src_dir)) if not any(fnmatch.fnmatch(n, pat) for pat in IMAGE_EXCLUDES)]
        pages = [n for n in names if fnmatch.fnmatch(n, PAGE_IMAGE_GLOB)]
        plans = plan_page_images(src_dir, prev_dir, dest_files, pages)
        if all_files:
            plans += [plan_file(n, None, os.path.join(src_dir, n)) for n in names if n not in pages]
        t0 = time.time()
        proc = channel
        try:
            figures = encode_patch(plans, proc.stdin)
            proc.stdin.close()
        except (IOError, OSError) as e:
            proc.kill()
            err = proc.stderr.read()
            proc.wait()
            raise TransferError("page delta to %s:%s broke: %s %s" % (self.host, dest_dir, e, err.decode()[-300:]))
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait()
        if proc.returncode != 0 or not out.startswith(b"ok"):
            raise TransferError("page delta to %s:%s failed (rc %s): %s" % (
                self.host, dest_dir, proc.returncode, (err or out).decode("utf-8", "replace")[-400:]))
        figures.update(duration_s=time.time() - t0, names=[p["name"] for p in plans],
                       delta=[p["name"] for p in plans if p["by"] != "whole"],
                       whole=[p["name"] for p in plans if p["by"] == "whole"])
        return figures

    def push_images(self, src_dir, dest_dir, dest_files=None, check_mode=False, single_run=True, ignore_times=True,
                    rsync_path=None):
        """Push a flat CRIU image dir into ``dest_dir`` choosing delta or whole per file (see the module doc).

        ``dest_files``: ``{name: size}`` the destination holds now (None: nothing). Files the source no longer has
        are deleted at the destination. ``rsync_path``: the receiver's (``receiver.rsync_path('images')``, with
        ``dest_dir`` ``./``). Returns the merged result and ``plan``.
        """
        src_files = dict((k, v) for k, v in list_files(src_dir).items()
                         if not any(fnmatch.fnmatch(k, pat) for pat in IMAGE_EXCLUDES))
        plan = plan_image_transfer(src_files, dest_files or {})
        results = []
        src = src_dir.rstrip("/") + "/"
        dest = dest_dir.rstrip("/") + "/"
        excludes = list(IMAGE_EXCLUDES)
        if not plan["delta"] or not single_run:
            # whole: everything not going delta; delete what the source no longer has (the delta files are
            # excluded, and excluded files are protected from --delete).
            results.append(self.push([src], dest, mode="whole", delete=True, ignore_times=ignore_times,
                                     excludes=excludes + ["/" + n for n in plan["delta"]], check_mode=check_mode,
                                     rsync_path=rsync_path))
            if plan["delta"]:
                results.append(self.push([os.path.join(src_dir, n) for n in plan["delta"]], dest, mode="delta",
                                         block_size=PAGE_BLOCK, ignore_times=ignore_times, check_mode=check_mode,
                                         rsync_path=rsync_path))
        else:
            # One rsync run (one SSH session) with delta settings: files without a basis at the destination
            # (the plan's "whole" list) have nothing to match, so rsync sends them literally, exactly as
            # --whole-file would; the page images with a basis go as 4 KiB deltas in place.
            results.append(self.push([src], dest, mode="delta", block_size=PAGE_BLOCK, delete=True,
                                     ignore_times=ignore_times, excludes=excludes, check_mode=check_mode,
                                     rsync_path=rsync_path))
        stats = sum_stats(results)
        return {"plan": plan, "runs": results, "stats": stats, "bytes_sent": stats.get("bytes_sent", 0),
                "literal_bytes": stats.get("literal_bytes", 0),
                "duration_s": sum(r["duration_s"] for r in results),
                "changed": any(r["changed"] for r in results), "files": src_files}


# --------------------------------------------------------------------------------------------------
# Page-aligned delta: what rsync's rolling checksum costs for a page image, without the rolling part.
# --------------------------------------------------------------------------------------------------
# rsync -B 4096 finds moved data by rolling a checksum over every byte offset of the non-matching regions; for a
# 256 MiB page image with half its pages rewritten that is ~130 M hash probes (measured here: 10.5 s for 131 MB,
# against 3.1 s to send the whole 269 MB). The source still holds the previous iteration's images (the destination
# holds the same bytes), so it compares the two itself and sends only what the destination cannot rebuild.
#
# Pages are compared by VIRTUAL ADDRESS (:func:`va_diff`): ``pagemap-*.img`` says which address each 4 KiB page of
# a ``pages-<id>.img`` belongs to (``criu.page_layouts``), so a mapping added or freed between two dumps - which
# shifts every later page of the image - costs only its own pages on the wire: an unchanged page is a COPY record
# (the destination takes it from its old image), a changed or new page a DATA record. The old image of the same
# pagemap is the basis, whatever its pages id (criu numbers page images in dump order: a new shared mapping
# renumbers the others, pages-2.img becomes pages-3.img). Without a usable pagemap the pages are compared at the
# same file offset (:func:`page_diff`). Correctness never depends on the layout: a COPY is emitted only for bytes
# compared equal. The diff streams: records go out as the comparison finds them.
#
# The stream (``apply_patch`` in migrate_receiver.py applies it: the receiver cannot import this engine, it only
# shares these constants from this file it already imports): PATCH_MAGIC, then per file ``<H len> name <Q size>
# <B aside> <H len> basis``, records, ``<Q END_OF_FILE><I 0>``; ``<H 0>`` ends the stream. Records:
# ``<Q off><I len> data`` writes data at ``off``; ``<Q COPY_FLAG|off><I len><Q src>`` copies ``len`` bytes of the
# basis at ``src`` to ``off``. ``aside`` 0: the file is patched IN PLACE (its own old bytes are the basis and its
# layout did not move: every address both images hold sits at the same offset, so only changed pages are written
# - the common case) with DATA records only. ``aside`` 1: it is BUILT ASIDE from ``basis`` (any name, its own too;
# empty: from nothing, the file goes whole) and renamed over its name when the stream ends, so every basis is read
# before it is replaced; the encoder sends those files first.
PATCH_MAGIC_V1 = b"APD1"    # earlier engines: every file in place, DATA records only (still applied)
PATCH_MAGIC = b"APD2"
END_OF_FILE = 0xFFFFFFFFFFFFFFFF
COPY_FLAG = 1 << 63
PART_SUFFIX = ".part"       # a file built aside, renamed when the stream ends
RECORD_BYTES = 1 << 20      # DATA records are at most this long (the receiver refuses > 64 MiB)


def page_diff(old_path, new_path, block=PAGE_BLOCK, chunk=1 << 20):
    """Yield ``(offset, data)`` runs of ``new_path`` whose ``block``-sized blocks differ from ``old_path`` at the
    same offset (everything past the end of the old file counts as changed). Adjacent changed blocks are
    coalesced."""
    with open(new_path, "rb") as fn, open(old_path, "rb") as fo:
        off = 0
        run_off, run = None, []
        while True:
            a = fn.read(chunk)
            if not a:
                break
            b = fo.read(len(a))
            if a == b:
                if run:
                    yield run_off, b"".join(run)
                    run_off, run = None, []
                off += len(a)
                continue
            for i in range(0, len(a), block):
                blk = a[i:i + block]
                if blk != b[i:i + block]:
                    if not run:
                        run_off = off + i
                    run.append(blk)
                elif run:
                    yield run_off, b"".join(run)
                    run_off, run = None, []
            off += len(a)
        if run:
            yield run_off, b"".join(run)


def page_runs(layout, size, block=PAGE_BLOCK):
    """``[(vaddr, nr_pages, file offset)]`` of a page image from its pagemap's ``[(vaddr, nr_pages)]``, or None
    when they do not describe it (not in address order, overlapping, unaligned, or not exactly its size)."""
    out, off, last_end = [], 0, 0
    for vaddr, nr in layout:
        if vaddr % block or vaddr < last_end:
            return None
        out.append((vaddr, nr, off))
        off += nr * block
        last_end = vaddr + nr * block
    return out if off == size else None


def _segments(old_runs, new_runs, block=PAGE_BLOCK):
    """Walk the new image's pages by address: yield ``(dst, src or None, length)``: ``src`` the offset of the
    same addresses in the old image, None where the old image has no page there."""
    starts = [r[0] for r in old_runs]
    for vaddr, nr, noff in new_runs:
        pos, end = vaddr, vaddr + nr * block
        while pos < end:
            i = bisect.bisect_right(starts, pos) - 1
            if i >= 0 and pos < old_runs[i][0] + old_runs[i][1] * block:
                seg_end = min(end, old_runs[i][0] + old_runs[i][1] * block)
                yield noff + pos - vaddr, old_runs[i][2] + pos - old_runs[i][0], seg_end - pos
            else:       # no page at this address in the old image: new up to the next old run
                seg_end = min(end, starts[i + 1]) if i + 1 < len(starts) else end
                yield noff + pos - vaddr, None, seg_end - pos
            pos = seg_end


def layout_moved(old_runs, new_runs):
    """Does any address both images hold sit at another file offset (a mapping added or freed before it)?"""
    return any(src is not None and src != dst for dst, src, _ln in _segments(old_runs, new_runs))


def _pread_into(fd, buf, n, off):
    """``n`` bytes of ``fd`` at ``off``, read into ``buf``: ``buf`` itself when they fill it, else a copy (bytes
    and bytearrays compare with memcmp; memoryviews item by item)."""
    with memoryview(buf) as view:
        got = os.preadv(fd, [view[:n]], off)
    return buf if got == len(buf) else buf[:got]


def va_diff(old_path, new_path, old_runs, new_runs, in_place, block=PAGE_BLOCK, chunk=1 << 20):
    """Compare two page images by virtual address, in one pass, and yield the records that rebuild the new one,
    in file order, coalesced: ``('copy', dst, src, length)`` (unchanged pages; in place, pages at the same offset
    need nothing) and ``('data', dst, length)`` (changed or new pages, to be read from ``new_path``)."""
    pending = None
    abuf, bbuf = bytearray(chunk), bytearray(chunk)     # reused: no allocation (and page faults) per chunk

    def emit(op):
        """Merge ``op`` into the pending record when contiguous; return the record to yield, if any."""
        nonlocal pending
        if op is not None and pending is not None and pending[0] == op[0] and \
                pending[1] + pending[-1] == op[1] and (op[0] == "data" or pending[2] + pending[3] == op[2]):
            pending = pending[:-1] + (pending[-1] + op[-1],)
            return None
        out, pending = pending, op
        return out

    with open(new_path, "rb") as fn, open(old_path, "rb") as fo:
        nfd, ofd = fn.fileno(), fo.fileno()
        for dst, src, length in _segments(old_runs, new_runs, block):
            if src is None:
                out = emit(("data", dst, length))
                if out:
                    yield out
                continue
            for k in range(0, length, chunk):
                ln = min(chunk, length - k)
                a, b = _pread_into(nfd, abuf, ln, dst + k), _pread_into(ofd, bbuf, ln, src + k)
                runs = [(True, ln)] if a == b else [
                    (equal, sum(1 for _page in pages) * block)
                    for equal, pages in itertools.groupby(a[j:j + block] == b[j:j + block]
                                                          for j in range(0, ln, block))]
                j = 0
                for equal, n in runs:
                    if not equal:
                        op = ("data", dst + k + j, n)
                    elif in_place and dst == src:
                        op = None       # already there
                    else:
                        op = ("copy", dst + k + j, src + k + j, n)
                    out = emit(op)
                    if out:
                        yield out
                    j += n
    out = emit(None)
    if out:
        yield out


def plan_file(name, old, new, basis=None, layouts=None):
    """How one file goes: ``{'name', 'new', 'basis' (its name at the destination; '' none: whole), 'by':
    'vaddr'|'offset'|'whole', 'in_place' (else built aside), 'records' (a callable yielding the records)}``.
    ``old``: the basis's bytes here (None: the file goes whole); ``basis``: its name at the destination (default
    ``name``); ``layouts``: ``(old, new)`` ``[(vaddr, nr_pages)]`` from the pagemaps (None: compared by offset)."""
    size = os.path.getsize(new)
    plan = {"name": name, "new": new, "basis": "", "by": "whole", "in_place": False,
            "records": lambda: (("data", off, min(RECORD_BYTES, size - off)) for off in range(0, size, RECORD_BYTES))}
    if old is None:
        return plan
    basis = basis or name
    runs = (page_runs(layouts[0], os.path.getsize(old)), page_runs(layouts[1], size)) if layouts else (None, None)
    if runs[0] is not None and runs[1] is not None:
        in_place = basis == name and not layout_moved(*runs)
        plan.update(basis=basis, by="vaddr", in_place=in_place,
                    records=lambda: va_diff(old, new, runs[0], runs[1], in_place))
    elif basis == name:
        plan.update(basis=name, by="offset", in_place=True,
                    records=lambda: (("data", off, len(d)) for off, d in page_diff(old, new)))
    return plan


def encode_patch(pairs, out):
    """Write a patch stream to the binary file ``out``. ``pairs``: ``(name, old_path or None, new_path)`` (pages
    compared at the same offset; None: sent whole), or plans from :func:`plan_file`. Files built aside go first.
    Returns ``{'literal_bytes', 'copied_bytes', 'bytes_sent', 'runs', 'by'}`` (``by``: name -> vaddr/offset/whole,
    ``aside``: the names rebuilt aside at the destination)."""
    plans = [p if isinstance(p, dict) else plan_file(*p) for p in pairs]
    plans.sort(key=lambda p: p["in_place"])     # stable: built-aside files first, then those patched in place
    sent = literal = copied = runs = 0

    def w(data):
        out.write(data)
        return len(data)

    sent += w(PATCH_MAGIC)
    for p in plans:
        nb, bb = p["name"].encode(), b"" if p["in_place"] else p["basis"].encode()
        head = struct.pack("<QBH", os.path.getsize(p["new"]), 0 if p["in_place"] else 1, len(bb))
        sent += w(struct.pack("<H", len(nb)) + nb + head + bb)
        with open(p["new"], "rb") as f:
            for rec in p["records"]():
                if rec[0] == "copy":
                    sent += w(struct.pack("<QIQ", COPY_FLAG | rec[1], rec[3], rec[2]))
                    copied += rec[3]
                    runs += 1
                    continue
                dst, ln = rec[1], rec[2]
                for k in range(0, ln, RECORD_BYTES):
                    chunk = os.pread(f.fileno(), min(RECORD_BYTES, ln - k), dst + k)
                    sent += w(struct.pack("<QI", dst + k, len(chunk)) + chunk)
                    literal += len(chunk)
                    runs += 1
        sent += w(struct.pack("<QI", END_OF_FILE, 0))
    sent += w(struct.pack("<H", 0))
    return {"bytes_sent": sent, "literal_bytes": literal, "copied_bytes": copied, "runs": runs,
            "by": dict((p["name"], p["by"]) for p in plans),
            "aside": [p["name"] for p in plans if not p["in_place"]]}


def plan_page_images(src_dir, prev_dir, dest_files, names):
    """The plans for the page images ``names`` of ``src_dir`` against ``prev_dir`` (whose bytes the destination
    holds, ``dest_files`` = ``{name: size}`` there): each pages image's basis is the previous image of the same
    pagemap (by virtual address), else the same name (by offset), else none (whole)."""
    if not prev_dir:    # nothing to compare with: the pagemaps would be read for nothing, in the frozen window
        return [plan_file(n, None, os.path.join(src_dir, n), basis=n) for n in names]
    new_layouts = page_layouts(src_dir)
    old_layouts = page_layouts(prev_dir)
    # the basis follows the pagemap (pagemap-<pid>.img, pagemap-shmem-<id>.img), not the pages id
    old_image = dict((pagemap, img) for img, (pagemap, _runs) in old_layouts.items())

    def held(n):
        old = os.path.join(prev_dir, n)
        return old if (os.path.exists(old) and n in (dest_files or {})
                       and dest_files[n] == os.path.getsize(old)) else None

    plans = []
    for name in names:
        new = os.path.join(src_dir, name)
        basis = old_image.get(new_layouts.get(name, (None, None))[0], name)
        old = held(basis)
        if old is None and basis != name:
            basis, old = name, held(name)
        layouts = None
        if old and basis in old_layouts and name in new_layouts and \
                old_layouts[basis][0] == new_layouts[name][0]:      # the same pagemap: addresses compare
            layouts = (old_layouts[basis][1], new_layouts[name][1])
        plans.append(plan_file(name, old, new, basis=basis, layouts=layouts))
    return plans


class TransferError(Exception):
    def __init__(self, msg, result=None):
        super(TransferError, self).__init__(msg)
        self.result = result or {}
