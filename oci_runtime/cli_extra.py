"""Argument definitions of exec, update and events (their work lives in exec_cmd, update_cmd, events_cmd)."""

from __future__ import annotations

import argparse


def _exec(args) -> int:
    from .exec_cmd import cmd_exec

    return cmd_exec(args)


def _update(args) -> int:
    from .update_cmd import cmd_update

    return cmd_update(args)


def _events(args) -> int:
    from .events_cmd import cmd_events

    return cmd_events(args)


def register(command) -> None:
    sp = command("exec", _exec, "run a process in a running container")
    sp.add_argument("-p", "--process", default=None, help="process.json (OCI process object)")
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("--console-socket", default=None)
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--pid-file", default=None)
    sp.add_argument("--cwd", default=None)
    sp.add_argument("-e", "--env", action="append", default=[])
    sp.add_argument("-u", "--user", default=None, help="uid[:gid]")
    sp.add_argument("-g", "--additional-gids", action="append", default=[])
    sp.add_argument("-c", "--cap", action="append", default=[])
    sp.add_argument("--no-new-privs", action="store_true")
    sp.add_argument("--apparmor", default=None)
    sp.add_argument("--process-label", default=None)
    sp.add_argument("--preserve-fds", type=int, default=0)
    sp.add_argument("--ignore-paused", action="store_true")
    sp.add_argument("--cgroup", default=None, help=argparse.SUPPRESS)
    sp.add_argument("id")
    sp.add_argument("command", nargs=argparse.REMAINDER)

    sp = command("update", _update, "update the resource limits of a container")
    sp.add_argument("-r", "--resources", default=None, help="LinuxResources JSON file, or - for stdin")
    for flag in ("--blkio-weight", "--cpu-period", "--cpu-quota", "--cpu-burst", "--cpu-share",
                 "--cpu-rt-period", "--cpu-rt-runtime", "--cpuset-cpus", "--cpuset-mems", "--memory",
                 "--memory-reservation", "--memory-swap", "--kernel-memory", "--kernel-memory-tcp",
                 "--pids-limit", "--l3-cache-schema", "--mem-bw-schema", "--cpu-idle"):
        sp.add_argument(flag, default=None)
    sp.add_argument("id")

    sp = command("events", _events, "show container events and resource usage")
    sp.add_argument("--stats", action="store_true", help="print one stats event and exit")
    sp.add_argument("--interval", default="5s", help="stats interval (e.g. 5s, 500ms)")
    sp.add_argument("id")
