"""Part (c): a real 802.11 channel switch (mac80211_hwsim, hostapd, wpa_supplicant) in the radio guest."""
import json
import os
import time

from arnab_lab import guest

REPS = int(os.environ.get("ARNAB_CSA_REPS", "10"))


def test_radio_guest_has_hwsim_and_a_csa_gap(radio_guest, timings):
    ip = radio_guest["ctl_ip"]
    assert guest.guest_ssh(ip, "uname -r").startswith("6.12")
    guest.guest_ssh(ip, "modinfo mac80211_hwsim >/dev/null")
    t0 = time.monotonic()
    rep = guest.radio_csa(radio_guest, reps=REPS)
    timings["csa_measure_s"] = round(time.monotonic() - t0, 1)
    timings["csa"] = {k: v for k, v in rep.items() if k != "runs"}
    path = os.path.join(guest.REPO, "reports", "guest-radio-csa.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rep, f, indent=1)
    assert rep["switched_ok"] == REPS, rep
    assert rep["disconnects"] == 0, rep
    assert rep["gap_ms_median"] is not None and rep["gap_ms_median"] > 0
    assert rep["gap_switch_ms_median"] is not None and rep["gap_switch_ms_median"] > 0, rep
    for run in rep["runs"]:
        assert run["ap_channel"] == run["to"] and run["client_channel"] == run["to"]
