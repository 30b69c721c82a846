"""The state directory under --root: one directory per container, claimed atomically.

<root>/<id>/state.json   what later commands need (pid, start time, bundle, cgroup, hooks, ...)
<root>/<id>/cleanup.json the part of it `delete --force` needs (pid, start time, cgroup), written on its own
                         so that a damaged state.json never leaves processes or cgroups behind
<root>/<id>/exec.fifo    exists while the container is `created`: `start` opens it to release init
"""

from __future__ import annotations

import fcntl
import os

from oci_runtime.errors import ContainerExists, ContainerNotFound, RuntimeFailure, StateCorrupt
from oci_runtime.jsonio import dumps, load_file

DEFAULT_ROOT = "/run/pyrunc"
STATE_FILE = "state.json"
CLEANUP_FILE = "cleanup.json"
CLEANUP_KEYS = ("id", "pid", "pid_start", "cgroup", "cgroup_owned")
_MAX_STATE_BYTES = 16 << 20
# The type of every field pyrunc writes; a state file that disagrees was not written by us.
_FIELD_TYPES = {"id": str, "ociVersion": str, "pid": int, "pid_start": int, "bundle": str, "rootfs": str,
                "created": str, "owner": str, "annotations": dict, "hooks": dict, "cgroup": (dict, type(None)),
                "own_pidns": bool, "config": dict, "resources": dict, "cgroup_owned": bool}
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
        self._cleanup_written = None

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
        cleanup = {k: state.get(k) for k in CLEANUP_KEYS}
        if cleanup != self._cleanup_written:
            self._write(CLEANUP_FILE, cleanup)
            self._cleanup_written = cleanup
        self._write(STATE_FILE, state)

    def _write(self, name: str, doc: dict) -> None:
        tmp = os.path.join(self.path, f".{name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, dumps(doc, compact=True).encode())
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.path, name))

    def load(self) -> dict:
        return self._read(STATE_FILE)

    def load_cleanup(self) -> dict:
        """What delete --force needs, from the record kept apart from state.json."""
        return self._read(CLEANUP_FILE)

    def _read(self, name: str) -> dict:
        path = os.path.join(self.path, name)
        try:
            doc = load_file(path, _MAX_STATE_BYTES)
        except FileNotFoundError:
            raise ContainerNotFound.for_id(self.id) from None
        except (OSError, ValueError) as e:
            raise StateCorrupt(f"container {self.id}: unreadable {name}: {getattr(e, 'strerror', None) or e}") from None
        problem = _check_fields(doc)
        if problem:
            raise StateCorrupt(f"container {self.id}: {name} was not written by pyrunc ({problem})")
        return doc

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


def _check_fields(doc) -> str:
    """Why doc is not a state record pyrunc wrote ("" if it is one)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key, kind in _FIELD_TYPES.items():
        if key in doc and (not isinstance(doc[key], kind) or (kind is int and isinstance(doc[key], bool))):
            return f"{key} is {type(doc[key]).__name__}"
    if doc.get("pid", 0) < 0:
        return "negative pid"
    return ""
