"""Files written whole or not at all: written beside their final name, then renamed over it, so a reader
(or a crash) never sees half a file. Used for everything pydock writes outside the image store's own
files (which ImageStore writes through its tmp/ dir)."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_file(path: Path | str, *, durable: bool = True) -> Iterator[BinaryIO]:
    """`with atomic_file(path) as f:` write f; on success it replaces `path` (fsync()ed first when
    durable), on failure it is removed and `path` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
