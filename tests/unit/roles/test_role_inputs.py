"""No shell string from user values in the roles and playbooks (issue 9).

1. Statically: every value templated into a raw/shell command is shell-quoted (``| quote``) or known to be built
   from quoted parts or numbers; ``command`` tasks take argv lists, not command lines with values.
2. The roles' validate.yml refuse the payloads in every name and path before anything runs on the host.
3. The AP's raw scripts, rendered with Ansible's quote filter and paths full of payloads, run in sh without
   running any payload: the paths arrive as data.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import jinja2
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHELL_MODULES = ("ansible.builtin.raw", "ansible.builtin.shell", "raw", "shell")
COMMAND_MODULES = ("ansible.builtin.command", "command")
# Expressions that are not user strings: built from quoted parts, or numbers.
SAFE_EXPRESSIONS = {
    "ap_bridge_options": "{{ ('-- set bridge %s datapath_type=%s' % (ap_bridge | quote, ap_bridge_datapath_type | quote)) "
                         "if ap_bridge_datapath_type else '' }}",
    "ap_cookie_hex": "{{ '0x%x' % (ap_dhcp_cookie | default(0) | int) }}",
}
# Shell fragments a role keeps in its vars/main.yml (named _<role>_...), put whole into raw scripts: their own
# values must pass the same check.
SCRIPT_FRAGMENTS = dict(
    (name, text) for path in glob.glob(os.path.join(ROOT, "roles", "*", "vars", "main.yml"))
    for name, text in (yaml.safe_load(open(path)) or {}).items() if name.startswith("_") and isinstance(text, str))
PAYLOADS = ["$(touch {m})", "`touch {m}`", ";touch {m}", "\ntouch {m}", "'", '"', "';touch {m};'", '";touch {m};"']


def task_files():
    pats = ["roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "playbooks/*.yml", "playbooks/tasks/*.yml"]
    return sorted(p for pat in pats for p in glob.glob(os.path.join(ROOT, pat)))


def walk_tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from walk_tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in SHELL_MODULES + COMMAND_MODULES):
            yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from walk_tasks(node[key])


def command_tasks(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    return list(walk_tasks(data))


def test_the_scan_finds_the_shell_tasks():
    names = [task.get("name", "") for path in task_files() if "/roles/" in path for task in command_tasks(path)]
    assert any("DHCP flows" in n for n in names) and any("being migrated" in n for n in names)


@pytest.mark.parametrize("path", task_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_values_in_command_lines_are_quoted(path):
    problems = []
    for task in command_tasks(path):
        problems += task_problems(task)
    assert problems == [], "%s: %s" % (os.path.relpath(path, ROOT), problems)


def task_problems(task):
    module = [k for k in SHELL_MODULES + COMMAND_MODULES if k in task][0]
    body, name = task[module], task.get("name")
    if module in COMMAND_MODULES:
        if isinstance(body, dict):
            return [] if "argv" in body and "cmd" not in body else ["%s: use argv" % name]
        return ["%s: a command line with values; use argv" % name] if "{{" in body else []
    problems = []
    text = body["cmd"] if isinstance(body, dict) else body
    for expr in re.findall(r"{{(.*?)}}", text, re.S):
        expr = expr.strip()
        if expr in SCRIPT_FRAGMENTS:
            problems += task_problems({"raw": SCRIPT_FRAGMENTS[expr], "name": "%s (%s)" % (name, expr)})
            continue
        quoted = re.search(r"\|\s*quote\s*$", expr) or re.search(r"map\('quote'\)\s*\|\s*join\(' '\)$", expr)
        if not quoted and expr not in SAFE_EXPRESSIONS:
            problems.append("%s: {{ %s }} is not quoted" % (name, expr))
    for var, definition in SAFE_EXPRESSIONS.items():
        if var in text and " ".join(str(task.get("vars", {}).get(var, "")).split()) != definition:
            problems.append("%s: %s is not what SAFE_EXPRESSIONS says it is" % (name, var))
    return problems


# -- the roles' checks ---------------------------------------------------------------------------------------

def run_checks(tmp_path, role, variables):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.import_role": {"name": role, "tasks_from": "validate"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", json.dumps(variables), str(play)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120, check=False)
    out = json.loads(proc.stdout)
    failed = {}
    for task in out["plays"][0]["tasks"]:
        for i, res in enumerate(task["hosts"]["localhost"].get("results", [task["hosts"]["localhost"]])):
            if res.get("failed"):
                item = res.get("item", {})
                key = item.get("name") if isinstance(item, dict) and item.get("name", "").startswith(("ap_", "edge_", "ansible_")) else i
                failed[key] = res["msg"]
    return proc.returncode, failed


AP_BASE = {"ansible_host": "127.0.0.1", "ap_ocs_ip": "127.0.0.9"}
AP_NAMES = ["ap_bridge", "ap_data_port", "ap_tap_port", "ap_click"]
AP_PATHS = ["ap_agent_config", "ap_agent_pidfile", "ap_agent_log"]
EDGE_PATHS = ["edge_lxc_path", "edge_lxc_etc", "edge_migrate_dir", "edge_ssh_key", "edge_criu_wrapper",
              "edge_criu_action_script"]
EDGE_WORDS = ["edge_criu_prefix", "edge_base_container", "edge_data_bridge", "edge_lxc_cgroup_dir",
              "edge_image_release", "edge_image_mirror"]


def test_defaults_pass(tmp_path):
    assert run_checks(tmp_path, "ap", AP_BASE) == (0, {})
    assert run_checks(tmp_path, "edge", {}) == (0, {})


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_ap_names_and_paths_refuse_payloads(tmp_path, index):
    payload = PAYLOADS[index].format(m=tmp_path / "pwned")
    variables = dict(AP_BASE, ansible_host="127.0.0.1" + payload, ap_ocs_ip=payload, ap_bridge_datapath_type=payload)
    variables.update((name, "x" + payload) for name in AP_NAMES)
    # paths: only a control character is refused; the rest is data for the quoted raw commands (proved below)
    variables.update((name, "/tmp/x" + payload) for name in AP_PATHS)
    rc, failed = run_checks(tmp_path, "ap", variables)
    expect = set(AP_NAMES + ["ansible_host", "ap_ocs_ip", "ap_bridge_datapath_type"])
    if "\n" in payload:
        expect |= set(AP_PATHS)
    assert rc != 0 and set(failed) == expect, failed
    assert all("{}".format(name) in failed[name] for name in failed)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_edge_names_and_paths_refuse_payloads(tmp_path, index):
    payload = PAYLOADS[index].format(m=tmp_path / "pwned")
    variables = dict((name, "/x" + payload) for name in EDGE_PATHS)
    variables.update((name, "x" + payload) for name in EDGE_WORDS)
    rc, failed = run_checks(tmp_path, "edge", variables)
    expect = set(EDGE_WORDS)
    if "\n" in payload:
        expect |= set(EDGE_PATHS)
    assert rc != 0 and set(failed) == expect, failed
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_edge_workloads_refuse_payloads(tmp_path, index):
    payload = PAYLOADS[index].format(m=tmp_path / "pwned")
    good = {"name": "ok", "ip": "10.78.0.50", "hwaddr": "02:ab:00:00:00:50", "args": "video --port 8080", "port": 8080}
    bad = [dict(good, name="v" + payload), dict(good, ip="10.78.0.52" + payload),
           dict(good, hwaddr="02:ab:00:00:00:52" + payload), dict(good, gateway=payload)]
    if "\n" in payload:
        bad.append(dict(good, args="x" + payload))
    rc, failed = run_checks(tmp_path, "edge", {"edge_workloads": [good] + bad})
    assert rc != 0 and len(failed) == len(bad) and all("edge_workloads item" in m for m in failed.values()), failed
    rc, failed = run_checks(tmp_path, "edge", {"edge_workloads": [dict(good, args="x" + payload)]})
    if "\n" in payload:
        assert rc != 0 and len(failed) == 1, failed
    else:
        assert (rc, failed) == (0, {})   # args are data for the unit's ExecStart= line


def test_edge_criu_options_one_line_each(tmp_path):
    options = ["network-lock nftables", "enable-fs ramfs\naction-script /tmp/x"]
    rc, failed = run_checks(tmp_path, "edge", {"edge_criu_options": options})
    assert rc != 0 and len(failed) == 1 and "one criu option per item" in list(failed.values())[0]


# -- the AP's raw scripts run with payload paths -----------------------------------------------------------------

FAKE_TOOL = """#!/bin/sh
# records its argv (one JSON list per line) and succeeds
{python} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$(basename "$0")" "$@" >> {log}
"""


def render(text, **variables):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["quote"] = lambda a: shlex.quote("" if a is None else str(a))   # ansible's quote filter
    return env.from_string(text).render(**variables)


def render_ap(text, **variables):
    """A raw script of roles/ap, with the role's vars (vars/main.yml) rendered first, as Ansible would."""
    with open(os.path.join(ROOT, "roles", "ap", "vars", "main.yml")) as f:
        role_vars = yaml.safe_load(f)
    variables.update((k, render(v, **variables)) for k, v in role_vars.items())
    return render(text, **variables)


