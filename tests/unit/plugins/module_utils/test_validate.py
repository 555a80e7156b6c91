"""module_utils.validate: what a name, an interface, a MAC, a path, a host may look like; payloads refused."""
import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import validate
from ansible_collections.arnab.testbed.plugins.module_utils.validate import ValidationError

# The payloads every string option is tried with (issue 9): command substitution, backticks, a command separator,
# newlines, single and double quotes.
SHELL_PAYLOADS = ["$(touch /tmp/x)", "`touch /tmp/x`", "a;touch /tmp/x", "a\ntouch /tmp/x", "a\rb", "a'b", 'a"b']
CONTROL = ["a\nb", "a\rb", "a\x00b", "a\tb", "a\x1bb", "a\x7fb", "a\x01", "\n", "trailing\n"]


@pytest.mark.parametrize("value", CONTROL)
def test_control_characters_refused(value):
    with pytest.raises(ValidationError) as e:
        validate.no_control_chars(value, "option x")
    assert "option x" in str(e.value) and "control character" in str(e.value)
    assert repr(value) in str(e.value)   # shown visibly, never raw
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value", ["plain", "with space", "quote'and\"double", "$(x)", "`y`", "a;b", "ünïcode", ""])
def test_no_control_chars_passes_printable_text(value):
    assert validate.no_control_chars(value) == value


@pytest.mark.parametrize("value", ["video", "ramsim", "arnab-base", "a", "c_1.2", "0day", "x" * 64])
def test_container_name_ok(value):
    assert validate.container_name(value) == value


@pytest.mark.parametrize("value", SHELL_PAYLOADS + ["", "-n", ".hidden", "_x", "a/b", "../x", "a b", "x" * 65, "vídeo",
                                                    "video\n", "a*", "a$b"])
def test_container_name_refused(value):
    with pytest.raises(ValidationError) as e:
        validate.container_name(value, "name")
    assert str(e.value).startswith("name ")


@pytest.mark.parametrize("value", ["eth0", "br-data", "ap", "veth1.100", "x" * 15, "_tap", "wlan0_1"])
def test_ifname_ok(value):
    assert validate.ifname(value) == value


@pytest.mark.parametrize("value", SHELL_PAYLOADS + ["", "x" * 16, "-eth0", ".", "..", "eth 0", "eth0\n", "eth0,1",
                                                    "eth0=1", "eth0/1", "eth:0", "éth0"])
def test_ifname_refused(value):
    with pytest.raises(ValidationError) as e:
        validate.ifname(value, "interface")
    assert str(e.value).startswith("interface ")
    assert "1 to 15 letters" in str(e.value) or "control character" in str(e.value)


def test_mac():
    assert validate.mac("02-C0-00-00-00-01") == "02:c0:00:00:00:01"
    assert validate.mac("02:c0:00:00:00:01") == "02:c0:00:00:00:01"
    bad_macs = ["02:c0:00:00:00:01\n", "02:c0-00:00:00:01", "02:c0:00:00:00", "02c000000001", " 02:c0:00:00:00:01",
                "gg:c0:00:00:00:01"]
    for bad in SHELL_PAYLOADS + bad_macs:
        with pytest.raises(ValidationError):
            validate.mac(bad, "sta_mac")


def test_paths():
    assert validate.abs_path("/var/lib/lxc") == "/var/lib/lxc"
    assert validate.abs_path("/a dir/with 'quotes'") == "/a dir/with 'quotes'"   # data in argv, not refused
    for bad in ["relative/x", "", "-rf", "$(touch /tmp/x)", "/a\nb", "/a\x00b", "/" + "x" * 4095]:
        with pytest.raises(ValidationError):
            validate.abs_path(bad, "images_dir")
    assert validate.rel_or_abs_path("../1") == "../1"
    for bad in ["", "-x", "../1\n", "a\rb"]:
        with pytest.raises(ValidationError):
            validate.rel_or_abs_path(bad, "parent_dir")


def test_command():
    assert validate.command("criu") == "criu"
    assert validate.command("ovs-ofctl") == "ovs-ofctl"
    assert validate.command("/opt/arnab-criu/root/usr/sbin/criu") == "/opt/arnab-criu/root/usr/sbin/criu"
    for bad in SHELL_PAYLOADS + ["criu --version", "-criu", "./criu", "../criu", "bin/criu", ""]:
        with pytest.raises(ValidationError):
            validate.command(bad, "criu")


def test_host():
    assert validate.host("10.79.0.2") == "10.79.0.2"
    assert validate.host("fe80::1") == "fe80::1"
    assert validate.host("edge2.lab.example") == "edge2.lab.example"
    assert validate.host("edge_2") == "edge_2"
    for bad in SHELL_PAYLOADS + ["-oProxyCommand=touch /tmp/x", "root@edge2", "edge2 ", "", "a..b", ".a",
                                 "edge2:22", "x" * 254, "-edge"]:
        with pytest.raises(ValidationError):
            validate.host(bad, "host")


def test_user():
    assert validate.user("root") == "root"
    assert validate.user("arnab-migrate") == "arnab-migrate"
    for bad in SHELL_PAYLOADS + ["-oX", "a@b", "a b", "", "x" * 33, ".x"]:
        with pytest.raises(ValidationError):
            validate.user(bad, "ssh_user")


def test_port_word_one_of():
    assert validate.port("6634") == 6634 and validate.port(22) == 22
    for bad in ["0", "65536", "22;x", "x", True]:
        with pytest.raises(ValidationError):
            validate.port(bad)
    assert validate.word("nftables") == "nftables"
    for bad in SHELL_PAYLOADS + ["-x", "a b", ""]:
        with pytest.raises(ValidationError):
            validate.word(bad, "network_lock")
    assert validate.one_of("skip", ("nftables", "iptables", "skip")) == "skip"
    with pytest.raises(ValidationError) as e:
        validate.one_of("skip\naction-script /tmp/x", ("skip",), "network_lock")
    assert "control character" in str(e.value)


def test_strings_walks_every_option_and_names_it():
    params = {"a": "ok", "b": [{"match": "ip", "actions": "drop\nadd x"}], "c": None, "d": 3, "e": {"f": "x"}}
    with pytest.raises(ValidationError) as e:
        validate.strings(params)
    assert "option b[0].actions" in str(e.value)
    assert validate.strings(params, skip=("b",)) is params
    validate.strings({"x": ["fine", "also fine"], "y": {"z": True}})
    with pytest.raises(ValidationError):
        validate.strings({"y": {"z": b"a\x00b"}})


def test_messages_are_one_line_and_actionable():
    with pytest.raises(ValidationError) as e:
        validate.container_name("a;b", "name")
    msg = str(e.value)
    assert msg == ("name 'a;b' is not a container name: use 1 to 64 letters, digits, '-', '_' or '.', "
                   "starting with a letter or digit")
