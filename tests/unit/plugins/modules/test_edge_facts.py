"""edge_facts: criu/LXC discovery with a fake PATH and a fake runner (no criu or LXC needed)."""
import os
import stat

import pytest

from ansible_collections.arnab.testbed.plugins.modules import edge_facts

from module_harness import run_module

WRAPPER = """#!/bin/sh
# criu 4.2.1 from a private prefix
ROOT=/opt/arnab-criu/root
LIB="$ROOT/usr/lib/x86_64-linux-gnu"
exec "$LIB/ld-linux-x86-64.so.2" --library-path "$LIB" "$ROOT/usr/sbin/criu" --config /opt/arnab-criu/criu.conf "$@"
"""

MOUNTS_HYBRID = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
MOUNTS_V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
MOUNTS_V2_WITH_NAMED_V1 = MOUNTS_V2 + "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n"
MOUNTS_V1 = "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"


def _exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return str(path)


class FakeRun(object):
    """Answers like criu 4.2.1 on the lab host: check ok, no soft-dirty, uffd ok."""

    def __init__(self, dirty=False, uffd=True, check=True, lxc=True):
        self.calls = []
        self.dirty, self.uffd, self.check, self.lxc = dirty, uffd, check, lxc

    def __call__(self, argv, data=None):
        self.calls.append(list(argv))
        prog = os.path.basename(argv[0])
        if prog == "criu":
            if argv[1:] == ["--version"]:
                return 0, "Version: 4.2.1\n", ""
            if argv[1:] == ["check"]:
                return (0, "Looks good.\n", "") if self.check else (1, "", "Error (criu/cr-check.c): vdso\n")
            if argv[1:] == ["check", "--feature", "mem_dirty_track"]:
                if self.dirty:
                    return 0, "mem_dirty_track is supported\n", ""
                return 1, "", "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"
            if argv[1:] == ["check", "--feature", "uffd-noncoop"]:
                return (0, "uffd-noncoop is supported\n", "") if self.uffd else (1, "", "UFFD is not supported\n")
        if prog == "lxc-checkpoint" and argv[1:] == ["--version"]:
            return 0, "5.0.2\n", ""
        if prog == "lxc-ls":
            return 0, "NAME       STATE  \narnab-base STOPPED\nvideo      RUNNING\n", ""
        return 127, "", "unexpected %r" % (argv,)


