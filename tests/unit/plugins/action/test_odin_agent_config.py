"""odin_agent_config: a real ansible-playbook run on localhost with NO Python for the target, so only the
action plugin's raw shell commands can work; changed once, then not; check mode and diff; bad input."""
import json
import os
import subprocess
import sys

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
      register: out
    - name: Show
      ansible.builtin.debug:
        var: out
"""


def play(tmp_path, *extra, **variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"))
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
    assert set(options) == set(spec) | {"dest", "title"}
    for name, item in spec.items():
        assert options[name]["type"] == item["type"], name
        assert options[name].get("default") == item.get("default"), name
        assert options[name].get("required", False) == item.get("required", False), name
