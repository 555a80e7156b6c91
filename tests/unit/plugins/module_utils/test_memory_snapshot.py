# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live memory read of delta pre-copy, on a real running process: its images hold the process's bytes at their
addresses, and the destination rebuilt by the page delta equals a later read, whatever moved in between."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import memory_snapshot as ms
from ansible_collections.arnab.testbed.plugins.module_utils import state_transfer as st
from ansible_collections.arnab.testbed.plugins.module_utils.criu import PAGE_SIZE, page_layouts
from ansible_collections.arnab.testbed.plugins.module_utils.migrate_receiver import apply_patch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A process with a private anonymous mapping of 64 pages, each starting with its index, that on command rewrites
# pages, maps a new area before it, or frees it again; it says the mapping's address.
WRITER = r"""
import mmap, sys
PAGE = mmap.PAGESIZE
area = mmap.mmap(-1, 64 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(64):
    area[i * PAGE:i * PAGE + 16] = b"page %10d\n" % i
extra = None
import ctypes
addr = ctypes.addressof(ctypes.c_char.from_buffer(area))
print(addr, flush=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "write":
        for i in map(int, arg.split(",")):
            area[i * PAGE:i * PAGE + 16] = b"PAGE %10d\n" % i
    elif cmd == "map":
        extra = mmap.mmap(-1, 8 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        extra[:5] = b"extra"
    elif cmd == "read":                 # only read: the pages map the kernel's zero page
        seen = mmap.mmap(-1, 8 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        sum(seen[i * PAGE] for i in range(8))
    print("done", flush=True)
"""


@pytest.fixture
def writer():
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            universal_newlines=True)
    try:
        addr = int(proc.stdout.readline())
        yield proc, addr
    finally:
        proc.kill()
        proc.wait()


def tell(proc, line):
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def page_at(images_dir, vaddr):
    """The bytes an images dir holds for the page at ``vaddr`` (None: not there), by its pagemaps."""
    for pages, (_pagemap, runs) in page_layouts(images_dir).items():
        off = 0
        for start, nr in runs:
            if start <= vaddr < start + nr * PAGE_SIZE:
                with open(os.path.join(images_dir, pages), "rb") as f:
                    f.seek(off + vaddr - start)
                    return f.read(PAGE_SIZE)
            off += nr * PAGE_SIZE
    return None


def test_a_read_holds_every_written_page_at_its_address_named_as_criu_names_it(writer, tmp_path):
    proc, addr = writer
    res = ms.snapshot([proc.pid], str(tmp_path / "it-1"))
    assert res["tasks"] == 1 and res["pages"] >= 64 and res["unreadable_pages"] == 0
    assert res["bytes"] == res["pages"] * PAGE_SIZE
    names = sorted(os.listdir(str(tmp_path / "it-1")))
    # not in a pid namespace of its own: its pid there is its host pid
    assert names == ["pagemap-%d.img" % proc.pid, "pages-1.img"]
    for i in (0, 17, 63):
        assert page_at(str(tmp_path / "it-1"), addr + i * PAGE_SIZE)[:16] == b"page %10d\n" % i


def test_the_page_delta_from_one_read_to_the_next_rebuilds_the_next_even_after_a_new_mapping(writer, tmp_path):
    proc, addr = writer
    first, second, dest = (str(tmp_path / d) for d in ("it-1", "it-2", "dest"))
    ms.snapshot([proc.pid], first)
    tell(proc, "write 3,40")
    tell(proc, "map")                # a new mapping: addresses shift against file offsets
    read = ms.snapshot([proc.pid], second)
    os.makedirs(dest)
    for name in os.listdir(first):  # the destination holds the first read
        with open(os.path.join(first, name), "rb") as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
    plans = st.plan_page_images(second, first, st.list_files(first), ["pages-1.img"])
    assert plans[0]["by"] == "vaddr"
    stream = io.BytesIO()
    figures = st.encode_patch(plans, stream)
    # the two rewritten pages, the new area's and what the interpreter itself touched go as data; the rest is copied
    assert 3 * PAGE_SIZE <= figures["literal_bytes"] < read["bytes"] // 4
    assert figures["copied_bytes"] > read["bytes"] // 2
    apply_patch(io.BytesIO(stream.getvalue()), dest)
    assert open(os.path.join(dest, "pages-1.img"), "rb").read() == open(os.path.join(second, "pages-1.img"),
                                                                        "rb").read()
    assert page_at(second, addr + 3 * PAGE_SIZE)[:16] == b"PAGE %10d\n" % 3
    assert page_at(second, addr + 4 * PAGE_SIZE)[:16] == b"page %10d\n" % 4


CRIU = shutil.which("criu") or ("/usr/local/sbin/criu" if os.path.exists("/usr/local/sbin/criu") else None)


