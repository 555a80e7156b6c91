"""rsync argv, out-format change detection, --stats parsing, per-file delta/whole plan, remote shell."""
import os

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import migrate_receiver
from ansible_collections.arnab.testbed.plugins.module_utils import state_transfer as st

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_argv_whole_over_ssh():
    argv = st.build_rsync_argv("/src/", "/dst/", host="10.79.0.2", key="/k", control_path="/tmp/cp")
    assert argv[:4] == ["rsync", "-a", "--stats", "--out-format=<<CHANGED>>%i %n%L"]
    assert "--whole-file" in argv and "--inplace" not in argv
    e = argv[argv.index("-e") + 1]
    assert e.startswith("ssh ") and "-i /k" in e and "ControlPath=/tmp/cp" in e and "BatchMode=yes" in e
    assert argv[-2:] == ["/src/", "root@10.79.0.2:/dst/"]


def test_argv_delta_pages():
    argv = st.build_rsync_argv(["/a/pages-1.img"], "/d/", host="h", mode="delta", ignore_times=True,
                               compress=True, bwlimit=10000, delete=True, excludes=["*.log"])
    for flag in ("--no-whole-file", "--block-size=4096", "--inplace", "--ignore-times", "--compress",
                 "--bwlimit=10000", "--delete", "--exclude=*.log"):
        assert flag in argv
    assert "--whole-file" not in argv


def test_argv_local_and_errors():
    argv = st.build_rsync_argv("/a/", "/b/", dry_run=True)
    assert "-e" not in argv and argv[-1] == "/b/" and "--dry-run" in argv
    with pytest.raises(ValueError):
        st.build_rsync_argv("/a/", "/b/", mode="fast")


def test_parse_created():
    res = st.parse_rsync_output(fixture("rsync-stats-created.txt"))
    assert res["changed"] is True
    assert res["changed_items"] == ["./", "core-1.img", "pages-1.img"]
    s = res["stats"]
    assert s["bytes_sent"] == 100214 and s["bytes_received"] == 81
    assert s["literal_bytes"] == 100003 and s["matched_bytes"] == 0
    assert s["files"] == 3 and s["files_transferred"] == 2 and s["total_file_size"] == 100003


def test_parse_unchanged():
    res = st.parse_rsync_output(fixture("rsync-stats-unchanged.txt"))
    assert res["changed"] is False and res["stats"]["bytes_sent"] == 104


def test_parse_itemize_flags():
    out = "<<CHANGED>>.f          same.img\n<<CHANGED>>.d..t...... dir/\n<<CHANGED>>*deleting   old.img\n"
    res = st.parse_rsync_output(out)
    assert res["changed_items"] == ["dir/", "old.img"]


def test_plan_delta_only_for_big_page_images_with_a_basis():
    big = 64 * 1024 * 1024
    src = {"pages-1.img": big, "pages-2.img": big, "core-1.img": 2000, "pages-3.img": 4096}
    dest = {"pages-1.img": big, "core-1.img": 2000, "pages-3.img": 4096}
    plan = st.plan_image_transfer(src, dest)
    assert plan == {"delta": ["pages-1.img"], "whole": ["core-1.img", "pages-2.img", "pages-3.img"]}


class FakeRunner(object):
    def __init__(self, out):
        self.calls = []
        self.out = out

    def __call__(self, argv, env=None, timeout=None):
        self.calls.append(argv)
        return 0, self.out, ""


def _images(tmp_path, big):
    d = tmp_path / "it-2"
    d.mkdir()
    (d / "pages-1.img").write_bytes(b"\0" * big)
    (d / "core-1.img").write_bytes(b"c")
    (d / "dump.log").write_text("log")
    (d / ".criu-dump.conf").write_text("x")
    return d


def test_push_images_first_iteration_is_whole(tmp_path):
    d = _images(tmp_path, 2 * 1024 * 1024)
    run = FakeRunner(fixture("rsync-stats-created.txt"))
    res = st.Pusher("h", runner=run).push_images(str(d), "/dst", dest_files={})
    assert len(run.calls) == 1 and "--whole-file" in run.calls[0] and "--delete" in run.calls[0]
    assert res["plan"]["delta"] == [] and "dump.log" not in res["files"] and ".criu-dump.conf" not in res["files"]
    assert res["bytes_sent"] == 100214


