"""scripts/fetch_criu.sh: argument handling and the idempotent 'unchanged' path (no network)."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "..", "scripts", "fetch_criu.sh")


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(["bash", SCRIPT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=e, timeout=60, check=False)


def test_needs_dest():
    r = run()
    assert r.returncode != 0 and b"usage" in r.stderr


def test_unchanged_when_the_debs_are_there(tmp_path):
    arch = subprocess.check_output(["dpkg", "--print-architecture"]).decode().strip()
    names = ["criu", "libcompel1", "libc6"]
    for n, v in zip(names, ["4.2.1-1", "4.2.1-1", "2.43-7"]):
        (tmp_path / ("%s_%s_%s.deb" % (n, v, arch))).write_bytes(b"")
    (tmp_path / ".fetch_criu.done").write_text("\n".join(names) + "\n")
    r = run(str(tmp_path), env={"CRIU_MIRROR": "http://127.0.0.1:9/none"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith("unchanged")
    assert not (tmp_path / ".apt").exists()


def test_missing_deb_means_fetch_again(tmp_path):
    # the stamp lists libc6 but its .deb is gone: the script must not claim "unchanged"; with an unreachable
    # mirror it then fails at apt-get update, and never touches the system's apt configuration.
    (tmp_path / ".fetch_criu.done").write_text("criu\nlibc6\n")
    r = run(str(tmp_path), env={"CRIU_MIRROR": "http://127.0.0.1:9/none"})
    assert r.returncode != 0
    assert not r.stdout.decode().startswith("unchanged")
    assert (tmp_path / ".apt" / "etc" / "sources.list").read_text().strip().endswith("unstable main")
