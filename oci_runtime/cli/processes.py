"""exec and ps: processes inside a container."""

from __future__ import annotations

from oci_runtime.cli.common import console_socket, state_root
from oci_runtime.cli.parser import Cmd, Opt
from oci_runtime.errors import ConfigInvalid, RuntimeFailure
from oci_runtime.jsonio import dumps, loads


def cmd_exec(args) -> int:
    from oci_runtime.container.exec import exec_process
    from oci_runtime.container.lifecycle import Container

    container = Container.load(state_root(args), args.id)
    sub_cgroups = _sub_cgroups(args.cgroup or [])
    process = _process(container, args)
    sock = console_socket(args.console_socket) if process.get("terminal") else None
    return exec_process(container, process, console_sock=sock, detach=args.detach, pid_file=args.pid_file,
                        preserve_fds=args.preserve_fds, ignore_paused=args.ignore_paused, sub_cgroups=sub_cgroups,
                        no_subreaper=args.no_subreaper)


def _sub_cgroups(values: list[str]) -> dict:
    """--cgroup [CONTROLLER[,CONTROLLER]:]PATH, repeatable: {controller or None (all others): path below the
    container's cgroup}. A path may not climb out of the container's cgroup."""
    import posixpath

    subs: dict = {}
    for value in values:
        controllers, sep, path = value.rpartition(":")
        norm = posixpath.normpath(path or ".")
        if norm == ".." or norm.startswith("../"):
            raise RuntimeFailure(f"exec --cgroup {value}: {path} is not a sub cgroup path")
        relative = "" if norm in (".", "/") else norm.lstrip("/")  # "" is the container's own cgroup
        for controller in (controllers.split(",") if sep else [None]):
            subs[controller] = relative
    return subs


def _process(container, args) -> dict:
    """The process to run: --process FILE as given, or the container's own process with ARGS and flags."""
    if args.process:
        from oci_runtime.bundle import read_json
        from oci_runtime.validate import validate_process

        process = read_json(args.process, "process.json", pipes=True)
        validate_process(process)
    else:
        if not args.command:
            raise ConfigInvalid("exec needs a command to run, or --process FILE")
        base = (container.state.get("config") or {}).get("process") or {}
        process = loads(dumps(base))  # a deep copy of the container's process settings
        process["args"] = list(args.command)
        process.pop("consoleSize", None)
        process["terminal"] = False
    if args.tty:
        process["terminal"] = True
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        env = [e for e in process.get("env") or [] if e.split("=", 1)[0] not in {x.split("=", 1)[0] for x in args.env}]
        process["env"] = env + list(args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            user = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise ConfigInvalid(f"--user {args.user!r}: expected uid[:gid] as numbers") from None
        process["user"] = user
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.cap:
        caps = process.setdefault("capabilities", {})
        for set_name in ("bounding", "effective", "permitted"):
            caps[set_name] = list(dict.fromkeys((caps.get(set_name) or []) + list(args.cap)))
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    if args.apparmor:
        process["apparmorProfile"] = args.apparmor
    if args.process_label:
        process["selinuxLabel"] = args.process_label
    return process


def cmd_ps(args) -> int:
    from oci_runtime.container.lifecycle import Container

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


def commands() -> list:
    return [
        Cmd("exec", cmd_exec, "run a process in a running container", [
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
            Opt("--no-subreaper", help="do not stay a subreaper for the process's orphans"),
            Opt("--cgroup", "list", None, "[CONTROLLER[,CONTROLLER]:]PATH: run in a sub-cgroup of the container's"),
        ], ("id", "command..."), failure_status=255),
        Cmd("ps", cmd_ps, "list the processes of a container",
            [Opt("-f --format", "str", "table", "output format", choices=("table", "json"))], ("id", "ps_args...")),
    ]
