"""Load the collection's module_utils (odin, openflow, click_control) from this checkout by file path.

The emulated agent and radio must speak exactly what the modules speak, so they reuse the same files;
loading by path works whether or not `.collections/ansible_collections/arnab/testbed` exists.
"""
import importlib.util
import os
import sys

MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "plugins", "module_utils")


def load(name):
    """Import plugins/module_utils/<name>.py (once) as arnab_lab.module_utils_<name>."""
    qualified = "arnab_lab.module_utils_%s" % name
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, os.path.join(MODULE_UTILS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module
