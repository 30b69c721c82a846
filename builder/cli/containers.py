"""pydock create, run, start, stop, restart, kill, rm, wait, pause, unpause, rename, top and exec: the
container lifecycle verbs. Each one is a thin layer over builder.container; errors exit 125 (docker's
"the daemon failed")."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _store_root(args) -> Path:
    return Path(os.path.abspath(args.root))


def _records(args):
    from builder.container.records import Records

    return Records(_store_root(args))


def _create(args) -> dict:
    from builder.cli.shared import open_store
    from builder.container.options import new_record

    store = open_store(args)
    image = _image_for(store, args.image, args.pull)
    records = _records(args)
    doc = new_record(image, args.image, args, records)
    try:
        return records.create(doc, args.name)
    except BaseException:
        from builder.container.volumes import release_anonymous
        from builder.volume.store import Volumes

        release_anonymous(Volumes(_store_root(args)), records.all(), dict(doc, Id=""))  # nothing left behind
        raise


def _image_for(store, ref: str, policy: str):
    """The image run/create names: the store's, or pulled as docker does (--pull missing|always|never), its
    progress on stderr so that the container's output stays alone on stdout."""
    from builder.registry.local import resolve_local

    image = None if policy == "always" else resolve_local(store, ref)
    if image is not None:
        return image
    if policy == "never" or ref.startswith("sha256:"):
        return store.resolve(ref)  # the store's own "image not found"
    from builder.registry.pull import pull
    from builder.registry.reference import parse

    reference = parse(ref)
    if policy == "missing":
        print(f"Unable to find image '{reference.familiar()}' locally", file=sys.stderr, flush=True)
    result = pull(store, reference, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"Status: {'Downloaded newer image' if result.downloaded else 'Image is up to date'} for "
          f"{result.name or reference.familiar()}", file=sys.stderr, flush=True)
    return result.image


def _check_ports_free(args) -> None:
    """A fixed host port that -p names and something holds now: refused before anything is created."""
    if not args.publish or args.network in ("host", "none"):
        return  # docker discards -p there
    from builder.container.records import ContainerError
    from builder.network.portspec import PortSpecError, port_bindings
    from builder.network.ports import PublishError, check_free

    try:
        check_free(port_bindings(args.publish))
    except PortSpecError:
        return  # create names the bad value
    except PublishError as e:
        raise ContainerError(str(e)) from None


def cmd_create(args) -> int:
    print(_create(args)["Id"])
    return 0


def cmd_run(args) -> int:
    from builder.container import control

    records = _records(args)
    keys = _detach_keys(args)
    _check_ports_free(args)
    doc = _create(args)
    if not args.detach:
        _attach_extras(args, records.path(doc["Id"]), doc)  # before the container's first output
    try:
        reader, raw = _start(args, records, doc, attach=not args.detach, detach_keys=keys)
    except control.StartFailed as e:
        if e.code == 125 or doc["HostConfig"]["AutoRemove"]:
            control.remove(_store_root(args), records, doc, force=True, volumes=True)
        print(f"pydock: error: {e}", file=sys.stderr)
        return e.code
    if args.detach:
        reader.close()
        print(doc["Id"])
        return 0
    with raw:
        code = control.wait_exit(reader)
    return 0 if code is None else code  # None: the detach keys let us go


def cmd_start(args) -> int:
    from builder.container import control

    records = _records(args)
    keys = _detach_keys(args)
    args.attach = args.attach or args.interactive  # docker: -i attaches the output too
    failed = 0
    for ref in args.containers:
        doc = records.lookup(ref)
        if args.attach:
            _attach_extras(args, records.path(doc["Id"]), doc)
        try:
            reader, raw = _start(args, records, doc, attach=args.attach, detach_keys=keys,
                                 stdin=args.interactive)  # docker: -a alone shows output, sends no input
        except control.StartFailed as e:
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = e.code
            continue
        if args.attach:
            with raw:
                code = control.wait_exit(reader)
            return 0 if code is None else code
        reader.close()
        print(ref)
    return failed


