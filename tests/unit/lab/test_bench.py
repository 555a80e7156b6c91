"""lab/arnab_lab/bench.py tier2: the matrix (cells, run order, aggregation, CSV columns, summary) fed with fake runs."""
import csv
import math
import os

import subprocess

import pytest

from arnab_lab import bench

SINGLE_ROW = ["tier2", "--working-set", "20", "--methods", "stop-and-copy,pre-copy", "--trials", "1", "--no-video"]
RATE = 1e9


def fake_row(cfg, method, trial, downtime, ok=True, gap=None, total=10.0, frozen=1000000, source_needed=None,
             used=None):
    rep = {"downtime_s": downtime, "bytes_frozen": frozen, "total_s": total, "bytes_total": 2 * frozen,
           "method": used or method}
    if source_needed is not None:
        rep["postcopy"] = {"source_needed_s": source_needed}
    client = {"gap_s": downtime + 0.05 if gap is None else gap, "ok": ok}
    return bench.row_from(cfg, method, trial, ok, rep if ok else {}, None if ok else "boom", client,
                          "ok" if ok else "", RATE, load1=0.5)


def cfg_of(ws, size=1024, dirty=None):
    return bench.configs(False, [size], [ws], None if dirty is None else [dirty])[0]


# -- command line ------------------------------------------------------------------------------------------------

def test_the_single_row_command_runs_one_configuration_by_two_methods():
    args = bench.parse_args(SINGLE_ROW)
    cfgs = bench.configs(args.video, args.sizes, args.working_sets, args.dirty)
    assert cfgs == [{"workload": "ramsim", "config": "ramsim 1024 MiB hot 20% dirty 20%", "size_mib": 1024,
                     "working_set_pct": 20.0, "dirty_pct": 20.0}]
    steps = bench.plan(cfgs, args.methods, args.trials)
    assert [(s["cfg"]["config"], s["trial"], s["method"]) for s in steps] == [
        ("ramsim 1024 MiB hot 20% dirty 20%", 1, "stop-and-copy"), ("ramsim 1024 MiB hot 20% dirty 20%", 1, "pre-copy")]
    assert args.results == bench.RESULTS
    assert args.command.endswith("-m arnab_lab.bench tier2 --working-set 20 --methods stop-and-copy,pre-copy "
                                 "--trials 1 --no-video")


def test_defaults_are_the_papers_matrix():
    args = bench.parse_args(["tier2"])
    assert args.working_sets == [20.0, 30.0, 50.0, 70.0, 100.0] and args.dirty is None
    assert args.trials == 3 and args.sizes == [1024] and args.video
    assert args.methods == ["stop-and-copy", "pre-copy", "post-copy", "auto"]
    cfgs = bench.configs(args.video, args.sizes, args.working_sets, args.dirty)
    assert [c["config"] for c in cfgs] == ["video"] + ["ramsim 1024 MiB hot %d%% dirty %d%%" % (p, p)
                                                       for p in (20, 30, 50, 70, 100)]
    assert len(bench.plan(cfgs, args.methods, args.trials)) == 6 * 4 * 3


def test_dirty_alone_keeps_the_old_matrix_and_both_cross():
    args = bench.parse_args(["tier2", "--dirty", "20,100", "--no-video"])
    assert [c["config"] for c in bench.configs(args.video, args.sizes, args.working_sets, args.dirty)] == [
        "ramsim 1024 MiB hot 100% dirty 20%", "ramsim 1024 MiB hot 100% dirty 100%"]
    args = bench.parse_args(["tier2", "--dirty", "50", "--working-set", "20,30", "--no-video"])
    assert [(c["working_set_pct"], c["dirty_pct"]) for c in
            bench.configs(args.video, args.sizes, args.working_sets, args.dirty)] == [(20.0, 50.0), (30.0, 50.0)]


def test_quick_is_ci_size():
    args = bench.parse_args(["tier2", "--quick"])
    assert (args.trials, args.sizes, args.working_sets, args.results) == (1, [128], [20.0], bench.REPORTS)
    assert args.methods == list(bench.DEFAULT_METHODS)


