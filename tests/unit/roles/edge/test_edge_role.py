"""roles/edge: defaults match the argument spec; the templates render what CRIU and LXC need."""
import os
import shlex
import subprocess

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
    for name in ("arnab-txoff", "arnab-criu-install", "arnab-cgroup-mounts"):
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
