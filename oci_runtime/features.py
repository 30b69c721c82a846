"""`pyrunc features`: what this runtime implements, in the OCI features document's shape."""

from __future__ import annotations

from .hooks import PHASES
from .namespaces import FLAGS
from .rootfs import MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS
from .security.capabilities import CAPABILITIES


def _seccomp() -> dict:
    try:
        from .security import seccomp
        return seccomp.features()
    except (ImportError, AttributeError, OSError):
        return {"enabled": False}


def features() -> dict:
    from .cli import SPEC_VERSION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(PHASES),
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS) | {"tmpcopyup"}),
        "linux": {
            "namespaces": sorted(FLAGS),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runc.version": "pyrunc", "io.github.pyrunc.runtime": "python"},
    }
