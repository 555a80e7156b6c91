"""roles/edge: defaults match the argument spec; the templates render what CRIU and LXC need."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import jinja2
import yaml

ROLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "roles", "edge")


def load(rel):
    with open(os.path.join(ROLE, rel)) as f:
        return yaml.safe_load(f)


def render(name, **vars_):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    env.filters["quote"] = lambda a: shlex.quote("" if a is None else str(a))   # ansible's quote filter
    base = dict(load("defaults/main.yml"))
    base.update(ansible_managed="managed", inventory_hostname="edge1")
    base["edge_lxc_cgroup_dir"] = "arnab-edge1"
    base.update(vars_)
    return env.get_template(name).render(**base)


def test_every_default_is_documented():
    defaults = load("defaults/main.yml")
    spec = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(spec), set(defaults) - set(spec)
    for name, opt in spec.items():
        assert opt.get("description"), name
        if "default" in opt and name in defaults and "{{" not in str(defaults[name]):
            assert opt["default"] == defaults[name], name


def test_default_workloads():
    wl = {w["name"]: w for w in load("defaults/main.yml")["edge_workloads"]}
    assert wl["video"]["ip"] == "10.78.0.50" and wl["video"]["port"] == 8080
    assert wl["ramsim"]["ip"] == "10.78.0.51" and wl["ramsim"]["port"] == 7000
    assert wl["video"]["args"].startswith("video ") and wl["ramsim"]["args"].startswith("ramsim ")
    assert len({w["hwaddr"] for w in wl.values()}) == 2


def test_container_config_is_criu_ready():
    text = render("container.conf.j2", ct={"name": "video", "ip": "10.78.0.50", "hwaddr": "02:ab:00:00:00:50"})
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "lxc.include = /etc/lxc/arnab-criu.conf" in lines
    # the edge's CRIU settings come after the distribution's common config, so they win
    assert lines.index("lxc.include = /usr/share/lxc/config/debian.common.conf") < \
        lines.index("lxc.include = /etc/lxc/arnab-criu.conf")
    assert "lxc.net.0.link = br-data" in lines and "lxc.net.0.hwaddr = 02:ab:00:00:00:50" in lines
    assert "lxc.net.0.ipv4.address = 10.78.0.50/24" in lines
    assert not any(line.startswith("lxc.apparmor") for line in lines)
    assert not any("gateway" in line for line in lines)
    base = render("container.conf.j2", ct={"name": "arnab-base"})
    assert "lxc.net.0.type = empty" in base
    assert not any(line.startswith("lxc.init.cmd") for line in lines)


def test_an_application_container_starts_arnab_init():
    text = render("container.conf.j2", ct={"name": "video", "ip": "10.78.0.50", "hwaddr": "02:ab:00:00:00:50",
                                           "init": "app"}, **load("vars/main.yml"))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    # after the include of the edge's CRIU settings, whose init is systemd: the last one read wins
    assert lines.index("lxc.init.cmd = /usr/local/sbin/arnab-init") > lines.index("lxc.include = /etc/lxc/arnab-criu.conf")
    # arnab-init reads the services list where the role writes it
    with open(os.path.join(ROLE, "files", "arnab-init")) as f:
        assert "${ARNAB_INIT_SERVICES:-%s}" % load("vars/main.yml")["_edge_app_services"] in f.read()


PAYLOADS = ("$(touch {m})", "`touch {m}`", ";touch {m}", "|touch {m}", "&&touch", "'x", '"y', "*", "${HOME}")


def test_services_are_one_line_each_and_never_expanded(tmp_path):
    """arnab-init runs each line of the services list as an argv: no word of an inventory's args is evaluated."""
    mark = str(tmp_path / "pwned")
    words = [p.replace("{m}", mark) for p in PAYLOADS]
    out = tmp_path / "argv"
    args = " ".join(words)
    text = render("arnab-services.j2", ct={"name": "video", "args": args + "\n touch " + mark, "hls_port": 8081},
                  **load("vars/main.yml"))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2 and lines[1] == "/usr/local/lib/arnab-video/run --listen 0.0.0.0:8081 --user root"
    assert lines[0].startswith("/usr/local/bin/arnab-workload ")
    # run the first line through arnab-init, with a stand-in for the workload that records its argv
    services = tmp_path / "services"
    recorder = tmp_path / "record.py"
    recorder.write_text("import json, sys\nopen(%r, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n" % str(out))
    services.write_text("# a comment\n\n%s %s %s\n" % (sys.executable, recorder, lines[0].split(" ", 1)[1]))
    proc = subprocess.Popen(["sh", os.path.join(ROLE, "files", "arnab-init")], cwd=str(tmp_path),
                            env=dict(os.environ, ARNAB_INIT_SERVICES=str(services)), start_new_session=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
            time.sleep(0.1)
        runs = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(runs) >= 2                       # the service ended and ran again
        assert runs[0] == lines[0].split()[1:]      # word for word, nothing expanded
        assert {"$(touch", "`touch", ";touch", "*", "${HOME}"} <= set(runs[0])
        assert not os.path.exists(mark)
        proc.send_signal(signal.SIGPWR)             # lxc-stop's signal
        assert proc.wait(timeout=10) == 0
        # its restart loops went with it: the service runs no more
        runs_then = len(out.read_text().splitlines())
        time.sleep(2.5)
        assert len(out.read_text().splitlines()) == runs_then
        assert live_in_group(proc.pid) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert not os.path.exists(mark)


def live_in_group(pgid):
    """The processes of process group `pgid` that still run (zombies left to an init that reaps late do not)."""
    live = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                state, _ppid, group = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            live.append(int(pid))
    return live


def test_arnab_init_needs_its_services(tmp_path):
    r = subprocess.run(["sh", os.path.join(ROLE, "files", "arnab-init")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=dict(os.environ, ARNAB_INIT_SERVICES=str(tmp_path / "none")),
                       check=False, timeout=10)
    assert r.returncode == 1 and b"no " in r.stderr


def test_edge_lxc_settings():
    text = render("lxc-arnab-criu.conf.j2")
    for line in ("lxc.tty.max = 0", "lxc.console.path = none",
                 "lxc.init.cmd = /sbin/init systemd.legacy_systemd_cgroup_controller=1",
                 "lxc.hook.start-host = /usr/local/sbin/arnab-txoff", "lxc.cgroup.dir = arnab-edge1"):
        assert line in text.splitlines()
    assert "lxc.cgroup.dir" not in render("lxc-arnab-criu.conf.j2", edge_lxc_cgroup_dir="")


def test_criu_config_and_wrapper():
    conf = [line for line in render("criu.conf.j2").splitlines() if line and not line.startswith("#")]
    assert conf == ["enable-fs ramfs", "action-script /usr/local/sbin/arnab-txoff"]
    wrapper = render("criu-wrapper.sh.j2")
    assert "ROOT=/opt/arnab-criu/root" in wrapper
    assert '"$LIB/ld-linux-x86-64.so.2" --library-path "$LIB" "$ROOT/usr/sbin/criu" --config ' \
           '/opt/arnab-criu/criu.conf "$@"' in wrapper
    assert subprocess.call(["sh", "-n", "-c", wrapper]) == 0
    odd = render("criu-wrapper.sh.j2", edge_criu_prefix="/opt/a b$(x)")
    assert "ROOT='/opt/a b$(x)/root'" in odd and "--config '/opt/a b$(x)/criu.conf' \"$@\"" in odd


def test_shell_helpers_parse():
    for name in ("arnab-txoff", "arnab-criu-install", "arnab-cgroup-mounts", "arnab-init"):
        assert subprocess.call(["sh", "-n", os.path.join(ROLE, "files", name)]) == 0, name


def test_txoff_ignores_other_criu_actions():
    env = dict(os.environ, CRTOOLS_SCRIPT_ACTION="post-dump", CRTOOLS_INIT_PID="1")
    r = subprocess.run(["sh", os.path.join(ROLE, "files", "arnab-txoff")], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    assert r.returncode == 0 and r.stdout == b""
    env = dict(os.environ, CRTOOLS_SCRIPT_ACTION="post-restore", CRTOOLS_INIT_PID="999999999")
    r = subprocess.run(["sh", os.path.join(ROLE, "files", "arnab-txoff")], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    assert r.returncode == 0 and b"no container pid" in r.stderr
