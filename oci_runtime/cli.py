"""pyrunc's command line: runc's commands, flags, output formats and exit codes.

Each command is a small function; the lifecycle logic lives in container.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import log
from .errors import ContainerNotFound, RuntimeFailure
from .state import DEFAULT_ROOT

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2-dev"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 1 like runc's (not argparse's 2)
        log.logger.error(f"{self.prog}: {message}")
        raise SystemExit(1)


def parse_signal(text: str) -> int:
    import _signal as signal  # names as constants, without the enum set-up of `signal`

    text = text.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise RuntimeFailure(f"invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(signal, name, None)
    if isinstance(number, int) and not name.startswith("SIG_"):  # SIG_DFL, SIG_BLOCK... are not signals
        return number
    for base_name, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        offset = name[len(base_name):]
        if name.startswith(base_name) and offset.isdigit():
            number = getattr(signal, base_name[:-1]) + sign * int(offset)
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
    raise RuntimeFailure(f"invalid signal: {text}")


def _root(args) -> str:
    return args.root or DEFAULT_ROOT


# -- commands -------------------------------------------------------------------------------------
def cmd_create(args) -> int:
    from .container import create

    sock = _console_sock(args.console_socket)
    try:
        create(_root(args), args.id, args.bundle, console_sock=sock, pid_file=args.pid_file,
               no_pivot=args.no_pivot, no_new_keyring=args.no_new_keyring,
               preserve_fds=args.preserve_fds + _listen_fds(), systemd_cgroup=args.systemd_cgroup,
               extra_env=_listen_env())
    finally:
        if sock is not None:
            sock.close()
    return 0


def _console_sock(path: str | None):
    if not path:
        return None
    from .console import connect

    try:
        return connect(path)
    except OSError as e:
        raise RuntimeFailure(str(e)) from None


def _listen_fds() -> int:
    """systemd socket activation: LISTEN_FDS fds (from 3 on) are passed through like runc does."""
    value = os.environ.get("LISTEN_FDS", "")
    return int(value) if value.isdigit() else 0


def _listen_env() -> dict:
    count = _listen_fds()
    return {"LISTEN_FDS": str(count), "LISTEN_PID": "1"} if count else {}


def cmd_start(args) -> int:
    from .container import Container

    Container.load(_root(args), args.id).start()
    return 0


def cmd_state(args) -> int:
    from .container import Container

    c = Container.load(_root(args), args.id)
    print(json.dumps(c.oci_state(), indent=2))
    return 0


def cmd_kill(args) -> int:
    from .container import Container

    sig = parse_signal(args.signal)
    Container.load(_root(args), args.id).kill(sig, all_processes=args.all)
    return 0


def cmd_delete(args) -> int:
    from .container import Container
    from .state import StateDir

    try:
        c = Container.load(_root(args), args.id)
    except ContainerNotFound:
        state_dir = StateDir(_root(args), args.id)
        if state_dir.exists():  # a create that was killed before it saved any state
            state_dir.remove()
            return 0
        if args.force:  # engines delete --force an id they already deleted; that is success
            return 0
        raise
    with c.dir.locked():
        c.delete(force=args.force)
    return 0


def cmd_run(args) -> int:
    from .run import run

    return run(_root(args), args, extra_fds=_listen_fds(), extra_env=_listen_env())


def cmd_list(args) -> int:
    from .container import Container
    from .state import list_ids

    rows = []
    for cid in list_ids(_root(args)):
        try:
            rows.append(Container.load(_root(args), cid).oci_state())
        except RuntimeFailure:
            continue
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(json.dumps(rows))
    else:
        _print_table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                     [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows])
    return 0


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_spec(args) -> int:
    from .specgen import default_spec

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise RuntimeFailure(f"File {path} exists. Remove it first")
    spec = default_spec(rootless=args.rootless)
    with open(path, "w") as f:
        json.dump(spec, f, indent="\t")
    return 0


def cmd_features(args) -> int:
    from .features import features

    print(json.dumps(features(), indent="    "))
    return 0


def cmd_pause(args) -> int:
    from .container import Container

    c = Container.load(_root(args), args.id)
    with c.dir.locked():
        c.pause()
    return 0


def cmd_resume(args) -> int:
    from .container import Container

    c = Container.load(_root(args), args.id)
    with c.dir.locked():
        c.resume()
    return 0


def cmd_ps(args) -> int:
    from .container import Container

    c = Container.load(_root(args), args.id)
    pids = c.cgroups.pids() if c.cgroups is not None else ([c.pid] if c.init_alive() else [])
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeFailure(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0]
    try:
        pid_col = header.split().index("PID")
    except ValueError:
        raise RuntimeFailure("ps output has no PID column") from None
    print(header)
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in wanted:
            print(line)
    return 0


def version_text() -> str:
    return (f"pyrunc version {VERSION}\ncommit: pyrunc-{VERSION}\nspec: {SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}")


# -- argument parsing -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyrunc", description="pyrunc: a runc-compatible OCI runtime")
    p.add_argument("--root", default=None, help=f"state directory (default {DEFAULT_ROOT})")
    p.add_argument("--log", default=None, help="log file (default: stderr)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="use the systemd cgroup driver")
    p.add_argument("--rootless", default="auto", help="accepted for runc compatibility")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def command(name, func, help_text, aliases=()):
        sp = sub.add_parser(name, help=help_text, aliases=list(aliases))
        sp.set_defaults(func=func)
        return sp

    def creating(sp):
        sp.add_argument("-b", "--bundle", default=".")
        sp.add_argument("--console-socket", default=None)
        sp.add_argument("--pid-file", default=None)
        sp.add_argument("--no-pivot", action="store_true")
        sp.add_argument("--no-new-keyring", action="store_true")
        sp.add_argument("--preserve-fds", type=int, default=0)
        sp.add_argument("id")

    creating(command("create", cmd_create, "create a container"))
    sp = command("run", cmd_run, "create and start a container")
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--keep", action="store_true")
    creating(sp)
    command("start", cmd_start, "start a created container").add_argument("id")
    command("state", cmd_state, "output the state of a container").add_argument("id")
    sp = command("kill", cmd_kill, "send a signal to the container's init")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("id")
    sp.add_argument("signal", nargs="?", default="SIGTERM")
    sp = command("delete", cmd_delete, "delete a container", aliases=["rm"])
    sp.add_argument("-f", "--force", action="store_true")
    sp.add_argument("id")
    sp = command("list", cmd_list, "list containers", aliases=["ls"])
    sp.add_argument("-f", "--format", default="table", choices=["table", "json"])
    sp.add_argument("-q", "--quiet", action="store_true")
    sp = command("spec", cmd_spec, "write a default config.json")
    sp.add_argument("--rootless", action="store_true")
    sp.add_argument("-b", "--bundle", default=None)
    command("features", cmd_features, "show the runtime's features (JSON)")
    command("pause", cmd_pause, "freeze all processes of a container").add_argument("id")
    command("resume", cmd_resume, "thaw a paused container").add_argument("id")
    sp = command("ps", cmd_ps, "list the processes of a container")
    sp.add_argument("-f", "--format", default="table", choices=["table", "json"])
    sp.add_argument("id")
    sp.add_argument("ps_args", nargs=argparse.REMAINDER)
    _add_issue3_commands(sub, command)
    return p


def _add_issue3_commands(sub, command) -> None:
    """exec, events and update live in their own modules; register them when present."""
    try:
        from . import cli_extra
    except ImportError:
        return
    cli_extra.register(command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        print(version_text())
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if args.systemd_cgroup and not os.path.isdir("/run/systemd/system") and args.command in ("create", "run"):
            raise RuntimeFailure("--systemd-cgroup: systemd is not running on this host "
                                 "(no /run/systemd/system); use the cgroupfs driver")
        return args.func(args)
    except RuntimeFailure as e:
        log.logger.error(str(e))
        return 1
    except OSError as e:
        log.logger.error(f"{args.command}: {e}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
