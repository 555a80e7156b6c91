# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tier 1 migration: move a client's vAP (and its flows) from the AP serving it to another AP.

Order (the Odin master's multichannel handoff, the ARNAB paper's removal after the switch, and the
cleanup Odin never did):
  1. the client's flows at the new AP's switch;
  2. channel_switch_announcement on the serving agent when the channels differ;
  3. add_vap on the new agent;
  4. after a CSA, wait until the client has left the old channel (count x beacon interval): the old vAP
     keeps serving the client until then;
  5. on the data switch, the client's traffic toward the new AP's port;
  6. remove_vap on the old agent;  7. the client's flows off the old AP.
Everything that can fail without changing anything (addresses, AP names, reachability of every agent
and switch, the client's current vAP) is checked first; if a later step fails, the steps already done
are undone in reverse order (a CSA already sent cannot be undone: the result says so).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.arnab.testbed.plugins.module_utils import odin, openflow
from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlError

AUTO = "auto"
# The steps between the start of a move and the new AP serving the vAP with its flows in place.
SERVING_STEPS = ("flows_new_ap", "channel_switch_announcement", "add_vap", "set_vap", "flows_data_switch")


class MigrationError(Exception):
    def __init__(self, message, **details):
        super(MigrationError, self).__init__(message)
        self.details = details


class ApSpec:
    """One candidate AP: its agent and, optionally, its switch and data switch port."""

    def __init__(self, name, agent, port=odin.CONTROL_PORT, switch=None, ap_port="ap", uplink_port="eth1",
                 data_switch_port=None):
        self.name, self.agent, self.port = name, agent, port
        self.switch = switch
        self.ap_port, self.uplink_port = ap_port, uplink_port
        self.data_switch_port = data_switch_port or name


class Step:
    def __init__(self, name, commands, do, undo=None):
        self.name, self.commands, self.do, self.undo = name, commands, do, undo


class VapMigration:
    """``VapMigration(...).run(check_mode)`` -> result dict. Agents and switches come from factories so
    tests can fake them: agent_factory(host, port, timeout) -> OdinAgentClient-like (connected on
    connect()), flow_table_factory(target) -> openflow.FlowTable-like."""

    def __init__(self, sta_mac, aps, target, agent_factory, flow_table_factory, data_switch=None,
                 sta_ip=None, ssids=None, cookie=None, arp=True, scan_time=0.2, timeout=5.0,
                 wait_for_channel_switch=True, clock=time.monotonic, sleep=time.sleep):
        self.aps = dict((ap.name, ap) for ap in aps)
        self.sta_mac = odin.normalize_mac(sta_mac, "sta_mac")
        if target != AUTO and target not in self.aps:
            raise MigrationError("target %r is not one of the APs given (%s) nor 'auto'"
                                 % (target, ", ".join(sorted(self.aps))))
        self.sta_ip = odin.normalize_ip(sta_ip, "sta_ip") if sta_ip else None
        self.ssids = [odin.normalize_ssid(s) for s in ssids] if ssids else None
        self.target = target
        self.agent_factory, self.flow_table_factory = agent_factory, flow_table_factory
        self.data_switch = data_switch
        self.cookie = cookie if cookie is not None else openflow.client_cookie(self.sta_mac)
        self.arp, self.scan_time, self.timeout = arp, scan_time, timeout
        self.wait_for_channel_switch = wait_for_channel_switch
        self.clock, self.sleep = clock, sleep
        self.t_start = clock()
        self.t_start_epoch = time.time()   # to line this migration up with other clocks (the client's stream)
        self.timeline = []
        self.agents, self.tables, self.channels, self.intervals, self.switches = {}, {}, {}, {}, {}

    # -- timing ---------------------------------------------------------------------------------------

    def _timed(self, name, action, detail=None):
        start = self.clock()
        try:
            return action()
        finally:
            entry = {"step": name, "start_ms": round((start - self.t_start) * 1000, 2),
                     "duration_ms": round((self.clock() - start) * 1000, 2)}
            if detail:
                entry["detail"] = detail
            self.timeline.append(entry)

    # -- preflight: read everything, change nothing -----------------------------------------------------

    def preflight(self):
        unreachable = []
        for name, ap in sorted(self.aps.items()):
            try:
                agent = self.agent_factory(ap.agent, ap.port, self.timeout)
                agent.connect()
                self.agents[name] = agent
                self.tables[name] = agent.table()
                self.channels[name] = agent.channel()
                self.intervals[name] = agent.beacon_interval()
            except (ClickControlError, odin.OdinValueError, ValueError) as exc:
                unreachable.append("%s (%s): %s" % (name, ap.agent, exc))
        for target in [ap.switch for ap in self.aps.values() if ap.switch] + [self.data_switch]:
            if target and target not in self.switches:
                try:
                    table = self.flow_table_factory(target)
                    table.flows([self.cookie])
                    self.switches[target] = table
                except openflow.OpenFlowError as exc:
                    unreachable.append("switch %s: %s" % (target, exc))
        if unreachable:
            raise MigrationError("nothing changed; unreachable: %s" % "; ".join(unreachable))
        self.holders = [name for name in sorted(self.tables) if self.sta_mac in self.tables[name]]
        if not self.holders:
            raise MigrationError("nothing changed; client %s has no vAP on any of %s (create it with odin_vap)"
                                 % (self.sta_mac, ", ".join(sorted(self.aps))))
        current = self.tables[self.holders[0]][self.sta_mac]
        self.vap = odin.Vap.build(self.sta_mac, self.sta_ip or current.sta_ip, self.ssids or list(current.ssids),
                                  current.bssid)

    # -- choosing the target ------------------------------------------------------------------------------

    def scan(self):
        """Every other agent scans the client on the serving channel; the serving AP reports its RSSI."""
        serving = self.holders[0]
        channel = self.channels[serving]
        others = [n for n in sorted(self.aps) if n != serving]
        for name in others:
            self.agents[name].start_scan(self.sta_mac, channel)
        self.sleep(self.scan_time)
        levels = dict((name, self.agents[name].scan_result()) for name in others)
        levels[serving] = self.agents[serving].serving_rssi(self.sta_mac)
        return levels

    def choose(self):
        if self.target != AUTO:
            return self.target, None
        levels = self._timed("scan", self.scan)
        heard = [(level, name == self.holders[0], name) for name, level in levels.items() if level is not None]
        if not heard:
            raise MigrationError("nothing changed; no AP hears client %s" % self.sta_mac, scan=levels)
        return max(heard)[2], levels   # best RSSI; on a tie the serving AP wins (no needless move)

    # -- the plan -------------------------------------------------------------------------------------------

    def plan(self, to_ap):
        """Steps in order. The new AP's flows come first (harmless before its vAP exists, and the only
        step that is cheap to undo before the CSA, which cannot be undone); the data switch is steered
        to the new AP only once the client has left the old channel, so downlink traffic keeps
        reaching the client through the old AP during the CSA countdown."""
        steps = []
        new = self.aps[to_ap]
        old_holders = [n for n in self.holders if n != to_ap]
        from_ap = self.holders[0] if to_ap not in self.holders else to_ap
        agent = self.agents
        if new.switch:
            pair = openflow.odin_client_pair(self.vap.sta_ip, new.ap_port, new.uplink_port, self.cookie, arp=self.arp)
            steps.append(self._flow_step("flows_new_ap", new.switch, pair))
        csa = old_holders and self.channels[from_ap] != self.channels[to_ap]
        if csa:
            steps.append(Step("channel_switch_announcement",
                              ["%s: WRITE odinagent.channel_switch_announcement %s"
                               % (from_ap, odin.csa_args(self.vap, self.channels[to_ap]))],
                              lambda: agent[from_ap].channel_switch_announcement(self.vap, self.channels[to_ap])))
        if self.tables[to_ap].get(self.sta_mac) != self.vap:
            verb = "set_vap" if self.sta_mac in self.tables[to_ap] else "add_vap"
            write = agent[to_ap].set_vap if verb == "set_vap" else agent[to_ap].add_vap
            undo = (lambda: agent[to_ap].remove_vap(self.sta_mac)) if verb == "add_vap" else None
            steps.append(Step(verb, ["%s: WRITE odinagent.%s %s" % (to_ap, verb, self.vap.to_line())],
                              lambda: write(self.vap), undo))
        if csa and self.wait_for_channel_switch:
            wait_ms = odin.CSA_COUNT * self.intervals[from_ap]
            steps.append(Step("wait_channel_switch",
                              ["wait %d ms: the client leaves channel %d after %d beacons of %d ms"
                               % (wait_ms, self.channels[from_ap], odin.CSA_COUNT, self.intervals[from_ap])],
                              lambda: self.sleep(wait_ms / 1000.0)))
        if self.data_switch:
            steering = openflow.data_switch_steering(self.vap.sta_ip, new.data_switch_port, self.cookie)
            steps.append(self._flow_step("flows_data_switch", self.data_switch, steering))
        for name in old_holders:
            old_vap = self.tables[name][self.sta_mac]
            steps.append(Step("remove_vap", ["%s: WRITE odinagent.remove_vap %s" % (name, self.sta_mac)],
                              lambda a=agent[name]: a.remove_vap(self.sta_mac),
                              lambda a=agent[name], v=old_vap: a.add_vap(v)))
        for name in sorted(self.aps):
            old = self.aps[name]
            if name != to_ap and old.switch and old.switch != new.switch:
                step = self._flow_absent_step("flows_old_ap", old.switch, old)
                if step:
                    steps.append(step)
        return from_ap, steps

    def _flow_step(self, name, target, flows):
        table = self.switches[target]
        before = table.flows([self.cookie])
        argvs, _added, _deleted = table.plan(flows, [self.cookie])
        if not argvs:
            return Step(name, [], None)

        def undo():
            back, _a, _d = table.plan(before, [self.cookie])
            table.apply(back)
        return Step(name, [c.text() for c in argvs], lambda: table.apply(argvs), undo)

    def _flow_absent_step(self, name, target, ap):
        table = self.switches[target]
        before = table.flows([self.cookie])
        argvs, _gone = table.plan_absent(cookies=[self.cookie])
        if not argvs:
            return None

        def undo():
            back, _a, _d = table.plan(before, [self.cookie])
            table.apply(back)
        return Step("%s(%s)" % (name, ap.name), [c.text() for c in argvs],
                    lambda: table.apply(argvs), undo)

    # -- running ----------------------------------------------------------------------------------------------

    def run(self, check_mode=False):
        try:
            self._timed("preflight", self.preflight)
            to_ap, levels = self.choose()
            from_ap, steps = self.plan(to_ap)
            steps = [s for s in steps if s.commands]
            result = {"from_ap": from_ap, "to_ap": to_ap, "sta_mac": self.sta_mac, "vap": self.vap.to_dict(),
                      "cookie": self.cookie, "changed": bool(steps),
                      "channel_switch": self.channels[from_ap] != self.channels[to_ap] and from_ap != to_ap,
                      "commands": [c for s in steps for c in s.commands], "scan": levels}
            if not check_mode:
                # switches that can take flow changes over one OpenFlow connection get it now, before the
                # move starts: no ovs-ofctl process on the critical path
                if any(getattr(table, "wire", None) for table in self.switches.values()):
                    self._timed("openflow_connect", self._connect_switches)
                self._execute(steps)
            changes = [e for e in self.timeline if e["step"] not in ("preflight", "scan", "openflow_connect")]
            result["total_ms"] = round(changes[-1]["start_ms"] + changes[-1]["duration_ms"]
                                       - changes[0]["start_ms"], 2) if changes else 0.0
            # Start of the move -> the new AP serves the vAP with its flows in place: the CSA countdown the
            # client sits out, and the clean-up at the old AP, are not on that path.
            result["control_path_ms"] = round(sum(e["duration_ms"] for e in changes
                                                  if e["step"] in SERVING_STEPS), 2)
            result["started"] = self.t_start_epoch
            result["timeline"] = self.timeline
            return result
        finally:
            for agent in self.agents.values():
                try:
                    agent.close()
                except ClickControlError:
                    pass
            for table in self.switches.values():
                if hasattr(table, "close"):
                    table.close()

    def _connect_switches(self):
        for table in self.switches.values():
            if hasattr(table, "connect"):
                table.connect()

    def _execute(self, steps):
        done = []
        for step in steps:
            try:
                self._timed(step.name, step.do, step.commands)
            except (ClickControlError, openflow.OpenFlowError) as exc:
                rolled_back, rollback_errors = [], []
                for undo_step in reversed(done):
                    if undo_step.undo is None:
                        continue
                    try:
                        undo_step.undo()
                        rolled_back.append(undo_step.name)
                    except (ClickControlError, openflow.OpenFlowError) as undo_exc:
                        rollback_errors.append("%s: %s" % (undo_step.name, undo_exc))
                csa_sent = any(d.name == "channel_switch_announcement" for d in done)
                warning = "; the client was already told to switch channel (a CSA cannot be undone)" if csa_sent else ""
                raise MigrationError("step %s failed: %s%s" % (step.name, exc, warning),
                                     failed_step=step.name, csa_sent=csa_sent,
                                     rolled_back=rolled_back, rollback_errors=rollback_errors,
                                     timeline=self.timeline)
            done.append(step)
