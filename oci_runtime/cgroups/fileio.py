"""Reading and writing cgroup control files, with errors that name the file and the value.

Every write is a single write(2) of the whole value, as the kernel parses each write on its own.
A `Transaction` remembers what a file held before it was changed, so that a set or update the
kernel refuses half-way can be put back the way it was.
"""

from __future__ import annotations

import errno
import os

from oci_runtime.errors import RuntimeFailure


class CgroupError(RuntimeFailure, OSError):
    """A cgroup operation failed; the message names the file and the value involved.

    A RuntimeFailure, so the CLI prints it as one clear line; also an OSError (with `errno` set
    when the kernel gave one), so best-effort cleanup written as `except OSError` covers it.
    """

    def __init__(self, message: str, *, errno_value: int | None = None):
        super().__init__(message)
        self.errno = errno_value


def describe_errno(err: int) -> str:
    """strerror() in the lower-case style runc prints ("invalid argument")."""
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def write_file(directory: str, name: str, value: str) -> None:
    path = os.path.join(directory, name)
    data = value.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f'cgroup: writing "{value}" to {path}: {describe_errno(exc.errno)}',
                          errno_value=exc.errno) from None
    try:
        os.write(fd, data)
    except OSError as exc:
        raise CgroupError(f'cgroup: writing "{value}" to {path}: {describe_errno(exc.errno)}',
                          errno_value=exc.errno) from None
    finally:
        os.close(fd)


def read_file(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            return f.read().decode()
    except OSError as exc:
        raise CgroupError(f"cgroup: reading {path}: {describe_errno(exc.errno)}", errno_value=exc.errno) from None


def read_file_or_none(directory: str, name: str) -> str | None:
    """The file's text, or None when the kernel does not offer that file."""
    try:
        with open(os.path.join(directory, name), "rb") as f:
            return f.read().decode()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EOPNOTSUPP):
            return None
        raise CgroupError(f"cgroup: reading {os.path.join(directory, name)}: {describe_errno(exc.errno)}",
                          errno_value=exc.errno) from None


def parse_uint(text: str) -> int:
    """A cgroup number; "max" (and v1's huge "unlimited" values) read as 2**64-1 like runc."""
    text = text.strip()
    if text == "max":
        return 2**64 - 1
    value = int(text)
    return value if value >= 0 else 0


def read_uint(directory: str, name: str, default: int | None = None) -> int:
    text = read_file_or_none(directory, name) if default is not None else read_file(directory, name)
    if text is None:
        return default  # type: ignore[return-value]
    try:
        return parse_uint(text)
    except ValueError:
        raise CgroupError(f"cgroup: unexpected contents {text.strip()!r} in {os.path.join(directory, name)}") from None


def read_key_values(directory: str, name: str) -> dict[str, int]:
    """A flat "key value" file such as memory.stat or cpu.stat; missing file -> {}."""
    text = read_file_or_none(directory, name)
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = parse_uint(parts[1])
            except ValueError:
                continue
    return out


_READ_CURRENT = object()


class Transaction:
    """Writes control files and remembers how to undo them.

    `write(dir, name, value, undo=...)` records the value to write back on rollback: by default the
    file's current contents (right for single-value files). Callers pass `undo` for files whose
    read format differs from their write format, or `undo=None` to record nothing.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._undo: list[tuple[str, str, str]] = []

    def write(self, directory: str, name: str, value: str, *, undo: str | None | object = _READ_CURRENT) -> None:
        if self.enabled and undo is _READ_CURRENT:
            try:
                current = read_file_or_none(directory, name)
            except CgroupError:   # a write-only file: nothing to put back
                current = None
            undo = current.strip() if current is not None and current.strip() else None
        write_file(directory, name, value)
        if self.enabled and isinstance(undo, str) and undo != value:
            self._undo.append((directory, name, undo))

    def remember(self, directory: str, name: str, undo: str) -> None:
        """Record an undo step for a write made some other way."""
        if self.enabled:
            self._undo.append((directory, name, undo))

    def rollback(self) -> None:
        """Best effort, newest first: the error that caused the rollback is what the user needs to see."""
        failed = []
        while self._undo:
            step = self._undo.pop()
            try:
                write_file(*step)
            except CgroupError:
                failed.append(step)
        # Pairs like memory and memory+swap must go back in the order that keeps memory <= memory+swap.
        for step in failed:
            try:
                write_file(*step)
            except CgroupError:
                pass
