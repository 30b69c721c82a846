"""pydock: build images from Dockerfiles and manage the local image store (a docker-like CLI).

Every verb is a thin wrapper: `build` over builder.build.engine, the others over the store, archive, layout
and bundle modules. Errors are one line, "pydock: error: <message>", with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from builder.errors import BuildError

DEFAULT_ROOT = "/var/lib/pydock"


class UsageError(BuildError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 1, like every other pydock error
        raise UsageError(message)


def _store(args):
    from builder.image.store import ImageStore

    return ImageStore(Path(os.path.abspath(args.root)))


# -- build ---------------------------------------------------------------------------------------------

def _key_values(items: list[str], what: str, *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: want KEY=VALUE")
        if not sep:
            if not from_env:
                raise UsageError(f"invalid {what} {item!r}: want KEY=VALUE")
            if key not in os.environ:
                continue  # docker: `--build-arg KEY` with KEY unset passes nothing
            value = os.environ[key]
        out[key] = value
    return out


def parse_output(text: str) -> dict[str, str]:
    """-o type=oci,dest=DIR | type=docker,dest=FILE (a bare path means type=local, which we refuse)."""
    if "=" not in text:
        raise UsageError(f"unsupported output {text!r}: use type=oci,dest=DIR or type=docker,dest=FILE.tar")
    out: dict[str, str] = {}
    for field in text.split(","):
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"invalid output field {field!r} in {text!r}")
        out[key.strip()] = value
    if out.get("type") not in ("oci", "docker", "tar"):
        raise UsageError(f"unsupported output type {out.get('type')!r}: use type=oci or type=docker")
    if not out.get("dest"):
        raise UsageError(f"output {text!r} needs dest=")
    return out


def _read_dockerfile(args, context_dir: Path | None) -> tuple[str, str, Path | None]:
    """(text, name for messages, path or None) of the Dockerfile the build uses."""
    if args.context == "-" or args.file == "-":
        if args.context == "-" and args.file not in (None, "-"):
            raise UsageError("with a Dockerfile on stdin (CONTEXT -), -f cannot name another file")
        return sys.stdin.read(), "Dockerfile", None
    path = Path(args.file) if args.file else context_dir / "Dockerfile"
    if args.file and not path.is_absolute() and not path.exists() and context_dir is not None:
        path = context_dir / args.file  # docker resolves -f against the cwd, then the context
    try:
        return path.read_text(encoding="utf-8"), path.name, path
    except FileNotFoundError:
        raise BuildError(f"failed to read Dockerfile: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise BuildError(f"failed to read Dockerfile: {path} is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError(f"failed to read Dockerfile {path}: {e}") from None


def cmd_build(args) -> int:
    from builder.build.context import BuildContext, hash_cache_file_for, load_ignore
    from builder.dockerfile.parser import parse
    from builder.build.engine import BuildOptions, Builder, Progress
    from builder.image.store import normalize_name

    context_dir: Path | None = None
    if args.context != "-":
        context_dir = Path(args.context)
        if not context_dir.exists():
            raise BuildError(f"unable to prepare context: path {args.context!r} not found")
        if not context_dir.is_dir():
            raise BuildError(f"unable to prepare context: {args.context!r} is not a directory")
        context_dir = context_dir.resolve()
    for tag in args.tag or []:
        normalize_name(tag)
    if args.network not in ("none", "host", "default"):
        raise UsageError(f"invalid --network {args.network!r}: use none or host")
    options = BuildOptions(
        tags=list(args.tag or []),
        build_args=_key_values(args.build_arg, "--build-arg", from_env=True),
        target=args.target,
        no_cache=args.no_cache,
        network="none" if args.network == "default" else args.network,
        labels=_key_values(args.label, "--label"),
        quiet=args.quiet,
        outputs=[parse_output(o) for o in args.output or []],
    )
    text, name, path = _read_dockerfile(args, context_dir)
    dockerfile = parse(text, name)
    store = _store(args)
    context = None
    if context_dir is not None:
        ignore = load_ignore(context_dir, path)
        context = BuildContext(context_dir, ignore, hash_cache_file_for(store.cache_dir, context_dir))
    else:
        context = BuildContext(None)
    image = Builder(store, context, dockerfile, options, Progress(args.quiet)).build()
    if args.quiet:
        print(image.id)
    if args.iidfile:
        Path(args.iidfile).write_text(image.id)
    return 0


# -- images / rmi / tag / inspect ------------------------------------------------------------------------

def human_size(size: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits ("4.26MB", "712kB", "0B")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    text = f"{size:.3g}"
    if "e" in text:
        text = f"{size:.0f}"
    return f"{text}{units[i]}"


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def _parse_time(text: str) -> float | None:
    from datetime import datetime

    if not text:
        return None
    t = text.replace("Z", "+00:00")
    if "." in t:  # Python wants at most 6 fractional digits
        head, _, rest = t.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        t = head + "." + digits[:6] + rest[len(digits):]
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def print_table(rows: list[list[str]]) -> None:
    """Columns padded like docker's tabwriter (at least 3 spaces between columns)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.ljust(widths[i] + 3) if i < len(r) - 1 else c for i, c in enumerate(r)]
        print("".join(cells).rstrip())


