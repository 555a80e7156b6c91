"""roles/edge installs the migration receiver: every collection file it imports, its command, its config."""
import ast
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MU = os.path.join(ROOT, "plugins", "module_utils")


def tasks():
    with open(os.path.join(ROOT, "roles", "edge", "tasks", "ssh_trust.yml")) as f:
        return yaml.safe_load(f)


def local_imports(name, seen=None):
    """The module_utils files ``name`` needs (its fallback imports, transitively)."""
    seen = seen if seen is not None else set()
    seen.add(name)
    with open(os.path.join(MU, name)) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods = [node.module]
        for mod in mods:
            f = mod + ".py"
            if os.path.exists(os.path.join(MU, f)) and f not in seen:
                local_imports(f, seen)
    return seen


def test_the_role_copies_everything_the_receiver_imports():
    copy = [t for t in tasks() if t.get("name", "").startswith("Install the migration receiver")][0]
    assert sorted(copy["loop"]) == sorted(local_imports("migrate_receiver.py"))
    for name in copy["loop"]:
        assert os.path.exists(os.path.join(MU, name))


def test_receiver_mode_forces_the_command_from_the_backhaul():
    trust = [t for t in tasks() if t.get("name", "").startswith("Trust the peers' migration keys")][0]
    opts = trust["ansible.posix.authorized_key"]["key_options"]
    assert 'restrict,command="/usr/local/lib/arnab/arnab-migrate-receiver",from="%s"' in opts
    assert "backhaul_ip" in trust["vars"]["_backhaul"]
    template = os.path.join(ROOT, "roles", "edge", "templates", "arnab-migrate-receiver.j2")
    text = open(template).read()
    assert text.startswith("{{ '#!' }}/usr/bin/python3 -I\n") and "import migrate_receiver" in text


def test_the_receiver_config_names_no_client_path():
    cfg = [t for t in tasks() if t.get("name", "").startswith("Write the receiver's configuration")][0]
    assert cfg["ansible.builtin.copy"]["dest"] == "/etc/arnab/receiver.json"
    assert set(cfg["vars"]["_edge_receiver_config"]) == {"lxcpath", "criu", "python", "rrsync", "network_lock",
                                                         "enable_fs"}
