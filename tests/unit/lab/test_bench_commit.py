"""The commit point's bench: its summary of paired runs (the migrations themselves run on the lab)."""
from arnab_lab import bench_commit


def _run(variant, pair, downtime, dump, ok=True):
    return {"variant": variant, "pair": pair, "ok": ok, "downtime_s": downtime,
            "frozen": {"dump_s": dump, "restore_s": 0.3}}


def test_summary_gives_medians_and_paired_differences():
    runs = [_run("commit-point", 0, 0.50, 0.20), _run("no-commit-point", 0, 0.48, 0.19),
            _run("no-commit-point", 1, 0.60, 0.21), _run("commit-point", 1, 0.61, 0.22),
            _run("commit-point", 2, 0.55, 0.21), _run("no-commit-point", 2, 0.52, 0.20),
            _run("commit-point", 3, 9.0, 0.2, ok=False)]
    res = bench_commit.summary(runs)
    assert res["commit-point"]["n"] == 3 and res["no-commit-point"]["n"] == 3     # a failed run is left out
    assert res["commit-point"]["downtime_s"] == 0.55 and res["no-commit-point"]["downtime_s"] == 0.52
    assert res["added_by_commit_point_s"] == {"downtime_s": 0.03, "dump_s": 0.01}
    assert res["paired_difference_median_s"] == 0.02
    text = bench_commit.markdown(res, "make bench-commit-point", "2026-11-29T00:00:00Z")
    assert "| commit-point | 3 | 0.550 s (0.500-0.610)" in text and "+30.0 ms" in text


def test_summary_of_one_engine_only_has_no_difference():
    res = bench_commit.summary([_run("commit-point", 0, 0.5, 0.2)])
    assert "added_by_commit_point_s" not in res and res["commit-point"]["n"] == 1
