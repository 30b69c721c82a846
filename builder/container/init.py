"""docker's `--init`: a static tini from the host, bind-mounted read-only as /sbin/docker-init and run as
the container's PID 1 with the command as its child, so zombies are reaped and signals are passed on.
It must be static: the image may have no libc (busybox, scratch)."""

from __future__ import annotations

import os

from builder.container.records import ContainerError

INIT_PATH = "/sbin/docker-init"  # where docker puts it in the container
_CANDIDATES = ("/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/sbin/tini-static",
               "/usr/local/bin/tini-static")


def host_init_binary() -> str:
    """The host's static init, or a clear error naming the package that provides one."""
    for path in _CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise ContainerError("--init: no static init binary found (install the tini package: it provides "
                         "/usr/bin/tini-static)")


def apply_init(spec: dict, binary: str) -> None:
    """Make the init PID 1 in the spec: its bind mount, and the command after `--`."""
    spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": binary,
                           "options": ["rbind", "ro"]})
    spec["process"]["args"] = [INIT_PATH, "--", *spec["process"]["args"]]
