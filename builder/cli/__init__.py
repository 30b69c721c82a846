"""pydock: build images from Dockerfiles and manage the local image store (a docker-like CLI).

One module per noun: build.py (build), images.py (images, rmi, tag, inspect, save, load, import),
bundle.py (bundle) and registry.py (pull, push, login, logout, search); each verb is a thin wrapper over
the build engine, the image store, the bundle package or the registry client. Errors are one line, "pydock: error: <message>", with exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from builder.cli import build, bundle, images, registry
from builder.cli.shared import Parser
from builder.errors import BuildError

DEFAULT_ROOT = "/var/lib/pydock"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="pydock", description="Build OCI images from Dockerfiles; manage the local image store.")
    p.add_argument("--root", default=os.environ.get("PYDOCK_ROOT") or DEFAULT_ROOT,
                   help="image store directory (default: $PYDOCK_ROOT or /var/lib/pydock)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    build.add_parsers(sub)
    images.add_parsers(sub)
    bundle.add_parsers(sub)
    registry.add_parsers(sub)
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
