"""pydock port, logs, export, commit and the container side of inspect (ps is container_ps.py): reading
containers' records and logs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from builder.cli.formatting import human_duration
from builder.container.liveness import ZERO_TIME


def _records(args):
    from builder.container.records import Records

    return Records(Path(os.path.abspath(args.root)))


def _seconds_since(stamp: str, now: float) -> float:
    from oci_runtime.units import parse_rfc3339

    t = parse_rfc3339(stamp)
    return max(0.0, now - t) if t is not None else 0.0


def status_text(state: dict, now: float) -> str:
    """docker's STATUS column."""
    if state["Status"] == "restarting":
        return f"Restarting ({state['ExitCode']}) {human_duration(_seconds_since(state['FinishedAt'], now))} ago"
    if state["Status"] == "paused":
        return f"Up {human_duration(_seconds_since(state['StartedAt'], now))} (Paused)"
    if state["Status"] in ("running", "starting"):
        return f"Up {human_duration(_seconds_since(state['StartedAt'], now))}"
    if state["Status"] == "exited":
        if state.get("FinishedAt", ZERO_TIME) == ZERO_TIME:  # its monitor died before recording the end
            return f"Exited ({state['ExitCode']})"
        return f"Exited ({state['ExitCode']}) {human_duration(_seconds_since(state['FinishedAt'], now))} ago"
    return state["Status"].capitalize()


def _command_text(doc: dict, truncate: bool) -> str:
    text = " ".join([doc["Path"], *doc["Args"]])
    if truncate and len(text) > 20:
        text = text[:19] + "…"
    return json.dumps(text, ensure_ascii=False)


def _running_ports(doc: dict, state: dict) -> dict:
    """NetworkSettings.Ports while the container runs (docker shows no ports for a stopped one)."""
    if state["Status"] not in ("running", "paused", "restarting"):
        return {}
    return (doc.get("NetworkSettings") or {}).get("Ports") or {}


def _ports_text(doc: dict, state: dict) -> str:
    ports = _running_ports(doc, state)
    if not ports:
        return ""
    from builder.network.portspec import ps_ports

    return ps_ports(ports)


