"""Faithful-mode tests (issue #6): Debian guests under qemu TCG. Run with `make test-guest` (root, the namespace
lab up or startable, qemu-system-x86 + qemu-utils + debootstrap installed, the Debian mirror reachable for the
first image build). Every guest is stopped and every tap removed in fixture finalizers, also when a test fails."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "lab"))

from arnab_lab import guest  # noqa: E402

INVENTORY = os.path.join(REPO, "inventories", "lab-guest")
TIMINGS = {}


def pytest_collection_modifyitems(items):
    # The radio guest first and alone, then the two edge guests (never more than two guests at once).
    items.sort(key=lambda it: 0 if "radio" in it.nodeid else 1)


def _skip_reason():
    if os.geteuid() != 0:
        return "guests need root (taps, bridges)"
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap", "mke2fs"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s missing (apt-get install qemu-system-x86 qemu-utils debootstrap e2fsprogs)" % tool
    return None


@pytest.fixture(scope="session")
def timings():
    yield TIMINGS
    path = os.path.join(REPO, "reports", "guest-timings.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(TIMINGS, f, indent=1)


@pytest.fixture(scope="session")
def image(timings):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    guest._ensure_namespace_lab()
    t0 = time.monotonic()
    changed, info = guest.build()
    timings["image_build_s" if changed else "image_cached_s"] = round(time.monotonic() - t0, 1)
    timings["image"] = {"hash": info["hash"], "recipe": info.get("recipe")}
    return info


@pytest.fixture(scope="session")
def inventory():
    return guest.load_inventory([INVENTORY])


@pytest.fixture(scope="module")
def edge_guests(image, inventory, timings):
    """edge1 and edge2 booted from a fresh overlay; stopped, taps and bridges removed afterwards, always."""
    guests = guest.guests_from_inventory(inventory)
    t0 = time.monotonic()
    try:
        changed, details = guest.up(guests, image)
        timings["edges_boot"] = details
        timings["edges_boot_wall_s"] = round(time.monotonic() - t0, 1)
        yield {g["name"]: g for g in guests}
    finally:
        guest.down()
        leftovers = [l for l in guest._links() if l.startswith(guest.TAP_PREFIX)]
        assert not leftovers, "taps left behind: %s" % leftovers


@pytest.fixture(scope="module")
def radio_guest(image, inventory, timings):
    radio = [g for g in guest.guests_from_inventory(inventory, include_radio=True) if g["role"] == "radio"]
    assert radio, "inventories/lab-guest has no lab.guest.radio"
    t0 = time.monotonic()
    try:
        changed, details = guest.up(radio, image)
        timings["radio_boot"] = details
        timings["radio_boot_wall_s"] = round(time.monotonic() - t0, 1)
        yield radio[0]
    finally:
        guest.down([radio[0]["name"]])
        if not guest._read_state().get("guests"):
            guest.down()


def run(argv, timeout=None, check=True, env=None):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed rc=%d\nstdout: %s\nstderr: %s" % (
            " ".join(argv), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc
