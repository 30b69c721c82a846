"""The one rule for every file pydock writes outside the image store (save -o, -o type=...,dest=,
--iidfile, layout files; the store writes through its own tmp/ dir):

- a regular file, or a path that does not exist yet, is written whole or not at all: written beside
  its final name, then renamed over it, so a reader (or a crash) never sees half a file;
- anything else that exists (a device such as /dev/null or /dev/full, a FIFO, a symlink) is written
  through, never replaced: the path keeps being what it was, and a failed write (ENOSPC on /dev/full)
  is an error;
- a directory is refused.
Every write error is a BuildError naming the path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from io import BufferedWriter
from pathlib import Path

from builder.errors import BuildError


class _Output:
    """A binary file whose write errors are BuildErrors naming the path."""

    def __init__(self, f: BufferedWriter, path: Path):
        self._f = f
        self._path = path

    def _fail(self, e: OSError):
        return BuildError(f"cannot write {self._path}: {e.strerror or e}")

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            raise self._fail(e) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise self._fail(e) from None

    def fileno(self) -> int:
        return self._f.fileno()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._f.closed


def _open(path: Path, flags: int) -> BufferedWriter:
    try:
        return os.fdopen(os.open(path, flags | os.O_CLOEXEC, 0o644), "wb")
    except OSError as e:
        raise BuildError(f"cannot write {path}: {e.strerror or e}") from None


def writes_through(path: Path | str) -> bool:
    """True when `path` exists and is not a regular file (it is written in place, never replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise BuildError(f"cannot write {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BuildError(f"cannot write {path}: it is a directory")
    return not stat.S_ISREG(st.st_mode)


@contextmanager
def atomic_file(path: Path | str, *, durable: bool = True) -> Iterator[BufferedWriter]:
    """`with atomic_file(path) as f:` write f. A regular (or new) file: on success the written data
    replaces `path` (fsync()ed first when durable); on failure `path` is left as it was. Anything else
    (device, FIFO, symlink) is opened and written through. Errors are BuildErrors naming `path`."""
    path = Path(path)
    if writes_through(path):
        raw = _open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC if stat.S_ISLNK(os.lstat(path).st_mode) else os.O_WRONLY)
        out = _Output(raw, path)
        try:
            yield out  # type: ignore[misc]
            out.flush()
        finally:
            try:
                raw.close()
            except OSError:
                pass
        return
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")  # (secrets costs 9 ms to import)
    try:
        raw = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with raw:
            out = _Output(raw, path)
            yield out  # type: ignore[misc]
            out.flush()
            if durable:
                try:
                    os.fsync(raw.fileno())
                except OSError as e:
                    raise BuildError(f"cannot write {path}: {e.strerror or e}") from None
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise BuildError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_file(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` by the rule above."""
    with atomic_file(path) as f:
        f.write(data)
