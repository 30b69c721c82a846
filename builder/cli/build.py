"""pydock build: the command line of a build (flags, context, Dockerfile) handed to the build engine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from builder.cli.shared import UsageError, open_store
from builder.errors import BuildError


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
    from builder.builds.context import open_context_file

    path = Path(args.file) if args.file else context_dir / "Dockerfile"
    if args.file and not path.is_absolute() and not os.path.lexists(path) and context_dir is not None:
        path = context_dir / args.file  # docker resolves -f against the cwd, then the context
    path = Path(os.path.normpath(os.path.abspath(path)))
    # Inside the context it is read like every context file (no symlink out of it); a file named
    # outside the context is read where -f says, as docker does.
    try:
        return open_context_file(context_dir, path, "Dockerfile"), path.name, path
    except FileNotFoundError:
        raise BuildError(f"failed to read Dockerfile: open {path}: no such file or directory") from None
    except UnicodeDecodeError as e:
        raise BuildError(f"failed to read Dockerfile {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise BuildError(f"failed to read Dockerfile {path}: {e.strerror or e}") from None


def cmd_build(args) -> int:
    from builder.builds.context import BuildContext, hash_cache_file_for, load_ignore
    from builder.dockerfile.parser import parse
    from builder.builds.engine import BuildOptions, Builder, Progress
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
    if args.network not in ("none", "host", "bridge", "default"):
        raise UsageError(f"invalid --network {args.network!r}: use none, host or bridge")
    options = BuildOptions(
        tags=list(args.tag or []),
        build_args=_key_values(args.build_arg, "--build-arg", from_env=True),
        target=args.target,
        no_cache=args.no_cache,
        network="none" if args.network == "default" else args.network,
        labels=_key_values(args.label, "--label"),
        quiet=args.quiet,
        outputs=[parse_output(o) for o in args.output or []],
        pull=args.pull,
    )
    text, name, path = _read_dockerfile(args, context_dir)
    dockerfile = parse(text, name)
    store = open_store(args)
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
        from builder.atomicfile import write_file

        write_file(args.iidfile, image.id.encode())
    return 0


def add_parsers(sub) -> None:
    b = sub.add_parser("build", help="build an image from a Dockerfile")
    b.add_argument("-t", "--tag", action="append", help="name:tag for the image (repeatable)")
    b.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)")
    b.add_argument("--build-arg", action="append", metavar="KEY=VALUE", help="set a build-time variable")
    b.add_argument("--target", help="build only up to this stage")
    b.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    b.add_argument("--network", default="none", help="network for RUN: none (default), host or bridge")
    b.add_argument("--label", action="append", metavar="KEY=VALUE", help="add a label to the image")
    b.add_argument("-o", "--output", action="append", metavar="type=oci,dest=DIR",
                   help="also export the image: type=oci,dest=DIR or type=docker,dest=FILE.tar")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    b.add_argument("--iidfile", help="write the image ID to this file")
    b.add_argument("--pull", action="store_true", help="pull the images named (FROM, COPY --from) even if present")
    b.add_argument("--rm", action="store_true", default=True, help=argparse.SUPPRESS)
    b.add_argument("--force-rm", action="store_true", help=argparse.SUPPRESS)
    b.add_argument("context", metavar="CONTEXT", help="the build context directory, or - (Dockerfile on stdin)")
    b.set_defaults(func=cmd_build)