@pytest.mark.parametrize("argv", [["--methods", "stop-and-copy,live"], ["--working-set", "0"],
                                  ["--working-set", "101"], ["--dirty", "0"], ["--trials", "0"],
                                  ["--methods", "pre-copy,pre-copy"], ["--network-locks", "inbound,none"],
                                  ["--network-locks", "nftables,nftables"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit):
        bench.parse_args(["tier2"] + argv)


def test_dry_run_prints_the_order_without_a_lab(capsys):
    assert bench.main(SINGLE_ROW + ["--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "stop-and-copy" in out[0] and "pre-copy" in out[1] and out[2].startswith("2 migrations")


# -- run order ---------------------------------------------------------------------------------------------------

def test_methods_are_interleaved_within_each_trial():
    cfgs = bench.configs(True, [1024], [20, 50], None)
    methods = ["stop-and-copy", "pre-copy", "post-copy"]
    steps = bench.plan(cfgs, methods, 3)
    assert len(steps) == 3 * 3 * 3
    trials = [s["trial"] for s in steps]
    assert trials == sorted(trials)              # trial 1 entirely, then trial 2, then trial 3
    for trial in (1, 2, 3):
        mine = [(s["cfg"]["config"], s["method"]) for s in steps if s["trial"] == trial]
        assert sorted(mine) == sorted((c["config"], m) for c in cfgs for m in methods)   # every cell once
        # the methods of one configuration run back to back, in the order rotated for this trial
        for cfg in cfgs:
            assert [m for c, m in mine if c == cfg["config"]] == methods[trial - 1:] + methods[:trial - 1]
    # over the trials every method runs first once
    assert {steps[9 * t]["method"] for t in range(3)} == set(methods)


def test_each_network_lock_is_its_own_cell_and_reaches_the_migration(monkeypatch):
    cfgs = bench.with_locks(bench.configs(True, [], [20], None), ["inbound", "nftables"])
    assert [(c["config"], c["network_lock"]) for c in cfgs] == [("video", "inbound"),
                                                                ("video lock=nftables", "nftables")]
    steps = bench.plan(cfgs, ["stop-and-copy"], 1)
    assert [s["cfg"]["config"] for s in steps] == ["video", "video lock=nftables"]
    assert bench.parse_args(["tier2"]).network_locks == ["inbound"]          # the engine's default alone
    calls = []
    monkeypatch.setattr(bench, "running_on", lambda name, edges: ["edge1"])
    monkeypatch.setattr(bench, "migrate", lambda name, dest, method, path, extravars=None, inventory=None: calls.append(
        (dest, method, extravars)) or (True, {"downtime_s": 1.0}, None))
    monkeypatch.setattr(bench, "ClientSession", lambda *a, **k: type("C", (), {"stop": lambda self: {"gap_s": 0.9}})())
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    lv = {"workloads": {"video": {"ip": "10.78.0.50", "port": 8080}}, "edges": ["edge1", "edge2"], "rate_bits": 1e9}
    row = bench.run_one(cfgs[1], "stop-and-copy", 1, lv, "/tmp", "stamp")
    assert calls == [("edge2", "stop-and-copy", {"network_lock": "nftables", "packet_hold": True})]
    assert (row["config"], row["network_lock"], row["client_gap_s"]) == ("video lock=nftables", "nftables", 0.9)


def test_a_method_variant_runs_its_method_with_its_options_and_is_its_own_cell(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "running_on", lambda name, edges: ["edge1"])
    monkeypatch.setattr(bench, "migrate", lambda name, dest, method, path, extravars=None, inventory=None: calls.append(
        (method, extravars)) or (True, {"downtime_s": 2.0, "method": method}, None))
    monkeypatch.setattr(bench, "ClientSession", lambda *a, **k: type("C", (), {"stop": lambda self: {"gap_s": 0.9}})())
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    lv = {"workloads": {"video": {"ip": "10.78.0.50", "port": 8080}}, "edges": ["edge1", "edge2"], "rate_bits": 1e9}
    cfg = bench.with_locks(bench.configs(True, [], [20], None), ["inbound"])[0]
    rows = [bench.run_one(cfg, m, 1, lv, "/tmp", "stamp") for m in ("pre-copy", "pre-copy/dump")]
    assert calls == [("pre-copy", {"network_lock": "inbound", "packet_hold": True}),
                     ("pre-copy", {"network_lock": "inbound", "packet_hold": True, "delta_reads": "dump"})]
    assert [c["method"] for c in bench.aggregate(rows)] == ["pre-copy", "pre-copy/dump"]
    assert "pre-copy/dump" not in bench.parse_args(["tier2"]).methods     # the default matrix is the paper's + auto
    assert bench.parse_args(["tier2", "--methods", "pre-copy,pre-copy/dump"]).methods == ["pre-copy", "pre-copy/dump"]
    # every method has a criu-freeze twin: criu freezes the container itself (container_migrate prefreeze=false)
    assert [bench.variant(m + "/criu-freeze") for m in bench.DEFAULT_METHODS] == [
        (m, {"prefreeze": False}) for m in bench.DEFAULT_METHODS]
    # stop-and-copy and pre-copy have an eager-restore twin (container_migrate lazy_restore=eager)
    assert bench.variant("stop-and-copy/eager") == ("stop-and-copy", {"lazy_restore": "eager"})
    assert bench.variant("pre-copy/eager") == ("pre-copy", {"lazy_restore": "eager"})


def test_each_packet_hold_is_its_own_cell_under_the_inbound_lock_only():
    args = bench.parse_args(["tier2", "--sizes", "", "--network-locks", "inbound,nftables", "--packet-hold", "on,off"])
    assert [(c["config"], c["network_lock"], c["packet_hold"]) for c in bench.run_configs(args)] == [
        ("video", "inbound", True), ("video hold=off", "inbound", False), ("video lock=nftables", "nftables", True)]
    assert bench.parse_args(["tier2"]).packet_holds == [True]              # container_migrate's default alone
    with pytest.raises(SystemExit):
        bench.parse_args(["tier2", "--packet-hold", "yes"])


def test_each_video_init_is_its_own_cell_and_starts_the_container_afresh(monkeypatch):
    args = bench.parse_args(["tier2", "--sizes", "", "--video-init", "app,systemd"])
    cfgs = bench.run_configs(args, "app")
    assert [(c["config"], c["init"]) for c in cfgs] == [("video", "app"), ("video init=systemd", "systemd")]
    assert [c["config"] for c in bench.run_configs(bench.parse_args(["tier2", "--sizes", ""]), "app")] == ["video"]
    with_ramsim = bench.run_configs(bench.parse_args(["tier2", "--sizes", "128", "--working-set", "20",
                                                      "--video-init", "systemd"]), "app")
    assert [(c["config"], c["init"]) for c in with_ramsim] == [
        ("video init=systemd", "systemd"), ("ramsim 128 MiB hot 20% dirty 20%", None)]
    for bad in (["--video-init", "runit"], ["--video-init", "app,app"], ["--video-init", "app", "--no-video"]):
        with pytest.raises(SystemExit):
            bench.parse_args(["tier2"] + bad)
    # the inits are the edge role's: arnab-init where the role installs it, systemd as its LXC config starts it
    role = os.path.join(os.path.dirname(bench.LABCTL), "..", "roles", "edge")
    with open(os.path.join(role, "vars", "main.yml")) as f:
        assert "_edge_app_init: %s\n" % bench.VIDEO_INITS["app"] in f.read()
    with open(os.path.join(role, "templates", "lxc-arnab-criu.conf.j2")) as f:
        assert "lxc.init.cmd = %s\n" % bench.VIDEO_INITS["systemd"] in f.read()
    calls = []
    monkeypatch.setattr(bench, "running_on", lambda name, edges: ["edge2"])
    monkeypatch.setattr(bench, "labctl_exec", lambda node, argv, timeout=120: (
        calls.append((node, argv[:5])), subprocess.CompletedProcess(argv, 0, "", ""))[1])
    bench.restart_video({"name": "video", "ip": "10.78.0.50", "port": 8080, "hls_port": 8081}, "systemd",
                        ["edge1", "edge2"])
    assert calls[:2] == [("edge2", ["lxc-stop", "-k", "-n", "video"]),
                         ("edge2", ["lxc-start", "-n", "video", "-s",
                                    "lxc.init.cmd=/sbin/init systemd.legacy_systemd_cgroup_controller=1"])]
    assert calls[2][0] == bench.CLIENT and "10.78.0.50" in calls[2][1]


def test_each_size_runs_whole_before_the_next_and_video_joins_the_first():
    cfgs = bench.configs(True, [128, 1024], [20], None)
    steps = bench.plan(cfgs, ["pre-copy"], 2)
    assert [(s["cfg"]["config"], s["trial"]) for s in steps] == [
        ("video", 1), ("ramsim 128 MiB hot 20% dirty 20%", 1), ("video", 2), ("ramsim 128 MiB hot 20% dirty 20%", 2),
        ("ramsim 1024 MiB hot 20% dirty 20%", 1), ("ramsim 1024 MiB hot 20% dirty 20%", 2)]
    only_video = bench.plan(bench.configs(True, [], [20], None), ["pre-copy", "auto"], 1)
    assert [s["method"] for s in only_video] == ["pre-copy", "auto"]


def test_run_matrix_retries_once_then_records_a_failed_row():
    steps = bench.plan([cfg_of(20)], ["stop-and-copy", "pre-copy", "post-copy"], 1)
    calls, prepared, seen, logged = [], [], [], []

    def run_step(step):
        calls.append(step["method"])
        if step["method"] == "pre-copy" and calls.count("pre-copy") == 1:
            raise RuntimeError("ramsim runs on no edge")
        if step["method"] == "post-copy":
            raise RuntimeError("still broken")
        return fake_row(step["cfg"], step["method"], step["trial"], 1.0)

    rows = bench.run_matrix(steps, run_step,
                            lambda step, problem: fake_row(step["cfg"], step["method"], step["trial"], 0, ok=False),
                            prepare=prepared.append, on_row=seen.append, log=logged.append, retry_wait=0)
    assert calls == ["stop-and-copy", "pre-copy", "pre-copy", "post-copy", "post-copy"]
    assert [r["ok"] for r in rows] == [True, True, False] and seen == rows and prepared == steps
    assert len(logged) == 3 and "retrying" in logged[0] and "retrying" not in logged[2]


# -- rows and cells ----------------------------------------------------------------------------------------------

def test_the_csv_keeps_its_columns_and_adds_working_set_and_trial():
    old = ("workload", "config", "size_mib", "dirty_pct", "method", "method_used", "trial", "ok", "downtime_s",
           "bytes_frozen", "total_s", "bytes_total", "floor_s", "source_needed_s", "client_gap_s", "client_ok",
           "verify", "iterations", "stop_reason", "dump_s", "transfer_s", "restore_s", "error", "report")
    assert set(old) <= set(bench.CSV_COLUMNS)
    assert "working_set_pct" in bench.CSV_COLUMNS and "trial" in bench.CSV_COLUMNS
    row = fake_row(cfg_of(30), "pre-copy", 2, 3.5)
    assert tuple(row) == bench.CSV_COLUMNS
    assert (row["working_set_pct"], row["dirty_pct"], row["trial"], row["floor_s"]) == (30, 30, 2, 0.008)
    video = fake_row(bench.configs(True, [], [20], None)[0], "auto", 1, 0.7)
    assert video["working_set_pct"] == "" and video["workload"] == "video"


def rows_for_matrix():
    """Two working sets, three methods, three trials, interleaved as the bench runs them; one pre-copy failed."""
    downtimes = {("stop-and-copy", 20): [14.0, 15.0, 16.0], ("pre-copy", 20): [4.0, 5.0, 6.0],
                 ("post-copy", 20): [1.5, 1.5, 1.5], ("stop-and-copy", 100): [12.0, 13.0, 14.0],
                 ("pre-copy", 100): [17.0, 18.0, 19.0], ("post-copy", 100): [1.4, 1.6, 1.5]}
    rows = []
    for step in bench.plan([cfg_of(20), cfg_of(100)], ["stop-and-copy", "pre-copy", "post-copy"], 3):
        ws, method, trial = int(step["cfg"]["working_set_pct"]), step["method"], step["trial"]
        down = downtimes[(method, ws)][trial - 1]
        failed = (method, ws, trial) == ("pre-copy", 100, 3)
        rows.append(fake_row(step["cfg"], method, trial, down, ok=not failed,
                             frozen=int(down * 100e6), total=down * 3,
                             source_needed=20.0 if method == "post-copy" else None))
    return rows


def test_aggregate_gives_mean_and_spread_per_cell():
    cells = bench.aggregate(rows_for_matrix())
    assert [(c["config"].split()[4], c["method"]) for c in cells] == [
        ("20%", "stop-and-copy"), ("20%", "pre-copy"), ("20%", "post-copy"),
        ("100%", "stop-and-copy"), ("100%", "pre-copy"), ("100%", "post-copy")]
    by = {(c["working_set_pct"], c["method"]): c for c in cells}
    sac = by[(20.0, "stop-and-copy")]
    assert (sac["trials"], sac["ok"]) == (3, 3)
    assert (sac["downtime_s_mean"], sac["downtime_s_min"], sac["downtime_s_max"]) == (15.0, 14.0, 16.0)
    assert sac["downtime_s_sd"] == pytest.approx(1.0)
    assert sac["client_gap_s_mean"] == pytest.approx(15.05) and sac["total_s_mean"] == pytest.approx(45.0)
    assert sac["bytes_frozen_mean"] == pytest.approx(1.5e9) and sac["bytes_frozen_max"] == pytest.approx(1.6e9)
    assert by[(20.0, "pre-copy")]["vs_stop_and_copy"] == pytest.approx(5.0 / 15.0)
    assert by[(20.0, "post-copy")]["source_needed_s_mean"] == 20.0
    # the failed trial counts as a trial, not in the figures
    pre100 = by[(100.0, "pre-copy")]
    assert (pre100["trials"], pre100["ok"], pre100["downtime_s_mean"], pre100["downtime_s_max"]) == (3, 2, 17.5, 18.0)
    # the paper's figures only where it gives them: 1 GiB, 20%, stop-and-copy and pre-copy
    assert (sac["paper_downtime_s"], sac["paper_bytes_frozen"]) == (14.7, 1.2e9)
    assert by[(20.0, "pre-copy")]["paper_downtime_s"] == 5.4
    assert by[(20.0, "post-copy")]["paper_downtime_s"] == "" and by[(100.0, "pre-copy")]["paper_downtime_s"] == ""
    small = bench.aggregate([fake_row(cfg_of(20, size=128), "pre-copy", 1, 1.0)])[0]
    assert small["paper_downtime_s"] == "" and small["downtime_s_sd"] == 0.0
    assert math.isnan(small["vs_stop_and_copy"])


def test_a_cell_without_one_good_trial_has_no_figures():
    cells = bench.aggregate([fake_row(cfg_of(50), "post-copy", 1, 0, ok=False)])
    assert cells[0]["ok"] == 0 and math.isnan(cells[0]["downtime_s_mean"])
    md = bench.cell_tables(cells)
    assert "| post-copy | 0/1 | - | - | - |" in "\n".join(md)


# -- summary files -----------------------------------------------------------------------------------------------

META = {"stamp": "20261129T101500Z", "command": "PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench tier2",
        "started": "2026-11-29 10:15:00", "ended": "2026-11-29 11:15:00", "elapsed_s": 3600.0, "done": 18,
        "planned": 18, "machine": "nproc 2, kernel Linux 6.18", "load_start": "1.00, 0.90, 0.80",
        "load_end": "2.00, 1.50, 1.00", "link": "1gbit", "rate_bits": RATE,
        "raw": "reports/bench-tier2-20261129T101500Z.csv"}


def test_write_summary_writes_the_cells_and_the_markdown(tmp_path):
    csv_path, md_path = bench.write_summary(rows_for_matrix(), META, str(tmp_path / "results"))
    assert os.path.basename(csv_path) == "tier2-20261129T101500Z.csv"
    assert os.path.basename(md_path) == "tier2-20261129T101500Z.md"
    with open(csv_path) as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == bench.SUMMARY_COLUMNS
        rows = list(reader)
    assert len(rows) == 6
    first = rows[0]
    assert (first["method"], first["working_set_pct"], first["ok"], first["trials"]) == ("stop-and-copy", "20", "3", "3")
    assert (first["downtime_s_mean"], first["downtime_s_min"], first["downtime_s_max"]) == ("15.0", "14.0", "16.0")
    assert first["paper_downtime_s"] == "14.7" and rows[2]["paper_downtime_s"] == ""
    text = open(md_path).read()
    assert "`PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench tier2`" in text
    assert "1.00, 0.90, 0.80 at the start, 2.00, 1.50, 1.00 at the end" in text
    assert "nproc 2, kernel Linux 6.18" in text and "18 of 18 planned" in text
    # one table per working set; the paper's figures only beside the 20% one
    assert text.count("## ramsim 1024 MiB, hot set") == 2
    part20, part100 = text.split("## ramsim 1024 MiB, hot set 20%")[1].split("## ramsim 1024 MiB, hot set 100%")
    assert "| stop-and-copy | 3/3 | 15.00 [14.00-16.00] | 1.00 | 1.00 |" in part20
    assert "| 14.7 s | 1.2 GB |" in part20 and "| 5.4 s | 171.0 MB |" in part20
    assert "1 GiB container, 1 Gbit/s, mean of 10 trials" in part20
    assert "paper" not in part100.split("## Goals")[0]
    assert "| pre-copy | 2/3 | 17.50 [17.00-18.00] |" in part100
    assert "pre-copy / stop-and-copy downtime = 0.33 (goal <= 0.3): NOT met" in text
    assert "post-copy source needed 20.0 s (goal <= 1.5 x memory / link = 12.9 s): NOT met" in text
    assert "client gap <= downtime + 0.1 s: met in 6 of 6 cells" in text


def test_an_interrupted_run_says_so(tmp_path):
    meta = dict(META, done=3, planned=18)
    _csv, md = bench.write_summary(rows_for_matrix()[:3], meta, str(tmp_path))
    assert "3 of 18 planned (run interrupted)" in open(md).read()


def test_fig4_is_drawn_from_the_summary_csv(tmp_path):
    csv_path, _md = bench.write_summary(rows_for_matrix() + [
        fake_row(bench.configs(True, [], [20], None)[0], "pre-copy", 1, 0.6)], META, str(tmp_path))
    cells = bench.read_cells(csv_path)
    assert cells[0]["config"] == "video"      # video first, then the working sets in order
    assert math.isnan(cells[0]["vs_stop_and_copy"]) and cells[0]["paper_downtime_s"] == ""
    assert cells[1]["downtime_s_mean"] == 15.0 and cells[1]["paper_downtime_s"] == 14.7
    assert [c["working_set_pct"] for c in cells[1:]] == ["20"] * 3 + ["100"] * 3
    assert bench.main(["fig4", csv_path]) == 0
    png = csv_path[:-4] + ".png"
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# -- the run, with the lab faked -----------------------------------------------------------------------------------

def test_tier2_writes_the_raw_csv_and_the_summary(tmp_path, monkeypatch):
    reports, results = tmp_path / "reports", tmp_path / "results"
    ctl_calls, sizes = [], []
    monkeypatch.setattr(bench, "REPORTS", str(reports))
    monkeypatch.setattr(bench, "use_venv", lambda *a: None)
    monkeypatch.setattr(bench, "set_ramsim_size", lambda size, inv=None: sizes.append(size) or False)
    monkeypatch.setattr(bench, "ramsim_ctl", lambda ip, port, cmd, timeout=120: ctl_calls.append(cmd) or (
        "ok hot_pct=100.00 hot_pages=262144" if cmd.startswith(("hot", "dirty")) is False else "ok"))
    monkeypatch.setattr(bench, "run_one", lambda cfg, method, trial, lv, outdir, stamp, watch=False: fake_row(
        cfg, method, trial, {"stop-and-copy": 15.0, "pre-copy": 5.0}[method]))
    rc = bench.main(SINGLE_ROW + ["--results", str(results)])
    assert rc == 0
    raw = list(reports.glob("bench-tier2-*.csv"))
    assert len(raw) == 1
    with open(str(raw[0])) as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["working_set_pct"], r["trial"], r["ok"]) for r in rows] == [
        ("stop-and-copy", "20", "1", "True"), ("pre-copy", "20", "1", "True")]
    assert sizes == [1024]
    # the preflight asks for hotinfo; at the end the inventory's hot set and dirty rate are put back
    assert ctl_calls == ["hotinfo", "hot 100", "dirty 20"]
    md = list(results.glob("tier2-*.md"))
    assert len(md) == 1 and len(list(results.glob("tier2-*.csv"))) == 1
    # committed under docs/results: Unix line endings (ansible-test sanity's line-endings)
    assert b"\r" not in list(results.glob("tier2-*.csv"))[0].read_bytes()
    text = md[0].read_text()
    assert "--working-set 20 --methods stop-and-copy,pre-copy --trials 1 --no-video" in text
    assert "2 of 2 planned" in text and "| 14.7 s |" in text
    assert (reports / "downtime.png").exists()


def test_tier2_stops_before_migrating_when_ramsim_has_no_working_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "REPORTS", str(tmp_path))
    monkeypatch.setattr(bench, "use_venv", lambda *a: None)
    monkeypatch.setattr(bench, "set_ramsim_size", lambda size, inv=None: False)
    monkeypatch.setattr(bench, "ramsim_ctl", lambda ip, port, cmd, timeout=120: "error unknown command (status|...)")
    monkeypatch.setattr(bench, "run_one", lambda *a: pytest.fail("no migration without working sets"))
    with pytest.raises(SystemExit) as exc:
        bench.main(SINGLE_ROW + ["--results", str(tmp_path / "results")])
    assert "re-run playbooks/edges.yml" in str(exc.value)
    assert not (tmp_path / "results").exists()


def test_the_freeze_goal_is_pre_copys_time_frozen_in_all_over_its_downtime():
    rows = [fake_row(cfg_of(20), "stop-and-copy", 1, 10.0), fake_row(cfg_of(20), "pre-copy", 1, 2.5)]
    rows[1]["frozen_total_s"] = 3.0           # 0.5 s frozen in the iterations
    lines = bench.target_lines(bench.aggregate(rows), RATE)
    assert "pre-copy / stop-and-copy downtime = 0.25 (goal <= 0.3): met" in lines[0]
    assert "pre-copy frozen in all / its downtime = 1.20 (goal <= 1.5): met" in lines[1]
    rows[1]["frozen_total_s"] = 4.0
    assert "= 1.60 (goal <= 1.5): NOT met" in bench.target_lines(bench.aggregate(rows), RATE)[1]


def test_post_copys_drain_goal_is_checked_for_each_page_channel_without_a_stop_and_copy_cell():
    cells = [{"workload": "ramsim", "working_set_pct": 20.0, "size_mib": 1024, "config": "ramsim 1024 MiB hot 20%",
              "method": m, "ok": 3, "source_needed_s_mean": s, "client_gap_s_mean": ""}
             for m, s in (("post-copy", 40.0), ("post-copy/tls", 12.0), ("pre-copy/dump", 1.0))]
    lines = bench.target_lines(cells, 1e9)
    assert lines == ["ramsim 1024 MiB hot 20%: post-copy source needed 40.0 s (goal <= 1.5 x memory / link = 12.9 s): "
                     "NOT met",
                     "ramsim 1024 MiB hot 20%: post-copy/tls source needed 12.0 s (goal <= 1.5 x memory / link = "
                     "12.9 s): met"]


def test_a_rows_lazy_restore_columns_say_whether_the_copy_ran_before_its_memory_was_in():
    cfg = cfg_of(20)
    lazy = bench.row_from(cfg, "stop-and-copy", 1, True, {"downtime_s": 13.0, "lazy_restore": {
        "lazy": True, "why": "auto", "fill_s": 0.41}}, None, {"gap_s": 13.02, "ok": True}, "ok", RATE)
    eager = bench.row_from(cfg, "stop-and-copy/eager", 1, True, {"downtime_s": 14.0, "lazy_restore": {
        "lazy": False, "why": "lazy_restore=eager"}}, None, {"gap_s": 14.02, "ok": True}, "ok", RATE)
    assert (lazy["lazy_restore"], lazy["fill_s"]) == (True, 0.41)
    assert (eager["lazy_restore"], eager["fill_s"]) == (False, "")
    assert set(bench.CSV_COLUMNS) >= {"lazy_restore", "fill_s"}
