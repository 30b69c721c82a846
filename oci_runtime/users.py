"""Users and groups as a container image names them, looked up in the image's own /etc/passwd and /etc/group
(never the host's), the way runc's GetExecUser and BuildKit do. Shared by the runtime and pydock.

The files are opened with every symlink resolved inside the root (openat2 RESOLVE_IN_ROOT), so a hostile
image cannot make us read a host file. Errors are ValueError with the message a user should see.
"""

from __future__ import annotations

import os

from oci_runtime import linux

MAX_ID = 2**31 - 1  # runc's maxId: ids are Go ints bounded by what the kernel's uid_t accepts


class ExecUser:
    """The process identity an image's User string names."""

    __slots__ = ("uid", "gid", "additional_gids", "home")

    def __init__(self, uid: int, gid: int, additional_gids: list[int] | None = None, home: str = "/"):
        self.uid, self.gid, self.home = uid, gid, home
        self.additional_gids = list(additional_gids or [])

    def __eq__(self, other) -> bool:
        return isinstance(other, ExecUser) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self) -> str:
        return (f"ExecUser(uid={self.uid}, gid={self.gid}, additional_gids={self.additional_gids}, "
                f"home={self.home!r})")


def read_in_root(root: str, path: str) -> bytes | None:
    """The content of the regular file `path` inside `root`, symlinks resolved inside it; None if missing."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = linux.openat2(root_fd, path.lstrip("/") or ".", os.O_RDONLY | os.O_NONBLOCK,
                           resolve=linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    with open(fd, "rb") as f:
        import stat

        return f.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _rows(root: str, name: str, min_fields: int) -> list[list[str]]:
    data = read_in_root(root, f"etc/{name}")
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            row = line.split(":")
            if len(row) >= min_fields:
                rows.append(row)
    return rows


def _id(text: str) -> int | None:
    """A numeric id, range-checked; None for a name."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    if value > MAX_ID:
        raise ValueError(f"user or group id {value} is out of range")
    return value


def _field_id(row: list[str], index: int, what: str) -> int:
    value = _id(row[index])
    if value is None:
        raise ValueError(f"malformed {what} entry for {row[0]} in the image")
    return value


def lookup(root: str, spec: str) -> ExecUser:
    """Resolve a User string ("", "uid", "name", "uid:gid", "name:group", ...) against the image at `root`.

    runc's rules: a numeric user is a uid even without a passwd entry (gid 0 then); a name must exist; an
    explicit group sets the primary gid (a name must exist, a number need not); supplementary groups (every
    group listing the user as a member) only when no group is given.
    """
    user_arg, _, group_arg = (spec or "").partition(":")
    uid_arg = _id(user_arg) if user_arg else 0
    entry = None
    for row in _rows(root, "passwd", 4):
        if (uid_arg is not None and row[2] == str(uid_arg)) or (user_arg and row[0] == user_arg):
            entry = row
            break
    if entry is None and uid_arg is None:
        raise ValueError(f"unable to find user {user_arg}: no matching entries in passwd file")
    if entry is not None:
        uid, gid = _field_id(entry, 2, "passwd"), _field_id(entry, 3, "passwd")
        home = entry[5] if len(entry) > 5 and entry[5] else "/"
    else:
        uid, gid, home = uid_arg, 0, "/"
    additional: list[int] = []
    if group_arg:
        gid_arg = _id(group_arg)
        for row in _rows(root, "group", 3):
            if (gid_arg is not None and row[2] == str(gid_arg)) or row[0] == group_arg:
                gid = _field_id(row, 2, "group")
                break
        else:
            if gid_arg is None:
                raise ValueError(f"unable to find group {group_arg}: no matching entries in group file")
            gid = gid_arg
    elif entry is not None:
        for row in _rows(root, "group", 4):
            if entry[0] in row[3].split(","):
                group_id = _id(row[2])
                if group_id is not None and group_id not in additional:
                    additional.append(group_id)
    return ExecUser(uid, gid, additional, home)


def chown_ids(root: str, spec: str) -> tuple[int, int]:
    """COPY/ADD --chown=user[:group] as BuildKit reads it: names looked up in the destination image; a
    numeric user without a group gets the same number as gid, a named one its primary group."""
    user_arg, _, group_arg = spec.partition(":")
    if not user_arg:
        raise ValueError(f"invalid --chown value {spec!r}: want user[:group]")
    uid = _id(user_arg)
    if uid is not None:
        gid = uid
    else:
        for row in _rows(root, "passwd", 4):
            if row[0] == user_arg:
                uid, gid = _field_id(row, 2, "passwd"), _field_id(row, 3, "passwd")
                break
        else:
            raise ValueError(f"unable to find user {user_arg}: no matching entries in passwd file")
    if group_arg:
        for row in _rows(root, "group", 3):
            if row[0] == group_arg:
                gid = _field_id(row, 2, "group")
                break
        else:
            gid = _id(group_arg)
            if gid is None:
                raise ValueError(f"unable to find group {group_arg}: no matching entries in group file")
    return uid, gid


def home_of(uid: int, root: str = "/") -> str | None:
    """The home directory passwd gives uid (for HOME when the process sets none), or None."""
    for row in _rows(root, "passwd", 6):
        if row[2] == str(uid):
            return row[5]
    return None