def cmd_port(args) -> int:
    from builder.container.liveness import live_state
    from builder.network.portspec import PortSpecError, port_lines

    doc = _records(args).lookup(args.container)
    ports = _running_ports(doc, live_state(doc))
    try:
        lines = port_lines(ports, args.private_port)
    except PortSpecError as e:
        from builder.container.records import ContainerError
        raise ContainerError(str(e)) from None
    if args.private_port is not None and not lines:
        port, _, proto = args.private_port.partition("/")
        print(f"Error: No public port '{port}/{proto or 'tcp'}' published for {args.container}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def cmd_logs(args) -> int:
    from builder.container import control
    from builder.container.logs import log_path, read_entries, time_bound, within

    since = time_bound(args.since, "--since") if args.since else None
    until = time_bound(args.until, "--until") if args.until else None
    records = _records(args)
    doc = records.lookup(args.container)
    path = log_path(records.path(doc["Id"]), doc["Id"])
    def following() -> bool:  # -f: until the container stops, or --until is past
        return control.is_running(records, doc["Id"]) and (until is None or time.time() <= until)

    follow = following if args.follow else None
    entries = read_entries(path, follow_while=follow)
    if args.tail is not None and args.tail != "all":
        try:
            count = int(args.tail)
        except ValueError:
            from builder.container.records import ContainerError
            raise ContainerError(f"invalid value for --tail: {args.tail!r}") from None
        kept = []
        for entry in read_entries(path):
            kept = (kept + [entry])[-count:] if count > 0 else []
        entries = _chain(kept, read_entries(path, follow_while=follow), skip=_count(path)) if args.follow else kept
    if since is not None or until is not None:
        entries = within(iter(entries), since, until)
    for entry in entries:
        out = sys.stderr.buffer if entry.get("stream") == "stderr" else sys.stdout.buffer
        prefix = (entry.get("time", "") + " ").encode() if args.timestamps else b""
        out.write(prefix + entry.get("log", "").encode())
        out.flush()
    error = records.load(doc["Id"]).get("LogError")
    if error:
        print(f"pydock: warning: {error}: some of the container's output is not in its log", file=sys.stderr)
    return 0


def _count(path) -> int:
    from builder.container.logs import read_entries

    return sum(1 for _ in read_entries(path))


def _chain(first, rest, *, skip: int):
    yield from first
    for i, entry in enumerate(rest):
        if i >= skip:
            yield entry


def container_inspect(args, ref: str) -> dict | None:
    """`docker inspect` data for a container, or None when no container answers to ref."""
    from builder.container.liveness import live_state
    from builder.container.logs import log_path
    from builder.container.records import ContainerError

    records = _records(args)
    try:
        doc = records.lookup(ref)
    except ContainerError:
        return None
    out = {k: v for k, v in doc.items() if k not in ("Monitor", "Guard", "PortProxy", "LogError")}
    out["State"] = live_state(doc)
    out["LogPath"] = os.fspath(log_path(records.path(doc["Id"]), doc["Id"]))
    return out


def containers_using(args, image_id: str) -> list[str]:
    """The ids of the containers made from this image (whatever their state)."""
    return [doc["Id"] for doc in _records(args).all() if doc["Image"] == image_id]


def cmd_export(args) -> int:
    import tarfile

    from builder.cli.shared import open_store
    from builder.container import control
    from builder.container.rootfs import mount_rootfs, unmount_rootfs

    records = _records(args)
    doc = records.lookup(args.container)
    cdir = records.path(doc["Id"])
    running = control.is_running(records, doc["Id"])
    store = open_store(args)
    rootfs = mount_rootfs(store, store.resolve(doc["Image"]), cdir)
    try:
        out = open(args.output, "wb") if args.output else sys.stdout.buffer
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(os.listdir(rootfs)):
                tar.add(rootfs / entry, arcname=entry)
        if args.output:
            out.close()
    finally:
        if not running and not control.is_running(records, doc["Id"]):
            unmount_rootfs(cdir)
    return 0


def cmd_commit(args) -> int:
    from builder.cli.shared import open_store
    from builder.container import control
    from builder.container.commit import commit_container
    from builder.container.liveness import live_state

    records = _records(args)
    doc = records.lookup(args.container)
    store = open_store(args)
    root = Path(os.path.abspath(args.root))
    # a running container is paused while its files are read, as docker does (--pause=true)
    paused = args.pause and live_state(records.load(doc["Id"]))["Status"] == "running"
    if paused:
        control.pause(root, records, doc)
    try:
        image = commit_container(store, records, doc, message=args.message or "", author=args.author or "",
                                 changes=args.change)
    finally:
        if paused:
            control.unpause(root, records, doc)
    if args.reference:
        store.tag(image, args.reference)
    print(image.id)
    return 0


def add_parsers(sub) -> None:
    from builder.cli.shared import add_bool_flag

    p = sub.add_parser("commit", help="make an image from a container's changes")
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-a", "--author", help="author")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "STOPSIGNAL, USER, VOLUME, WORKDIR) to the image's config")
    add_bool_flag(p, "-p", "--pause", default=True, help="pause a running container during the commit (default true)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("reference", metavar="REPOSITORY[:TAG]", nargs="?")
    p.set_defaults(func=cmd_commit)

    from builder.cli.container_ps import add_ps_parser

    add_ps_parser(sub)

    p = sub.add_parser("port", help="list a container's published ports")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private_port", metavar="PRIVATE_PORT[/PROTO]", nargs="?")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("-n", "--tail", help="number of lines from the end (default all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", help="only output since then: a time (RFC 3339 or Unix) or a duration ago (10m)")
    p.add_argument("--until", help="only output until then: a time (RFC 3339 or Unix) or a duration ago (10m)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("export", help="write a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="write to this file (default: stdout)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_export)
