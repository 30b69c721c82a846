"""What this runtime implements, in the OCI features document's shape (`pyrunc features`)."""

from __future__ import annotations

from oci_runtime import SPEC_VERSION
from oci_runtime.process.hooks import PHASES
from oci_runtime.process.namespaces import FLAGS
from oci_runtime.process.rootfs import MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS
from oci_runtime.process.capabilities import CAPABILITIES


def _seccomp() -> dict:
    try:
        from oci_runtime.seccomp import filter as seccomp
        return seccomp.features()
    except (ImportError, AttributeError, OSError):
        return {"enabled": False}


def features() -> dict:
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