@pytest.mark.skipif(CRIU is None or os.geteuid() != 0, reason="needs criu, as root")
def test_the_read_lays_the_pages_out_as_criu_s_own_dump_does(tmp_path):
    """The final dump's pages must sit where the last read put them, or the destination rebuilds the image aside."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            universal_newlines=True, start_new_session=True)
    try:
        proc.stdout.readline()
        tell(proc, "read")                      # an area only read from: zero pages, which criu leaves out
        ms.snapshot([proc.pid], str(tmp_path / "live"))
        os.makedirs(str(tmp_path / "criu"))
        subprocess.check_call([CRIU, "dump", "-t", str(proc.pid), "-D", str(tmp_path / "criu"), "--leave-running",
                               "-o", "dump.log"])
    finally:
        proc.kill()
        proc.wait()
    assert page_order(str(tmp_path / "live")) == page_order(str(tmp_path / "criu"))


def page_order(images_dir):
    """``{pagemap: [the address of each page, in file order]}`` (criu cuts its runs at some area boundaries)."""
    return dict((pagemap, [vaddr + i * PAGE_SIZE for vaddr, nr in runs for i in range(nr)])
                for pagemap, runs in page_layouts(images_dir).values())


def test_a_task_that_is_gone_is_left_out_and_none_at_all_is_an_error(writer, tmp_path):
    proc, _addr = writer
    gone = subprocess.Popen(["true"])
    gone.wait()
    res = ms.snapshot([proc.pid, gone.pid], str(tmp_path / "it-1"))
    assert res["tasks"] == 1
    assert sorted(os.listdir(str(tmp_path / "it-1"))) == ["pagemap-%d.img" % proc.pid, "pages-1.img"]
    with pytest.raises(ms.SnapshotError, match="no task's memory could be read live"):
        ms.snapshot([gone.pid], str(tmp_path / "it-2"))
    with pytest.raises(ms.SnapshotError, match="no tasks"):
        ms.snapshot([], str(tmp_path / "it-3"))


def test_the_areas_are_the_private_ones_with_the_vdso_whole_and_the_parasites_entry_page():
    maps = "\n".join([
        "55d0c0000000-55d0c0002000 r--p 00000000 08:01 123 /usr/bin/python3",
        "55d0c0002000-55d0c0004000 r-xp 00002000 08:01 123 /usr/bin/python3",
        "55d0c0004000-55d0c0006000 rw-p 00004000 08:01 123 /usr/bin/python3",
        "7f0000000000-7f0000010000 rw-s 00000000 00:01 9 /dev/zero (deleted)",
        "7f0000010000-7f0000011000 ---p 00000000 00:00 0",
        "7f0000020000-7f0000022000 r-xp 00000000 08:01 77 /usr/lib/libc.so.6",
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]",
        "7ffd00100000-7ffd00102000 r--p 00000000 00:00 0 [vvar]",
        "7ffd00102000-7ffd00104000 r-xp 00000000 00:00 0 [vdso]",
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]",
    ])
    assert ms.private_areas(maps) == [
        (0x55d0c0000000, 0x55d0c0002000, ""), (0x55d0c0002000, 0x55d0c0004000, "entry"),
        (0x55d0c0004000, 0x55d0c0006000, ""), (0x7f0000010000, 0x7f0000011000, ""),
        (0x7f0000020000, 0x7f0000022000, ""), (0x7ffd00000000, 0x7ffd00021000, ""),
        (0x7ffd00102000, 0x7ffd00104000, "vdso")]


def test_runs_are_the_pages_criu_dumps():
    present, file_page, zero = ms.PM_PRESENT | 7, ms.PM_PRESENT | ms.PM_FILE | 8, ms.PM_PRESENT | 99
    words = [present, present, 0, file_page, zero, present, present, present]
    assert ms.present_runs(words, 0x1000, zero=99) == [(0x1000, 2), (0x1000 + 5 * PAGE_SIZE, 3)]
    assert ms.present_runs(words, 0x1000) == [(0x1000, 2), (0x1000 + 4 * PAGE_SIZE, 4)]   # frames hidden
    assert ms.present_runs([file_page, file_page], 0x1000, kind="entry") == [(0x1000, 1)]  # criu writes there
    assert ms.present_runs([0, file_page], 0x1000, kind="vdso") == [(0x1000, 2)]
    assert ms.present_runs([], 0x1000) == []


def test_the_zero_pages_frame_is_known_to_root():
    assert ms.zero_pfn() if os.geteuid() == 0 else ms.zero_pfn() is None


def test_tasks_go_in_criu_s_order_depth_first_children_by_age(tmp_path):
    tree = {10: 1, 12: 10, 15: 10, 13: 12, 11: 10}     # pid: parent (1 is outside the container)
    for pid, ppid in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text("%d (a (b) c) S %d 1 1" % (pid, ppid))
    assert ms.dump_order(list(tree) + [99], proc=str(tmp_path)) == [10, 11, 12, 13, 15]