def cmd_stop(args) -> int:
    from builder.container import control

    records = _records(args)
    for ref in args.containers:
        control.stop(_store_root(args), records, records.lookup(ref), args.time)
        print(ref)
    return 0


def cmd_restart(args) -> int:
    from builder.container import control

    records = _records(args)
    for ref in args.containers:
        doc = records.lookup(ref)
        control.stop(_store_root(args), records, doc, args.time)
        control.start(_store_root(args), records, records.load(doc["Id"]), attach=False).close()
        print(ref)
    return 0


def cmd_kill(args) -> int:
    from builder.container import control
    from builder.container.records import ContainerError

    records = _records(args)
    for ref in args.containers:
        doc = records.lookup(ref)
        if not control.is_running(records, doc["Id"]):
            raise ContainerError(f"cannot kill container: {ref}: container {doc['Id']} is not running")
        control.thaw(_store_root(args), records, doc["Id"])
        control.signal_container(_store_root(args), doc["Id"], args.signal)
        print(ref)
    return 0


def cmd_rm(args) -> int:
    from builder.container import control

    records = _records(args)
    for ref in args.containers:
        control.remove(_store_root(args), records, records.lookup(ref), force=args.force, volumes=args.volumes)
        print(ref)
    return 0


def cmd_wait(args) -> int:
    from builder.container import control
    from builder.container.liveness import live_state

    records = _records(args)
    for ref in args.containers:
        doc = records.lookup(ref)
        control.wait_stopped(records, doc["Id"], None)
        print(live_state(records.load(doc["Id"]))["ExitCode"])
    return 0


def cmd_pause(args) -> int:
    from builder.container import control

    records = _records(args)
    for ref in args.containers:
        (control.pause if args.command == "pause" else control.unpause)(_store_root(args), records,
                                                                       records.lookup(ref))
        print(ref)
    return 0


def cmd_rename(args) -> int:
    records = _records(args)
    records.rename(records.lookup(args.container)["Id"], args.new_name)
    return 0


def cmd_top(args) -> int:
    from builder.cli.formatting import print_table
    from builder.container import control
    from builder.container.monitor import runtime_for
    from builder.container.records import ContainerError

    records = _records(args)
    doc = records.lookup(args.container)
    if not control.is_running(records, doc["Id"]):
        raise ContainerError(f"container {doc['Id']} is not running")
    rows = [["UID", "PID", "PPID", "CMD"]]
    for pid in runtime_for(_store_root(args)).processes(doc["Id"]):
        row = _process_row(pid)
        if row:
            rows.append(row)
    print_table(rows)
    return 0


