"""run: create + start, then (unless detached) stay in the foreground as the container's parent: forward
signals, proxy a terminal, and return the container's exit code; the container is deleted afterwards
unless asked to keep it."""

from __future__ import annotations

import os

from oci_runtime import linux
from oci_runtime.container.create import create
from oci_runtime.errors import RuntimeFailure
from oci_runtime.log import logger
from oci_runtime.process import stdio


def _terminal_wanted(bundle_dir: str) -> bool:
    from oci_runtime.bundle import read_json

    config = read_json(os.path.join(os.path.abspath(bundle_dir), "config.json"), "config.json")
    return bool((config.get("process") or {}).get("terminal"))


def run(root: str, container_id: str, bundle_dir: str, *, console_sock=None, detach: bool = False,
        keep: bool = False, no_subreaper: bool = False, **create_options) -> int:
    """Run the bundle; create_options are create()'s keyword arguments. Returns the exit code (0 detached).

    no_subreaper (runc's --no-subreaper): processes the container orphans are not reparented to us. We are a
    subreaper only until init is our child: forked by stage1 (with a user or time namespace), it becomes ours
    when stage1 exits, inside create.
    """
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # init may be our grandchild (launch.py); its exit must come to us
    own_pty = None
    if console_sock is None and not detach and _terminal_wanted(bundle_dir):
        own_pty, console_sock = stdio.terminal_socketpair()
    try:
        container = create(root, container_id, bundle_dir, console_sock=console_sock, **create_options)
    finally:
        if console_sock is not None:
            console_sock.close()
    if no_subreaper:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)
    master = None
    try:
        if own_pty is not None:
            master = stdio.receive_terminal(own_pty)
        if detach:
            container.start()
            return 0
        forwarded = stdio.forward_signals(container.pid, master)
        try:
            container.start()
        except RuntimeFailure:
            stdio.restore_signals(forwarded)
            _cleanup(container)
            raise
        status = stdio.wait_exit(container.pid, master)
        stdio.restore_signals(forwarded)
    finally:
        if master is not None:
            os.close(master)
    if not keep:
        _cleanup(container)
    return status


def _cleanup(container) -> None:
    try:
        with container.dir.locked():
            container.delete(force=True)
    except RuntimeFailure as e:
        logger.warning(f"deleting container {container.id}: {e}")
