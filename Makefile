# arnab.testbed: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/$(VENV):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# ansible-rulebook (the OCS, docs/ocs.md) needs a Java 17 runtime
export JAVA_HOME ?= $(firstword $(wildcard /usr/lib/jvm/java-17-openjdk-*))
PLAYBOOK := $(VENV)/ansible-playbook -i inventories/lab

.PHONY: demo test setup lab-up lab-down unit integration sanity lint molecule bench bench-quick bench-tier1 bench-tier2 \
	test-guest clean click test-click test-faults bench-ocs test-tier1-real bench-tier1-agents \
	bench-commit-point bench-postcopy-channel bench-netfix ocs-up ocs-down walk

## The main job: set up, bring the emulated lab up, run it and print its report.
demo: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.demo

## Everything CI runs: unit tests, real Click (built first when a source is there, so that the lab tests run tier 1
## against it too), lab tests (with a CI-size subset of the fault drills), ansible-test sanity, ansible-lint, molecule
## scenarios and the faithful mode's guests; the lab is brought down at the end, pass or fail.
test: setup
	@rc=0; $(MAKE) --no-print-directory unit test-click integration sanity lint molecule test-guest || rc=$$?; \
	$(MAKE) --no-print-directory lab-down >/dev/null || true; exit $$rc

setup:
	@bash scripts/setup.sh

lab-up: setup
	$(PLAYBOOK) playbooks/lab.yml -e lab_state=present

lab-down:
	@if [ -x $(VENV)/ansible-playbook ]; then $(PLAYBOOK) playbooks/lab.yml -e lab_state=absent; \
	else lab/labctl down; fi

unit: setup
	$(VENV)/pytest tests/unit

## Tests that need root and real parts (namespaces, OVS, sshd, LXC); they build and clean up their own.
integration: setup
	$(VENV)/pytest tests/lab -m "not drill or ci_drill"

## Every fault drill (issue #9): a fault at each phase of each method ends with exactly one running copy
## (tests/lab/test_faults.py; docs/reliability.md). About 40 min; `make test` runs the ci_drill subset.
test-faults: setup
	$(VENV)/pytest -v -s tests/lab/test_faults.py

sanity: setup
	bash scripts/sanity.sh

lint: setup
	$(VENV)/ansible-lint --nocolor

molecule: setup
	bash scripts/molecule.sh

## Real Click with the OdinAgent element, built from ARNAB_CLICK_SRC and cached by source hash (docs/click.md);
## test-click loads every inventory's agent configuration in it and runs the differential test against the
## emulated agent (skipped, saying so, when no Click source is available).
click: setup
	bash scripts/build-click.sh

test-click: setup
	bash scripts/build-click.sh --if-available >/dev/null
	$(VENV)/pytest -v -rs tests/click

## Tier 1's lab tests against real Click with OdinAgent (lab.agent: real) on a private lab instance (prefix arnabr,
## 10.67-69.x; the main lab is left alone), about 3 min; skipped, saying so, without a Click build.
test-tier1-real: setup
	bash scripts/build-click.sh --if-available >/dev/null
	$(VENV)/pytest -v -rs tests/lab/test_tier1_real_click.py

## What the user sees (issue 11, lab/video/README.md): `video` renders the test video (scripts/build-video.sh, cached
## by recipe; setup does it too); `test-browser` plays it in headless Chromium from nginx + the live playlist's
## advancer in a private network namespace, through a 3 s server pause (tests/browser; root, about 30 s, no lab).
.PHONY: video test-browser
video: setup
	bash scripts/build-video.sh

test-browser: setup
	$(VENV)/pytest -v -s -rs tests/browser

## Tier 1's control path with the emulated agent and with real Click, side by side (two private instances in turn).
bench-tier1-agents: setup
	bash scripts/build-click.sh
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_agents $(BENCH_ARGS)

## Benchmarks (ratios measured side by side in one run; see docs/benchmarks.md).
bench-tier1: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_tier1

bench-tier2: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench tier2 $(BENCH_ARGS)

## The commit point's cost (issue #9): stop-and-copy of `video` with and without it, alternating, in one run.
bench-commit-point: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_commit $(BENCH_ARGS)

## Post-copy's page channel (issue #9): the drain inside SSH against criu's cleartext page server, alternating.
bench-postcopy-channel: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_channel $(BENCH_ARGS)

## The net fix after a restore (issue #11): nsenter commands vs the receiver's in-process child, alternating.
bench-netfix: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_netfix $(BENCH_ARGS)

bench: bench-tier1 bench-tier2

## The OCS's event source under load: 100 synthetic agents on 127.0.0.1, 10 publishes/s each, 15 s (no lab needed).
bench-ocs: setup
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_ocs $(BENCH_ARGS)

## The OCS on the lab (docs/ocs.md): ansible-rulebook with extensions/eda/rulebooks/ocs.yml in the ocs node (roles/ocs
## through playbooks/ocs.yml; pid file, log, state, events and handoff reports under /run/arnab-lab/ocs). The lab must
## be up and provisioned (make lab-up, site.yml).
ocs-up: setup
	$(PLAYBOOK) playbooks/ocs.yml -e ocs_eda_state=started

ocs-down: setup
	$(PLAYBOOK) playbooks/ocs.yml -e ocs_eda_state=stopped

## The OCS runs the testbed by itself (issue 12): it decides every handoff while the radio replays SCENARIO (default
## scenarios/walk.yml) and each client streams from its service; reports/walk-<UTC>.json, a throughput plot per
## client, and the table (lab/arnab_lab/walk_run.py).
SCENARIO ?= scenarios/walk.yml
walk: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.walk_run --scenario $(SCENARIO) $(WALK_ARGS)

bench-quick: setup lab-up
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench_tier1 --quick
	PYTHONPATH=lab $(VENV)/python -m arnab_lab.bench tier2 --quick

## Faithful mode (issue #6): Debian guests under qemu TCG, soft-dirty pre-copy between guest edges and a real 802.11
## CSA. Root; 16-25 min (+2-4 min for the first image build). Guests, taps and bridges are removed even on failure.
test-guest: setup
	bash scripts/setup.sh guest
	lab/labctl up >/dev/null
	$(VENV)/pytest -v tests/guest; rc=$$?; PYTHONPATH=lab $(VENV)/python -m arnab_lab.guest down >/dev/null; exit $$rc

clean: lab-down
	rm -rf build reports .pytest_cache
