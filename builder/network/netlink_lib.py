"""pyroute2 without its package __init__: that file imports every family pyroute2 speaks (conntrack,
devlink, ipset, ipvs, iw, NDB, ...), ~half of its import time, while pydock needs only IPRoute and
NetlinkError. We register a bare `pyroute2` package (same path, same spec) before importing the two
submodules; any other name asked of it later runs the real __init__ then, so other code still works."""

from __future__ import annotations

import importlib.util
import sys
import types


def _bare_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    package = types.ModuleType("pyroute2")
    package.__spec__, package.__file__ = spec, spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "pyroute2"

    def full_package(name: str):
        if name.startswith("__") or importlib.util.find_spec(f"pyroute2.{name}") is not None:
            # a submodule ("from pyroute2 import config"): the import system loads it after this
            raise AttributeError(name)
        # Somebody wants more than we loaded: run the real __init__ in this module, once.
        del package.__getattr__
        with open(spec.origin, "rb") as f:
            exec(compile(f.read(), spec.origin, "exec"), package.__dict__)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2' has no attribute {name!r}") from None

    package.__getattr__ = full_package
    sys.modules["pyroute2"] = package


def iproute_class():
    _bare_package()
    from pyroute2.iproute.linux import IPRoute

    return IPRoute


def netlink_error():
    _bare_package()
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError
