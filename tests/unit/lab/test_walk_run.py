"""The walk driver's pure parts (the walk itself: tests/lab/test_walk.py)."""
import os

from arnab_lab import walk_run


def test_handoffs_settle_when_every_started_one_has_ended():
    events = [{"type": "handoff", "seq": 1}, {"type": "handoff", "seq": 2}, {"type": "handoff_done", "seq": 1}]
    assert walk_run.handoffs_settled(events) == (False, [2])
    assert walk_run.handoffs_settled(events + [{"type": "handoff_done", "seq": 2}]) == (True, [])
    assert walk_run.handoffs_settled([]) == (True, [])


class FakeSession(object):
    """What browser.watch returns, without Chromium: records marks, says what a stop returns."""

    def __init__(self, url, shots_dir):
        self.url, self.shots_dir, self.marks, self.killed = url, shots_dir, [], False

    def mark(self, label):
        self.marks.append(label)

    def stop(self, events_path=None):
        if "broken" in self.url:
            raise RuntimeError("browser: the client ended (exit 1)")
        return {"stalls": [], "screenshots": [os.path.join(walk_run.REPO, "reports", "x.png")], "events": events_path}

    def kill(self):
        self.killed = True


class FakeLab(object):
    def in_node(self, node):
        return ["nsenter", node]


def test_a_browser_watches_each_client_whose_service_serves_web_video(monkeypatch, tmp_path):
    started = {}

    def watch(url, shots_dir, wrap=None):
        if "10.0.0.3" in url:
            raise RuntimeError("the player did not start playing %s within 30 s" % url)
        started[url] = FakeSession(url, shots_dir)
        return started[url]
    monkeypatch.setattr(walk_run.browser, "watch", watch)
    services = {"c1": {"ip": "10.0.0.1", "hls_port": 8081}, "c2": {"ip": "10.0.0.2", "port": 8080},
                "c3": {"ip": "10.0.0.3", "hls_port": 8081}, "c4": {"ip": "broken", "hls_port": 1}}
    viewers = walk_run.Viewers(FakeLab(), services, str(tmp_path))
    assert sorted(viewers.sessions) == ["c1", "c4"] and list(viewers.why_not) == ["c3"]
    viewers.mark("before")
    viewers.mark("handoff 1", clients=["c1"])
    assert started["http://10.0.0.1:8081/"].marks == ["before", "handoff 1"]
    assert started["http://broken:1/"].marks == ["before"]
    players = viewers.stop()
    assert players["c1"]["screenshots"] == [os.path.join("reports", "x.png")]
    assert players["c1"]["events"] == os.path.join(str(tmp_path), "browser-c1", "events.json")
    assert players["c3"] == {"error": "the player did not start playing http://10.0.0.3:8081/ within 30 s"}
    assert players["c4"] == {"error": "browser: the client ended (exit 1)"}
    assert "c2" not in players
    assert all(s.killed for s in started.values())     # nothing of any browser is left, failed stop or not
