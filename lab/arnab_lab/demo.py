"""`make demo`: bring the emulated lab up, run the main job and print its report."""
import sys
import time

from arnab_lab.runner import PlaybookFailed, run_playbook


def main():
    started = time.monotonic()
    try:
        print("[demo] lab up (emulated ARNAB testbed, see lab/README.md)", file=sys.stderr)
        run_playbook("lab.yml", {"lab_state": "present"})
        print("[demo] smoke play over every lab host", file=sys.stderr)
        results = run_playbook("smoke.yml")
    except PlaybookFailed as exc:
        print("[demo] FAILED: %s" % exc, file=sys.stderr)
        return 1
    topology = results["localhost"]["Topology of the testbed"]["msg"]
    print("\nARNAB testbed (emulated lab)")
    for line in topology:
        print("  " + line)
    print("\ndone in %.1f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
