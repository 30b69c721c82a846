"""pydock bundle: an image written out as an OCI runtime bundle."""

from __future__ import annotations

from pathlib import Path

from builder.cli.shared import open_store


def cmd_bundle(args) -> int:
    from builder.bundle import make_bundle

    store = open_store(args)
    path = make_bundle(store, args.image, Path(args.dir))
    print(path)
    return 0


def add_parsers(sub) -> None:
    bu = sub.add_parser("bundle", help="write an OCI runtime bundle (rootfs + config.json) for an image")
    bu.add_argument("image", metavar="IMAGE")
    bu.add_argument("dir", metavar="DIR")
    bu.set_defaults(func=cmd_bundle)
