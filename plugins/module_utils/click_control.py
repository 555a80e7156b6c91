# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client for Click's ControlSocket protocol (version 1.x), as spoken by an Odin agent on TCP 6777.

Pure standard library: it runs on the control node, because APs have no Python.

Protocol summary (see docs of Click's ControlSocket element):
  * on connect the server sends a banner line ``Click::ControlSocket/1.x``;
  * every command gets one or more status lines ``NNN text``; all but the last use ``NNN-text``;
  * READ / READDATA / LLRPC replies carry ``DATA <n>`` and exactly n bytes after a 2xx status;
  * 2xx is success (220 = success with warnings), 5xx is failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket

DEFAULT_PORT = 6777
BANNER_PREFIX = "Click::ControlSocket/1."

# Every status code Click's ControlSocket defines, with what it means to a user.
STATUS_MEANINGS = {
    200: "OK",
    220: "OK, but the handler reported warnings",
    500: "syntax error",
    501: "unimplemented command",
    510: "no such element",
    511: "no such handler",
    520: "handler error",
    521: "data too big",
    522: "LLRPC error",
    530: "permission denied",
    540: "no router installed",
    590: "unspecified error",
}

_STATUS_LINE = re.compile(r"^(\d{3})([ -])(.*)$")
_DATA_LINE = re.compile(r"^DATA (\d+)$")


class ClickControlError(Exception):
    """Any failure talking to a ControlSocket.

    ``code`` is the 3-digit status code for a refused command, or None when the transport failed
    (connection refused, timeout, bad banner, connection closed, malformed reply).
    """

    def __init__(self, message, code=None, command=None, endpoint=None):
        self.code = code
        self.message = message
        self.command = command
        self.endpoint = endpoint
        super(ClickControlError, self).__init__(self.__str__())

    @property
    def meaning(self):
        if self.code is None:
            return "transport error"
        return STATUS_MEANINGS.get(self.code, "unknown status")

    @property
    def is_transport_error(self):
        return self.code is None

    def __str__(self):
        where = " at %s" % self.endpoint if self.endpoint else ""
        what = " for %r" % self.command if self.command else ""
        if self.code is None:
            return "ControlSocket%s: %s%s" % (where, self.message, what)
        return "ControlSocket%s: %d %s%s: %s" % (where, self.code, self.meaning, what, self.message)


class Reply:
    """A command's status: the final code and every message line (continuations included)."""

    def __init__(self, code, lines, data=None):
        self.code = code
        self.lines = lines
        self.data = data

    @property
    def ok(self):
        return 200 <= self.code < 300

    @property
    def warnings(self):
        """Lines after the first of a 220 reply (the handler's warning texts)."""
        return self.lines[1:] if self.code == 220 else []

    @property
    def message(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class ClickControlClient:
    """One connection to a ControlSocket.

    >>> with ClickControlClient("10.77.0.11") as agent:
    ...     table = agent.read("odinagent.table")
    ...     agent.write("odinagent.remove_vap", "02:c0:00:00:00:01")
    """

    def __init__(self, host, port=DEFAULT_PORT, timeout=5.0, connect_timeout=3.0):
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.banner = None
        self._sock = None
        self._buffer = b""

    # -- connection --------------------------------------------------------------------------------

    @property
    def endpoint(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def protocol_version(self):
        return self.banner.split("/", 1)[1] if self.banner else None

    def connect(self):
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except socket.timeout:
            raise self._transport_error("connect timed out after %ss" % self.connect_timeout)
        except OSError as exc:
            raise self._transport_error("cannot connect: %s" % (exc.strerror or exc))
        self._sock.settimeout(self.timeout)
        self._buffer = b""
        try:
            banner = self._read_line()
        except ClickControlError:
            self.close(send_quit=False)
            raise
        if not banner.startswith(BANNER_PREFIX):
            self.close(send_quit=False)
            raise self._transport_error("not a Click ControlSocket 1.x (banner %r)" % banner[:80])
        self.banner = banner
        return self

    def close(self, send_quit=True):
        if self._sock is None:
            return
        if send_quit:
            try:
                self.quit()
            except ClickControlError:
                pass  # closing anyway; the server may already be gone
        try:
            self._sock.close()
        finally:
            self._sock = None
            self._buffer = b""

    def __enter__(self):
        if self._sock is None:
            self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- commands ----------------------------------------------------------------------------------

    def read(self, handler, *args):
        """READ handler [args]: returns the handler's data as text."""
        reply = self._command(self._line("READ", handler, *args), expect_data=True)
        return reply.data.decode("utf-8", "replace")

    def read_data(self, handler, payload):
        """READDATA handler <n> + n bytes of arguments (arguments may contain newlines)."""
        payload = _to_bytes(payload)
        line = self._line("READDATA", handler, str(len(payload)))
        reply = self._command(line, payload=payload, expect_data=True)
        return reply.data.decode("utf-8", "replace")

    def write(self, handler, *args):
        """WRITE handler args: returns the Reply (check ``reply.warnings`` for a 220)."""
        return self._command(self._line("WRITE", handler, *args))

    def write_data(self, handler, payload):
        """WRITEDATA handler <n> + n bytes (for values with newlines or of any size)."""
        payload = _to_bytes(payload)
        return self._command(self._line("WRITEDATA", handler, str(len(payload))), payload=payload)

    def check_read(self, handler):
        """CHECKREAD: True if the handler exists and is readable, False if not; raises on other errors."""
        return self._check("CHECKREAD", handler)

    def check_write(self, handler):
        """CHECKWRITE: True if the handler exists and is writable."""
        return self._check("CHECKWRITE", handler)

    def llrpc(self, name, payload=b""):
        """LLRPC element#hexnumber [n]: returns the LLRPC's output bytes."""
        payload = _to_bytes(payload)
        words = ["LLRPC", name] + ([str(len(payload))] if payload else [])
        return self._command(self._line(*words), payload=payload, expect_data=True).data

    def quit(self):
        """QUIT: the server answers 200 and closes the connection."""
        return self._command("QUIT")

    # -- protocol internals ------------------------------------------------------------------------

    def _check(self, verb, handler):
        try:
            self._command(self._line(verb, handler))
        except ClickControlError as exc:
            if exc.code in (510, 511, 530):
                return False
            raise
        return True

    @staticmethod
    def _line(*words):
        for word in words:
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(word)):
                # A CR or LF would end the command and start another (Click ends a line at either): refuse
                # before anything is sent; values with line breaks go through write_data/read_data.
                raise ValueError("ControlSocket argument contains a control character: %r" % (word,))
        return " ".join(str(w) for w in words if w != "")

    def _command(self, line, payload=b"", expect_data=False):
        if self._sock is None:
            self.connect()
        try:
            self._send(line.encode("utf-8") + b"\r\n" + payload)
            reply = self._read_status(line)
            if expect_data and reply.ok:
                reply.data = self._read_data(line)
        except ClickControlError as exc:
            if exc.is_transport_error:
                # A late reply would be taken as the next command's: drop the connection and its buffer;
                # the next command opens a fresh one.
                self.close(send_quit=False)
            raise
        if not reply.ok:
            raise ClickControlError(reply.message, code=reply.code, command=line, endpoint=self.endpoint)
        return reply

    def _send(self, data):
        try:
            self._sock.sendall(data)
        except socket.timeout:
            raise self._transport_error("timed out sending after %ss" % self.timeout)
        except OSError as exc:
            raise self._transport_error("send failed: %s" % (exc.strerror or exc))

    def _read_status(self, command):
        """Read status lines until the one without a continuation hyphen; all must share a code."""
        lines = []
        while True:
            raw = self._read_line(command)
            match = _STATUS_LINE.match(raw)
            if not match:
                raise self._transport_error("malformed status line %r" % raw[:120], command)
            code, separator, text = int(match.group(1)), match.group(2), match.group(3)
            lines.append(text)
            if separator == " ":
                return Reply(code, lines)

    def _read_data(self, command):
        raw = self._read_line(command)
        match = _DATA_LINE.match(raw)
        if not match:
            raise self._transport_error("expected 'DATA <n>', got %r" % raw[:120], command)
        return self._read_exact(int(match.group(1)), command)

    def _fill(self, command):
        """Receive more bytes into the buffer (a reply may arrive in any number of pieces)."""
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout:
            raise self._transport_error("timed out waiting for a reply after %ss" % self.timeout, command)
        except OSError as exc:
            raise self._transport_error("receive failed: %s" % (exc.strerror or exc), command)
        if not chunk:
            raise self._transport_error("connection closed by the server", command)
        self._buffer += chunk

    def _read_line(self, command=None):
        """One line without its terminator; the server ends lines with CRLF, we accept LF too."""
        while b"\n" not in self._buffer:
            self._fill(command)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def _read_exact(self, size, command=None):
        while len(self._buffer) < size:
            self._fill(command)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _transport_error(self, message, command=None):
        return ClickControlError(message, code=None, command=command, endpoint=self.endpoint)


def _to_bytes(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")
