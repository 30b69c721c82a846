"""/proc/self/mountinfo, read: the one reader of the mount table for the runtime and for pydock.

A line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"; paths
escape space, tab, newline and backslash as \\ooo. The optional fields carry the propagation: shared:N (a
member of peer group N), master:N (a slave of group N), unbindable."""

from __future__ import annotations

import os


class Mount:
    __slots__ = ("root", "mountpoint", "optional", "fstype", "superoptions")

    def __init__(self, root: str, mountpoint: str, optional: tuple[str, ...], fstype: str, superoptions: str):
        self.root = root                  # the path inside its file system that is mounted here
        self.mountpoint = mountpoint
        self.optional = optional          # ("shared:3", "master:1", ...)
        self.fstype = fstype
        self.superoptions = superoptions

    @property
    def shared(self) -> bool:
        return any(f.startswith("shared:") for f in self.optional)

    @property
    def slave(self) -> bool:
        return any(f.startswith("master:") for f in self.optional)


def unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_line(line: str) -> Mount:
    left, _, right = line.rstrip("\n").partition(" - ")
    fields, tail = left.split(" "), right.split(" ")
    return Mount(unescape(fields[3]), unescape(fields[4]), tuple(fields[6:]), tail[0],
                 tail[2] if len(tail) > 2 else "")


def mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount, in mount order (later mounts are stacked over earlier ones at one mount point)."""
    with open(path) as f:
        return [parse_line(line) for line in f if line.strip()]


def mount_points(path: str = "/proc/self/mountinfo") -> list[str]:
    return [m.mountpoint for m in mounts(path)]


def containing(path: str) -> Mount:
    """The mount that holds path (symlinks resolved): the last one mounted at the longest mount point above it."""
    path = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts():
        prefix = m.mountpoint.rstrip("/") + "/"
        if (path + "/").startswith(prefix) and (best is None or len(m.mountpoint) >= len(best.mountpoint)):
            best = m
    assert best is not None  # "/" holds every path
    return best