@pytest.fixture
def edge(tmp_path):
    """A fake edge: bin dir with the criu wrapper and lxc tools, /proc bits, /etc/lxc."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _exe(bindir / "criu", WRAPPER)
    _exe(bindir / "lxc-checkpoint", "#!/bin/sh\n")
    _exe(bindir / "lxc-ls", "#!/bin/sh\n")
    proc = tmp_path / "proc"
    (proc / "sys/fs").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "sys/fs/pipe-max-size").write_text("16777216\n")
    (proc / "self/mounts").write_text(MOUNTS_HYBRID)
    etc = tmp_path / "lxc-etc"
    etc.mkdir()
    (etc / "arnab-criu.conf").write_text("lxc.tty.max = 0\nlxc.cgroup.dir = arnab-edge1\n")
    lxcpath = tmp_path / "lxc"
    lxcpath.mkdir()
    return {"bin": str(bindir), "proc": str(proc), "etc": str(etc), "lxcpath": str(lxcpath)}


def test_which_follows_path_like_execvp(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "criu").write_text("not executable")
    _exe(b / "criu", "#!/bin/sh\n")
    assert edge_facts.which("criu", "%s:%s" % (a, b)) == str(b / "criu")
    assert edge_facts.which("criu", str(a)) is None
    assert edge_facts.which(str(b / "criu"), "") == str(b / "criu")
    assert edge_facts.which("/nonexistent/criu", "") is None


def test_read_wrapper_finds_the_private_binary(tmp_path):
    w = _exe(tmp_path / "criu", WRAPPER)
    assert edge_facts.read_wrapper(w) == (True, "/opt/arnab-criu/root/usr/sbin/criu")
    other = _exe(tmp_path / "criu2", "#!/bin/sh\nexec /srv/x/usr/sbin/criu \"$@\"\n")
    assert edge_facts.read_wrapper(other) == (True, "/srv/x/usr/sbin/criu")
    elf = tmp_path / "criu3"
    elf.write_bytes(b"\x7fELF\x02\x01\x01")
    assert edge_facts.read_wrapper(str(elf)) == (False, str(elf))
    assert edge_facts.read_wrapper(str(tmp_path / "missing")) == (False, None)


def test_parsers():
    assert edge_facts.parse_criu_version("Version: 4.2.1\n") == "4.2.1"
    assert edge_facts.parse_criu_version("Version: 3.17.1\nGitID: v3.17.1\n") == "3.17.1"
    assert edge_facts.parse_criu_version("garbage") is None
    assert edge_facts.parse_lxc_ls("NAME STATE\nvideo RUNNING\nramsim FROZEN\n") == {
        "video": "RUNNING", "ramsim": "FROZEN"}
    assert edge_facts.parse_lxc_ls("") == {}


@pytest.mark.parametrize("text,layout", [(MOUNTS_HYBRID, "hybrid"), (MOUNTS_V2, "v2"),
                                         (MOUNTS_V2_WITH_NAMED_V1, "v2"), (MOUNTS_V1, "v1"), ("", None)])
def test_cgroup_layout(tmp_path, text, layout):
    m = tmp_path / "mounts"
    m.write_text(text)
    assert edge_facts.cgroup_layout(str(m)) == layout


def test_cgroup_dir(edge, tmp_path):
    assert edge_facts.read_cgroup_dir(edge["etc"]) == "arnab-edge1"
    assert edge_facts.read_cgroup_dir(str(tmp_path)) is None


def test_gather_lab_host_like(edge):
    run = FakeRun()
    f = edge_facts.gather(run, lxcpath=edge["lxcpath"], lxc_etc=edge["etc"], path_env=edge["bin"],
                          proc=edge["proc"])
    c = f["criu"]
    assert c["path"] == os.path.join(edge["bin"], "criu")
    assert c["wrapper"] is True and c["binary"] == "/opt/arnab-criu/root/usr/sbin/criu"
    assert c["version"] == "4.2.1" and c["check_ok"] and c["check_output"] == "Looks good."
    assert c["mem_dirty_track"] is False and "Dirty tracking is OFF" in c["mem_dirty_track_output"]
    assert c["uffd_noncoop"] is True
    assert f["lxc"]["version"] == "5.0.2"
    assert f["lxc"]["containers"] == {"arnab-base": "STOPPED", "video": "RUNNING"}
    assert f["lxc"]["cgroup_dir"] == "arnab-edge1"
    assert f["pipe_max_size"] == 16777216
    assert f["cgroup"] == "hybrid"
    assert f["strategies"] == {"stop_and_copy": True, "pre_copy": False, "post_copy": True}
    # the criu checks go through the shared argv builder: exactly these commands, criu by its resolved path
    criu_calls = [a[1:] for a in run.calls if a[0] == c["path"]]
    assert criu_calls == [["--version"], ["check"], ["check", "--feature", "mem_dirty_track"],
                          ["check", "--feature", "uffd-noncoop"]]


def test_gather_post_copy_needs_big_pipes(edge):
    with open(os.path.join(edge["proc"], "sys/fs/pipe-max-size"), "w") as f:
        f.write("1048576\n")
    f = edge_facts.gather(FakeRun(dirty=True), lxcpath=edge["lxcpath"], lxc_etc=edge["etc"],
                          path_env=edge["bin"], proc=edge["proc"])
    assert f["strategies"] == {"stop_and_copy": True, "pre_copy": True, "post_copy": False}


def test_gather_failing_check_disables_everything(edge):
    f = edge_facts.gather(FakeRun(check=False, dirty=True), lxcpath=edge["lxcpath"], lxc_etc=edge["etc"],
                          path_env=edge["bin"], proc=edge["proc"])
    assert f["criu"]["check_ok"] is False and "vdso" in f["criu"]["check_output"]
    assert f["strategies"] == {"stop_and_copy": False, "pre_copy": False, "post_copy": False}


def test_gather_without_criu(edge, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = FakeRun()
    f = edge_facts.gather(run, lxcpath=edge["lxcpath"], lxc_etc=edge["etc"], path_env=str(empty),
                          proc=edge["proc"])
    assert f["criu"]["path"] is None and f["criu"]["version"] is None
    assert f["criu"]["check_output"] == "criu not found"
    assert f["lxc"]["version"] is None and f["lxc"]["containers"] == {}
    assert run.calls == []
    assert not any(f["strategies"].values())


def test_module_sets_facts_and_never_changes(edge, monkeypatch):
    monkeypatch.setenv("PATH", edge["bin"])
    run = FakeRun()
    ok, res = run_module(edge_facts.main, {"lxcpath": edge["lxcpath"], "lxc_etc": edge["etc"]},
                         check_mode=True, run_command=run)
    assert ok and res["changed"] is False
    assert res["ansible_facts"]["arnab_edge"] == res["edge"]
    assert res["edge"]["criu"]["version"] == "4.2.1"
    assert res["edge"]["lxc"]["cgroup_dir"] == "arnab-edge1"


def test_module_documentation_is_yaml():
    import yaml
    doc = yaml.safe_load(edge_facts.DOCUMENTATION)
    assert doc["module"] == "edge_facts"
    assert set(doc["options"]) == {"criu", "lxcpath", "lxc_etc", "min_pipe_max_size"}
    yaml.safe_load(edge_facts.EXAMPLES)
    ret = yaml.safe_load(edge_facts.RETURN)
    assert "strategies" in ret["edge"]["contains"]


# -- bad input: refused before anything runs, or one argv element --------------------------------------------------

@pytest.mark.parametrize("index", range(8))
def test_every_string_option_refuses_payloads_or_keeps_them_data(edge, monkeypatch, tmp_path, index):
    from payloads import has_control, no_shell, payloads
    monkeypatch.setenv("PATH", edge["bin"])
    payload = payloads(str(tmp_path / "pwned"))[index]
    for kw in ({"criu": "criu" + payload}, {"criu": payload}, {"lxcpath": "rel" + payload},
               {"lxc_etc": "rel" + payload}):
        run = FakeRun()
        ok, res = run_module(edge_facts.main, dict({"lxcpath": edge["lxcpath"], "lxc_etc": edge["etc"]}, **kw),
                             run_command=run)
        assert not ok and run.calls == [], (kw, res)
        assert list(kw)[0] in res["msg"]
    weird = str(tmp_path / ("lxc" + payload.replace("/", "_")))
    run = FakeRun()
    ok, res = run_module(edge_facts.main, {"lxcpath": weird, "lxc_etc": edge["etc"] + payload.replace("/", "_")},
                         run_command=run)
    if has_control(payload):
        assert not ok and "control character" in res["msg"] and run.calls == []
        return
    os.mkdir(weird)
    ok, res = run_module(edge_facts.main, {"lxcpath": weird, "lxc_etc": edge["etc"]}, run_command=run)
    assert ok and [os.path.join(edge["bin"], "lxc-ls"), "-P", weird, "-f", "-F", "NAME,STATE"] in run.calls
    no_shell(run.calls)
    assert not (tmp_path / "pwned").exists()
