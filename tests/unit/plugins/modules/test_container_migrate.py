"""container_migrate / container_checkpoint / state_transfer: argument handling, fail-before-freeze, check mode,
report and progress files. The LXC/CRIU/SSH side is replaced by fakes (test_precopy covers the engine)."""
import json
from unittest import mock

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import precopy
from ansible_collections.arnab.testbed.plugins.modules import container_checkpoint, container_migrate, state_transfer

from module_harness import run_module

FACTS = {"criu_ok": True, "mem_dirty_track": False, "uffd_noncoop": True, "lazy_pages_ready": True,
         "pipe_max_size": 16777216, "memory_bytes": 14 << 20, "link_rate_bps": 125e6}


class FakeDriver(object):
    instances = []

    def __init__(self, container, dest, **kw):
        self.container, self.dest, self.kw = container, dest, kw
        self.calls = []
        self.preflight_error = FakeDriver.preflight_error
        self.fail_at = FakeDriver.fail_at
        FakeDriver.instances.append(self)

    def preflight(self, method="auto", check_mode=False):
        self.calls.append("preflight (check mode)" if check_mode else "preflight")
        if self.preflight_error:
            raise self.preflight_error if isinstance(self.preflight_error, Exception) else \
                precopy.PreflightError(self.preflight_error)
        return dict(FACTS)

    def facts(self):
        return dict(FACTS)

    def _s(self, name, value=None):
        self.calls.append(name)
        if self.fail_at == name:
            raise RuntimeError("boom at %s" % name)
        return value if value is not None else {"bytes_sent": 10, "duration_s": 0.01}

    def sync_fs(self, phase):
        return self._s("sync_fs")

    def final_dump(self, parent, mode):
        return self._s("final_dump", {"images_dir": "/w/final", "stats": {}, "bytes": 1})

    def transfer(self, images_dir, n, mode):
        return self._s("transfer", {"bytes_sent": 1000, "duration_s": 0.01})

    def restore(self, lazy=False):
        self.restore_sent = True
        return self._s("restore", {"restore_s": 0.1, "netfix_s": 0.01})

    def commit(self):
        return self._s("commit", {"commit_s": 0.001, "dump_rc": 0})

    def clean_dest(self):
        return self._s("clean_dest", {"ok": True})

    def resume_source(self):
        return self._s("resume_source", {"ok": True})

    def destroy_source(self):
        return self._s("destroy_source", {"ok": True})

    def discard_work(self, keep_logs=False):
        self.calls.append("discard_work")
        return "/w" if keep_logs else None

    def close(self):
        self.calls.append("close")


@pytest.fixture
def fake_driver():
    FakeDriver.instances = []
    FakeDriver.preflight_error = None
    FakeDriver.fail_at = None
    with mock.patch.object(container_migrate, "LxcMigrationDriver", FakeDriver):
        yield FakeDriver


def test_bad_input_fails_before_anything_is_frozen(fake_driver):
    fake_driver.preflight_error = "container nope does not exist in /var/lib/lxc on this edge"
    ok, res = run_module(container_migrate.main, dict(container="nope", dest="10.79.0.2"))
    assert not ok and "does not exist" in res["msg"] and res["changed"] is False
    assert fake_driver.instances[0].calls == ["preflight", "close"]


def test_method_the_kernel_cannot_do_fails_before_anything_is_frozen(fake_driver):
    ok, res = run_module(container_migrate.main, dict(container="ramsim", dest="edge2", method="pre-copy",
                                                      precopy_mode="native"))
    assert not ok and "soft-dirty" in res["msg"]
    assert fake_driver.instances[0].calls == ["preflight", "close"]


def test_bad_rate_and_iterations():
    ok, res = run_module(container_migrate.main, dict(container="c", dest="d", link_rate="fast"))
    assert not ok and "rate" in res["msg"]
    ok, res = run_module(container_migrate.main, dict(container="c", dest="d", max_iterations=0))
    assert not ok and "max_iterations" in res["msg"]


