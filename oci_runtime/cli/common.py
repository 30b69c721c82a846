"""What the command modules share: the state root, runc's socket-activation fds, the console socket,
signal names, and runc's plain tables."""

from __future__ import annotations

import os

from oci_runtime.container.state import DEFAULT_ROOT
from oci_runtime.errors import RuntimeFailure


def state_root(args) -> str:
    """--root, else runc's default: /run/pyrunc for root, $XDG_RUNTIME_DIR/pyrunc for anyone else."""
    if args.root:
        return args.root
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0 and runtime_dir:
        return os.path.join(runtime_dir, "pyrunc")
    return DEFAULT_ROOT


def listen_fds() -> int:
    """systemd socket activation: LISTEN_FDS fds (from 3 on) are passed through, as runc does."""
    value = os.environ.get("LISTEN_FDS", "")
    return int(value) if value.isdigit() else 0


def listen_env() -> dict:
    count = listen_fds()
    return {"LISTEN_FDS": str(count), "LISTEN_PID": "1"} if count else {}


def console_socket(path: str | None):
    """The connected --console-socket, or None."""
    if not path:
        return None
    from oci_runtime.process.console import connect

    try:
        return connect(path)
    except OSError as e:
        raise RuntimeFailure(str(e)) from None


def parse_signal(text: str) -> int:
    from oci_runtime.units import parse_signal as parse

    try:
        return parse(text)
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
