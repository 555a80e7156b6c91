"""odin_agent_config: a real ansible-playbook run on localhost with NO Python for the target, so only the
action plugin's raw shell commands can work; changed once, then not; check mode and diff; bad input."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.modules import odin_agent_config as doc_stub

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
BIN = os.path.dirname(sys.executable)

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Agent configuration
      arnab.testbed.odin_agent_config:
        dest: "{{ dest }}"
        ap_mac: "02:a0:00:00:00:01"
        agent_ip: 10.77.0.11
        master_ip: 10.77.0.10
        channel: "{{ channel | default(6) }}"
        title: "{{ title | default(omit) }}"
        ssid: "{{ ssid | default(omit) }}"
        click_path: "{{ click_path | default(omit) }}"
      register: out
    - name: Show
      ansible.builtin.debug:
        var: out
"""


def play(tmp_path, *extra, path_prefix=None, **variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"))
    if path_prefix:
        env["PATH"] = path_prefix + os.pathsep + env["PATH"]
    variables.setdefault("dest", str(tmp_path / "etc" / "odin" / "agent.cli"))
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", "ap1,", "-c", "local",
            "-e", "ansible_python_interpreter=/nonexistent/no-python", "-e", json.dumps(variables),
            str(playbook)] + list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    out = json.loads(proc.stdout)
    task = out["plays"][0]["tasks"][0]["hosts"]["ap1"]
    return proc.returncode, task


def test_writes_once_then_unchanged_check_and_diff(tmp_path):
    dest = tmp_path / "etc" / "odin" / "agent.cli"
    rc, task = play(tmp_path, "--check", "--diff")
    assert rc == 0 and task["changed"] and not dest.exists()
    rc, task = play(tmp_path)
    assert rc == 0 and task["changed"], task
    text = dest.read_text()
    assert odin.parse_agent_config(text)["master_ip"] == "10.77.0.10"
    assert "configuration for ap1" in text
    rc, task = play(tmp_path)
    assert rc == 0 and not task["changed"] and task["commands"] == []
    rc, task = play(tmp_path, "--diff", channel=11)
    assert rc == 0 and task["changed"] and "$CHANNEL 11" in task["diff"]["after"]
    assert "$CHANNEL 6" in task["diff"]["before"]
    assert odin.parse_agent_config(dest.read_text())["channel"] == 11
    assert [p.name for p in dest.parent.iterdir()] == ["agent.cli"]   # no temp file left behind


def test_bad_parameter_fails_without_writing(tmp_path):
    rc, task = play(tmp_path, channel=99 + 100)
    assert rc != 0 and "channel" in task["msg"]
    assert not (tmp_path / "etc").exists()


def test_documented_options_match_the_renderer():
    options = yaml.safe_load(doc_stub.DOCUMENTATION)["options"]
    spec = odin.agent_config_argument_spec()
    assert set(options) == set(spec) | {"dest", "title", "click_path"}
    for name, item in spec.items():
        assert options[name]["type"] == item["type"], name
        assert options[name].get("default") == item.get("default"), name
        assert options[name].get("required", False) == item.get("required", False), name


def test_no_click_on_the_ap_writes_unchecked_and_says_so(tmp_path):
    rc, task = play(tmp_path, click_path="arnab-no-such-click")
    assert rc == 0 and task["changed"] and task["click_check"] == "skipped: no arnab-no-such-click on the AP"
    rc, task = play(tmp_path, click_path="arnab-no-such-click")
    assert rc == 0 and not task["changed"] and task["click_check"] == "unchanged"


def test_real_click_on_the_ap_checks_before_writing(tmp_path, real_click):
    """Real Click (make click) is the AP's `click`: it loads the new configuration, then it is written."""
    bindir = tmp_path / "ap-bin"
    bindir.mkdir()
    (bindir / "click").symlink_to(real_click)
    dest = tmp_path / "etc" / "odin" / "agent.cli"
    rc, task = play(tmp_path, "--check", path_prefix=str(bindir))
    assert rc == 0 and task["changed"] and task["click_check"] == "passed" and not dest.exists(), task
    rc, task = play(tmp_path, path_prefix=str(bindir), channel=11)
    assert rc == 0 and task["changed"] and task["click_check"] == "passed", task
    assert odin.parse_agent_config(dest.read_text())["channel"] == 11


def test_a_configuration_click_refuses_is_never_installed(tmp_path):
    """Real Click accepts every configuration the renderer can produce (tests/click loads them all), so the
    refusal is played by a `click` that refuses like Click does (its words and exit status 1): what is under
    test is the plugin's reaction, nothing written, the old file kept, Click's errors reported."""
    bindir = tmp_path / "ap-bin"
    bindir.mkdir()
    (bindir / "click").write_text("#!/bin/sh\ncat >/dev/null\n"
                                  "echo \"<stdin>:36: 'odinagent :: OdinAgent' output 4 unused\" >&2\n"
                                  "echo 'Router could not be initialized!' >&2\nexit 1\n")
    (bindir / "click").chmod(0o755)
    dest = tmp_path / "etc" / "odin" / "agent.cli"
    rc, task = play(tmp_path, click_path="arnab-no-such-click")
    assert rc == 0 and task["changed"]
    before = dest.read_text()
    for extra in ((), ("--check",)):
        rc, task = play(tmp_path, *extra, path_prefix=str(bindir), channel=1)
        assert rc != 0 and task["click_check"] == "refused" and not task["changed"], task
        assert "output 4 unused" in task["msg"] and "nothing was written" in task["msg"]
        assert task["click_errors"][-1] == "Router could not be initialized!"
        assert dest.read_text() == before
        assert sorted(p.name for p in dest.parent.iterdir()) == ["agent.cli"]


@pytest.mark.parametrize("payload", ["$(touch /tmp/arnab-pwned)", "`touch /tmp/arnab-pwned`", "a;touch /tmp/x",
                                     "line\nREAD odinagent.table", "cr\rWRITE x", "quote\"d", "it's"])
@pytest.mark.parametrize("option", ["ssid", "title", "click_path"])
def test_string_options_with_payloads_fail_cleanly_or_stay_inert(tmp_path, option, payload):
    marker = tmp_path / "pwned"
    payload = payload.replace("/tmp/arnab-pwned", str(marker))
    rc, task = play(tmp_path, **{option: payload})
    dest = tmp_path / "etc" / "odin" / "agent.cli"
    assert not marker.exists()
    if any(ch in payload for ch in "\n\r"):
        assert rc != 0 and "control character" in task["msg"] and not dest.exists(), task
    elif option == "ssid":   # one word on the ControlSocket line: printable, no spaces, quotes, backslashes or $
        if any(ch in payload for ch in " \"'$\\"):
            assert rc != 0 and "SSID" in task["msg"] and not dest.exists()
        else:
            assert rc == 0 and odin.parse_agent_config(dest.read_text())["ssid"] == payload
    elif option == "title":   # a comment in the file: inert text
        assert rc == 0 and payload in dest.read_text().splitlines()[0]
    else:                     # a program name or absolute path, never a command line
        assert rc != 0 and "click_path" in task["msg"] and not dest.exists(), task
