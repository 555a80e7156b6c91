"""arnab_lab.report: the summary's browser line and the throughput plot with the player's stalls."""
import json

from arnab_lab import report

PLAYER = {"stalls": [{"t": 12.5, "ms": 640}, {"t": 20.0, "ms": 200}], "stall_count": 2, "stalled_ms": 840,
          "frames_decoded_before": 75, "frames_decoded_after": 80, "picture_frames": [4883, 5217, 6384],
          "screenshots": ["reports/x-browser/00-before.png", "reports/x-browser/01-after.png"], "started_at": 100.0}


def double_tier(player=None):
    rep = {"ok": True, "client": "client1", "service": "video",
           "client_stream": {"bin_ms": 10, "samples": [5000] * 3000, "started": 101.0, "gaps": [[113.0, 900]],
                             "bytes": 15000000, "ok": True},
           "timeline": [{"t": 105.0, "tier": 1, "event": "tier 1 start ap1->ap2"},
                        {"t": 110.0, "tier": 2, "event": "tier 2 start (stop-and-copy)"}]}
    if player is not None:
        rep["browser"] = player
    return rep


def test_the_summary_says_what_the_viewer_saw():
    line = [x for x in report.summary(double_tier(PLAYER)) if x.startswith("browser")][0]
    assert "2 stall(s), 840 ms in all, longest 640 ms" in line
    assert "75 before, 80 after" in line and "4883 -> 5217 -> 6384" in line and "2 screenshot(s)" in line


def test_a_run_without_stalls_or_without_a_browser():
    calm = dict(PLAYER, stalls=[], stall_count=0, stalled_ms=0)
    assert "no stall" in report.browser_line(calm)
    assert report.browser_line({"error": "video serves no web video"}).endswith("video serves no web video")
    assert not [x for x in report.summary(double_tier()) if x.startswith("browser")]


def stall_spans(monkeypatch, tmp_path, rep):
    """The purple spans plot_throughput drew, as (x0, x1) in the plot's seconds."""
    figs = []
    subplots = report.plt.subplots
    monkeypatch.setattr(report.plt, "subplots", lambda *a, **k: figs.append(subplots(*a, **k)) or figs[-1])
    path = report.plot_throughput(rep, str(tmp_path / "fig3.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    ax = figs[-1][1]
    purple = [p for p in ax.patches if p.get_label() == "player stalled" or p.get_facecolor()[:3] == (
        0.5803921568627451, 0.403921568627451, 0.7411764705882353)]
    return sorted(round(p.get_x(), 3) for p in purple), sorted(round(p.get_x() + p.get_width(), 3) for p in purple)


def test_the_plot_marks_the_stalls_on_the_stream_s_timeline(monkeypatch, tmp_path):
    rep = double_tier(PLAYER)
    json.dumps(rep)          # what demo.py writes
    # the player started at 100.0, the stream at 101.0: a stall 12.5 s into playback is at 11.5 s on the plot
    assert stall_spans(monkeypatch, tmp_path, rep) == ([11.5, 19.0], [12.14, 19.2])
    assert stall_spans(monkeypatch, tmp_path, double_tier()) == ([], [])
