"""pydock version, info, container prune and image prune: what this pydock is, what its store holds,
and clearing out what nothing uses. There is no daemon: the
"Server" block describes the engine this process is (the store, the pyrunc runtime)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from builder.cli.shared import UsageError

VERSION = "0.1.0"


def _runtime_version() -> str:
    import oci_runtime

    return oci_runtime.VERSION


def _cgroup_version() -> str:
    """2 when /sys/fs/cgroup is the unified hierarchy (or a hybrid host's cgroup2 mount is all there is)."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or "Linux"
    except OSError:
        return "Linux"


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cmd_version(args) -> int:
    import oci_runtime

    python = sys.version.split()[0]
    print("Client:")
    print(f" Version:           {VERSION}")
    print(" API version:       none (daemonless)")
    print(f" Python version:    {python}")
    print(f" OS/Arch:           linux/{_go_arch()}")
    print()
    print("Server: pydock (daemonless)")
    print(" Engine:")
    print(f"  Version:          {VERSION}")
    print(f"  Python version:   {python}")
    print(f"  OS/Arch:          linux/{_go_arch()}")
    print(" pyrunc:")
    print(f"  Version:          {_runtime_version()}")
    print(f"  OCI spec:         {oci_runtime.SPEC_VERSION}")
    return 0


def cmd_info(args) -> int:
    from builder.cli.shared import open_store
    from builder.container.liveness import live_state
    from builder.container.records import Records

    root = Path(os.path.abspath(args.root))
    counts = {"running": 0, "paused": 0, "stopped": 0}
    docs = Records(root).all()
    for doc in docs:
        status = live_state(doc)["Status"]
        key = status if status in ("running", "paused") else "stopped"
        if status in ("restarting", "starting"):
            key = "running"
        counts[key] += 1
    images = len(open_store(args).images())
    uname = os.uname()
    lines = [
        "Client:",
        f" Version:    {VERSION}",
        " Context:    default",
        "",
        "Server:",
        f" Containers: {len(docs)}",
        f"  Running: {counts['running']}",
        f"  Paused: {counts['paused']}",
        f"  Stopped: {counts['stopped']}",
        f" Images: {images}",
        f" Server Version: {VERSION} (daemonless)",
        " Storage Driver: overlay2",
        f" Pydock Root Dir: {root}",
        " Cgroup Driver: cgroupfs",
        f" Cgroup Version: {_cgroup_version()}",
        " Runtimes: pyrunc",
        " Default Runtime: pyrunc",
        f" pyrunc version: {_runtime_version()}",
        f" Kernel Version: {uname.release}",
        f" Operating System: {_os_name()}",
        " OSType: linux",
        f" Architecture: {uname.machine}",
        f" CPUs: {os.cpu_count()}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("version", help="show pydock's and its runtime's versions")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("info", help="show what the store holds and the system it runs on")
    p.set_defaults(func=cmd_info)

    container = sub.add_parser("container", help="manage containers")
    verbs = container.add_subparsers(dest="container_command", metavar="COMMAND")
    p = verbs.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_container_prune)

    image = sub.add_parser("image", help="manage images")
    verbs = image.add_subparsers(dest="image_command", metavar="COMMAND")
    p = verbs.add_parser("prune", help="remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="remove all images no container uses, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="only images created before until=TIMESTAMP|DURATION, or with (label=K[=V]) "
                        "or without (label!=K[=V]) a label")
    p.set_defaults(func=cmd_image_prune)


def confirmed(args, warning: str) -> bool:
    if args.force:
        return True
    sys.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_container_prune(args) -> int:
    from builder.cli.formatting import print_prune_report
    from builder.container import control
    from builder.container.liveness import ACTIVE, live_state
    from builder.container.records import Records
    from builder.container.rootfs import upper_size

    if not confirmed(args, "This will remove all stopped containers."):
        return 0
    root = Path(os.path.abspath(args.root))
    records = Records(root)
    deleted, reclaimed = [], 0
    for doc in records.all():
        if live_state(doc)["Status"] in ACTIVE:
            continue
        size = upper_size(records.path(doc["Id"]))
        control.remove(root, records, doc, force=False)
        deleted.append(doc["Id"])
        reclaimed += size
    from builder.network.firewall import table_for
    from builder.network.ports import remove_stale_rules

    # publish rules a failed release left behind in the store's own table
    stopped = {doc["Id"] for doc in records.all() if live_state(doc)["Status"] not in ACTIVE}
    remove_stale_rules(table_for(root), stopped | set(deleted))
    print_prune_report("Containers", deleted, reclaimed)
    return 0


def _filter_time(value: str, now: float) -> float:
    """docker's until= filter value, in seconds since the epoch (see parse_time_bound)."""
    from oci_runtime.units import parse_time_bound

    stamp = parse_time_bound(value, now)
    if stamp is None:
        raise UsageError(f"invalid filter 'until={value}': want a duration (24h), a time (RFC 3339) "
                         "or Unix seconds")
    return stamp


def prune_filter(values: list[str] | None, now: float):
    """A predicate over images from image prune's --filter values (until, label, label!); docker's rules:
    every until= must hold, a label= must match (any of them), a label!= must not."""
    from oci_runtime.units import parse_rfc3339

    until: list[float] = []
    labels: list[tuple[str, str | None]] = []
    not_labels: list[tuple[str, str | None]] = []
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {item!r}")
        if key == "until":
            until.append(_filter_time(value, now))
        elif key in ("label", "label!"):
            name, has_value, wanted = value.partition("=")
            (labels if key == "label" else not_labels).append((name, wanted if has_value else None))
        else:
            raise UsageError(f"invalid filter {key!r} (image prune takes until, label and label!)")

    def has(image_labels: dict, name: str, wanted: str | None) -> bool:
        return name in image_labels and (wanted is None or image_labels[name] == wanted)

    def keep_out(image) -> bool:
        created = parse_rfc3339(image.config.get("created", "")) or 0.0
        image_labels = (image.config.get("config") or {}).get("Labels") or {}
        if any(created >= t for t in until):
            return True
        if labels and not any(has(image_labels, n, v) for n, v in labels):
            return True
        return any(has(image_labels, n, v) for n, v in not_labels)

    return keep_out


def cmd_image_prune(args) -> int:
    from builder.cli.container_views import containers_using
    from builder.cli.formatting import print_prune_report
    from builder.cli.shared import open_store
    from builder.container.rootfs import tree_size

    import time

    warning = ("This will remove all images without at least one container associated to them." if args.all
               else "This will remove all dangling images.")
    spared = prune_filter(args.filter, time.time())  # bad filters are refused before the question
    if not confirmed(args, warning):
        return 0
    store = open_store(args)
    before = tree_size(store.root / "blobs")
    lines = []
    for names, image in store.images():
        if (names and not args.all) or spared(image) or containers_using(args, image.id):
            continue
        for line in store.remove(image.id, force=True):
            word, _, rest = line.partition(": ")
            lines.append(f"{word.lower()}: {rest}")
    reclaimed = max(0, before - tree_size(store.root / "blobs"))
    print_prune_report("Images", lines, reclaimed)
    return 0
