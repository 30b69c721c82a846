"""The one exclusive lock on a lock file: `with exclusive_lock(path):` holds flock(LOCK_EX) on path (made
if missing) for the block. Records, volumes and the registry sources' cache serialise their
read-modify-write cycles with it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path | str, mode: int = 0o600) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
