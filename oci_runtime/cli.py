"""pyrunc's command line: runc's commands, flags, output formats and exit codes.

Each command is a small function; the lifecycle logic lives in container.py.
"""

from __future__ import annotations

import os
import sys

from . import log
from .errors import ContainerNotFound, RuntimeFailure
from .jsonio import dumps
from .state import DEFAULT_ROOT

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2-dev"


def parse_signal(text: str) -> int:
    from .units import parse_signal as parse

    try:
        return parse(text)
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None

def state_root(args) -> str:
    return args.root or DEFAULT_ROOT


# -- commands -------------------------------------------------------------------------------------
def cmd_create(args) -> int:
    from .container import create

    sock = console_socket(args.console_socket)
    try:
        create(state_root(args), args.id, args.bundle, console_sock=sock, pid_file=args.pid_file,
               no_pivot=args.no_pivot, no_new_keyring=args.no_new_keyring,
               preserve_fds=args.preserve_fds + _listen_fds(), systemd_cgroup=args.systemd_cgroup,
               extra_env=_listen_env())
    finally:
        if sock is not None:
            sock.close()
    return 0


def console_socket(path: str | None):
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

    Container.load(state_root(args), args.id).start()
    return 0


def cmd_state(args) -> int:
    from .container import Container

    c = Container.load(state_root(args), args.id)
    print(dumps(c.oci_state(), indent=2))
    return 0


def cmd_kill(args) -> int:
    from .container import Container

    sig = parse_signal(args.signal)
    Container.load(state_root(args), args.id).kill(sig, all_processes=args.all)
    return 0


def cmd_delete(args) -> int:
    from .container import Container
    from .state import StateDir

    try:
        c = Container.load(state_root(args), args.id)
    except ContainerNotFound:
        state_dir = StateDir(state_root(args), args.id)
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

    return run(state_root(args), args, extra_fds=_listen_fds(), extra_env=_listen_env())


def cmd_list(args) -> int:
    from .container import Container
    from .state import list_ids

    rows = []
    for cid in list_ids(state_root(args)):
        try:
            rows.append(Container.load(state_root(args), cid).oci_state())
        except RuntimeFailure:
            continue
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(dumps(rows))
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
        f.write(dumps(spec, indent="\t"))
    return 0


def cmd_features(args) -> int:
    from .features import features

    print(dumps(features(), indent="    "))
    return 0


def cmd_pause(args) -> int:
    from .container import Container

    c = Container.load(state_root(args), args.id)
    with c.dir.locked():
        c.pause()
    return 0


def cmd_resume(args) -> int:
    from .container import Container

    c = Container.load(state_root(args), args.id)
    with c.dir.locked():
        c.resume()
    return 0


def cmd_ps(args) -> int:
    from .container import Container

    c = Container.load(state_root(args), args.id)
    pids = c.cgroups.pids() if c.cgroups is not None else ([c.pid] if c.init_alive() else [])
    if args.format == "json":
        print(dumps(pids))
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
def _creating_opts() -> list:
    from .cliparse import Opt

    return [Opt("-b --bundle", "str", ".", "the bundle directory"),
            Opt("--console-socket", "str", None, "AF_UNIX socket that receives the pty master"),
            Opt("--pid-file", "str", None, "write the init's pid here"),
            Opt("--no-pivot", help="use MS_MOVE + chroot instead of pivot_root"),
            Opt("--no-new-keyring", help="keep the caller's session keyring"),
            Opt("--preserve-fds", "int", 0, "pass this many fds from 3 on to the container")]


def commands() -> list:
    from .cli_extra import extra_commands
    from .cliparse import Cmd, Opt

    return [
        Cmd("create", cmd_create, "create a container", _creating_opts(), ("id",)),
        Cmd("run", cmd_run, "create and start a container",
            [Opt("-d --detach", help="do not wait for the container"),
             Opt("--keep", help="keep the container after it exits")] + _creating_opts(), ("id",)),
        Cmd("start", cmd_start, "start a created container", args=("id",)),
        Cmd("state", cmd_state, "output the state of a container", args=("id",)),
        Cmd("kill", cmd_kill, "send a signal to the container's init",
            [Opt("-a --all", help="signal every process of the container")], ("id", "signal?")),
        Cmd("delete", cmd_delete, "delete a container", [Opt("-f --force", help="kill it first if needed")],
            ("id",), aliases=("rm",)),
        Cmd("list", cmd_list, "list containers",
            [Opt("-f --format", "str", "table", "output format", choices=("table", "json")),
             Opt("-q --quiet", help="ids only")], aliases=("ls",)),
        Cmd("spec", cmd_spec, "write a default config.json",
            [Opt("--rootless", help="for an unprivileged user"), Opt("-b --bundle", "str", None, "where")]),
        Cmd("features", cmd_features, "show the runtime's features (JSON)"),
        Cmd("pause", cmd_pause, "freeze all processes of a container", args=("id",)),
        Cmd("resume", cmd_resume, "thaw a paused container", args=("id",)),
        Cmd("ps", cmd_ps, "list the processes of a container",
            [Opt("-f --format", "str", "table", "output format", choices=("table", "json"))], ("id", "ps_args...")),
        *extra_commands(),
    ]


def global_opts() -> list:
    from .cliparse import Opt

    return [Opt("--root", "str", None, f"state directory (default {DEFAULT_ROOT})"),
            Opt("--log", "str", None, "log file (default: stderr)"),
            Opt("--log-format", "str", "text", "log format", choices=("text", "json")),
            Opt("--debug", help="debug logging"),
            Opt("--systemd-cgroup", help="use the systemd cgroup driver"),
            Opt("--rootless", "str", "auto", "accepted for runc compatibility"),
            Opt("--criu", "str", None, hidden=True),
            Opt("-v --version", help="print the version")]


def main(argv: list[str] | None = None) -> int:
    from .cliparse import UsageError, help_text, parse

    argv = sys.argv[1:] if argv is None else argv
    all_commands = commands()
    gopts = global_opts()
    try:
        args, cmd = parse(argv, gopts, all_commands, "pyrunc")
    except UsageError as e:
        log.logger.error(str(e))
        return 1
    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        print(version_text())
        return 0
    if cmd is None or getattr(args, "help", False):
        try:
            print(help_text("pyrunc", "pyrunc: a runc-compatible OCI runtime", gopts, all_commands, cmd))
        except BrokenPipeError:
            pass
        return 0
    try:
        if args.systemd_cgroup and not os.path.isdir("/run/systemd/system") and args.command in ("create", "run"):
            raise RuntimeFailure("--systemd-cgroup: systemd is not running on this host "
                                 "(no /run/systemd/system); use the cgroupfs driver")
        return cmd.func(args)
    except RuntimeFailure as e:
        log.logger.error(str(e))
        return 1
    except OSError as e:
        log.logger.error(f"{args.command}: {e}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # our stdout was closed early (e.g. piped into head): nothing left to say
        return 1
    except Exception as e:  # a bug of ours: still one line (the engines show it), the traceback with --debug
        if args.debug:
            import traceback

            log.logger.debug(traceback.format_exc())
        log.logger.error(f"{args.command}: internal error: {type(e).__name__}: {e}")
        return 1


def main_and_exit() -> None:
    """Run the command and leave without the interpreter's finalization (module teardown, GC): it takes
    ~9 ms, and engines wait for us. containerd's shim only starts watching the container's memory cgroup
    for OOM kills once `start` has exited, so a process killed in that window would go unreported."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main_and_exit()
