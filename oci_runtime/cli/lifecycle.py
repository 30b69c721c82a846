"""create, run, start, state, kill, delete, list: runc's lifecycle commands."""

from __future__ import annotations

from oci_runtime.cli.common import console_socket, listen_env, listen_fds, parse_signal, print_table, state_root
from oci_runtime.cli.parser import Cmd, Opt
from oci_runtime.jsonio import dumps


def _create_options(args) -> dict:
    return dict(pid_file=args.pid_file, no_pivot=args.no_pivot, no_new_keyring=args.no_new_keyring,
                preserve_fds=args.preserve_fds + listen_fds(), systemd_cgroup=args.systemd_cgroup,
                extra_env=listen_env())


def cmd_create(args) -> int:
    from oci_runtime.container.create import create

    sock = console_socket(args.console_socket)
    try:
        create(state_root(args), args.id, args.bundle, console_sock=sock, **_create_options(args))
    finally:
        if sock is not None:
            sock.close()
    return 0


def cmd_run(args) -> int:
    from oci_runtime.container.run import run

    return run(state_root(args), args.id, args.bundle, console_sock=console_socket(args.console_socket),
               detach=args.detach, keep=args.keep, no_subreaper=args.no_subreaper, **_create_options(args))


def cmd_start(args) -> int:
    from oci_runtime.container.lifecycle import Container

    Container.load(state_root(args), args.id).start()
    return 0


def cmd_state(args) -> int:
    from oci_runtime.container.lifecycle import Container

    print(dumps(Container.load(state_root(args), args.id).oci_state(), indent=2))
    return 0


def cmd_kill(args) -> int:
    from oci_runtime.container.lifecycle import Container

    # runc's default is SIGTERM; 0 sends nothing and only checks that the processes exist
    sig = 0 if args.signal == "0" else parse_signal(args.signal or "SIGTERM")
    Container.load(state_root(args), args.id).kill(sig, all_processes=args.all)
    return 0


def cmd_delete(args) -> int:
    from oci_runtime.container.lifecycle import delete

    delete(state_root(args), args.id, force=args.force)
    return 0


def cmd_list(args) -> int:
    from oci_runtime.container.lifecycle import list_states

    rows = list_states(state_root(args))
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(dumps(rows, compact=True))  # runc prints compact JSON
    else:
        print_table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                    [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows])
    return 0


def _creating_opts() -> list:
    return [Opt("-b --bundle", "str", ".", "the bundle directory"),
            Opt("--console-socket", "str", None, "AF_UNIX socket that receives the pty master"),
            Opt("--pid-file", "str", None, "write the init's pid here"),
            Opt("--no-pivot", help="use MS_MOVE + chroot instead of pivot_root"),
            Opt("--no-new-keyring", help="keep the caller's session keyring"),
            Opt("--preserve-fds", "int", 0, "pass this many fds from 3 on to the container")]


def commands() -> list:
    return [
        Cmd("create", cmd_create, "create a container", _creating_opts(), ("id",)),
        Cmd("run", cmd_run, "create and start a container",
            [Opt("-d --detach", help="do not wait for the container"),
             Opt("--keep", help="keep the container after it exits"),
             Opt("--no-subreaper", help="do not stay a subreaper for the container's orphans")]
            + _creating_opts(), ("id",)),
        Cmd("start", cmd_start, "start a created container", args=("id",)),
        Cmd("state", cmd_state, "output the state of a container", args=("id",)),
        Cmd("kill", cmd_kill, "send a signal to the container's init",
            [Opt("-a --all", help="signal every process of the container")], ("id", "signal?")),
        Cmd("delete", cmd_delete, "delete a container", [Opt("-f --force", help="kill it first if needed")],
            ("id",), aliases=("rm",)),
        Cmd("list", cmd_list, "list containers",
            [Opt("-f --format", "str", "table", "output format", choices=("table", "json")),
             Opt("-q --quiet", help="ids only")], aliases=("ls",)),
    ]
