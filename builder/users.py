"""User and group names resolved from an image's own /etc/passwd and /etc/group (never the host's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import BuildError


@dataclass
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    """Rows of a colon-separated database file inside the rootfs (missing file: no rows)."""
    path = rootfs / "etc" / name
    try:
        if path.is_symlink() or path.parent.is_symlink():  # never follow a link out of the rootfs
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _lookup_passwd(rootfs: Path, user: str) -> list[str] | None:
    for row in _read_db(rootfs, "passwd"):
        if len(row) >= 4 and (row[0] == user or (user.isdigit() and row[2] == user)):
            return row
    return None


def _lookup_group_id(rootfs: Path, group: str) -> int:
    for row in _read_db(rootfs, "group"):
        if len(row) >= 3 and row[0] == group:
            return int(row[2])
    if group.isdigit():
        return int(group)
    raise BuildError(f"unable to find group {group}: no matching entries in group file")


def _split(spec: str) -> tuple[str, str | None]:
    user, sep, group = spec.partition(":")
    return user, (group if sep else None)


def resolve_chown(rootfs: Path, spec: str) -> tuple[int, int]:
    """COPY/ADD --chown=user[:group]: names looked up in the destination image; a numeric user without
    a group uses the same number as gid, a named one its primary group. An unknown name is an error."""
    user, group = _split(spec)
    if not user:
        raise BuildError(f"invalid --chown value {spec!r}: want user[:group]")
    if user.isdigit():
        uid = gid = int(user)
    else:
        row = _lookup_passwd(rootfs, user)
        if row is None:
            raise BuildError(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = int(row[2]), int(row[3])
    if group:
        gid = _lookup_group_id(rootfs, group)
    return uid, gid


def resolve_exec_user(rootfs: Path, spec: str) -> ExecUser:
    """The process user for RUN (USER user[:group]), with supplementary groups from /etc/group."""
    user, group = _split(spec or "root")
    row = _lookup_passwd(rootfs, user or "root")
    if row is not None:
        name, uid, gid, home = row[0], int(row[2]), int(row[3]), (row[5] if len(row) > 5 else "/")
    elif user.isdigit():
        name, uid, gid, home = None, int(user), 0, "/"
    elif not user or user == "root":
        name, uid, gid, home = "root", 0, 0, "/root"
    else:
        raise BuildError(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        gid = _lookup_group_id(rootfs, group)
    additional: list[int] = []
    if name and not group:  # runc's rule: supplementary groups only when no group is given
        for row in _read_db(rootfs, "group"):
            if len(row) >= 4 and name in row[3].split(","):
                try:
                    g = int(row[2])
                except ValueError:
                    continue
                if g != gid and g not in additional:
                    additional.append(g)
    return ExecUser(uid, gid, additional, home or "/")