def _process_row(pid: int) -> list[str] | None:
    """UID, PID, PPID and the command line of a host process, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None  # it exited meanwhile
    return [fields["Uid"].split()[0], str(pid), fields["PPid"].strip(), cmdline or fields["Name"].strip()]


def cmd_exec(args) -> int:
    import json

    from builder.container import control
    from builder.container.bundle import merged_env
    from builder.container.liveness import live_state
    from builder.container.monitor import runtime_for
    from builder.container.options import read_env
    from builder.container.records import ContainerError

    records = _records(args)
    doc = records.lookup(args.container)
    if not control.is_running(records, doc["Id"]):
        raise ContainerError(f"container {doc['Id']} is not running")
    if live_state(records.load(doc["Id"]))["Status"] == "paused":
        raise ContainerError(f"container {doc['Id']} is paused, unpause the container before exec")
    cdir = records.path(doc["Id"])
    process = json.loads((cdir / "bundle" / "config.json").read_text())["process"]
    process["args"] = list(args.cmd)
    process["terminal"] = bool(args.tty)
    process["env"] = merged_env(process["env"], read_env(args.env, []))
    if args.workdir:
        process["cwd"] = args.workdir
    if args.user:
        from builder.container.rootfs import rootfs_path  # (its imports cost ~14 ms: only with -u)
        from oci_runtime import users

        try:
            user = users.lookup(os.fspath(rootfs_path(cdir)), args.user)
        except ValueError as e:
            raise ContainerError(str(e)) from None
        process["user"] = {"uid": user.uid, "gid": user.gid, **({"additionalGids": list(user.additional_gids)}
                                                                  if user.additional_gids else {})}
    try:
        return runtime_for(_store_root(args)).exec(
            doc["Id"], process, detach=args.detach, stdin=0 if (args.interactive or args.tty) else None,
            stdout=None if args.detach else 1, stderr=None if args.detach else 2)
    except Exception as e:  # noqa: BLE001 - the runtime's typed errors: the command could not run
        message = str(e)
        print(f"pydock: error: {message}", file=sys.stderr)
        from builder.container.monitor import command_failure_status

        return command_failure_status(message)


def _start(args, records, doc: dict, *, attach: bool, detach_keys: bytes, stdin: bool = True):
    """control.start, our terminal made raw first when a -it container is to own it (keys typed at once
    must reach it as typed: a cooked terminal holds them for a line, and eats ^Q). Returns the status
    reader and the raw-terminal context to wait in."""
    from builder.container import control

    stdin = stdin and bool(doc["Config"].get("OpenStdin"))
    raw = _raw_terminal(attach and stdin and bool(doc["Config"].get("Tty")))
    try:
        reader = control.start(_store_root(args), records, doc, attach=attach, detach_keys=detach_keys,
                               stdin=stdin)
    except BaseException:
        raw.__exit__(None, None, None)
        raise
    if not attach:
        raw.__exit__(None, None, None)
    return reader, raw


def _detach_keys(args) -> bytes:
    """The --detach-keys sequence (checked before anything is created)."""
    from builder.container.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys

    return parse_detach_keys(getattr(args, "detach_keys", None) or DEFAULT_DETACH_KEYS)


def _attach_extras(args, container_dir: Path, doc: dict) -> None:
    """What a foreground run/start adds to the monitor's output: signals passed on (--sig-proxy) and, with
    -t, our terminal's size changes."""
    from builder.cli.container_attach import forward_window_changes

    tty = bool(doc["Config"].get("Tty"))
    if getattr(args, "sig_proxy", True):
        _proxy_signals(_store_root(args), doc["Id"], tty)
    if tty:
        forward_window_changes(container_dir)


def _proxy_signals(store_root: Path, container_id: str, tty: bool) -> None:
    """docker's --sig-proxy: signals sent to the attached CLI go to the container (with a pty, ^C reaches
    it through the terminal already)."""
    import signal

    from builder.container import control

    def forward(signum, _frame):
        try:
            control.signal_container(store_root, container_id, signal.Signals(signum).name)
        except Exception:  # noqa: BLE001 - it exited meanwhile
            pass

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2) + \
            (() if tty else (signal.SIGINT,)):
        signal.signal(signum, forward)


class _raw_terminal:
    """Our terminal in raw mode while a -it container owns it (the container's pty does the echoing)."""

    def __init__(self, wanted: bool):
        self.saved = None
        if wanted and os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


