"""labctl: up | down | status | exec NODE -- CMD. Prints one JSON object (exec: the command's own output)."""
import argparse
import json
import os
import sys
import time

from arnab_lab import lab, topology

DEFAULT_INVENTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                 "inventories", "lab")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__)
    parser.add_argument("--inventory", "-i", action="append", help="inventory source (repeatable; default %s)"
                        % DEFAULT_INVENTORY)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="make the lab match the inventory (idempotent)")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="what is missing or dead")
    ex = sub.add_parser("exec", help="run a command inside a node's namespaces")
    ex.add_argument("node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        topo = topology.from_inventory(topology.load_inventory(args.inventory or [DEFAULT_INVENTORY]))
        if args.command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if args.node not in topo.nodes:
                raise lab.LabError("unknown node %r (nodes: %s)" % (args.node, ", ".join(topo.nodes)))
            os.execvp("nsenter", lab.in_node(topo, args.node, cmd or ["sh"]))
        if args.command == "up":
            changed, details = lab.up(topo)
        elif args.command == "down":
            removed = lab.down(topo)
            changed, details = bool(removed), {"removed": removed}
        else:
            found = lab.problems(topo)
            changed, details = False, {"healthy": not found, "problems": found}
    except (lab.LabError, topology.TopologyError) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    details.update(changed=changed, seconds=round(time.monotonic() - started, 2))
    print(json.dumps(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