def test_check_mode_reports_the_choice_and_touches_nothing(fake_driver):
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2"), check_mode=True)
    assert ok and res["changed"] and res["method"] == "stop-and-copy" and "predicted" in res["method_reason"]
    assert fake_driver.instances[0].calls == ["preflight (check mode)", "close"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_container_already_on_the_destination_is_ok_with_no_change(fake_driver, tmp_path, check_mode):
    fake_driver.preflight_error = precopy.AlreadyOnDestination("container video already runs on edge2 and not here")
    report = tmp_path / "r.json"
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2", report=str(report)),
                         check_mode=check_mode)
    assert ok and res["changed"] is False and res["report"]["already_on_dest"] is True
    assert "already runs on edge2" in res["msg"]
    assert report.exists() is not check_mode
    assert fake_driver.instances[0].calls[-1] == "close" and "sync_fs" not in fake_driver.instances[0].calls


def test_success_writes_report_and_progress(fake_driver, tmp_path):
    report, log = tmp_path / "r" / "video.json", tmp_path / "progress.log"
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2", method="stop-and-copy",
                                                      report=str(report), progress_log=str(log)))
    assert ok and res["changed"] and res["ok"] and res["downtime_s"] >= 0
    saved = json.loads(report.read_text())
    assert saved["container"] == "video" and saved["ok"] and saved["method"] == "stop-and-copy"
    lines = log.read_text().splitlines()
    assert "preflight" in lines[0] and "done in" in lines[-1]


def test_failure_rolls_back_and_still_writes_the_report(fake_driver, tmp_path):
    fake_driver.fail_at = "restore"
    report = tmp_path / "r.json"
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2", method="stop-and-copy",
                                                      report=str(report)))
    assert not ok and res["rolled_back"] and "rolled back" in res["msg"]
    calls = fake_driver.instances[0].calls
    assert calls[-4:] == ["clean_dest", "resume_source", "discard_work", "close"] and "destroy_source" not in calls
    assert json.loads(report.read_text())["rolled_back"] is True


PAYLOADS = ["$(touch /tmp/arnab-pwned)", "`touch /tmp/arnab-pwned`", "a;touch /tmp/arnab-pwned",
            "a\ntouch /tmp/arnab-pwned", "a'b", 'a"b', "-oProxyCommand=touch /tmp/arnab-pwned"]
WORDS = ("container", "dest", "ssh_user", "interface", "criu", "page_server_address")


@pytest.mark.parametrize("option", WORDS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_in_a_word_option_is_refused_before_anything_runs(fake_driver, option, payload):
    args = dict(container="video", dest="edge2")
    args[option] = payload
    ok, res = run_module(container_migrate.main, args)
    assert not ok and option in res["msg"]
    assert fake_driver.instances == []                 # no driver: nothing touched on either edge


@pytest.mark.parametrize("option", ("ssh_key", "lxcpath", "work_dir"))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_path_option_is_absolute_and_reaches_the_driver_as_one_value(fake_driver, option, payload):
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2", **{option: payload}))
    assert not ok and option in res["msg"] and fake_driver.instances == []     # relative, or a newline
    value = "/srv/" + payload
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2", method="stop-and-copy",
                                                      **{option: value}))
    if "\n" in payload:
        assert not ok and fake_driver.instances == []
    else:
        assert ok and fake_driver.instances[-1].kw[option] == value          # data, one argv element later


@pytest.mark.parametrize("option", ("report", "progress_log"))
def test_a_report_path_with_a_newline_is_refused(fake_driver, tmp_path, option):
    ok, res = run_module(container_migrate.main, dict(container="video", dest="edge2",
                                                      **{option: str(tmp_path / "r\nx")}))
    assert not ok and option in res["msg"] and fake_driver.instances == []


