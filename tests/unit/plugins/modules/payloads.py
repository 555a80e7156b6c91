"""The payloads every string option of a module is tried with (issue 9), and what 'inert' means for them."""

# {marker}: a file that exists afterwards only if a payload ran as a command.
SHELL_PAYLOADS = ["$(touch {marker})", "`touch {marker}`", ";touch {marker}", "\ntouch {marker}", "'", '"',
                  "';touch {marker};'", '";touch {marker};"']
CONTROL = ("\n", "\r", "\x00", "\t", "\x7f")


def payloads(marker):
    return [p.format(marker=marker) for p in SHELL_PAYLOADS]


def has_control(text):
    return any(c in text for c in CONTROL) or any(ord(c) < 0x20 for c in text)


def no_shell(calls):
    """No recorded argv runs a shell on a command string."""
    for argv in calls:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), argv
        assert not (argv[0].split("/")[-1] in ("sh", "bash", "dash") and "-c" in argv), argv
