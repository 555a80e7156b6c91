from ansible_collections.arnab.testbed.plugins.filter.timeline import FilterModule, timeline_event


def test_both_tiers_land_on_the_epoch_clock():
    expected = {"t": 1000.25, "tier": 1, "event": "add_vap"}
    assert timeline_event({"step": "add_vap", "start_ms": 250.0}, 1000.0, 1) == expected
    assert timeline_event({"step": "freeze: final dump", "t": 3.5}, "1000.0", "2") == {
        "t": 1003.5, "tier": 2, "event": "freeze: final dump"}
    assert FilterModule().filters()["timeline_event"] is timeline_event
