"""pyrunc's command line: runc's commands, global flags, output formats and exit codes.

Each module here defines one group of commands (its flags and a small function per command) and calls the
library (container/, process/); nothing outside cli/ imports cli/.
"""

from __future__ import annotations

import os
import sys

from oci_runtime import SPEC_VERSION, VERSION, log
from oci_runtime.container.state import DEFAULT_ROOT
from oci_runtime.errors import RuntimeFailure, error_kind
from oci_runtime.exiting import exit_now


# The module of cli/ that defines each command and alias; a command imports only its own module.
COMMAND_GROUPS = {
    "lifecycle": ("create", "run", "start", "state", "kill", "delete", "rm", "list", "ls"),
    "processes": ("exec", "ps"),
    "resources": ("update", "events", "pause", "resume"),
    "info": ("spec", "features", "help", "h"),
    "checkpoint": ("checkpoint", "restore"),
}


def group_commands(group: str) -> list:
    return __import__(f"oci_runtime.cli.{group}", fromlist=["commands"]).commands()


def find_command(name: str):
    for group, names in COMMAND_GROUPS.items():
        if name in names:
            return next(cmd for cmd in group_commands(group) if name in (cmd.name, *cmd.aliases))
    return None


def all_commands() -> list:
    return [cmd for group in COMMAND_GROUPS for cmd in group_commands(group)]


def version_text() -> str:
    return (f"pyrunc version {VERSION}\ncommit: pyrunc-{VERSION}\nspec: {SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}")


def print_help(cmd=None) -> None:
    from oci_runtime.cli.parser import help_text

    try:
        print(help_text("pyrunc", "Open Container Initiative runtime (runc's command line, in Python)",
                        global_opts(), all_commands(), cmd))
    except BrokenPipeError:
        pass


def global_opts() -> list:
    from oci_runtime.cli.parser import Opt

    return [Opt("--root", "str", None, f"state directory (default {DEFAULT_ROOT})"),
            Opt("--log", "str", None, "log file (default: stderr)"),
            Opt("--log-format", "str", "text", "log format", choices=("text", "json")),
            Opt("--debug", help="debug logging"),
            Opt("--systemd-cgroup", help="use the systemd cgroup driver"),
            Opt("--rootless", "str", "auto", "accepted for runc compatibility"),
            Opt("--criu", "str", None, hidden=True),
            Opt("-v --version", help="print the version")]


def main(argv: list[str] | None = None) -> int:
    from oci_runtime.cli.parser import UnknownCommand, UsageError, parse

    argv = sys.argv[1:] if argv is None else argv
    gopts = global_opts()
    try:
        args, cmd = parse(argv, gopts, find_command, "pyrunc")
    except UsageError as e:
        log.logger.error(str(e))
        return 1
    except UnknownCommand as e:
        log.logger.error(str(e))
        return e.exit_status
    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        print(version_text())
        return 0
    if cmd is None or getattr(args, "help", False):
        print_help(cmd)
        return 0
    try:
        if args.systemd_cgroup and not os.path.isdir("/run/systemd/system") and cmd.name in ("create", "run"):
            raise RuntimeFailure("--systemd-cgroup: systemd is not running on this host "
                                 "(no /run/systemd/system); use the cgroupfs driver")
        return cmd.func(args)
    except RuntimeFailure as e:
        log.logger.error(str(e), error_kind(e))
        return getattr(e, "exit_status", cmd.failure_status)
    except OSError as e:
        log.logger.error(f"{cmd.name}: {e.strerror or e}{f': {e.filename}' if e.filename else ''}")
        return cmd.failure_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # our stdout was closed early (e.g. piped into head): nothing left to say
        return 1
    except Exception as e:  # a bug of ours: still one line (the engines show it), the traceback with --debug
        if args.debug:
            import traceback

            log.logger.debug(traceback.format_exc())
        log.logger.error(f"{cmd.name}: internal error: {type(e).__name__}: {e}")
        return 1


def main_and_exit() -> None:
    """Run the command and leave without the interpreter's finalization. Besides its cost (see exiting.py):
    containerd's shim only starts watching the container's memory cgroup for OOM kills once `start` has
    exited, so a process killed in that window would go unreported."""
    exit_now(main())
