# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delta pre-copy's iterations without a freeze: read a running container's private memory into criu-shaped images.

On a kernel without soft-dirty bits criu cannot pre-dump, and a ``dump --leave-running`` per iteration freezes the
container for a whole dump each time. But an iteration only has to move *most* of the memory ahead of the final
dump: the final dump is the only consistent one, and the destination rebuilds it by comparing its pages, by virtual
address, with whatever the destination already holds (``state_transfer.va_diff``). So an iteration may read the
memory while the container runs, from ``/proc/<pid>/mem``, and write it as criu would: ``pagemap-<pid in the
container>.img`` (the runs of pages, by virtual address) and ``pages-<id>.img`` (their bytes). A page written while
it was read is torn, which costs nothing but its resend: the final diff compares bytes and sends every page that
differs from what the destination holds, torn or not.

Which pages: the ones criu's dump will take (criu/mem.c ``should_dump_page``), so that the final dump's pages sit at
the same file offsets and the destination patches them in place (a page more or less early in a task's address space
would shift every later one, and the destination would rebuild the whole image aside, seconds for 1 GiB). Those are,
in each task's private mappings, the pages that are present, anonymous (``/proc/<pid>/pagemap``: not a file or shared
page) and not the shared zero page; all of the vDSO; none of the other special areas (vvar, vsyscall). And the first
page of the task's first executable mapping: criu writes its parasite's entry code there (compel), which makes that
page the task's own by the time it dumps. Tasks are numbered as criu numbers its pages images: the process tree from
the container's init, depth first, children by age. A page that cannot be read (unmapped meanwhile) is written as
zeros: what matters is that the source keeps exactly the bytes the destination received.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import ctypes
import mmap
import os
import time

from ansible_collections.arnab.testbed.plugins.module_utils.criu import PAGE_SIZE, PE_PRESENT, encode_pagemap

PM_PRESENT = 1 << 63        # /proc/<pid>/pagemap: the page is in memory
PM_FILE = 1 << 61           # ... and is a file page or shared anonymous (not a private page of the task's own)
PM_PFN = (1 << 55) - 1      # ... at this page frame (root only)
VDSO = "[vdso]"             # criu dumps all of it
SPECIAL_AREAS = ("[vsyscall]", "[vvar]", "[vvar_vclock]")    # the kernel's; criu does not dump their pages
READ_CHUNK = 4 << 20        # bytes per read of /proc/<pid>/mem (1 GiB reads in ~0.26 s here)


class SnapshotError(Exception):
    """The container's memory cannot be read live (the caller dumps instead)."""


def private_areas(maps_text):
    """``[(start, end, kind)]`` of the private mappings in a ``/proc/<pid>/maps`` text, the kernel's special areas
    left out; ``kind``: ``"vdso"`` (all its pages), ``"entry"`` (the first executable one: its first page too) or
    ``""``."""
    out, entry = [], None
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or len(fields[1]) < 4 or fields[1][3] != "p":
            continue
        name = fields[5].strip() if len(fields) == 6 else ""
        if name in SPECIAL_AREAS:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        kind = "vdso" if name == VDSO else ""
        if entry is None and fields[1][2] == "x" and not kind:
            entry, kind = start, "entry"
        out.append((start, end, kind))
    return out


