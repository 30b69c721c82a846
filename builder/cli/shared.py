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
