"""pydock images, rmi, tag, inspect, history, save, load and import: the verbs over the local image store."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from builder.cli.formatting import (check_template, ellipsis, human_duration, human_size, print_formatted,
                                    print_inspect, print_table)
from builder.cli.shared import UsageError, open_store
from builder.errors import BuildError
from oci_runtime.units import parse_rfc3339


def _uncompressed_size(image) -> int:
    return image.size


def cmd_images(args) -> int:
    from builder.image.store import split_ref

    if args.format and args.format != "json":
        check_template(args.format.removeprefix("table"))  # docker parses the template before reading
    store = open_store(args)
    rows = [["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]]
    fields: list[dict] = []  # the same rows with docker's --format names
    ids = []
    now = time.time()
    want = None
    if args.repository:
        want = split_ref(args.repository)
    for names, image in store.images():
        created = parse_rfc3339(image.config.get("created", ""))
        when = f"{human_duration(now - created)} ago" if created else "N/A"
        image_id = image.id if args.no_trunc else image.id.split(":", 1)[1][:12]
        entries = [split_ref(n)[:2] for n in names] or [("<none>", "<none>")]
        digests: dict[str, str] = {}  # repository -> the digest its registry knows the image by
        if args.digests:
            for repo_digest in store.repo_digests(image):
                repo, _, digest = repo_digest.rpartition("@")
                digests.setdefault(repo, digest)
            # a repository it was pulled from by digest alone shows as docker shows it: no tag, the digest
            entries += [(repo, None) for repo in digests if repo not in {r for r, _ in entries}]
        for repo, tag in entries:
            if want and (want[0] != repo or (want[1] and want[1] != tag)):
                continue
            digest = [digests.get(repo, "<none>")] if args.digests else []
            size = human_size(_uncompressed_size(image))
            rows.append([repo, tag or "<none>", *digest, image_id, when, size])
            fields.append({"Repository": repo, "Tag": tag or "<none>", "Digest": digests.get(repo, "<none>"),
                           "ID": image_id, "CreatedSince": when, "CreatedAt": image.config.get("created", ""),
                           "Size": size})
            ids.append(image_id)
    if args.format and not args.quiet:
        print_formatted(args.format, fields, IMAGES_HEADERS, IMAGES_TABLE)
        return 0
    if args.quiet:
        for i in dict.fromkeys(ids):
            print(i)
        return 0
    print_table(rows)
    return 0


def cmd_rmi(args) -> int:
    store = open_store(args)
    failed = False
    for ref in args.images:
        try:
            _refuse_if_used_by_container(args, store, ref)
            for line in store.remove(ref, force=args.force):
                print(line)
        except BuildError as e:
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _refuse_if_used_by_container(args, store, ref: str) -> None:
    """A container's filesystem stands on its image's layers: the image stays while a container uses it
    (removing one of several names is fine)."""
    from builder.cli.container_views import containers_using

    try:
        image = store.resolve(ref)
    except BuildError:
        return  # unknown or damaged: store.remove says which, and removes a damaged record
    users = containers_using(args, image.id)
    if users and not (len(store.names_of(image)) > 1 and ref != image.id and not ref.startswith("sha256:")):
        raise BuildError(f"conflict: unable to remove {ref}: container {users[0][:12]} is using its image "
                         "(remove the container first)")


def cmd_tag(args) -> int:
    store = open_store(args)
    store.tag(store.resolve(args.source), args.target)
    return 0


def docker_inspect(store, ref: str) -> dict:
    """`docker image inspect` for one image: the store's view, with docker's Config defaults filled in."""
    data = store.inspect(ref)
    cfg = dict(data.get("Config") or {})
    full = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
            "Labels": None}
    full.update(cfg)
    data["Config"] = full
    data.setdefault("DockerVersion", "")
    data.setdefault("VirtualSize", data.get("Size", 0))
    data.setdefault("GraphDriver", {"Data": None, "Name": "overlay2"})
    data.setdefault("Metadata", {"LastTagTime": "0001-01-01T00:00:00Z"})
    return data


def cmd_inspect(args) -> int:
    if args.format:
        check_template(args.format)
    store = open_store(args)
    results = []
    failed = False
    from builder.cli.container_views import container_inspect
    from builder.cli.networks import network_inspect

    for ref in args.images:
        container = container_inspect(args, ref)  # docker looks for a container first, then an image
        if container is not None:
            results.append(container)
            continue
        try:
            results.append(docker_inspect(store, ref))
        except BuildError as e:
            network = network_inspect(args, ref)  # then a network, as docker does
            if network is not None:
                results.append(network)
                continue
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = True
    print_inspect(results, args.format)
    return 1 if failed else 0


def cmd_save(args) -> int:
    from builder.image.archive import save

    store = open_store(args)
    if not args.output:
        if sys.stdout.isatty():
            raise UsageError("refusing to write an archive to a terminal: use -o FILE")
        sys.stdout.flush()
        save(store, args.images, sys.stdout.buffer, format=args.format)
        return 0
    save(store, args.images, Path(args.output), format=args.format)
    return 0


def cmd_load(args) -> int:
    from builder.image.archive import load

    store = open_store(args)
    source = args.input
    if source is None:
        if sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty: use -i FILE")
        source = "-"
    for line in load(store, source):
        if not args.quiet:
            print(line)
    return 0


def cmd_import(args) -> int:
    from builder.image.archive import import_rootfs

    config = None
    if args.change:
        from builder.dockerfile.instructions import config_from_changes  # the parser only when there are changes

        config = config_from_changes(args.change)
    store = open_store(args)
    image = import_rootfs(store, args.source, args.reference, config)
    print(image.id)
    return 0


def history_rows(image) -> list[tuple[str, str, str, int, str]]:
    """(created, created_by, comment, size, image id or "<missing>") per history entry, newest first, as
    docker lists them: an entry that made a layer has that layer's size (as stored), the others 0; only
    the newest entry is an image we have, the older ones are <missing>. Without a history, one entry
    per layer."""
    layers = list(image.layers)
    history = image.config.get("history") or [{} for _ in layers]
    rows, next_layer = [], 0
    for entry in history:
        size = 0
        if not entry.get("empty_layer") and next_layer < len(layers):
            size = layers[next_layer].size
            next_layer += 1
        rows.append((entry.get("created", ""), entry.get("created_by", ""), entry.get("comment", ""), size))
    rows.reverse()
    return [(*row, image.id if i == 0 else "<missing>") for i, row in enumerate(rows)]


IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}
IMAGES_TABLE = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_NOT_HUMAN = "{{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def _local_rfc3339(stamp: float) -> str:
    """Go's time.RFC3339 in the local zone ("Z" for UTC), as docker prints CreatedAt."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stamp))
    return text[:-5] + "Z" if text.endswith("+0000") else text[:-2] + ":" + text[-2:]


