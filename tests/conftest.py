"""Make the checkout importable as ansible_collections.arnab.testbed and the lab as arnab_lab."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
sys.path.insert(0, os.path.join(ROOT, "lab"))


# -- real Click with the OdinAgent element (docs/click.md) ---------------------------------------------------
import pytest  # noqa: E402

NO_CLICK = ("no Click build with OdinAgent: `make click` builds one from ARNAB_CLICK_SRC (docs/click.md) and links "
            "build/click; or point ARNAB_CLICK at a click binary")


def click_binary():
    """$ARNAB_CLICK, else build/click (linked by scripts/build-click.sh); None when there is none."""
    path = os.environ.get("ARNAB_CLICK") or os.path.join(ROOT, "build", "click")
    return os.path.realpath(path) if os.path.isfile(path) and os.access(path, os.X_OK) else None


@pytest.fixture
def real_click():
    path = click_binary()
    if not path:
        pytest.skip(NO_CLICK)
    return path


@pytest.fixture
def harmless_hostapd_cli(tmp_path):
    """A directory for PATH with a `hostapd_cli` that only logs its arguments: OdinAgent calls
    system("hostapd_cli -i wlan0 chan_switch ...") when its channel or scan handlers are written."""
    bindir = tmp_path / "hostapd-bin"
    bindir.mkdir()
    log = tmp_path / "hostapd_cli.log"
    script = bindir / "hostapd_cli"
    script.write_text("#!/bin/sh\necho \"$*\" >> %s\nexit 0\n" % log)
    script.chmod(0o755)
    return str(bindir), log
