"""spec and features: what the runtime writes and supports, without a container."""

from __future__ import annotations

import os

from oci_runtime.cli.parser import Cmd, Opt
from oci_runtime.errors import RuntimeFailure
from oci_runtime.jsonio import dumps


def cmd_spec(args) -> int:
    from oci_runtime.specgen import default_spec

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise RuntimeFailure(f"File {path} exists. Remove it first")
    spec = default_spec(rootless=args.rootless)
    with open(path, "w") as f:
        f.write(dumps(spec, indent="\t"))
    return 0


def cmd_features(args) -> int:
    from oci_runtime.features import features

    print(dumps(features(), indent="    "))
    return 0


def cmd_help(args) -> int:
    from oci_runtime.cli import find_command, print_help
    from oci_runtime.cli.parser import UnknownCommand

    cmd = None
    if args.topic:
        cmd = find_command(args.topic)
        if cmd is None:
            raise UnknownCommand(f"No help topic for '{args.topic}'")
    print_help(cmd)
    return 0


def commands() -> list:
    return [
        Cmd("help", cmd_help, "shows a list of commands or help for one command", args=("topic?",), aliases=("h",)),
        Cmd("spec", cmd_spec, "write a default config.json",
            [Opt("--rootless", help="for an unprivileged user"), Opt("-b --bundle", "str", None, "where")]),
        Cmd("features", cmd_features, "show the runtime's features (JSON)"),
    ]
