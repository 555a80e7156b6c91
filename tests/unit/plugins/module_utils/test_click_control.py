"""ControlSocket client against scripted servers: framing, partial reads, continuations, every 5xx."""
import socket
import threading

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils.click_control import (
    STATUS_MEANINGS, ClickControlClient, ClickControlError)


class ScriptedServer:
    """A one-connection TCP server: sends the banner, then for each received line the scripted reply,
    split into tiny chunks so the client must handle partial reads."""

    def __init__(self, replies, banner=b"Click::ControlSocket/1.3\r\n", chunk=3):
        self.replies, self.banner, self.chunk = list(replies), banner, chunk
        self.received = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, conn, data):
        for i in range(0, len(data), self.chunk):
            conn.sendall(data[i:i + self.chunk])

    def _serve(self):
        conn, dummy = self.listener.accept()
        with conn:
            self._send(conn, self.banner)
            buffer = b""
            while self.replies:
                while b"\n" not in buffer:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buffer += data
                line, buffer = buffer.split(b"\n", 1)
                self.received.append(line.rstrip(b"\r"))
                reply = self.replies.pop(0)
                if callable(reply):
                    buffer = reply(conn, buffer) or b""
                elif reply is not None:
                    self._send(conn, reply)

    def client(self, **kwargs):
        return ClickControlClient("127.0.0.1", self.port, **kwargs)


def test_read_returns_exact_data_across_partial_reads():
    table = b"02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab\n"
    server = ScriptedServer([b"200 Read handler 'odinagent.table' OK\r\nDATA %d\r\n" % len(table) + table,
                             b"200 Goodbye!\r\n"], chunk=1)
    with server.client() as client:
        assert client.protocol_version == "1.3"
        assert client.read("odinagent.table") == table.decode()
    assert server.received == [b"READ odinagent.table", b"QUIT"]


def test_data_containing_crlf_and_status_like_text_is_not_misparsed():
    data = b"500 not a status\r\nDATA 3\r\n"
    server = ScriptedServer([b"200 Read handler 'x.y' OK\r\nDATA %d\r\n" % len(data) + data
                             + b"200 Write handler 'x.z' OK\r\n", b"200 Goodbye!\r\n"])
    server.replies.insert(1, None)  # second command's reply was already sent with the first
    with server.client() as client:
        assert client.read("x.y") == data.decode()
        assert client.write("x.z", "1").code == 200


def test_write_reads_status_every_time_and_passes_arguments():
    server = ScriptedServer([b"200 Write handler 'odinagent.add_vap' OK\r\n",
                             b"220-Write handler 'odinagent.debug' OK with warnings:\r\n220 careful\r\n",
                             b"200 Goodbye!\r\n"])
    with server.client() as client:
        assert client.write("odinagent.add_vap", "02:c0:00:00:00:01", "10.78.0.100").ok
        reply = client.write("odinagent.debug", "2")
        assert reply.code == 220 and reply.warnings == ["careful"]
    assert server.received[0] == b"WRITE odinagent.add_vap 02:c0:00:00:00:01 10.78.0.100"


@pytest.mark.parametrize("code", [500, 501, 510, 511, 520, 521, 522, 530, 540, 590])
def test_every_error_code_raises_with_code_and_message(code):
    server = ScriptedServer([b"%d-Write handler 'odinagent.remove_vap' error:\r\n%d no vAP for x\r\n" % (code, code),
                             b"200 Goodbye!\r\n"])
    with server.client() as client:
        with pytest.raises(ClickControlError) as info:
            client.write("odinagent.remove_vap", "x")
    assert info.value.code == code
    assert info.value.meaning == STATUS_MEANINGS[code]
    assert "no vAP for x" in info.value.message and "error:" in info.value.message
    assert str(code) in str(info.value)


def test_client_stays_in_sync_after_an_error():
    server = ScriptedServer([b"511 No handler named 'odinagent.nope'\r\n",
                             b"200 Read handler 'odinagent.channel' OK\r\nDATA 2\r\n6\n", b"200 Goodbye!\r\n"])
    with server.client() as client:
        with pytest.raises(ClickControlError):
            client.read("odinagent.nope")
        assert client.read("odinagent.channel") == "6\n"


def test_readdata_writedata_send_counted_payloads():
    def expect_payload(size):
        def reply(conn, buffer):
            while len(buffer) < size:
                buffer += conn.recv(4096)
            server.received.append(buffer[:size])
            conn.sendall(b"200 Write handler 'e.h' OK\r\n" if size == 5 else
                         b"200 Read handler 'e.r' OK\r\nDATA 2\r\nok")
            return buffer[size:]
        return reply

    server = ScriptedServer([expect_payload(5), expect_payload(4), b"200 Goodbye!\r\n"])
    with server.client() as client:
        client.write_data("e.h", "a\nb\nc")
        assert client.read_data("e.r", b"x\ny\n") == "ok"
    assert server.received[:4] == [b"WRITEDATA e.h 5", b"a\nb\nc", b"READDATA e.r 4", b"x\ny\n"]


