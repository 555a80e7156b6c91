"""What `ansible-galaxy collection build` ships (galaxy.yml's build_ignore): the OCS's event source, rulebook and
playbook (extensions/eda, the layout EDA reads from an installed collection), never the emulated lab, its
lab-only modules, scenarios or the molecule scenarios (they need the lab)."""
import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_built_collection_ships_the_ocs_and_leaves_the_lab_out(tmp_path):
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(tmp_path), ROOT], check=True,
                   capture_output=True, timeout=300)
    (artifact,) = tmp_path.glob("arnab-testbed-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
    for shipped in ("extensions/eda/plugins/event_source/odin_master.py", "extensions/eda/rulebooks/ocs.yml",
                    "extensions/eda/playbooks/ocs_done.yml", "plugins/module_utils/mobility.py",
                    "playbooks/double_tier.yml", "roles/ocs/tasks/main.yml"):
        assert shipped in names, shipped
    for top in ("lab/", "library/", "scenarios/", "extensions/molecule/", ".venv/", ".ansible/", ".pytest_cache/",
                "reports/", "build/"):
        assert not [n for n in names if n.startswith(top)], top
