"""Hand a seccomp notify fd to the agent at `linux.seccomp.listenerPath`, as the runtime spec says.

One AF_UNIX stream connection per container process: the container process state JSON as the
payload, the fd as SCM_RIGHTS in the first sendmsg, then close.
"""

from __future__ import annotations

import json
import os

from oci_runtime import SPEC_VERSION
from oci_runtime.seccomp.errors import SeccompError

SECCOMP_FD_NAME = "seccompFd"


def container_process_state(state: dict, pid: int, metadata: str) -> dict:
    """The spec's "container process state" wrapping the container `state`."""
    payload: dict = {
        "ociVersion": state.get("ociVersion") or SPEC_VERSION,
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
    }
    if metadata:
        payload["metadata"] = metadata
    payload["state"] = state
    return payload


def send_listener_fd(listener_path: str, notify_fd: int, state: dict, pid: int, metadata: str = "") -> None:
    """Connect to the agent, send the process state with the fd attached, and close the connection."""
    import array
    import socket

    data = json.dumps(container_process_state(state, pid, metadata)).encode()
    fds = array.array("i", [notify_fd])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(listener_path)
            sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            # A stream socket may take only part of a large state; the fd went with the first part.
            # Only when something is left: sendall(b"") still calls send(2) once, and an agent that
            # read the whole message and closed (runc's does, at once) makes that fail with EPIPE.
            if sent < len(data):
                sock.sendall(data[sent:])
    except OSError as err:
        raise SeccompError(f"failed to connect with seccomp agent: cannot send the notify fd to "
                           f"linux.seccomp.listenerPath {listener_path!r}: {err.strerror or err}") from None

