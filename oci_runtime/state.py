"""The state directory under --root: one directory per container, claimed atomically.

<root>/<id>/state.json   what later commands need (pid, start time, bundle, cgroup, hooks, ...)
<root>/<id>/exec.fifo    exists while the container is `created`: `start` opens it to release init
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import ContainerExists, ContainerNotFound, RuntimeFailure

DEFAULT_ROOT = "/run/pyrunc"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_MAX_ID = 1024


def check_id(container_id: str) -> None:
    """An id names a directory under --root, so it must never be a path."""
    if not container_id:
        raise RuntimeFailure("container id cannot be empty")
    if len(container_id) > _MAX_ID or not _ID_RE.match(container_id) or container_id in (".", ".."):
        raise RuntimeFailure(f"invalid container id format: {container_id!r} "
                             "(letters, digits and _ . + - only, starting with a letter or digit)")


class StateDir:
    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.root = Path(root)
        self.id = container_id
        self.path = self.root / container_id

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def fifo(self) -> Path:
        return self.path / FIFO_NAME

    def claim(self) -> None:
        """Create the directory; mkdir is atomic, so two creates of one id cannot both win."""
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None

    def exists(self) -> bool:
        return self.path.is_dir()

    def save(self, state: dict) -> None:
        tmp = self.path / f".{STATE_FILE}.{os.getpid()}"
        data = json.dumps(state, separators=(",", ":")).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_file)

    def load(self) -> dict:
        try:
            with open(self.state_file, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except ValueError as e:
            raise RuntimeFailure(f"container {self.id}: corrupt state file {self.state_file}: {e}") from None

    @contextmanager
    def locked(self):
        """Serialise state-changing commands on one container (flock on the directory itself)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _ID_RE.match(n) and os.path.isdir(os.path.join(root, n)))
