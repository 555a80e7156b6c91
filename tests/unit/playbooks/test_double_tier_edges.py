"""double_tier.yml's choice of the destination edge, its own task run on localhost with the lab inventory's ap_edge
(ap1 -> edge1, ap2 -> edge2, ap3 -> edge1): tier 1 only when both APs share an edge or the service is there."""
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAY = yaml.safe_load(open(os.path.join(ROOT, "playbooks", "double_tier.yml")))[0]
PICK = [t for t in PLAY["tasks"] if t["name"].startswith("Pick the destination edge")][0]


@pytest.mark.parametrize("from_ap, to_ap, source, dest, want", [
    ("ap1", "ap2", "edge1", None, ("edge2", "")),
    ("ap2", "ap3", "edge2", None, ("edge1", "")),
    ("ap1", "ap3", "edge1", None, ("edge1", "ap1 and ap3 are both served by edge1")),
    ("ap1", "ap2", "edge2", None, ("edge2", "video already runs on edge2")),
    ("ap1", "ap2", "edge1", "edge2", ("edge2", "")),
    # a placement: the vAP is already on ap1 (from = to) but the service runs on the other edge: dest given, it moves
    ("ap1", "ap1", "edge2", "edge1", ("edge1", "")),
    ("ap1", "ap1", "edge1", "edge1", ("edge1", "video already runs on edge1")),
])
def test_destination_and_when_tier2_is_skipped(tmp_path, from_ap, to_ap, source, dest, want):
    variables = {"dt_tier1": {"from_ap": from_ap, "to_ap": to_ap}, "dt_source": source, "service": "video"}
    if dest:
        variables["dest"] = dest
    out = tmp_path / "out.json"
    copy = {"content": "{{ [dt_dest, dt_tier2_skip] | to_json }}", "dest": str(out), "mode": "0644"}
    keep = {"name": "Keep", "ansible.builtin.copy": copy}
    play = [{"name": "Pick", "hosts": "localhost", "gather_facts": False, "vars": variables, "tasks": [PICK, keep]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "lt"))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           os.path.join(ROOT, "inventories", "lab"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert tuple(yaml.safe_load(out.read_text())) == want
