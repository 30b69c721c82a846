"""What one store's networking is called in the network namespace it runs in: the default network's
bridge and the nftables table. The store at the default root keeps the plain names (bridge pydock0, table
ip pydock); any other store's names carry a short hash of its path, so two stores in one namespace never
rebuild each other's rules away or hand out addresses on one bridge from two address books."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/pydock"  # the CLI's default --root


def _suffix(store_root: Path) -> str:
    path = os.path.realpath(store_root)
    if path == os.path.realpath(DEFAULT_ROOT):
        return ""
    import hashlib

    return "-" + hashlib.sha256(path.encode()).hexdigest()[:8]


def default_bridge(store_root: Path) -> str:
    """pydock0, or pydock-XXXXXXXX (15 characters: a link name's limit)."""
    suffix = _suffix(store_root)
    return "pydock" + suffix if suffix else "pydock0"


def table_name(store_root: Path) -> str:
    return "pydock" + _suffix(store_root)
