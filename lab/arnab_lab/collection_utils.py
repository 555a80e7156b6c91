"""Load the collection's module_utils (odin, openflow, click_control) from this checkout by file path.

The emulated agent and radio must speak exactly what the modules speak, so they reuse the same files;
loading by path works whether or not `.collections/ansible_collections/arnab/testbed` exists. A module_utils file
that imports a sibling as the collection does (`from ansible_collections.arnab.testbed.plugins.module_utils import
validate`) finds it here too: without the collection on sys.path, that package name is pointed at this folder.
"""
import importlib
import importlib.util
import os
import sys
import types

MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "plugins", "module_utils")


PACKAGE = "ansible_collections.arnab.testbed.plugins.module_utils"


def _collection_package():
    """Make PACKAGE importable: the installed collection if there is one, else this checkout's folder."""
    try:
        importlib.import_module(PACKAGE)
        return
    except ImportError:
        pass
    parts = PACKAGE.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = []
            sys.modules[name] = package
    sys.modules[PACKAGE].__path__ = [MODULE_UTILS]


def load(name):
    """Import plugins/module_utils/<name>.py (once) as arnab_lab.module_utils_<name>."""
    qualified = "arnab_lab.module_utils_%s" % name
    if qualified in sys.modules:
        return sys.modules[qualified]
    _collection_package()
    spec = importlib.util.spec_from_file_location(qualified, os.path.join(MODULE_UTILS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module
