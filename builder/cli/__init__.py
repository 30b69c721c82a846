"""pydock: build images from Dockerfiles and manage the local image store (a docker-like CLI).

One module per noun: build.py (build), images.py (images, rmi, tag, inspect, history, save, load, import),
bundle.py (bundle), registry.py (pull, push, login, logout, search), containers.py (create, run, start,
stop, restart, kill, rm, wait, pause, unpause, rename, top, exec), container_views.py (port, logs, export,
commit, inspect of containers; its ps is in container_ps.py), container_stats.py (stats), container_cp.py (cp), container_attach.py (attach),
volumes.py (volume), networks.py (network create/ls/inspect/rm/prune/connect/disconnect) and system.py (version,
info, container prune, image prune); each verb is a thin wrapper over the build
engine, the image store, the bundle package, the registry client or builder.container. Errors are one line,
"pydock: error: <message>", with exit status 1 (125 for the container verbs, as docker).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from builder.cli import system
from builder.cli.shared import Parser
from builder.errors import BuildError

DEFAULT_ROOT = "/var/lib/pydock"

# The modules of this package that add commands, in the order `pydock --help` lists them.
COMMAND_MODULES = ("build", "images", "bundle", "registry", "containers", "container_views", "container_stats",
                   "system", "container_cp", "container_attach", "volumes", "networks")
# The module that holds each command: a command's run imports and builds only its own parsers (all of
# them cost ~60 ms, a quarter of a cached build). A command missing here gets them all, which still works.
MODULE_OF = {
    "build": "build", "bundle": "bundle", "stats": "container_stats", "cp": "container_cp", "network": "networks",
    "attach": "container_attach", "volume": "volumes",
    **dict.fromkeys(("history", "images", "import", "inspect", "load", "rmi", "save", "tag"), "images"),
    **dict.fromkeys(("login", "logout", "pull", "push", "search"), "registry"),
    **dict.fromkeys(("create", "exec", "kill", "pause", "rename", "restart", "rm", "run", "start", "stop",
                     "top", "unpause", "wait"), "containers"),
    **dict.fromkeys(("commit", "export", "logs", "port", "ps"), "container_views"),
    **dict.fromkeys(("container", "image", "info", "version"), "system"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """pydock's parser: with `command`, only the parsers of the module that holds it (when known)."""
    p = Parser(prog="pydock", description="docker's workflow without a daemon: build images, run containers (a small monitor each), networks, volumes, registries.")
    p.add_argument("--root", default=os.environ.get("PYDOCK_ROOT") or DEFAULT_ROOT,
                   help="image store directory (default: $PYDOCK_ROOT or /var/lib/pydock)")
    p.add_argument("--version", action="version", version=f"pydock version {system.VERSION}",
                   help="print pydock's version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    known = command in MODULE_OF
    for name in [MODULE_OF[command]] if known else COMMAND_MODULES:
        importlib.import_module(f"builder.cli.{name}").add_parsers(_OnlyCommand(sub, command) if known else sub)
    return p


class _OnlyCommand:
    """The subparsers action, building the parser of one command only: its module's other commands get a
    stand-in that takes their options and keeps none (run's and create's alone are ~200 add_argument calls
    that `pydock exec` would build and never use)."""

    def __init__(self, sub, command: str):
        self._sub, self._command = sub, command

    def add_parser(self, name: str, **kwargs):
        if name == self._command or self._command in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _UNUSED_PARSER

    def __getattr__(self, name: str):
        return getattr(self._sub, name)


class _UnusedParser:
    """Takes any parser call (add_argument, groups, set_defaults...) and does nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


_UNUSED_PARSER = _UnusedParser()


# docker's exit status for its own failures in the container verbs (126/127 and the container's own
# status are the verbs' results)
CONTAINER_VERBS = {"create", "run", "start", "stop", "restart", "kill", "rm", "wait", "exec", "ps", "logs",
                   "export", "rename", "top", "pause", "unpause", "commit",
                   "stats", "container", "cp", "attach", "network", "port"}
CONTAINER_FAILURE = 125
# Verbs that act on one running container and change nothing the others hold: they need no reconciling of
# dead monitors (which reads every record), as the state they read is corrected as it is read (live_state).
NO_RECONCILE = {"exec", "logs", "port", "top", "attach", "wait"}


def _command_word(argv: list[str]) -> str | None:
    """The command argv names (its first word that is neither an option nor --root's value)."""
    words = iter(argv)
    for word in words:
        if word == "--root":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _failure_status(argv: list[str]) -> int:
    """The status an error exits with: 125 for a container verb, 1 for the image verbs."""
    return CONTAINER_FAILURE if _command_word(argv) in CONTAINER_VERBS else 1


def _reconcile_containers(args) -> None:
    """Record the end of containers whose monitor was killed and release their veths, addresses and
    namespaces (reading a few small files when there is nothing to do)."""
    from pathlib import Path

    from builder.container.liveness import record_dead_monitors
    from builder.container.records import Records
    from builder.network.endpoints import reconcile

    root = os.path.abspath(args.root)
    if os.path.isdir(os.path.join(root, "containers")):
        record_dead_monitors(Records(Path(root)))
    reconcile(root)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(_command_word(argv))
    failure = _failure_status(argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 1
        if failure == CONTAINER_FAILURE and args.command not in NO_RECONCILE:
            _reconcile_containers(args)
        return args.func(args)
    except BuildError as e:
        print(f"pydock: error: {e}", file=sys.stderr)
        return failure
    except KeyboardInterrupt:
        print("pydock: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"pydock: error: {e.strerror or e}{':' if where else ''}{where}", file=sys.stderr)
        return failure


def main_and_exit() -> None:
    """The pydock command: run it, then leave without the interpreter's finalization (see exiting.py)."""
    from oci_runtime.exiting import exit_now

    exit_now(main())
