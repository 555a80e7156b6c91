"""state_transfer end to end with the real rsync and a fake ssh that does what sshd does with a command (joins its
words and hands them to a shell), on this host: payloads in every string option are refused or arrive as data."""
import json
import os
import sys

import pytest

from ansible_collections.arnab.testbed.plugins.modules import state_transfer

from module_harness import run_module
from payloads import has_control, payloads

FAKE_SSH = r'''#!{python}
"""ssh as far as state_transfer uses it: options, the host, then options again (OpenSSH parses them after the
host too), then the remote command, whose words are joined and run by a shell, as sshd does."""
import json, os, subprocess, sys
WITH_VALUE = set("-o -i -p -l -F -c -E -S -b -D -J -L -R -W -m -O -Q -w -B".split())
args, opts, host, i = sys.argv[1:], [], None, 0
while i < len(args):
    a = args[i]
    if a == "--":
        i += 1
        break
    if a in WITH_VALUE:
        opts += [a, args[i + 1]]
        i += 2
    elif a.startswith("-"):
        opts.append(a)
        i += 1
    elif host is None:
        host = a
        i += 1
    else:
        break
command = " ".join(args[i:])
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps({{"opts": opts, "host": host, "command": command}}) + "\n")
sys.exit(subprocess.call(["sh", "-c", command]))
'''


@pytest.fixture
def edge(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH.format(python=sys.executable))
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "ssh.log"))
    monkeypatch.setenv("RSYNC_PROTECT_ARGS", "0")   # the module sets it; restored afterwards
    src = tmp_path / "src"
    src.mkdir()
    (src / "inventory.img").write_bytes(b"i" * 100)
    (src / "pages-1.img").write_bytes(b"p" * 8192)
    monkeypatch.chdir(tmp_path)

    def ssh_log():
        path = tmp_path / "ssh.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return tmp_path, ssh_log


def base(tmp_path, **kw):
    args = dict(src=str(tmp_path / "src"), dest=str(tmp_path / "dst"), host="127.0.0.1")
    args.update(kw)
    return args


def test_push_and_repeat(edge):
    tmp_path, ssh_log = edge
    ok, result = run_module(state_transfer.main, base(tmp_path))
    assert ok and result["changed"], result
    assert (tmp_path / "dst" / "pages-1.img").read_bytes() == b"p" * 8192
    ok, result = run_module(state_transfer.main, base(tmp_path))
    assert ok and not result["changed"], result
    ok, result = run_module(state_transfer.main, base(tmp_path, dest=str(tmp_path / "dst2")), check_mode=True)
    assert ok and result["changed"] and not (tmp_path / "dst2").exists()
    assert all(entry["host"] in ("127.0.0.1", "root@127.0.0.1") for entry in ssh_log())
    assert all("-s" in entry["command"].split()[2] for entry in ssh_log() if entry["command"].startswith("rsync"))


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("mode", ["whole", "images"])
def test_paths_with_payloads_arrive_as_data(edge, index, mode):
    tmp_path, ssh_log = edge
    marker = tmp_path / "pwned"
    payload = payloads("pwned")[index]   # relative (the processes run in tmp_path): a path component has no '/'

    dest = str(tmp_path / ("dst" + payload))
    src = tmp_path / ("src" + payload) if "\x00" not in payload else None
    key = "/nonexistent/key" + payload
    excludes = ["*.log" + payload]
    if has_control(payload):
        for option, value in (("dest", dest), ("src", str(src)), ("ssh_key", key), ("excludes", excludes)):
            ok, result = run_module(state_transfer.main, base(tmp_path, **{option: value}))
            assert not ok and "control character" in result["msg"], result
        assert ssh_log() == []
        return
    os.rename(str(tmp_path / "src"), str(src))
    ok, result = run_module(state_transfer.main, base(tmp_path, src=str(src), dest=dest, ssh_key=key,
                                                      excludes=excludes, mode=mode))
    assert ok, result
    assert not marker.exists(), "a payload ran"
    assert (tmp_path / ("dst" + payload) / "pages-1.img").read_bytes() == b"p" * 8192
    assert sorted(os.listdir(str(tmp_path))) == sorted(["bin", "ssh.log", "dst" + payload, "src" + payload])
    for entry in ssh_log():
        assert entry["opts"][entry["opts"].index("-i") + 1] == key   # the key path reached ssh as one argument


@pytest.mark.parametrize("option,value", [("host", "127.0.0.1"), ("ssh_user", "root")])
@pytest.mark.parametrize("index", range(8))
def test_host_and_user_refuse_every_payload(edge, option, value, index):
    tmp_path, ssh_log = edge
    payload = payloads(str(tmp_path / "pwned"))[index]
    for bad in (value + payload, payload):
        ok, result = run_module(state_transfer.main, base(tmp_path, **{option: bad}))
        assert not ok and (result["msg"].startswith(option + " ") or result["msg"].startswith("option " + option)), result
    assert ssh_log() == [] and not (tmp_path / "pwned").exists() and not (tmp_path / "dst").exists()


@pytest.mark.parametrize("index", range(8))
def test_archive_extras_and_mode_refuse_every_payload(edge, index):
    tmp_path, ssh_log = edge
    payload = payloads(str(tmp_path / "pwned"))[index]
    for kw in (dict(archive_extras=["-H" + payload]), dict(archive_extras=[payload]), dict(mode="whole" + payload)):
        ok, result = run_module(state_transfer.main, base(tmp_path, **kw))
        assert not ok, result
    assert ssh_log() == [] and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kw,needle", [
    (dict(host="-oProxyCommand=touch /tmp/x"), "neither an IP address nor a host name"),
    (dict(host="root@127.0.0.1"), "neither an IP address nor a host name"),
    (dict(ssh_user="-oProxyCommand=x"), "not a user name"),
    (dict(archive_extras=["-e", "sh -c id"]), "archive_extras[0] '-e': use one of"),
    (dict(archive_extras=["--rsync-path=sh -c id"]), "use one of"),
    (dict(excludes=["+ /etc"]), "not starting with '+ ' or '!'"),
    (dict(dest="relative/dir"), "dest 'relative/dir' must be an absolute path"),
    (dict(ssh_port=70000), "not a port number"),
    (dict(block_size=0), "block_size 0"),
])
def test_bad_values_fail_before_anything_runs(edge, kw, needle):
    tmp_path, ssh_log = edge
    ok, result = run_module(state_transfer.main, base(tmp_path, **kw))
    assert not ok and needle in result["msg"], result
    assert ssh_log() == []


def test_archive_extras_allowed(edge):
    tmp_path, _ssh_log = edge
    ok, result = run_module(state_transfer.main, base(tmp_path, archive_extras=["-H", "--numeric-ids"]))
    assert ok and "-H" in result["cmd"][0] and "--numeric-ids" in result["cmd"][0]
