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
