"""Persistent network namespaces: a file bind-mounted over /proc/PID/ns/net keeps a namespace alive with
no process in it (as `ip netns add` does). Made with our own syscall layer rather than pyroute2.netns:
that one also turns the parent directory into a shared bind mount of itself, which would outlive every
container and the store."""

from __future__ import annotations

import os

from oci_runtime import linux


def create(path: str) -> None:
    """A new, empty network namespace (only a down loopback) kept alive by a bind mount at path."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child: unsharing our own netns would move the caller's later sockets too
        code = 1
        try:
            os.close(r)
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount("/proc/self/ns/net", path, None, linux.MS_BIND)
            code = 0
        except OSError as e:
            os.write(w, str(e).encode()[:512])
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        _unlink(path)
        raise OSError(f"cannot create a network namespace at {path}: {message or 'child failed'}")


def is_namespace(path: str) -> bool:
    """Whether path is a bind-mounted network namespace (nsfs), not the plain file under it."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def remove(path: str) -> None:
    """Unmount and delete; the namespace itself goes when its last process and mount are gone. Idempotent."""
    while is_namespace(path):
        try:
            linux.umount2(path, linux.MNT_DETACH)
        except OSError:
            break
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
