"""pydock ps: the containers a query selects (builder.container.listing), as docker's table, a Go template
(its placeholders .ID .Image .Command .CreatedAt .RunningFor .Ports .State .Status .Size .Names .Labels
.Label "k" .Mounts .Networks .LocalVolumes), json, or ids alone."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from builder.cli.formatting import check_template, ellipsis, human_duration, human_size, print_formatted

PS_TABLE = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS"}


def cmd_ps(args) -> int:
    from builder.container.listing import Query, parse_filters
    from builder.container.liveness import live_state
    from builder.container.records import Records

    fmt = args.format or "table"
    if fmt != "json":
        check_template(fmt.removeprefix("table"))  # docker parses the template before listing, even with -q
    limit = args.last if args.last != -1 else (1 if args.latest else -1)
    query = Query(parse_filters(args.filter), all_=args.all, limit=limit)
    records = Records(Path(os.path.abspath(args.root)))
    entries = sorted(((doc, live_state(doc)) for doc in records.all()), key=lambda e: e[0]["Created"], reverse=True)
    store = _LazyStore(args)
    ancestor = _ancestor_test(store, query.filters["ancestor"]) if "ancestor" in query.filters else None
    chosen = query.select(entries, _port_triples, ancestor)
    trunc = not args.no_trunc
    if args.quiet:  # -q wins over --format, as docker's
        for doc, _ in chosen:
            print(doc["Id"][:12] if trunc else doc["Id"])
        return 0
    # sizes cost a walk of each upper dir: only with -s, or when the template shows them
    sizes = args.size or (fmt not in ("table", "json") and re.search(r"\.Size\b", fmt) is not None)
    now = time.time()
    rows = [_fields(doc, state, trunc, now, _size_text(records, store, doc) if sizes else "0B",
                    _image_text(doc, trunc)) for doc, state in chosen]
    print_formatted(fmt, rows, PS_HEADERS, PS_TABLE + ("\t{{.Size}}" if args.size else ""))
    return 0


class _LazyStore:
    """The image store, opened when first needed; each reference looked up once."""

    def __init__(self, args):
        self.args, self._store, self._images = args, None, {}

    def image(self, ref: str):
        """The image ref names (a name as `run` takes it, an id or id prefix), or None."""
        from builder.cli.shared import open_store
        from builder.errors import BuildError
        from builder.registry.local import resolve_local

        if ref not in self._images:
            self._store = self._store or open_store(self.args)
            try:
                self._images[ref] = resolve_local(self._store, ref)
            except BuildError:
                self._images[ref] = None
        return self._images[ref]


def _ancestor_test(store: _LazyStore, refs: list[str]):
    """ancestor=: the images named (name[:tag], id or id prefix; unknown ones match nothing, as docker) and
    the images made from one of them: their layers and history start with the ancestor's."""
    ancestors = [image for image in map(store.image, refs) if image is not None]

    def test(image_id: str) -> bool:
        image = store.image(image_id)
        return image is not None and any(image.id == a.id or _descends(image, a) for a in ancestors)

    return test


def _image_text(doc: dict, trunc: bool) -> str:
    """docker's IMAGE: the reference the container was made from; truncated, an image id is 12 digits and
    a name loses its digest and docker.io/[library/]. (docker also shows the id once the name has moved to
    another image: that needs the image store, ~12 ms more per ps, and is left out.)"""
    ref, image_id = doc["Config"].get("Image") or "", doc["Image"]
    if not ref:
        return "<no image>"
    if not trunc:
        return ref
    short = image_id.partition(":")[2][:12]
    if ref.partition(":")[2][:12] == short or ref[:12] == short:
        return short
    if "@" not in ref and not ref.startswith(("docker.io/", "index.docker.io/")):
        return ref  # already docker's familiar form (parsing costs an import of ~9 ms)
    import dataclasses

    from builder.errors import BuildError
    from builder.registry.reference import parse

    try:
        name = parse(ref, default_tag=False)
    except BuildError:
        return ref
    return dataclasses.replace(name, digest=None).familiar()


def _descends(image, ancestor) -> bool:
    layers, history = image.diff_ids, image.config.get("history") or []
    base_layers, base_history = ancestor.diff_ids, ancestor.config.get("history") or []
    return (len(history) > len(base_history) and history[:len(base_history)] == base_history
            and layers[:len(base_layers)] == base_layers)


def _port_triples(doc: dict, state: dict) -> list[tuple[int, int, str]]:
    """(private, public, proto) of each port ps shows (public 0 for an exposed-only one)."""
    from builder.cli.container_views import _running_ports

    out = []
    for key, bindings in _running_ports(doc, state).items():
        private, _, proto = key.partition("/")
        for b in bindings or [{}]:
            out.append((int(private), int(b.get("HostPort") or 0), proto or "tcp"))
    return out


def _size_text(records, store: _LazyStore, doc: dict) -> str:
    """docker's SIZE: what the container wrote, then "(virtual ...)" with its image's size added."""
    from builder.container.rootfs import upper_size

    written = upper_size(records.path(doc["Id"]))
    image = store.image(doc["Image"])
    virtual = written + (image.size if image is not None else 0)
    return f"{human_size(written)} (virtual {human_size(virtual)})" if virtual > 0 else human_size(written)


def _fields(doc: dict, state: dict, trunc: bool, now: float, size: str, image: str) -> dict:
    from builder.cli.container_views import _command_text, _ports_text, _seconds_since, status_text
    from builder.container.listing import state_word
    from oci_runtime.units import parse_rfc3339

    labels = doc["Config"].get("Labels") or {}
    mounts = doc.get("Mounts") or []
    names = [m.get("Name") or m.get("Source", "") for m in mounts]
    created = parse_rfc3339(doc["Created"]) or 0
    return {
        "ID": doc["Id"][:12] if trunc else doc["Id"],
        "Image": image,
        "Command": _command_text(doc, trunc),
        # Go's time.Time.String() of the second it was made, in local time
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(int(created))),
        "RunningFor": f"{human_duration(_seconds_since(doc['Created'], now))} ago",
        "Ports": _ports_text(doc, state),
        "State": state_word(state),
        "Status": status_text(state, now),
        "Size": size,
        "Names": doc["Name"].lstrip("/"),
        "Labels": ",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": ",".join(ellipsis(n, 15) if trunc else n for n in names),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("Driver") == "local")),
        "Networks": ",".join(sorted((doc.get("NetworkSettings") or {}).get("Networks") or {})),
    }


def add_ps_parser(sub) -> None:
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running ones)")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate ids and commands")
    p.add_argument("-s", "--size", action="store_true", help="show what each container wrote, and its virtual size")
    p.add_argument("-n", "--last", type=int, default=-1, metavar="N",
                   help="the N last created containers (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="the last created container (all states)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="id, name, label, exited, status, ancestor, before, since, volume, network, publish, "
                   "expose, health, isolation, is-task")
    p.add_argument("--format", help="table, table TEMPLATE, json, or a Go template ({{.ID}} {{.Names}} "
                   "{{.Label \"k\"}} ...)")
    p.set_defaults(func=cmd_ps)
