"""checkpoint and restore: runc's names and flags, refused clearly (no CRIU support here yet)."""

from __future__ import annotations

from oci_runtime.cli.parser import Cmd, Opt
from oci_runtime.errors import RuntimeFailure


def cmd_refused(args) -> int:
    raise RuntimeFailure(f"{args.command}: not supported by pyrunc (it needs CRIU, which pyrunc does not drive "
                         "yet); the container is left as it was")


def _criu_opts() -> list:
    return [Opt("--image-path", "str", None, "path for saving criu image files"),
            Opt("--work-path", "str", None, "path for saving work files and logs"),
            Opt("--tcp-established", help="allow open tcp connections"),
            Opt("--ext-unix-sk", help="allow external unix sockets"),
            Opt("--shell-job", help="allow shell jobs"),
            Opt("--file-locks", help="handle file locks"),
            Opt("--manage-cgroups-mode", "str", None, "cgroups mode")]


def commands() -> list:
    return [
        Cmd("checkpoint", cmd_refused, "checkpoint a running container",
            [Opt("--leave-running", help="leave the process running after checkpointing")] + _criu_opts(), ("id",)),
        Cmd("restore", cmd_refused, "restore a container from a previous checkpoint",
            [Opt("-b --bundle", "str", None, "path to the root of the bundle directory"),
             Opt("-d --detach", help="detach from the container's process")] + _criu_opts(), ("id",)),
    ]
