"""pydock volume create, ls, inspect, rm and prune: docker's local volumes (builder.volume), with docker's
output, filters and refusals (a volume a container uses is never removed). Errors exit 1, as docker's."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _volumes(args):
    from builder.volume.store import Volumes

    return Volumes(Path(os.path.abspath(args.root)))


def _all_records(args) -> list[dict]:
    from builder.container.records import Records

    return Records(Path(os.path.abspath(args.root))).all()


def _labels(items: list[str]) -> dict:
    return dict((item.split("=", 1) + [""])[:2] for item in items)


def cmd_create(args) -> int:
    from builder.volume.store import VolumeError

    if args.name and args.name_arg and args.name != args.name_arg:
        raise VolumeError(f"conflicting options: either specify --name or provide positional arg, not both")
    name = args.name or args.name_arg
    print(_volumes(args).create(name, driver=args.driver, labels=_labels(args.label))["Name"])
    return 0


def _filters(items: list[str]) -> list[tuple[str, str]]:
    from builder.volume.store import VolumeError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ("dangling", "name", "label", "driver"):
            raise VolumeError(f"invalid filter '{item}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise VolumeError(f"invalid filter 'dangling={value}'")
        out.append((key, value))
    return out


def _matches(volume: dict, filters: list[tuple[str, str]], used: set[str]) -> bool:
    """docker's rule: every kind of filter must match, and for one kind any of its values."""
    kinds: dict[str, list[bool]] = {}
    for key, value in filters:
        if key == "dangling":
            ok = (volume["Name"] not in used) == (value.lower() in ("true", "1"))
        elif key == "name":
            ok = value in volume["Name"]
        elif key == "driver":
            ok = volume["Driver"] == value
        else:
            k, sep, v = value.partition("=")
            ok = k in volume["Labels"] and (not sep or volume["Labels"][k] == v)
        kinds.setdefault(key, []).append(ok)
    return all(any(oks) for oks in kinds.values())


def _used_names(args) -> set[str]:
    return {m["Name"] for doc in _all_records(args) for m in doc.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name")}


def cmd_ls(args) -> int:
    from builder.cli.formatting import check_template, print_table, render_template

    if args.format:
        check_template(args.format)
    filters = _filters(args.filter)
    used = _used_names(args)
    volumes = [v for v in _volumes(args).all() if _matches(v, filters, used)]
    if args.quiet:
        for v in volumes:
            print(v["Name"])
    elif args.format:
        for v in volumes:
            print(render_template(args.format, v))
    else:
        print_table([["DRIVER", "VOLUME NAME"]] + [[v["Driver"], v["Name"]] for v in volumes])
    return 0


def cmd_inspect(args) -> int:
    from builder.cli.formatting import check_template, print_inspect
    from builder.volume.store import VolumeError

    if args.format:
        check_template(args.format)
    volumes = _volumes(args)
    found, failed = [], False
    for name in args.volumes:
        try:
            found.append(volumes.inspect(name))
        except VolumeError:
            print(f"pydock: error: No such volume: {name}", file=sys.stderr)
            failed = True
    print_inspect(found, args.format)
    return 1 if failed else 0


def cmd_rm(args) -> int:
    from builder.container.volumes import users
    from builder.volume.store import VolumeError

    volumes = _volumes(args)
    failed = False
    for name in args.volumes:
        try:
            with volumes.locked():
                volumes.inspect(name)
                using = users(_all_records(args), name)
                if using:
                    raise VolumeError(f"remove {name}: volume is in use - [{', '.join(using)}]")
                volumes.remove(name)
        except VolumeError as e:
            if args.force and "no such volume" in str(e):
                continue
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0


def cmd_prune(args) -> int:
    from builder.cli.formatting import print_prune_report
    from builder.cli.system import confirmed
    from builder.container.volumes import users
    from builder.volume.store import is_anonymous

    filters = _filters(args.filter)
    what = "all local volumes" if args.all else "anonymous local volumes"
    if not confirmed(args, f"This will remove {what} not used by at least one container."):
        return 0
    volumes = _volumes(args)
    deleted, reclaimed = [], 0
    for volume in volumes.all():
        if not (args.all or is_anonymous(volume)) or not _matches(volume, filters, set()):
            continue
        with volumes.locked():
            if users(_all_records(args), volume["Name"]):
                continue
            size = volumes.size(volume["Name"])
            volumes.remove(volume["Name"])
        deleted.append(volume["Name"])
        reclaimed += size
    print_prune_report("Volumes", deleted, reclaimed)
    return 0


def add_parsers(sub) -> None:
    volume = sub.add_parser("volume", help="manage volumes")
    verbs = volume.add_subparsers(dest="volume_command", metavar="COMMAND")

    p = verbs.add_parser("create", help="create a volume")
    p.add_argument("--name", help="the volume's name (default: a generated one)")
    p.add_argument("-d", "--driver", default="local", help="the volume driver (only local)")
    p.add_argument("--label", action="append", default=[], help="set a label KEY=VALUE")
    p.add_argument("name_arg", metavar="VOLUME", nargs="?")
    p.set_defaults(func=cmd_create)

    p = verbs.add_parser("ls", aliases=["list"], help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="only the names")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="dangling=true|false, name=PART, label=KEY[=VALUE], driver=NAME")
    p.add_argument("--format", help="a Go template for each volume")
    p.set_defaults(func=cmd_ls)

    p = verbs.add_parser("inspect", help="show volumes in detail")
    p.add_argument("-f", "--format", help="a Go template")
    p.add_argument("volumes", metavar="VOLUME", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = verbs.add_parser("rm", aliases=["remove"], help="remove volumes no container uses")
    p.add_argument("-f", "--force", action="store_true", help="no error for a volume that does not exist")
    p.add_argument("volumes", metavar="VOLUME", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = verbs.add_parser("prune", help="remove volumes no container uses")
    p.add_argument("-a", "--all", action="store_true", help="named volumes too, not only anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE]")
    p.set_defaults(func=cmd_prune)
