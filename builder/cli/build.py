"""pydock build: the command line of a build (flags, context, Dockerfile) handed to the build engine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from builder.builds.progress import PROGRESS_MODES
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


def _secrets(items: list[str] | None) -> dict[str, bytes]:
    from builder.builds.secrets import parse_secret

    return dict(parse_secret(item) for item in items or [])


def _ssh(items: list[str] | None) -> dict[str, list[str]]:
    from builder.builds.secrets import parse_ssh

    return dict(parse_ssh(item) for item in items or [])


def parse_add_host(text: str) -> tuple[str, str]:
    """--add-host HOST:IP (or HOST=IP), checked as docker does."""
    import ipaddress

    sep = "=" if "=" in text else ":"
    name, found, address = text.partition(sep)
    if not found or not name.strip():
        raise UsageError(f"bad format for add-host: {text!r} (want HOST:IP)")
    address = address.strip().removeprefix("[").removesuffix("]")
    if address == "host-gateway":
        raise UsageError(f"add-host {text!r}: host-gateway is not supported (RUN steps have no route to the host; "
                         "use --network host)")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"invalid IP address in add-host: {address!r}") from None
    return name.strip(), address


def parse_output(text: str) -> dict[str, str]:
    """-o as buildx reads it: type=local,dest=DIR | type=tar,dest=FILE|- | type=oci,dest=DIR |
    type=docker,dest=FILE.tar | type=image[,name=N][,push=true] | type=registry[,name=N] (= --push); a bare
    DIR means type=local, a bare - a tar on stdout."""
    if "=" not in text:
        return {"type": "tar", "dest": "-"} if text == "-" else {"type": "local", "dest": text}
    out: dict[str, str] = {}
    for field in text.split(","):
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"invalid output field {field!r} in {text!r}")
        out[key.strip()] = value
    out.setdefault("type", "local")
    if out["type"] not in ("local", "tar", "oci", "docker", "image", "registry"):
        raise UsageError(f"unsupported output type {out['type']!r}: use local, tar, oci, docker, image or registry")
    if out["type"] in ("image", "registry"):  # the store (and the registry with push=true): no dest
        if out["type"] == "registry" or out.get("push", "false").lower() in ("true", "1"):
            out["type"] = "registry"
        return out
    if not out.get("dest"):
        raise UsageError(f"output {text!r} needs dest=")
    if out["dest"] == "-" and out["type"] == "local":
        raise UsageError("type=local needs a directory as dest, not -")
    if out["dest"] == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write a tar to the terminal: redirect stdout or give dest=FILE")
    return out


def _refuse_unsupported(args) -> None:
    """docker build flags that BuildKit does not take either, refused as docker refuses them."""
    if args.squash:
        raise UsageError("--squash is not supported (BuildKit has none either): squash with a multi-stage "
                         "Dockerfile, COPY --from=build / /")
    if args.security_opt:
        raise UsageError("--security-opt is not supported for builds (docker refuses it too); for a "
                         "privileged step, RUN --security=insecure with --allow security.insecure")
    if args.isolation not in (None, "", "default"):
        raise UsageError(f"unsupported isolation {args.isolation!r}: only default on Linux")


def _push(store, tags: list[str], progress) -> None:
    """buildx --push: the built image to the registry of each -t name."""
    from builder.registry.client import Registry
    from builder.registry.push import push
    from builder.registry.reference import parse

    for tag in tags:
        ref = parse(tag)
        push(store, ref, say=progress.line, registry=Registry(ref.domain))


def _write_metadata(path: str, image, tags: list[str]) -> None:
    """buildx --metadata-file: what the build made, as JSON."""
    import json

    from builder.atomicfile import write_file
    from builder.image.store import normalize_name
    from builder.registry.reference import parse

    meta = {"containerimage.config.digest": image.id, "containerimage.digest": image.digest,
            "containerimage.descriptor": image.manifest_desc.to_json()}
    if tags:
        meta["image.name"] = ",".join(str(parse(normalize_name(t))) for t in tags)
    write_file(path, json.dumps(meta, indent=2).encode() + b"\n")


# buildx flags for what pydock does not make; a value here is accepted (it asks for nothing).
_REFUSED = {
    "attest": ("attestations (SBOM, provenance) are not supported", ()),
    "sbom": ("SBOM attestations are not supported", ("false", "0")),
    "provenance": ("provenance attestations are not supported", ("false", "0")),
    "annotation": ("manifest annotations are not supported", ()),
    "build_context": ("named build contexts are not supported", ()),
    "builder": ("there is one builder, pydock itself", ("default",)),
    "call": ("build methods other than build are not supported", ("build",)),
    "allow": ("entitlements other than network.host and security.insecure are not supported",
              ("network.host", "security.insecure")),
}


def _refuse_buildx(args) -> None:
    for key, (reason, accepted) in _REFUSED.items():
        for value in getattr(args, key) or []:
            if value not in accepted:
                flag = "--" + key.replace("_", "-")
                raise UsageError(f"{flag} {value}: {reason}")


def _read_dockerfile(args, context_dir: Path | None, remote: bool = False) -> tuple[str, str, Path | None]:
    """(text, name for messages, path or None) of the Dockerfile the build uses."""
    if args.file == "-":
        if args.context == "-":
            raise UsageError("the context and the Dockerfile cannot both be read from stdin")
        return sys.stdin.read(), "Dockerfile", None
    if context_dir is None:
        raise UsageError("with a Dockerfile as the context (stdin or a URL), -f cannot name another file")
    from builder.builds.context import open_context_file

    path = Path(args.file) if args.file else context_dir / "Dockerfile"
    if remote and args.file:
        path = context_dir / args.file.lstrip("/")  # a context made here: -f names a file inside it
    elif args.file and not path.is_absolute() and not os.path.lexists(path):
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
    from builder.builds.context_source import is_remote
    from builder.image.store import normalize_name

    for o in (parse_output(o) for o in args.output or []):
        if o["type"] in ("image", "registry"):  # the image itself: its name= is one more -t
            args.tag = (args.tag or []) + ([o["name"]] if o.get("name") else [])
            args.push = args.push or o["type"] == "registry"
    for tag in args.tag or []:
        normalize_name(tag)
    _refuse_unsupported(args)
    _refuse_buildx(args)
    if args.network not in ("none", "host", "bridge", "default"):
        raise UsageError(f"invalid --network {args.network!r}: use none, host or bridge")
    options = _options(args)  # every flag checked before a context is downloaded or cloned
    if args.push and not options.tags:
        raise UsageError("--push needs a name to push to: give one with -t")
    if not is_remote(args.context):
        context_dir = Path(args.context)
        if not context_dir.exists():
            raise BuildError(f"unable to prepare context: path {args.context!r} not found")
        if not context_dir.is_dir():
            raise BuildError(f"unable to prepare context: {args.context!r} is not a directory")
        return _build(args, options, None, context_dir.resolve(), None)
    from builder.builds.context_source import prepare

    store = open_store(args)
    work, work_fd = store.temp_dir("context-")
    try:
        source = prepare(args.context, work, sys.stdin.buffer)
        return _build(args, options, store, source.dir, source.dockerfile, remote=True)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        os.close(work_fd)


def _options(args):
    from builder.builds.cache_transfer import parse_cache_from, parse_cache_to
    from builder.builds.engine import BuildOptions
    from builder.builds.limits import parse_limits
    from builder.builds.platforms import parse_target

    return BuildOptions(
        tags=list(args.tag or []),
        build_args=_key_values(args.build_arg, "--build-arg", from_env=True),
        target=args.target,
        no_cache=args.no_cache,
        network="none" if args.network == "default" else args.network,
        labels=_key_values(args.label, "--label"),
        quiet=args.quiet or args.progress == "quiet",
        outputs=[o for o in map(parse_output, args.output or []) if o["type"] not in ("image", "registry")],
        pull=args.pull,
        platform=parse_target(args.platform or os.environ.get("DOCKER_DEFAULT_PLATFORM")),
        cache_from=[parse_cache_from(c) for c in args.cache_from or []],
        cache_to=[parse_cache_to(c) for c in args.cache_to or []],
        secrets=_secrets(args.secret),
        ssh=_ssh(args.ssh),
        add_hosts=[parse_add_host(h) for h in args.add_host or []],
        limits=parse_limits(args),
        load=args.load,
        no_cache_stages=[n for item in args.no_cache_filter or [] for n in item.split(",") if n],
        allow_insecure="security.insecure" in (args.allow or []),
    )


def _build(args, options, store, context_dir: Path | None, dockerfile_text: str | None,
           remote: bool = False) -> int:
    from builder.builds.context import BuildContext, hash_cache_file_for, load_ignore
    from builder.dockerfile.parser import parse
    from builder.builds.engine import Builder
    from builder.builds.progress import make_progress

    if dockerfile_text is not None:
        if args.file not in (None, "-"):
            raise UsageError("with a Dockerfile as the context (stdin or a URL), -f cannot name another file")
        text, name, path = dockerfile_text, "Dockerfile", None
    else:
        text, name, path = _read_dockerfile(args, context_dir, remote)
    dockerfile = parse(text, name)
    if store is None:
        store = open_store(args)  # after the Dockerfile parsed: a bad one leaves no store behind
    if context_dir is not None:
        ignore = load_ignore(context_dir, path)
        cache_file = None if remote else hash_cache_file_for(store.cache_dir, context_dir)
        context = BuildContext(context_dir, ignore, cache_file)
    else:
        context = BuildContext(None)
    to_stdout = any(o["dest"] == "-" for o in options.outputs)  # the tar owns stdout: progress goes to stderr
    progress = make_progress(args.progress, args.quiet, out=sys.stderr if to_stdout else None)
    image = Builder(store, context, dockerfile, options, progress).build()
    if image is None:  # only filesystem outputs: no image, so (as docker) an empty ID
        if options.quiet:
            print()
        if args.iidfile:
            from builder.atomicfile import write_file

            write_file(args.iidfile, b"")
        return 0
    if args.push:
        _push(store, options.tags, progress)
    if args.metadata_file:
        _write_metadata(args.metadata_file, image, options.tags)
    if options.quiet:
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
    b.add_argument("-o", "--output", action="append", metavar="type=local,dest=DIR",
                   help="the final stage's files: type=local,dest=DIR (or just DIR) or type=tar,dest=FILE|- "
                        "(no image is stored); or the image: type=oci,dest=DIR or type=docker,dest=FILE.tar")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    b.add_argument("--progress", default="auto", choices=PROGRESS_MODES,
                   help="auto (tty on a terminal, else plain), plain, tty (a live view on stderr) or quiet (-q)")
    b.add_argument("--iidfile", help="write the image ID to this file")
    b.add_argument("--pull", action="store_true", help="pull the images named (FROM, COPY --from) even if present")
    b.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="the platform to build for (default: this host's; only it can RUN commands)")
    b.add_argument("--cache-from", action="append", metavar="SOURCE",
                   help="also take cached steps from: type=local,src=DIR, type=registry,ref=REF, or an image")
    b.add_argument("--cache-to", action="append", metavar="DEST",
                   help="export the build cache: type=local,dest=DIR or type=registry,ref=REF (mode=min|max)")
    b.add_argument("--secret", action="append", metavar="id=ID,src=FILE|env=VAR",
                   help="a secret RUN --mount=type=secret can read (never stored in the image)")
    b.add_argument("--ssh", action="append", metavar="default|ID=SOCKET|KEY[,KEY]",
                   help="an ssh agent RUN --mount=type=ssh can use (default: $SSH_AUTH_SOCK)")
    b.add_argument("--add-host", action="append", metavar="HOST:IP", help="add a host to RUN steps' /etc/hosts")
    limits = b.add_argument_group("RUN steps' resources")
    limits.add_argument("--ulimit", action="append", metavar="NAME=SOFT[:HARD]", help="a ulimit for RUN steps")
    limits.add_argument("--shm-size", metavar="BYTES", help="size of /dev/shm in RUN steps (default 64m)")
    limits.add_argument("-m", "--memory", metavar="BYTES", help="memory limit of each RUN step")
    limits.add_argument("--memory-swap", metavar="BYTES", help="memory plus swap limit (-1: unlimited swap)")
    limits.add_argument("-c", "--cpu-shares", metavar="N", help="CPU shares (relative weight)")
    limits.add_argument("--cpu-period", metavar="USEC", help="CPU CFS period")
    limits.add_argument("--cpu-quota", metavar="USEC", help="CPU CFS quota")
    limits.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs RUN steps may use (0-3, 0,1)")
    limits.add_argument("--cpuset-mems", metavar="LIST", help="memory nodes RUN steps may use (0-3, 0,1)")
    limits.add_argument("--cgroup-parent", metavar="PATH", help="parent cgroup of the RUN steps' cgroups")
    b.add_argument("--load", action="store_true", help="store the image even with -o type=local|tar")
    b.add_argument("--push", action="store_true", help="push the image to the registry of each -t name")
    b.add_argument("--metadata-file", metavar="FILE", help="write what the build made (digests, names) as JSON")
    b.add_argument("--no-cache-filter", action="append", metavar="STAGE[,STAGE]",
                   help="build these stages without the cache")
    for key in _REFUSED:
        b.add_argument("--" + key.replace("_", "-"), action="append", help=argparse.SUPPRESS)
    b.add_argument("--check", action="store_const", dest="call", const=["check"], help=argparse.SUPPRESS)
    b.add_argument("--squash", action="store_true", help=argparse.SUPPRESS)  # refused, as BuildKit does
    b.add_argument("--security-opt", action="append", help=argparse.SUPPRESS)  # refused, as docker does
    b.add_argument("--isolation", help=argparse.SUPPRESS)  # only "default" on Linux
    b.add_argument("--compress", action="store_true", help=argparse.SUPPRESS)  # no daemon to send a context to
    b.add_argument("--disable-content-trust", nargs="?", const="true", help=argparse.SUPPRESS)  # no signing
    b.add_argument("--rm", action="store_true", default=True, help=argparse.SUPPRESS)
    b.add_argument("--force-rm", action="store_true", help=argparse.SUPPRESS)
    b.add_argument("context", metavar="CONTEXT",
                   help="the build context: a directory, a URL (tarball, Dockerfile or git repository), "
                        "or - (a tar or a Dockerfile on stdin)")
    b.set_defaults(func=cmd_build)
