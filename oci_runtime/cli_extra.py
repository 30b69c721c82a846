"""Argument definitions of exec, update and events (their work lives in exec_cmd, update_cmd, events_cmd)."""

from __future__ import annotations


def _exec(args) -> int:
    from .exec_cmd import cmd_exec

    return cmd_exec(args)


def _update(args) -> int:
    from .update_cmd import cmd_update

    return cmd_update(args)


def _events(args) -> int:
    from .events_cmd import cmd_events

    return cmd_events(args)


def extra_commands() -> list:
    from .cliparse import Cmd, Opt

    update_flags = ["--blkio-weight", "--cpu-period", "--cpu-quota", "--cpu-burst", "--cpu-share",
                    "--cpu-rt-period", "--cpu-rt-runtime", "--cpuset-cpus", "--cpuset-mems", "--memory",
                    "--memory-reservation", "--memory-swap", "--kernel-memory", "--kernel-memory-tcp",
                    "--pids-limit", "--l3-cache-schema", "--mem-bw-schema", "--cpu-idle"]
    return [
        Cmd("exec", _exec, "run a process in a running container", [
            Opt("-p --process", "str", None, "process.json (an OCI process object)"),
            Opt("-t --tty", help="allocate a pseudo-TTY"),
            Opt("--console-socket", "str", None, "AF_UNIX socket that receives the pty master"),
            Opt("-d --detach", help="do not wait for the process"),
            Opt("--pid-file", "str", None, "write the process's pid here"),
            Opt("--cwd", "str", None, "working directory"),
            Opt("-e --env", "list", None, "KEY=VALUE"),
            Opt("-u --user", "str", None, "uid[:gid]"),
            Opt("-g --additional-gids", "list", None, "additional gid"),
            Opt("-c --cap", "list", None, "add a capability"),
            Opt("--no-new-privs", help="set no_new_privs"),
            Opt("--apparmor", "str", None, "AppArmor profile"),
            Opt("--process-label", "str", None, "SELinux label"),
            Opt("--preserve-fds", "int", 0, "pass this many fds from 3 on"),
            Opt("--ignore-paused", help="exec even if the container is paused"),
            Opt("--cgroup", "str", None, hidden=True),
        ], ("id", "command...")),
        Cmd("update", _update, "update the resource limits of a container",
            [Opt("-r --resources", "str", None, "LinuxResources JSON file, or - for stdin")]
            + [Opt(flag, "str", None, flag[2:].replace("-", " ")) for flag in update_flags], ("id",)),
        Cmd("events", _events, "show container events and resource usage", [
            Opt("--stats", help="print one stats event and exit"),
            Opt("--interval", "str", "5s", "stats interval (e.g. 5s, 500ms)"),
        ], ("id",)),
    ]
