"""The state directory under --root: one directory per container, claimed atomically.

<root>/<id>/state.json   what later commands need (pid, start time, bundle, cgroup, hooks, ...)
<root>/<id>/exec.fifo    exists while the container is `created`: `start` opens it to release init
"""

from __future__ import annotations

import fcntl
import os

from oci_runtime.jsonio import dumps, loads
from oci_runtime.errors import ContainerExists, ContainerNotFound, RuntimeFailure

DEFAULT_ROOT = "/run/pyrunc"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")
_MAX_ID = 1024


def valid_id(container_id: str) -> bool:
    """^[A-Za-z0-9][A-Za-z0-9_.+-]*$ without importing re (startup time matters here)."""
    return (bool(container_id) and container_id[0] in _ID_FIRST
            and all(c in _ID_CHARS for c in container_id))


def check_id(container_id: str) -> None:
    """An id names a directory under --root, so it must never be a path."""
    if not container_id:
        raise RuntimeFailure("container id cannot be empty")
    if len(container_id) > _MAX_ID or not valid_id(container_id):
        raise RuntimeFailure(f"invalid container id format: {container_id!r} "
                             "(letters, digits and _ . + - only, starting with a letter or digit)")


class StateDir:
    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.state_file = os.path.join(self.path, STATE_FILE)
        self.fifo = os.path.join(self.path, FIFO_NAME)

    def claim(self) -> None:
        """Create the directory; mkdir is atomic, so two creates of one id cannot both win."""
        os.makedirs(self.root, 0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists.for_id(self.id) from None

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def save(self, state: dict) -> None:
        tmp = os.path.join(self.path, f".{STATE_FILE}.{os.getpid()}")
        data = dumps(state, compact=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_file)

    def load(self) -> dict:
        try:
            with open(self.state_file, "rb") as f:
                return loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound.for_id(self.id) from None
        except ValueError as e:
            raise RuntimeFailure(f"container {self.id}: corrupt state file {self.state_file}: {e}") from None

    def locked(self) -> "_DirLock":
        """Serialise state-changing commands on one container (flock on the directory itself)."""
        return _DirLock(self)

    def remove(self) -> None:
        """Remove the directory and the few files in it (shutil costs milliseconds to import)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.path, name))
            except IsADirectoryError:
                import shutil  # never made by us; tolerated all the same

                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


class _DirLock:
    def __init__(self, state_dir: StateDir):
        self.state_dir = state_dir
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.state_dir.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound.for_id(self.state_dir.id) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if valid_id(n) and os.path.isdir(os.path.join(root, n)))