def test_checkread_checkwrite_and_llrpc():
    server = ScriptedServer([b"200 Read handler 'odinagent.table' OK\r\n",
                             b"530 Handler 'odinagent.table' read-only\r\n",
                             b"511 No read handler named 'odinagent.zz'\r\n",
                             b"200 LLRPC 'q#1' OK\r\nDATA 4\r\nabcd",
                             b"200 Goodbye!\r\n"])
    with server.client() as client:
        assert client.check_read("odinagent.table") is True
        assert client.check_write("odinagent.table") is False
        assert client.check_read("odinagent.zz") is False
        assert client.llrpc("q#1") == b"abcd"


def test_bad_banner_is_a_transport_error():
    server = ScriptedServer([], banner=b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(ClickControlError) as info:
        server.client().connect()
    assert info.value.code is None and "banner" in info.value.message


def test_read_timeout():
    server = ScriptedServer([None, None])  # never answers
    client = server.client(timeout=0.2)
    client.connect()
    with pytest.raises(ClickControlError) as info:
        client.read("odinagent.table")
    assert info.value.is_transport_error and "timed out" in info.value.message
    client.close(send_quit=False)


def test_connection_closed_mid_data():
    server = ScriptedServer([b"200 Read handler 'a.b' OK\r\nDATA 10\r\nabc"])
    client = server.client(timeout=2)
    client.connect()
    with pytest.raises(ClickControlError) as info:
        client.read("a.b")
    assert "closed" in info.value.message


def test_malformed_status_line():
    server = ScriptedServer([b"hello there\r\n"])
    client = server.client()
    client.connect()
    with pytest.raises(ClickControlError) as info:
        client.write("a.b", "1")
    assert "malformed" in info.value.message


def test_connection_refused_names_the_endpoint():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ClickControlError) as info:
        ClickControlClient("127.0.0.1", port, connect_timeout=1).connect()
    assert info.value.code is None and "127.0.0.1:%d" % port in str(info.value)


def test_arguments_with_newlines_are_refused():
    with pytest.raises(ValueError):
        ClickControlClient("127.0.0.1")._line("WRITE", "a.b", "x\nQUIT")


class LateServer:
    """Answers its first connection's first command only after the client gave up (a late reply), then behaves;
    every further connection gets a fresh banner and the right replies."""

    def __init__(self, late, replies, release):
        self.late, self.replies, self.release = late, replies, release
        self.connections = 0
        self.received = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            conn, _addr = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self._conn, args=(conn, self.connections), daemon=True).start()

    def _conn(self, conn, number):
        with conn:
            conn.sendall(b"Click::ControlSocket/1.3\r\n")
            reader = conn.makefile("rb")
            first = True
            for line in reader:
                self.received.append((number, line.strip()))
                if number == 1 and first:
                    self.release.wait(5)      # the client has timed out: now the stale reply arrives
                    conn.sendall(self.late)
                    first = False
                    continue
                conn.sendall(self.replies.get(line.split()[0], b"200 Goodbye!\r\n"))


@pytest.mark.parametrize("stale", [b"200 Write handler 'odinagent.remove_vap' OK\r\n",
                                   b"200 Read handler 'odinagent.table' OK\r\nDATA 5\r\nstale"])
def test_a_late_reply_is_never_taken_as_the_next_commands(stale):
    """After a timeout the connection is dropped: the next command goes on a new connection and gets its own
    reply (a stale 200 was once reported for a remove_vap of an absent vAP)."""
    release = threading.Event()
    server = LateServer(stale, {b"WRITE": b"520 Write handler 'odinagent.remove_vap' error\r\n"}, release)
    client = ClickControlClient("127.0.0.1", server.port, timeout=0.3)
    with pytest.raises(ClickControlError) as info:
        client.write("odinagent.remove_vap", "02:c0:00:00:00:01")
    assert info.value.is_transport_error and "timed out" in info.value.message
    release.set()
    with pytest.raises(ClickControlError) as info:
        client.write("odinagent.remove_vap", "02:c0:00:00:00:01")
    assert info.value.code == 520
    assert server.connections == 2 and [n for n, _line in server.received] == [1, 2]
    client.close()


def test_a_transport_error_mid_data_reconnects_for_the_next_command():
    server = ScriptedServer([b"200 Read handler 'a.b' OK\r\nDATA 10\r\nabc"])   # closes mid-data
    client = server.client(timeout=2)
    with pytest.raises(ClickControlError):
        client.read("a.b")
    again = ScriptedServer([b"200 Write handler 'a.c' OK\r\n"])
    client.port = again.port            # the same client object opens a fresh connection
    assert client.write("a.c", "1").ok and again.received == [b"WRITE a.c 1"]
    client.close(send_quit=False)


@pytest.mark.parametrize("word", ["x\nQUIT", "x\rWRITE odinagent.remove_vap 1", "x\x00", "x\x1b[2J", "\x7f"])
def test_control_characters_are_refused_before_anything_is_sent(word):
    server = ScriptedServer([b"200 Write handler 'a.b' OK\r\n"])
    client = server.client(timeout=2)
    client.connect()
    with pytest.raises(ValueError):
        client.write("a.b", word)
    client.close(send_quit=False)
    assert server.received == []