def _uncompressed_size(image) -> int:
    return image.size


def cmd_images(args) -> int:
    from builder.image.store import split_ref

    store = _store(args)
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    ids = []
    now = time.time()
    want = None
    if args.repository:
        want = split_ref(args.repository)
    for names, image in store.images():
        created = _parse_time(image.config.get("created", ""))
        when = f"{human_duration(now - created)} ago" if created else "N/A"
        image_id = image.id if args.no_trunc else image.id.split(":", 1)[1][:12]
        entries = [split_ref(n)[:2] for n in names] or [("<none>", "<none>")]
        for repo, tag in entries:
            if want and (want[0] != repo or (want[1] and want[1] != tag)):
                continue
            rows.append([repo, tag or "<none>", image_id, when, human_size(_uncompressed_size(image))])
            ids.append(image_id)
    if args.quiet:
        for i in dict.fromkeys(ids):
            print(i)
        return 0
    print_table(rows)
    return 0


def cmd_rmi(args) -> int:
    store = _store(args)
    failed = False
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force):
                print(line)
        except BuildError as e:
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_tag(args) -> int:
    store = _store(args)
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


def _go_format(value) -> str:
    """fmt.Sprint of a decoded JSON value, as docker's templates print it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def render_template(template: str, data: dict) -> str:
    """The small part of Go templates people use with inspect: {{.A.B}}, {{json .A.B}}, {{index .A "k"}}."""
    import re

    def lookup(path: str):
        value = data
        for part in [p for p in path.split(".") if p]:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def repl(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(lookup(expr[5:].strip()), separators=(",", ":"))
        idx = re.fullmatch(r'index\s+(\S+)\s+"([^"]*)"', expr)
        if idx:
            base = lookup(idx.group(1))
            return _go_format(base.get(idx.group(2)) if isinstance(base, dict) else None)
        if expr.startswith("."):
            return _go_format(lookup(expr))
        raise UsageError(f"unsupported template expression {{{{{expr}}}}}")

    return re.sub(r"\{\{(.*?)\}\}", repl, template)


def cmd_inspect(args) -> int:
    store = _store(args)
    results = []
    failed = False
    for ref in args.images:
        try:
            results.append(docker_inspect(store, ref))
        except BuildError as e:
            print(f"pydock: error: {e}", file=sys.stderr)
            failed = True
    if args.format:
        for r in results:
            print(render_template(args.format, r))
    else:
        print(json.dumps(results, indent=4))
    return 1 if failed else 0


# -- save / load / import / bundle -----------------------------------------------------------------------

def cmd_save(args) -> int:
    from builder.image.archive import save

    store = _store(args)
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

    store = _store(args)
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

    store = _store(args)
    image = import_rootfs(store, args.source, args.reference, args.change or None)
    print(image.id)
    return 0


def cmd_bundle(args) -> int:
    from builder.bundle import make_bundle

    store = _store(args)
    path = make_bundle(store, args.image, Path(args.dir))
    print(path)
    return 0


# -- parser ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pydock", description="Build OCI images from Dockerfiles; manage the local image store.")
    p.add_argument("--root", default=os.environ.get("PYDOCK_ROOT") or DEFAULT_ROOT,
                   help="image store directory (default: $PYDOCK_ROOT or /var/lib/pydock)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    b = sub.add_parser("build", help="build an image from a Dockerfile")
    b.add_argument("-t", "--tag", action="append", help="name:tag for the image (repeatable)")
    b.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)")
    b.add_argument("--build-arg", action="append", metavar="KEY=VALUE", help="set a build-time variable")
    b.add_argument("--target", help="build only up to this stage")
    b.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    b.add_argument("--network", default="none", help="network for RUN: none (default) or host")
    b.add_argument("--label", action="append", metavar="KEY=VALUE", help="add a label to the image")
    b.add_argument("-o", "--output", action="append", metavar="type=oci,dest=DIR",
                   help="also export the image: type=oci,dest=DIR or type=docker,dest=FILE.tar")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    b.add_argument("--iidfile", help="write the image ID to this file")
    b.add_argument("--pull", action="store_true", help=argparse.SUPPRESS)
    b.add_argument("--rm", action="store_true", default=True, help=argparse.SUPPRESS)
    b.add_argument("--force-rm", action="store_true", help=argparse.SUPPRESS)
    b.add_argument("context", metavar="CONTEXT", help="the build context directory, or - (Dockerfile on stdin)")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("images", help="list images")
    i.add_argument("repository", nargs="?", help="only this REPOSITORY[:TAG]")
    i.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    i.add_argument("--no-trunc", action="store_true", help="full IDs")
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

    bu = sub.add_parser("bundle", help="write an OCI runtime bundle (rootfs + config.json) for an image")
    bu.add_argument("image", metavar="IMAGE")
    bu.add_argument("dir", metavar="DIR")
    bu.set_defaults(func=cmd_bundle)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 1
        return args.func(args)
    except BuildError as e:
        print(f"pydock: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pydock: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"pydock: error: {e.strerror or e}{':' if where else ''}{where}", file=sys.stderr)
        return 1