def cmd_history(args) -> int:
    store = open_store(args)
    image = store.resolve(args.image)
    now = time.time()
    entries = history_rows(image)
    ids = [i if args.no_trunc or i == "<missing>" else i.split(":", 1)[1][:12] for *_, i in entries]
    if args.quiet:
        for i in ids:
            print(i)
        return 0
    rows = []
    for image_id, (created, created_by, comment, size, _) in zip(ids, entries):
        stamp = parse_rfc3339(created) if created else None
        created_at = _local_rfc3339(stamp) if stamp is not None else "N/A"
        created_by = created_by.replace("\t", " ")
        if not args.no_trunc:
            created_by = ellipsis(created_by, 45)
        rows.append({"ID": image_id, "CreatedAt": created_at,
                     "CreatedSince": (f"{human_duration(now - stamp)} ago" if stamp is not None else "N/A")
                     if args.human else created_at,
                     "CreatedBy": created_by, "Size": human_size(size) if args.human else str(size),
                     "Comment": comment})
    default = HISTORY_TABLE if args.human else HISTORY_TABLE_NOT_HUMAN
    print_formatted(args.format or "table", rows, HISTORY_HEADERS, default)
    return 0


def _go_bool_flag(value: str) -> bool:
    """A Go boolean flag's value (-H=false)."""
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def add_parsers(sub) -> None:
    h = sub.add_parser("history", help="show the history of an image")
    h.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    h.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    h.add_argument("-H", "--human", nargs="?", const=True, default=True, type=_go_bool_flag, metavar="BOOL",
                   help="sizes and dates in human readable form (default true; -H=false for exact ones)")
    h.add_argument("--format", help='a Go template ({{.ID}} {{.CreatedSince}} {{.CreatedAt}} {{.CreatedBy}} '
                                    '{{.Size}} {{.Comment}}), "table TEMPLATE" or "json"')
    h.add_argument("image", metavar="IMAGE")
    h.set_defaults(func=cmd_history)

    i = sub.add_parser("images", help="list images")
    i.add_argument("repository", nargs="?", help="only this REPOSITORY[:TAG]")
    i.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    i.add_argument("--no-trunc", action="store_true", help="full IDs")
    i.add_argument("--digests", action="store_true", help="show the digest a registry knows each image by")
    i.add_argument("--format", help="docker's: a Go template ({{.Repository}}:{{.Tag}}), table TEMPLATE, or json")
    i.add_argument("-a", "--all", action="store_true", help=argparse.SUPPRESS)
    i.set_defaults(func=cmd_images)

    r = sub.add_parser("rmi", help="remove images")
    r.add_argument("-f", "--force", action="store_true", help="remove even if tagged")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.set_defaults(func=cmd_rmi)

    t = sub.add_parser("tag", help="give an image another name")
    t.add_argument("source", metavar="SOURCE_IMAGE")
    t.add_argument("target", metavar="TARGET_IMAGE")
    t.set_defaults(func=cmd_tag)

    n = sub.add_parser("inspect", help="show image details as JSON")
    n.add_argument("-f", "--format", help="Go-template-like format ({{.Config.Env}}, {{json .Config}})")
    n.add_argument("images", nargs="+", metavar="IMAGE")
    n.set_defaults(func=cmd_inspect)

    s = sub.add_parser("save", help="write images to a tar archive")
    s.add_argument("-o", "--output", help="the archive file (default: stdout)")
    s.add_argument("--format", choices=("docker", "oci"), default="docker", help="archive format")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.set_defaults(func=cmd_save)

    lo = sub.add_parser("load", help="load images from an archive or OCI layout")
    lo.add_argument("-i", "--input", help="docker/OCI archive, or OCI layout directory (default: stdin)")
    lo.add_argument("-q", "--quiet", action="store_true")
    lo.set_defaults(func=cmd_load)

    im = sub.add_parser("import", help="make an image from a rootfs tarball")
    im.add_argument("-c", "--change", action="append", help="Dockerfile instruction to apply (CMD, ENV, ...)")
    im.add_argument("source", metavar="FILE|URL|-")
    im.add_argument("reference", nargs="?", metavar="NAME[:TAG]")
    im.set_defaults(func=cmd_import)
