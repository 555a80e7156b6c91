"""container_checkpoint with a fake runner (no criu or LXC needed): options checked before anything runs, payloads
refused or passed as one argv element, the CRIU configuration file one option per line."""
import os

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu
from ansible_collections.arnab.testbed.plugins.modules import container_checkpoint

from module_harness import run_module
from payloads import has_control, no_shell, payloads


class FakeRunner(object):
    """criu 4.2.1 with soft-dirty; lxc-info says RUNNING; lxc-checkpoint writes an inventory."""

    def __init__(self):
        self.calls, self.envs, self.configs = [], [], []

    def __call__(self, argv, env=None, timeout=None, input_text=None):
        self.calls.append(list(argv))
        self.envs.append(env)
        prog = os.path.basename(argv[0])
        if argv[1:] == ["--version"] and prog == "criu":
            return 0, "Version: 4.2.1\n", ""
        if prog == "criu" and argv[1] == "check":
            return 0, "", ""
        if prog == "lxc-info":
            return 0, "Name: x\nState: RUNNING\nPID: 4242\n", ""
        if prog == "lxc-checkpoint":
            if env and "CRIU_CONFIG_FILE" in env:
                with open(env["CRIU_CONFIG_FILE"]) as f:
                    self.configs.append(f.read())
            images = argv[argv.index("-D") + 1]
            with open(os.path.join(images, "inventory.img"), "wb") as f:
                f.write(b"x")
            return 0, "", ""
        return 127, "", "no such program: %s" % argv[0]


@pytest.fixture
def edge(tmp_path, monkeypatch):
    runner = FakeRunner()
    monkeypatch.setattr(criu, "default_runner", runner)

    def make(lxcpath=None, name="ramsim"):
        lxcpath = lxcpath or str(tmp_path / "lxc")
        os.makedirs(os.path.join(lxcpath, name), exist_ok=True)
        open(os.path.join(lxcpath, name, "config"), "w").close()
        return lxcpath
    return runner, make, tmp_path


def args(tmp_path, lxcpath=None, **kw):
    base = dict(name="ramsim", images_dir=str(tmp_path / "ckpt" / "2"), lxcpath=lxcpath, leave="stopped")
    base.update(kw)
    return base


def test_dump_runs_one_argv_and_writes_the_config(edge):
    runner, make, tmp_path = edge
    lxcpath = make()
    ok, result = run_module(container_checkpoint.main, args(tmp_path, lxcpath))
    assert ok and result["changed"], result
    assert result["argv"] == ["lxc-checkpoint", "-n", "ramsim", "-D", str(tmp_path / "ckpt" / "2"), "-P", lxcpath, "-s"]
    assert runner.configs == ["leave-stopped\nnetwork-lock nftables\nenable-fs ramfs\n"]
    no_shell(runner.calls)


def test_check_mode_touches_nothing(edge):
    runner, make, tmp_path = edge
    ok, result = run_module(container_checkpoint.main, args(tmp_path, make()), check_mode=True)
    assert ok and result["changed"]
    assert not any(os.path.basename(c[0]) == "lxc-checkpoint" for c in runner.calls)
    assert not (tmp_path / "ckpt").exists()


def refused(edge, needle, **kw):
    runner, make, tmp_path = edge
    kw.setdefault("lxcpath", make())
    ok, result = run_module(container_checkpoint.main, args(tmp_path, **kw))
    assert not ok, result
    assert runner.calls == [], "something ran: %r" % runner.calls
    assert not (tmp_path / "ckpt").exists()
    if needle:
        assert needle in result["msg"], result["msg"]
    return result["msg"]


@pytest.mark.parametrize("option", ["name", "network_lock", "criu", "action", "leave"])
@pytest.mark.parametrize("index", range(8))
def test_word_options_refuse_every_payload(edge, option, index):
    payload = payloads(str(edge[2] / "pwned"))[index]
    value = {"name": "ramsim", "network_lock": "nftables", "criu": "criu", "action": "dump", "leave": "stopped"}[option]
    refused(edge, None, **{option: value + payload})
    refused(edge, None, **{option: payload})
    assert not (edge[2] / "pwned").exists()


@pytest.mark.parametrize("index", range(8))
def test_enable_fs_refuses_every_payload(edge, index):
    payload = payloads(str(edge[2] / "pwned"))[index]
    refused(edge, "enable_fs[1]", enable_fs=["ramfs", "tmpfs" + payload])


@pytest.mark.parametrize("index", range(8))
def test_paths_are_refused_with_control_chars_else_one_argv_element(edge, index):
    runner, make, tmp_path = edge
    payload = payloads(str(tmp_path / "pwned"))[index]
    images = str(tmp_path / "ckpt" / ("2" + payload))
    parent = "../1" + payload
    lxcpath = str(tmp_path / ("lxc" + payload))
    if has_control(payload):
        for option, value in (("images_dir", images), ("parent_dir", parent), ("lxcpath", lxcpath)):
            assert "control character" in refused(edge, "%s " % option, **{option: value})
        return
    make(lxcpath)
    ok, result = run_module(container_checkpoint.main, args(tmp_path, lxcpath, images_dir=images, parent_dir=parent,
                                                            action="pre-dump"))
    assert ok, result
    ckpt = [c for c in runner.calls if os.path.basename(c[0]) == "lxc-checkpoint"][0]
    assert ckpt[ckpt.index("-D") + 1] == images and ckpt[ckpt.index("-P") + 1] == lxcpath
    assert "--predump-dir=" + parent in ckpt
    assert runner.configs == ["network-lock nftables\nenable-fs ramfs\n"]
    assert os.path.isdir(images) and not (tmp_path / "pwned").exists()
    no_shell(runner.calls)


def test_criu_as_an_absolute_path_is_one_argv_element(edge):
    runner, make, tmp_path = edge
    weird = "/opt/criu/$(touch %s)/criu" % (tmp_path / "pwned")
    ok, result = run_module(container_checkpoint.main, args(tmp_path, make(), criu=weird))
    assert ok, result
    assert runner.calls[0] == [weird, "--version"] and [weird, "check", "--feature", "uffd-noncoop"] in runner.calls
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kw,needle", [
    (dict(name="-n"), "not a container name"),
    (dict(name=".hidden"), "not a container name"),
    (dict(name="a/b"), "not a container name"),
    (dict(images_dir="relative/2"), "images_dir 'relative/2' must be an absolute path"),
    (dict(parent_dir="-x"), "parent_dir"),
    (dict(criu="criu --version"), "without arguments"),
    (dict(enable_fs=["ramfs,tmpfs"]), "one file system type"),
    (dict(timeout=0), "timeout 0"),
])
def test_bad_values_fail_with_a_message_to_act_on(edge, kw, needle):
    refused(edge, needle, **kw)