def zero_pfn():
    """The page frame of the kernel's shared zero page (what an anonymous page only ever read maps): criu leaves such
    pages out. None when pagemap hides frames (not root)."""
    area = mmap.mmap(-1, PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        area.read_byte()        # a read fault maps the zero page
        view = ctypes.c_char.from_buffer(area)
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            word = _pagemap_words(fd, ctypes.addressof(view), 1)[0]
        finally:
            os.close(fd)
            del view
    finally:
        area.close()
    return (word & PM_PFN) or None


def _pagemap_words(fd, start, count):
    """``count`` words of the open pagemap ``fd`` from the page at ``start`` (fewer: unmapped meanwhile)."""
    words = array.array("Q")
    words.frombytes(os.pread(fd, count * 8, start // PAGE_SIZE * 8))
    return words


def present_runs(entries, start, zero=None, kind=""):
    """``[(vaddr, nr_pages)]``: the runs of pages criu would dump among ``entries`` (pagemap words, one per page from
    ``start``) of an area of ``kind`` (see :func:`private_areas`); ``zero``: the zero page's frame."""
    if kind == "vdso":
        return [(start, len(entries))] if entries else []
    runs, first = [], None
    for i, word in enumerate(entries):
        wanted = (word & PM_PRESENT and not word & PM_FILE and (zero is None or word & PM_PFN != zero)) or \
            (i == 0 and kind == "entry")
        if wanted and first is None:
            first = i
        elif not wanted and first is not None:
            runs.append((start + first * PAGE_SIZE, i - first))
            first = None
    if first is not None:
        runs.append((start + first * PAGE_SIZE, len(entries) - first))
    return runs


def task_runs(pid, zero=None, proc="/proc"):
    """The runs of pages a dump of task ``pid`` would hold, read from its maps and pagemap."""
    with open("%s/%d/maps" % (proc, pid)) as f:
        areas = private_areas(f.read())
    runs = []
    fd = os.open("%s/%d/pagemap" % (proc, pid), os.O_RDONLY)
    try:
        for start, end, kind in areas:
            for vaddr, nr in present_runs(_pagemap_words(fd, start, (end - start) // PAGE_SIZE), start, zero, kind):
                if runs and runs[-1][0] + runs[-1][1] * PAGE_SIZE == vaddr:     # one run across areas, as criu has it
                    runs[-1] = (runs[-1][0], runs[-1][1] + nr)
                else:
                    runs.append((vaddr, nr))
    finally:
        os.close(fd)
    return runs


def dump_order(pids, proc="/proc"):
    """``pids`` in the order criu dumps them: the process tree depth first from its root(s), children by age (their
    pids, as the kernel hands them out). A task that is gone is left out."""
    parent = {}
    for pid in pids:
        try:
            with open("%s/%d/stat" % (proc, pid)) as f:
                parent[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (IOError, OSError, IndexError, ValueError):
            continue
    children = {}
    for pid in sorted(parent):
        children.setdefault(parent[pid] if parent[pid] in parent else None, []).append(pid)
    out, todo = [], list(reversed(children.get(None, [])))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += reversed(children.get(pid, []))
    return out


def pid_in_container(pid, proc="/proc"):
    """The task's pid in its own (the container's) pid namespace: criu names its images by it."""
    with open("%s/%d/status" % (proc, pid)) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return pid     # a kernel without NSpid: no namespaces to tell apart


def copy_pages(pid, runs, out, proc="/proc"):
    """Append the bytes of ``runs`` of task ``pid``'s memory to the open file ``out``; returns how many pages could
    not be read (written as zeros instead)."""
    unreadable = 0
    buf = bytearray(READ_CHUNK)
    zeros = bytes(READ_CHUNK)
    fd = os.open("%s/%d/mem" % (proc, pid), os.O_RDONLY)
    try:
        with memoryview(buf) as view:
            for vaddr, nr in runs:
                for off in range(0, nr * PAGE_SIZE, READ_CHUNK):
                    n = min(READ_CHUNK, nr * PAGE_SIZE - off)
                    try:
                        got = os.preadv(fd, [view[:n]], vaddr + off)
                    except OSError:        # unmapped since the pagemap was read
                        got = 0
                    if got < n:
                        view[got:n] = zeros[:n - got]
                        unreadable += (n - got) // PAGE_SIZE
                    out.write(view[:n])
    finally:
        os.close(fd)
    return unreadable


def snapshot(pids, images_dir, proc="/proc", clock=time.time):
    """Read the private memory of ``pids`` (the container's tasks, host pids) into ``images_dir`` as
    ``pagemap-<pid in the container>.img`` + ``pages-<n>.img``. Returns ``{'tasks', 'pages', 'bytes',
    'unreadable_pages', 'duration_s'}``; raises SnapshotError when no task's memory can be read."""
    t0 = clock()
    if not os.path.isdir(images_dir):
        os.makedirs(images_dir, 0o700)
    tasks = pages = unreadable = 0
    errors = []
    zero = zero_pfn()
    for pid in dump_order(pids, proc) or sorted(pids):
        pages_id = tasks + 1
        pages_path = os.path.join(images_dir, "pages-%d.img" % pages_id)
        try:
            vpid = pid_in_container(pid, proc)
            runs = task_runs(pid, zero, proc)
            with open(pages_path, "wb") as out:
                unreadable += copy_pages(pid, runs, out, proc)
        except (IOError, OSError) as e:     # gone meanwhile, or not ours to read
            errors.append("%d: %s" % (pid, e))
            if os.path.exists(pages_path):
                os.remove(pages_path)
            continue
        with open(os.path.join(images_dir, "pagemap-%d.img" % vpid), "wb") as f:
            f.write(encode_pagemap(pages_id, [(vaddr, nr, PE_PRESENT) for vaddr, nr in runs]))
        tasks += 1
        pages += sum(nr for _vaddr, nr in runs)
    if not tasks:
        raise SnapshotError("no task's memory could be read live (%s)" % ("; ".join(errors) or "no tasks"))
    return {"tasks": tasks, "pages": pages, "bytes": pages * PAGE_SIZE, "unreadable_pages": unreadable,
            "duration_s": clock() - t0}
