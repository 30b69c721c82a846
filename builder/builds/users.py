"""The image's users as build steps need them (RUN's process user, WORKDIR's and COPY --chown's owner),
looked up in the step's own rootfs with the runtime's shared rules; errors become BuildErrors."""

from __future__ import annotations

from pathlib import Path

from builder.errors import BuildError
from oci_runtime import users


def image_user(rootfs: Path, spec: str) -> users.ExecUser:
    """USER user[:group] resolved in the rootfs ("" is root), with supplementary groups."""
    try:
        return users.lookup(str(rootfs), spec)
    except ValueError as e:
        raise BuildError(str(e)) from None


def chown_ids(rootfs: Path, spec: str) -> tuple[int, int]:
    """COPY/ADD --chown=user[:group] as (uid, gid)."""
    try:
        return users.chown_ids(str(rootfs), spec)
    except ValueError as e:
        raise BuildError(str(e)) from None
