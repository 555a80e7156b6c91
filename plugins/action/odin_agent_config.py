# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: render the Odin agent's Click configuration on the controller, write it on the AP
(no Python there) only when it differs, and, where Click is on the AP, only once ``click -q`` has loaded it.
Documentation: plugins/modules/odin_agent_config.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import posixpath
import shlex
import uuid

from ansible.plugins.action import ActionBase

from ansible_collections.arnab.testbed.plugins.module_utils import odin, validate

ABSENT_RC = 3  # our read command's exit code for "no file yet"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # nothing is copied through a remote temp dir

        spec = dict(odin.agent_config_argument_spec(),
                    dest=dict(type="path", default="/etc/odin/agent.cli"),
                    title=dict(type="str"),
                    click_path=dict(type="str", default="click"))
        validation, args = self.validate_argument_spec(argument_spec=spec)
        dest = args.pop("dest")
        title = args.pop("title") or task_vars.get("inventory_hostname")
        click_path = args.pop("click_path")
        try:   # nothing reaches the AP before every value is checked
            validate.strings(dict(args, dest=dest, title=title, click_path=click_path))
            validate.command(click_path, "click_path")
            content = odin.render_agent_config(args, name=title)
            config = odin.validate_agent_config(args)
        except (odin.OdinValueError, validate.ValidationError) as exc:
            return dict(result, failed=True, msg="invalid agent parameter: %s" % exc)

        quoted = shlex.quote(dest)
        read = self._low_level_execute_command(
            "if [ -f %s ]; then cat %s; else exit %d; fi" % (quoted, quoted, ABSENT_RC), sudoable=True)
        if read["rc"] == ABSENT_RC:
            before = None
        elif read["rc"] == 0:
            before = read["stdout"].replace("\r\n", "\n")   # a pty (sudoable) turns newlines into CRLF
        else:
            return dict(result, failed=True, msg="cannot read %s on the AP: %s" % (dest, read["stderr"].strip()))

        commands = []
        click_check = "unchanged"
        if before != content:
            click = self._find_click(click_path)
            click_check = "passed" if click else "skipped: no %s on the AP" % click_path
            if click:   # checked before anything is written (check mode too): Click reads it from its stdin
                checked = self._low_level_execute_command(self._check_command(click, content), sudoable=True)
                if checked["rc"] != 0:
                    return self._refused(result, dest, checked)
            commands = [self._write_command(dest, content)]
            if not self._task.check_mode:
                written = self._low_level_execute_command(commands[0], sudoable=True)
                if written["rc"] != 0:
                    return dict(result, failed=True, commands=commands,
                                msg="cannot write %s on the AP: %s" % (dest, written["stderr"].strip()))
        result.update(changed=bool(commands), dest=dest, commands=commands, config=config, click_check=click_check,
                      checksum=hashlib.sha1(content.encode("utf-8")).hexdigest())
        if self._task.diff:
            result["diff"] = dict(before=before or "", after=content, before_header=dest, after_header=dest)
        return result

    def _find_click(self, click_path):
        """The AP's Click as ``command -v`` finds it (APs have no Python: a raw command), or None."""
        found = self._low_level_execute_command("command -v %s || true" % shlex.quote(click_path), sudoable=True)
        lines = [line.strip() for line in found["stdout"].splitlines() if line.strip()]
        return lines[-1] if lines else None

    @staticmethod
    def _refused(result, dest, run):
        lines = [line.strip() for line in (run["stderr"] + run["stdout"]).splitlines() if line.strip()]
        return dict(result, failed=True, changed=False, commands=[], click_check="refused", click_errors=lines,
                    msg="Click refused the new configuration for %s; nothing was written: %s"
                        % (dest, " | ".join(lines) or "click -q exited %d" % run["rc"]))

    @staticmethod
    def _check_command(click, content):
        """``click -q`` loads the configuration from a here-document (devices and sockets idle, see
        odin.agent_config_for_check: the running agent holds them); nothing is written on the AP."""
        delimiter = "ARNAB_ODIN_EOF_%s" % uuid.uuid4().hex
        # The last line is a command of its own: the connection may append "&& ..." to what it runs.
        checked = odin.agent_config_for_check(content)
        return "%s -q 2>&1 <<'%s'\n%s%s\ntest $? -eq 0" % (shlex.quote(click), delimiter, checked, delimiter)

    @staticmethod
    def _write_command(dest, content):
        """mkdir, here-document into a temp file beside dest, then mv: a reader never sees half a file."""
        delimiter = "ARNAB_ODIN_EOF_%s" % uuid.uuid4().hex  # random: cannot occur in the rendered text
        tmp = "%s.%s.tmp" % (dest, uuid.uuid4().hex[:8])
        return "mkdir -p %s && cat > %s <<'%s'\n%s%s\nmv -f %s %s" % (
            shlex.quote(posixpath.dirname(dest) or "."), shlex.quote(tmp), delimiter, content, delimiter,
            shlex.quote(tmp), shlex.quote(dest))
