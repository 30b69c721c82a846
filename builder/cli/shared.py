"""What every pydock verb needs: the one-line usage error and the image store that --root names."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from builder.errors import BuildError


class UsageError(BuildError):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 1, like every other pydock error
        raise UsageError(message)


def open_store(args):
    from builder.image.store import ImageStore

    return ImageStore(Path(os.path.abspath(args.root)))


def bool_flag(text: str) -> bool:
    """A docker boolean flag's value (`--sig-proxy=false`, `--pause=false`)."""
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def add_bool_flag(p, *names: str, default: bool, help: str) -> None:
    """A flag that is true alone, or takes =true/=false as docker's do."""
    p.add_argument(*names, type=bool_flag, nargs="?", const=True, default=default, metavar="BOOL", help=help)