def _add_create_options(p) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--name", help="the container's name")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-e", "--env", action="append", default=[], help="set an environment variable")
    p.add_argument("--env-file", action="append", default=[], help="read environment variables from a file")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="user[:group] to run as")
    p.add_argument("--entrypoint", help="override the image's entrypoint")
    p.add_argument("--hostname", help="the container's host name")
    p.add_argument("-v", "--volume", action="append", default=[], help="bind mount /HOST:/CTR[:ro] or named volume NAME:/CTR[:ro]")
    p.add_argument("--volumes-from", action="append", default=[], help="mount the volumes of CONTAINER[:ro|rw]")
    p.add_argument("--mount", action="append", default=[],
                   help="type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=..][,tmpfs-mode=..]")
    p.add_argument("--tmpfs", action="append", default=[], help="a tmpfs mount: /PATH[:OPTIONS]")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--init", action="store_true", help="run an init (tini) as PID 1 that reaps zombies and "
                   "passes signals on")
    p.add_argument("--network", "--net", default="bridge",
                   help="bridge (default), none, host, container:NAME|ID or a network's name")
    p.add_argument("--network-alias", action="append", default=[], help="a name for the container on its network")
    p.add_argument("--ip", help="the container's IPv4 address on a user-defined network")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]CTRPORT[/PROTO]",
                   help="publish a container's port (ranges: 8000-8010:80-90) on the host")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every exposed port on a random host port")
    p.add_argument("--expose", action="append", default=[], metavar="PORT[-END][/PROTO]",
                   help="expose a port or a range of ports")
    p.add_argument("--restart", default="no", help="no, always, unless-stopped or on-failure[:MAX]")
    p.add_argument("--cap-add", action="append", default=[], help="add a capability")
    p.add_argument("--cap-drop", action="append", default=[], help="drop a capability (or ALL)")
    p.add_argument("--ulimit", action="append", default=[],
                   help="a resource limit: NAME=SOFT[:HARD] (e.g. nofile=1024:2048)")
    p.add_argument("--security-opt", action="append", default=[],
                   help="no-new-privileges[=true|false], seccomp=unconfined or seccomp=PROFILE.json")
    p.add_argument("--privileged", action="store_true",
                   help="all capabilities, the host's devices, no seccomp, /sys read-write, nothing masked")
    p.add_argument("-l", "--label", action="append", default=[], help="set a label KEY=VALUE on the container")
    p.add_argument("--stop-signal", help="the signal that stops the container (default: the image's, or SIGTERM)")
    p.add_argument("--stop-timeout", type=int, help="seconds stop waits before SIGKILL (default 10; -1: for ever)")
    p.add_argument("--log-opt", action="append", default=[],
                   help="json-file log option: max-size=SIZE, max-file=N (rotation)")
    p.add_argument("-m", "--memory", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", help="number of CPUs (e.g. 0.5)")
    p.add_argument("--pids-limit", type=int, help="maximum number of processes")
    p.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                   help="pull the image: when the store lacks it (default), always, or never")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("cmd", metavar="COMMAND", nargs="...")


def add_parsers(sub) -> None:
    from builder.cli.container_attach import add_detach_keys_option, add_sig_proxy_option

    p = sub.add_parser("create", help="create a container")
    _add_create_options(p)
    p.set_defaults(func=cmd_create, detach=True)

    p = sub.add_parser("run", help="create and start a container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
    add_detach_keys_option(p)
    add_sig_proxy_option(p)
    _add_create_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("start", help="start stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach output and wait for the exit")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin (and the output)")
    add_detach_keys_option(p)
    p.add_argument("containers", metavar="CONTAINER", nargs="+")
    p.set_defaults(func=cmd_start)

    for name, func, text in (("stop", cmd_stop, "stop running containers"),
                             ("restart", cmd_restart, "restart containers")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-t", "--time", type=int, default=None,
                       help="seconds to wait before killing (default: the container's --stop-timeout, or 10)")
        p.add_argument("containers", metavar="CONTAINER", nargs="+")
        p.set_defaults(func=func)

    p = sub.add_parser("kill", help="send a signal to running containers")
    p.add_argument("-s", "--signal", default="KILL", help="the signal (default KILL)")
    p.add_argument("containers", metavar="CONTAINER", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove the container's anonymous volumes")
    p.add_argument("containers", metavar="CONTAINER", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("wait", help="wait for containers to stop, print their exit codes")
    p.add_argument("containers", metavar="CONTAINER", nargs="+")
    p.set_defaults(func=cmd_wait)

    for name, text in (("pause", "freeze the processes of containers"), ("unpause", "thaw paused containers")):
        p = sub.add_parser(name, help=text)
        p.add_argument("containers", metavar="CONTAINER", nargs="+")
        p.set_defaults(func=cmd_pause)

    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser("top", help="list a container's processes")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-u", "--user")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", metavar="COMMAND", nargs="...")
    p.set_defaults(func=cmd_exec)