def test_push_images_later_iteration_one_delta_run(tmp_path):
    d = _images(tmp_path, 2 * 1024 * 1024)
    run = FakeRunner(fixture("rsync-stats-created.txt"))
    res = st.Pusher("h", runner=run).push_images(str(d), "/dst", dest_files={"pages-1.img": 2 * 1024 * 1024})
    assert res["plan"] == {"delta": ["pages-1.img"], "whole": ["core-1.img"]}
    assert len(run.calls) == 1
    argv = run.calls[0]
    assert "--block-size=4096" in argv and "--inplace" in argv and "--delete" in argv
    assert "--exclude=*.log" in argv


def test_push_images_split_runs(tmp_path):
    d = _images(tmp_path, 2 * 1024 * 1024)
    run = FakeRunner(fixture("rsync-stats-created.txt"))
    res = st.Pusher("h", runner=run).push_images(str(d), "/dst", dest_files={"pages-1.img": 1},
                                                 single_run=False)
    assert len(run.calls) == 2
    assert "--whole-file" in run.calls[0] and "--exclude=/pages-1.img" in run.calls[0]
    assert "--block-size=4096" in run.calls[1] and run.calls[1][-2].endswith("pages-1.img")
    assert res["bytes_sent"] == 2 * 100214


def test_push_failure_raises():
    def run(argv, env=None, timeout=None):
        return 12, "", "rsync: connection unexpectedly closed"

    with pytest.raises(st.TransferError) as e:
        st.Pusher("h", runner=run).push(["/a/"], "/b/")
    assert "connection unexpectedly closed" in str(e.value)


def test_ssh_argv():
    argv = st.ssh_argv("10.79.0.2", key="/k", port=2222, control_path="/tmp/c")
    assert argv[0] == "ssh" and argv[-1] == "root@10.79.0.2"
    assert "-p" in argv and "2222" in argv and "ControlPersist=300" in argv


# ---- page-aligned delta ---------------------------------------------------------------------------

def _pages(n, seed):
    import random
    r = random.Random(seed)
    return bytearray(r.getrandbits(8) for dummy in range(n * 4096))


