"""roles/edge/files/arnab_migrate_allow.py (installed as arnab-migrate-allow): the forced command of the allow-list migration key."""
import importlib.machinery
import importlib.util
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "..", "..", "roles", "edge", "files", "arnab_migrate_allow.py")


def load():
    loader = importlib.machinery.SourceFileLoader("arnab_migrate_allow", SCRIPT)
    spec = importlib.util.spec_from_loader("arnab_migrate_allow", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


allow = load()
CFG = {"commands": list(allow.DEFAULT["commands"]), "paths": list(allow.DEFAULT["paths"])}


def check(command):
    parts = allow.split_command(command)
    return [allow.check_argv(argv, CFG) for _op, argv in parts]


@pytest.mark.parametrize("command", [
    "rsync --server -logDtpre.iLsfxCIvu --inplace . /var/lib/lxc/video/rootfs/",
    "rsync --server --sender -logDtpre.iLsfxCIvu . /var/lib/arnab-migrate/video/",
    "lxc-checkpoint -n video -r -D /var/lib/arnab-migrate/video -P /var/lib/lxc",
    "lxc-checkpoint -n video -D /var/lib/arnab-migrate/video/3 --predump-dir=../2",
    "criu lazy-pages --page-server --address 10.79.0.1 --port 27000 -D /var/lib/arnab-migrate/video",
    "criu check --feature uffd-noncoop",
    "mkdir -p /var/lib/arnab-migrate/video && lxc-info -n video -sH",
    "rm -rf '/var/lib/arnab-migrate/video dir'; true",
    "arnab-txoff video /var/lib/lxc",
])
def test_allowed(command):
    check(command)


@pytest.mark.parametrize("command,why", [
    ("", "no command"),
    ("   ", "no command"),
    ("bash -i", "not on the allow-list"),
    ("/bin/rm -rf /var/lib/lxc/x", "by name"),
    ("rsync -av /etc/ /var/lib/lxc/x", "rsync --server"),
    ("cat /etc/shadow", "outside"),
    ("ls /var/lib/lxc/../../../etc", "outside"),
    ("ls /var/lib/lxcfoo", "outside"),
    ("rm -rf ../../etc", "'..'"),
    ("lxc-info -n video | sh", "operator"),
    ("lxc-info -n video > /var/lib/lxc/x", "operator"),
    ("lxc-info -n $(id)", "not allowed"),
    ("lxc-info -n `id`", "not allowed"),
    ("rm -rf /var/lib/lxc/*", "not allowed"),
    ("lxc-info -n video &&", "ends with an operator"),
    ("&& true", "empty command"),
    ("true & id", "operator"),
    ("mkdir --path=/etc/x", "outside"),
])
def test_refused(command, why):
    with pytest.raises(allow.Refused) as e:
        check(command)
    assert why in str(e.value)


def test_dotdot_only_for_relative_image_dirs():
    check("criu dump -D /var/lib/arnab-migrate/v/2 --prev-images-dir ../1 -t 1")
    with pytest.raises(allow.Refused):
        check("criu dump -D /var/lib/arnab-migrate/v/2 --work-dir ../1 -t 1")


def test_config_file(tmp_path):
    cfg = tmp_path / "allow.json"
    cfg.write_text(json.dumps({"commands": ["true"], "paths": ["/srv"]}))
    c = allow.load_config(str(cfg))
    assert c == {"commands": ["true"], "paths": ["/srv"]}
    assert allow.load_config(str(tmp_path / "missing.json")) == allow.DEFAULT
    (tmp_path / "bad.json").write_text("{")
    assert allow.load_config(str(tmp_path / "bad.json")) == allow.DEFAULT


def test_run_chains_like_a_shell():
    ok = allow.split_command("true && true ; false")
    assert allow.run(ok) == 1
    stop = allow.split_command("false && true")
    assert allow.run(stop) == 1
    cont = allow.split_command("false ; true")
    assert allow.run(cont) == 0


def test_main_refuses_with_126(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(allow, "CONFIG", str(tmp_path / "none.json"))
    assert allow.main({"SSH_ORIGINAL_COMMAND": "id"}) == 126
    assert "refused" in capsys.readouterr().err
    assert allow.main({}) == 126


@pytest.mark.skipif(not os.path.exists("/bin/true"), reason="needs /bin/true")
def test_main_runs_allowed_chain(monkeypatch, tmp_path):
    monkeypatch.setattr(allow, "load_config", lambda path=None: {"commands": ["true", "false"], "paths": []})
    assert allow.main({"SSH_ORIGINAL_COMMAND": "true ; false ; true"}) == 0
    assert allow.main({"SSH_ORIGINAL_COMMAND": "false && true"}) == 1
    assert sys.executable  # the single-command path execs and is not exercised in-process