@pytest.mark.parametrize("work_dir", ["/srv/a;touch /tmp/arnab-pwned", "/srv/$(touch /tmp/arnab-pwned)",
                                      "/srv/a b"])
def test_a_work_dir_criu_could_not_run_the_guard_in_is_refused_before_anything_runs(tmp_path, work_dir):
    calls = []
    drv = precopy.LxcMigrationDriver("video", "10.79.0.2", lxcpath=str(tmp_path), work_dir=work_dir,
                                     runner=lambda argv, **kw: calls.append(argv) or (0, "", ""))
    with pytest.raises(precopy.PreflightError, match="plain absolute path"):
        drv.preflight()
    assert calls == [] and not tmp_path.joinpath("srv").exists()


# ---- container_checkpoint -------------------------------------------------------------------------

def test_checkpoint_predump_without_soft_dirty_fails_clearly():
    with mock.patch.object(container_checkpoint.LxcCriu, "features", return_value=dict(FACTS)):
        ok, res = run_module(container_checkpoint.main, dict(name="ramsim", images_dir="/w/1", action="pre-dump"))
    assert not ok and "soft-dirty" in res["msg"]
    assert res["argv"][-1] == "-p"


def test_checkpoint_check_mode_returns_the_command(tmp_path):
    with mock.patch.object(container_checkpoint.LxcCriu, "features", return_value=dict(FACTS)), \
            mock.patch.object(container_checkpoint.LxcCriu, "info", return_value={"state": "RUNNING", "pid": 1}), \
            mock.patch.object(container_checkpoint.LxcCriu, "exists", return_value=True):
        ok, res = run_module(container_checkpoint.main, dict(name="ramsim", images_dir=str(tmp_path / "d"),
                                                             leave="stopped"), check_mode=True)
    assert ok and res["changed"] and "-s" in res["argv"]
    assert res["criu_options"][:1] == ["--leave-stopped"]
    assert not (tmp_path / "d").exists()


def test_checkpoint_refuses_a_stopped_container():
    with mock.patch.object(container_checkpoint.LxcCriu, "features", return_value=dict(FACTS)), \
            mock.patch.object(container_checkpoint.LxcCriu, "info", return_value={"state": "STOPPED"}), \
            mock.patch.object(container_checkpoint.LxcCriu, "exists", return_value=True):
        ok, res = run_module(container_checkpoint.main, dict(name="ramsim", images_dir="/w/d"))
    assert not ok and "STOPPED" in res["msg"]


# ---- state_transfer -------------------------------------------------------------------------------

def test_state_transfer_needs_a_source_dir(tmp_path):
    ok, res = run_module(state_transfer.main, dict(src=str(tmp_path / "missing"), dest="/x", host="h"))
    assert not ok and "not a directory" in res["msg"]


def test_state_transfer_check_mode_is_a_dry_run(tmp_path):
    calls = []

    def fake_run(argv, env=None, timeout=None):
        calls.append(argv)
        return 0, "<<CHANGED>>>f+++++++++ a.img\n\nTotal bytes sent: 120\nLiteral data: 0 bytes\n", ""

    (tmp_path / "a.img").write_text("x")
    with mock.patch("ansible_collections.arnab.testbed.plugins.module_utils.state_transfer.default_runner",
                    fake_run), mock.patch.object(state_transfer.Pusher, "__init__",
                                                 _pusher_init_with(fake_run)):
        ok, res = run_module(state_transfer.main, dict(src=str(tmp_path), dest="/d", host="h"), check_mode=True)
    assert ok and res["changed"] and res["changed_items"] == ["a.img"] and res["bytes_sent"] == 120
    assert "--dry-run" in res["cmd"][0]


def _pusher_init_with(runner):
    orig = state_transfer.Pusher.__init__

    def init(self, *a, **kw):
        kw["runner"] = runner
        orig(self, *a, **kw)
    return init