def ap_task(rel, name_part):
    with open(os.path.join(ROOT, "roles", "ap", rel)) as f:
        return [t for t in yaml.safe_load(f) if name_part in t.get("name", "")][0]


@pytest.mark.parametrize("index", [i for i, p in enumerate(PAYLOADS) if "\n" not in p])
def test_ap_raw_scripts_keep_payload_paths_as_data(tmp_path, index):
    payload = PAYLOADS[index].format(m="pwned")   # relative: the scripts run in tmp_path
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("click",):
        (bindir / tool).write_text(FAKE_TOOL.format(python=sys.executable, log=shlex.quote(str(log))))
        (bindir / tool).chmod(0o755)
    d = tmp_path / ("d" + payload.replace("/", "_"))
    d.mkdir()
    variables = dict(ap_agent_pidfile=str(d / ("pid" + payload.replace("/", "_"))), ap_click=str(bindir / "click"),
                     ap_agent_config=str(d / ("agent" + payload.replace("/", "_") + ".cli")),
                     ap_agent_log=str(d / ("log" + payload.replace("/", "_"))))
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    start = render_ap(ap_task("tasks/agent.yml", "Odin agent {{")["ansible.builtin.raw"], ap_agent_state="started",
                      **variables)
    proc = subprocess.run(["sh", "-c", start], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0 and "ARNAB_CHANGED" in proc.stdout, proc.stderr
    subprocess.run(["sleep", "0.3"], check=True)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert ["click", variables["ap_agent_config"]] in calls, calls
    assert os.path.exists(variables["ap_agent_pidfile"]) and os.path.exists(variables["ap_agent_log"])
    restart = render_ap(ap_task("handlers/main.yml", "Restart")["ansible.builtin.raw"], **variables)
    proc = subprocess.run(["sh", "-c", restart], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(variables["ap_agent_pidfile"])
    assert not (tmp_path / "pwned").exists() and sorted(os.listdir(str(tmp_path))) == sorted(["bin", "calls.log", d.name])
