#!/bin/sh
# Measure the client's gap across a real 802.11 channel switch (CSA) in the radio guest (issue #6 c):
#   lab/guest/radio_csa.sh [--reps N] [--cs-count C] [--interval-ms MS] [--keep] [--out FILE]
# Boots the radio guest (mac80211_hwsim, hostapd, wpa_supplicant; lab/guest/csa_measure.py runs inside),
# measures, stops it, prints one JSON object (median/p90 gap). See docs/guest-radio.md.
here=$(dirname "$(readlink -f "$0")")
repo="$here/../.."
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3
PYTHONPATH="$repo/lab${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m arnab_lab.guest radio-csa "$@"