def test_page_diff_finds_exactly_the_rewritten_pages(tmp_path):
    old = _pages(64, 1)
    new = bytearray(old)
    for page in (3, 4, 5, 40):
        new[page * 4096 + 7] ^= 0xFF
    (tmp_path / "old").write_bytes(bytes(old))
    (tmp_path / "new").write_bytes(bytes(new))
    runs = list(st.page_diff(str(tmp_path / "old"), str(tmp_path / "new"), chunk=16 * 4096))
    assert [(off // 4096, len(data) // 4096) for off, data in runs] == [(3, 3), (40, 1)]


def test_patch_stream_makes_the_destination_identical(tmp_path):
    src, prev, dst = tmp_path / "src", tmp_path / "prev", tmp_path / "dst"
    for d in (src, prev, dst):
        d.mkdir()
    old = _pages(32, 2)
    new = bytearray(old)
    new[5 * 4096:6 * 4096] = _pages(1, 3)
    new += _pages(2, 4)                       # the image grew
    (prev / "pages-1.img").write_bytes(bytes(old))
    (dst / "pages-1.img").write_bytes(bytes(old))
    (src / "pages-1.img").write_bytes(bytes(new))
    (src / "pages-2.img").write_bytes(b"fresh" * 1000)     # no old copy: sent whole
    import io
    buf = io.BytesIO()
    figures = st.encode_patch([("pages-1.img", str(prev / "pages-1.img"), str(src / "pages-1.img")),
                               ("pages-2.img", None, str(src / "pages-2.img"))], buf)
    assert figures["literal_bytes"] == 3 * 4096 + 5000
    buf.seek(0)
    assert migrate_receiver.apply_patch(buf, str(dst)) == (2, figures["literal_bytes"])
    assert (dst / "pages-1.img").read_bytes() == bytes(new)
    assert (dst / "pages-2.img").read_bytes() == b"fresh" * 1000


def test_patch_shrinks_a_file(tmp_path):
    (tmp_path / "old").write_bytes(b"a" * 8192)
    (tmp_path / "new").write_bytes(b"a" * 4096)
    import io
    buf = io.BytesIO()
    st.encode_patch([("pages-1.img", str(tmp_path / "old"), str(tmp_path / "new"))], buf)
    d = tmp_path / "d"
    d.mkdir()
    (d / "pages-1.img").write_bytes(b"a" * 8192)
    buf.seek(0)
    assert migrate_receiver.apply_patch(buf, str(d))[0] == 1
    assert (d / "pages-1.img").read_bytes() == b"a" * 4096


# ---- pages compared by virtual address --------------------------------------------------------------------------
# Synthetic CRIU dumps: pagemap images from criu.encode_pagemap (criu 4.2.1's layout, checked against a real capture
# in test_criu.py) and raw pages images, 4 KiB per page in pagemap order.

from ansible_collections.arnab.testbed.plugins.module_utils import criu  # noqa: E402

PAGE = 4096
BASE = 0x7f0000000000


def page(tag):
    """A distinct, recognisable 4 KiB page."""
    return (("%s|" % tag) * PAGE).encode()[:PAGE]


def write_dump(d, maps):
    """``maps``: {pagemap name: (pages_id, [(vaddr, [page tags])])} -> the dump dir ``d``."""
    d.mkdir(exist_ok=True)
    for pagemap, (pages_id, runs) in maps.items():
        (d / pagemap).write_bytes(criu.encode_pagemap(pages_id, [(v, len(tags), criu.PE_PRESENT)
                                                                 for v, tags in runs]))
        (d / ("pages-%d.img" % pages_id)).write_bytes(b"".join(page(t) for _v, tags in runs for t in tags))
    return d


def mapping(vaddr, tag, n):
    return (vaddr, ["%s%d" % (tag, i) for i in range(n)])


def transfer(tmp_path, old_maps, new_maps):
    """Source: dump ``prev`` then ``src``; destination: holds ``prev``'s bytes. Sends the patch the engine would
    (plan_page_images + encode_patch), applies it with the receiver's apply_patch. Returns (figures, plans)."""
    import io
    import shutil
    prev, src, dst = write_dump(tmp_path / "prev", old_maps), write_dump(tmp_path / "src", new_maps), tmp_path / "dst"
    shutil.copytree(str(prev), str(dst))
    dest_files = st.list_files(str(dst))
    names = sorted(n for n in os.listdir(str(src)) if n.startswith("pages-"))
    plans = st.plan_page_images(str(src), str(prev), dest_files, names)
    buf = io.BytesIO()
    figures = st.encode_patch(plans, buf)
    buf.seek(0)
    assert migrate_receiver.apply_patch(buf, str(dst)) == (len(names), figures["literal_bytes"])
    for n in names:     # the destination's pages images equal the new dump byte for byte
        assert (dst / n).read_bytes() == (src / n).read_bytes(), n
    assert not [n for n in os.listdir(str(dst)) if n.endswith(st.PART_SUFFIX)]
    return figures, dict((p["name"], p) for p in plans)


def test_va_identical_dumps_give_an_empty_diff(tmp_path):
    maps = {"pagemap-1.img": (1, [mapping(BASE, "a", 8), mapping(BASE + 0x100000, "b", 4)])}
    figures, plans = transfer(tmp_path, maps, maps)
    assert figures["literal_bytes"] == 0 and figures["copied_bytes"] == 0 and figures["runs"] == 0
    assert plans["pages-1.img"]["by"] == "vaddr" and figures["aside"] == []


def test_va_changed_pages_in_place(tmp_path):
    old = {"pagemap-1.img": (1, [mapping(BASE, "a", 8), mapping(BASE + 0x100000, "b", 4)])}
    new_b = mapping(BASE + 0x100000, "b", 4)
    new_b[1][2] = "changed"
    new = {"pagemap-1.img": (1, [(BASE, ["a0", "X", "Y", "a3", "a4", "a5", "a6", "Z"]), new_b])}
    figures, _plans = transfer(tmp_path, old, new)
    assert figures["literal_bytes"] == 4 * PAGE and figures["copied_bytes"] == 0 and figures["aside"] == []
    assert figures["runs"] == 3       # X+Y coalesced, Z, and b's page


def test_va_mapping_added_in_the_middle(tmp_path):
    """By offset every page after the new mapping would differ; by address only the new mapping moves."""
    a, c = mapping(BASE, "a", 16), mapping(BASE + 0x200000, "c", 64)
    old = {"pagemap-1.img": (1, [a, c])}
    new = {"pagemap-1.img": (1, [a, mapping(BASE + 0x100000, "new", 5), c])}
    figures, plans = transfer(tmp_path, old, new)
    assert figures["literal_bytes"] == 5 * PAGE
    assert figures["copied_bytes"] == (16 + 64) * PAGE and figures["aside"] == ["pages-1.img"]
    # the offset comparison (the engine before) would send the 5 new pages and all 64 shifted ones
    by_offset = sum(len(d) for _o, d in st.page_diff(str(tmp_path / "prev" / "pages-1.img"),
                                                     str(tmp_path / "src" / "pages-1.img")))
    assert by_offset == (5 + 64) * PAGE


def test_va_mapping_freed(tmp_path):
    a, b, c = mapping(BASE, "a", 8), mapping(BASE + 0x100000, "b", 32), mapping(BASE + 0x200000, "c", 16)
    figures, _plans = transfer(tmp_path, {"pagemap-1.img": (1, [a, b, c])}, {"pagemap-1.img": (1, [a, c])})
    assert figures["literal_bytes"] == 0 and figures["copied_bytes"] == (8 + 16) * PAGE


def test_va_mapping_grown_and_pages_changed_together(tmp_path):
    old = {"pagemap-1.img": (1, [mapping(BASE, "a", 4), mapping(BASE + 0x100000, "b", 4)])}
    grown = mapping(BASE, "a", 6)          # two pages more at the end of a: b shifts by two pages
    b = mapping(BASE + 0x100000, "b", 4)
    b[1][0] = "B0new"
    figures, _plans = transfer(tmp_path, old, {"pagemap-1.img": (1, [grown, b])})
    assert figures["literal_bytes"] == 3 * PAGE and figures["copied_bytes"] == 7 * PAGE


def test_va_basis_follows_the_pagemap_when_criu_renumbers_the_pages_images(tmp_path):
    """Measured with criu 4.2.1 here: a new shared mapping (shmem) between two dumps took pages-1.img, the old
    shmem's pages went from pages-1 to pages-2 and the process's from pages-2 to pages-3."""
    proc = [mapping(BASE, "p", 12)]
    shm = [mapping(0, "s", 8)]
    old = {"pagemap-shmem-7.img": (1, shm), "pagemap-100.img": (2, proc)}
    new = {"pagemap-shmem-9.img": (1, [mapping(0, "fresh", 3)]), "pagemap-shmem-7.img": (2, shm),
           "pagemap-100.img": (3, proc)}
    figures, plans = transfer(tmp_path, old, new)
    assert plans["pages-2.img"]["basis"] == "pages-1.img" and plans["pages-3.img"]["basis"] == "pages-2.img"
    assert figures["copied_bytes"] == (8 + 12) * PAGE
    assert figures["literal_bytes"] == 3 * PAGE      # only the new mapping (its basis by name: by offset)
    assert plans["pages-1.img"]["by"] == "offset"


def test_va_falls_back_to_offsets_without_a_usable_pagemap(tmp_path):
    old = {"pagemap-1.img": (1, [mapping(BASE, "a", 4)])}
    new = {"pagemap-1.img": (1, [(BASE, ["a0", "Q", "a2", "a3"])])}
    write_dump(tmp_path / "src", new)
    (tmp_path / "src" / "pages-1.img").write_bytes((tmp_path / "src" / "pages-1.img").read_bytes() + page("x"))
    # the pagemap no longer describes the image (one page more): compared by offset, still byte-exact
    import io
    import shutil
    prev = write_dump(tmp_path / "prev", old)
    shutil.copytree(str(prev), str(tmp_path / "dst"))
    plans = st.plan_page_images(str(tmp_path / "src"), str(prev), st.list_files(str(prev)), ["pages-1.img"])
    assert plans[0]["by"] == "offset"
    buf = io.BytesIO()
    assert st.encode_patch(plans, buf)["literal_bytes"] == 2 * PAGE
    buf.seek(0)
    migrate_receiver.apply_patch(buf, str(tmp_path / "dst"))
    assert (tmp_path / "dst" / "pages-1.img").read_bytes() == (tmp_path / "src" / "pages-1.img").read_bytes()


def test_va_a_basis_the_destination_does_not_hold_goes_whole(tmp_path):
    old = {"pagemap-1.img": (1, [mapping(BASE, "a", 4)])}
    write_dump(tmp_path / "prev", old)
    write_dump(tmp_path / "src", old)
    plans = st.plan_page_images(str(tmp_path / "src"), str(tmp_path / "prev"), {"pages-1.img": 1}, ["pages-1.img"])
    assert plans[0]["by"] == "whole" and plans[0]["basis"] == ""


def test_page_runs_refuse_layouts_that_do_not_describe_the_image():
    assert st.page_runs([(0x1000, 2), (0x5000, 1)], 3 * PAGE) == [(0x1000, 2, 0), (0x5000, 1, 2 * PAGE)]
    assert st.page_runs([(0x1000, 2)], 3 * PAGE) is None               # size
    assert st.page_runs([(0x5000, 1), (0x1000, 2)], 3 * PAGE) is None  # not in address order
    assert st.page_runs([(0x1000, 2), (0x2000, 1)], 3 * PAGE) is None  # overlapping
    assert st.page_runs([(0x1001, 1)], PAGE) is None                   # unaligned


def test_data_records_are_bounded(tmp_path):
    """A long run of changed pages goes in RECORD_BYTES records (the receiver refuses records over 64 MiB)."""
    import io
    n = 2 * st.RECORD_BYTES // PAGE + 3
    old = {"pagemap-1.img": (1, [mapping(BASE, "a", n)])}
    new = {"pagemap-1.img": (1, [mapping(BASE, "z", n)])}
    figures, _plans = transfer(tmp_path, old, new)
    assert figures["literal_bytes"] == n * PAGE and figures["runs"] == 3
    buf = io.BytesIO()
    st.encode_patch([("pages-1.img", str(tmp_path / "prev" / "pages-1.img"), str(tmp_path / "src" / "pages-1.img"))],
                    buf)
    assert len(buf.getvalue()) < n * PAGE + 200


def test_receiver_refuses_copies_without_a_basis_or_outside_it(tmp_path):
    import io
    import struct
    d = tmp_path / "d"
    d.mkdir()
    (d / "pages-1.img").write_bytes(page("a") * 2)

    def stream(aside, basis, src):
        body = st.PATCH_MAGIC + struct.pack("<H", 11) + b"pages-1.img" + struct.pack("<QBH", 2 * PAGE, aside,
                                                                                     len(basis)) + basis
        body += struct.pack("<QIQ", st.COPY_FLAG | 0, PAGE, src) + struct.pack("<QI", st.END_OF_FILE, 0)
        return io.BytesIO(body + struct.pack("<H", 0))

    with pytest.raises(migrate_receiver.OpError, match="copy without a basis"):
        migrate_receiver.apply_patch(stream(0, b"", 0), str(d))            # in place: DATA only
    with pytest.raises(migrate_receiver.OpError, match="outside"):
        migrate_receiver.apply_patch(stream(1, b"pages-1.img", PAGE + 1), str(d))
    assert (d / "pages-1.img").read_bytes() == page("a") * 2
    migrate_receiver.apply_patch(stream(1, b"pages-1.img", PAGE), str(d))   # aside from itself: fine
    assert (d / "pages-1.img").read_bytes() == page("a") + b"\0" * PAGE


def test_receiver_still_applies_a_v1_stream(tmp_path):
    import io
    import struct
    d = tmp_path / "d"
    d.mkdir()
    (d / "pages-1.img").write_bytes(page("a") * 2)
    body = st.PATCH_MAGIC_V1 + struct.pack("<H", 11) + b"pages-1.img" + struct.pack("<Q", 2 * PAGE)
    body += struct.pack("<QI", PAGE, PAGE) + page("b") + struct.pack("<QI", st.END_OF_FILE, 0) + struct.pack("<H", 0)
    assert migrate_receiver.apply_patch(io.BytesIO(body), str(d)) == (1, PAGE)
    assert (d / "pages-1.img").read_bytes() == page("a") + page("b")
