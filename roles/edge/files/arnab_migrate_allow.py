# -*- coding: utf-8 -*-
# arnab.testbed: forced command for the edge-to-edge migration key (authorized_keys: restrict,command="...").
#
# Runs SSH_ORIGINAL_COMMAND only when every part of it is on the allow-list, and runs it WITHOUT a shell:
#   - the command is split like a POSIX shell would (quotes respected); parts may be chained with "&&" or ";"
#     (each part runs in turn, "&&" stops at the first failure); pipes, redirections, $, backticks, globs,
#     sub-shells are refused;
#   - each part's program (basename) must be in "commands"; rsync only as "rsync --server ..." (what a client
#     rsync runs remotely);
#   - every absolute path in the arguments (also in --opt=/path) must lie under one of "paths"
#     (after normalisation, so /var/lib/lxc/../../etc is refused); ".." is refused in relative paths except
#     in the values criu/LXC take relative to the images dir (--prev-images-dir, --predump-dir).
# The allow-list is JSON (default /etc/arnab-migrate-allow.json): {"commands": [...], "paths": [...]}.
# Refusals go to stderr and exit 126.
from __future__ import print_function

import json
import os
import shlex
import sys

CONFIG = os.environ.get("ARNAB_MIGRATE_ALLOW_CONFIG", "/etc/arnab-migrate-allow.json")
DEFAULT = {
    "commands": ["rsync", "true", "test", "ls", "stat", "cat", "mkdir", "rm", "find", "du", "sync", "criu",
                 "lxc-checkpoint", "lxc-info", "lxc-ls", "lxc-start", "lxc-stop", "arnab-txoff"],
    "paths": ["/var/lib/lxc", "/var/lib/arnab-migrate", "/run/arnab-migrate", "/tmp/arnab-migrate"],
}
RELATIVE_DOTDOT_OPTIONS = ("--prev-images-dir", "--predump-dir")
FORBIDDEN_CHARS = set("|<>$`(){}*?[]!~\\\n")
OPERATORS = ("&&", ";")


class Refused(Exception):
    pass


def load_config(path=CONFIG):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (IOError, OSError, ValueError):
        return dict(DEFAULT)
    return {"commands": list(cfg.get("commands", DEFAULT["commands"])),
            "paths": list(cfg.get("paths", DEFAULT["paths"]))}


def split_command(command):
    """Split into parts: ``[(operator_before, argv), ...]``; raise Refused on shell syntax we do not run."""
    if not command or not command.strip():
        raise Refused("no command (interactive sessions are not allowed with this key)")
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    tokens = list(lexer)
    parts, current, op = [], [], None
    for tok in tokens:
        if tok in OPERATORS:
            if not current:
                raise Refused("empty command before %r" % tok)
            parts.append((op, current))
            current, op = [], tok
            continue
        if set(tok) <= set(";&|<>()"):
            raise Refused("shell operator %r is not allowed" % tok)
        bad = FORBIDDEN_CHARS.intersection(tok)
        if bad:
            raise Refused("character %r is not allowed (%r)" % (sorted(bad)[0], tok))
        current.append(tok)
    if current:
        parts.append((op, current))
    elif parts:
        raise Refused("command ends with an operator")
    return parts


def under(path, roots):
    path = os.path.normpath(path)
    for root in roots:
        root = os.path.normpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def check_argv(argv, cfg):
    prog = os.path.basename(argv[0])
    if prog not in cfg["commands"]:
        raise Refused("%s is not on the allow-list" % prog)
    if "/" in argv[0]:
        raise Refused("give the program by name, not path: %s" % argv[0])
    if prog == "rsync" and (len(argv) < 2 or argv[1] != "--server"):
        raise Refused("rsync is allowed only as 'rsync --server ...'")
    prev = None
    for arg in argv[1:]:
        value, opt = arg, prev
        if arg.startswith("-") and "=" in arg:
            opt, value = arg.split("=", 1)
        if value.startswith("/"):
            if not under(value, cfg["paths"]):
                raise Refused("path %s is outside %s" % (value, ", ".join(cfg["paths"])))
        elif ".." in value.split("/") and opt not in RELATIVE_DOTDOT_OPTIONS:
            raise Refused("'..' is not allowed in %r" % arg)
        prev = arg
    return prog


def run(parts):
    rc = 0
    for op, argv in parts:
        if op == "&&" and rc != 0:
            return rc
        try:
            pid = os.fork()
        except OSError as e:
            print("arnab-migrate-allow: fork: %s" % e, file=sys.stderr)
            return 126
        if pid == 0:
            try:
                os.execvp(argv[0], argv)
            except OSError as e:
                print("arnab-migrate-allow: %s: %s" % (argv[0], e), file=sys.stderr)
                os._exit(127)
        status = os.waitpid(pid, 0)[1]
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    return rc


def main(environ=None):
    environ = os.environ if environ is None else environ
    cfg = load_config()
    command = environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        parts = split_command(command)
        for _op, argv in parts:
            check_argv(argv, cfg)
    except Refused as e:
        print("arnab-migrate-allow: refused: %s" % e, file=sys.stderr)
        return 126
    if len(parts) == 1:
        argv = parts[0][1]
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            print("arnab-migrate-allow: %s: %s" % (argv[0], e), file=sys.stderr)
            return 127
    return run(parts)


if __name__ == "__main__":
    sys.exit(main())
