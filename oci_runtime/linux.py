"""The one ctypes layer: every raw Linux syscall the runtime needs that `os` does not offer.

Each wrapper turns a failure into OSError naming the call and its arguments, so that an
error travelling back from the container's init reads like `mount("proc" on "/proc"): ...`.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# x86_64 syscall numbers for calls glibc has no wrapper for (or only a recent one).
_SYS_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "close_range": 436, "openat2": 437,
               "pidfd_open": 434, "pidfd_send_signal": 424, "setns": 308, "unshare": 272,
               "bpf": 321, "seccomp": 317, "mount_setattr": 442, "open_tree": 428, "move_mount": 429},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "close_range": 436, "openat2": 437,
                "pidfd_open": 434, "pidfd_send_signal": 424, "setns": 268, "unshare": 97,
                "bpf": 280, "seccomp": 277, "mount_setattr": 442, "open_tree": 428, "move_mount": 429},
}
SYS = _SYS_NUMBERS.get(os.uname().machine, _SYS_NUMBERS["x86_64"])

# clone(2) / unshare(2) flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = getattr(os, "O_PATH", 0o10000000)

_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _fail(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}")


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None,
          *, label: str | None = None) -> None:
    """mount(2); `label` is what the error message calls the target (the in-container path)."""
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        what = label or target
        raise _fail(f'mount "{source}" on "{what}" (type {fstype or "none"}, flags {flags:#x}'
                    f'{", data " + repr(data) if data else ""})')


def umount2(target: str, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        raise _fail(f'umount "{target}"')


def unshare(flags: int) -> None:
    if _libc.syscall(SYS["unshare"], ctypes.c_int(flags)) != 0:
        raise _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0, *, label: str = "") -> None:
    if _libc.syscall(SYS["setns"], ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        raise _fail(f"setns {label or fd}")


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(SYS["pivot_root"], _b(new_root), _b(put_old)) != 0:
        raise _fail(f'pivot_root "{new_root}"')


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail(f"prctl({option})")
    return ret


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) != 0:
        raise _fail(f'sethostname "{name}"')


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) != 0:
        raise _fail(f'setdomainname "{name}"')


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """close_range(2); flags=4 (CLOSE_RANGE_CLOEXEC) marks instead of closing."""
    if _libc.syscall(SYS["close_range"], ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)) != 0:
        raise _fail("close_range")


CLOSE_RANGE_CLOEXEC = 4


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(SYS["openat2"], ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                       ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        raise _fail(f'openat2 "{path}"')
    return fd


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of this thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.syscall(SYS["capget"], ctypes.byref(header), data) != 0:
        raise _fail("capget")
    join = lambda field: getattr(data[0], field) | (getattr(data[1], field) << 32)  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(SYS["capset"], ctypes.byref(header), data) != 0:
        raise _fail("capset")


# mount_setattr(2)
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_NODIRATIME = 0x70, 0x10, 0x20, 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, attr_set: int, attr_clr: int, *, recursive: bool = True, label: str = "") -> None:
    """Change the flags of the mount fd is on (and of every mount below it when recursive)."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    if _libc.syscall(SYS["mount_setattr"], ctypes.c_int(fd), b"", ctypes.c_uint(flags), ctypes.byref(attr),
                     ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
        raise _fail(f'mount_setattr "{label}"')


# open_tree(2) / move_mount(2)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def open_tree(path: str, *, recursive: bool) -> int:
    """A detached copy of the mount tree at path (a bind mount not attached anywhere yet), as an fd."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = _libc.syscall(SYS["open_tree"], ctypes.c_int(-100), _b(path), ctypes.c_uint(flags))  # AT_FDCWD
    if fd < 0:
        raise _fail(f'open_tree "{path}"')
    return fd


def move_mount(tree_fd: int, target_fd: int, *, label: str = "") -> None:
    """Attach the detached tree tree_fd on the file or directory target_fd refers to."""
    if _libc.syscall(SYS["move_mount"], ctypes.c_int(tree_fd), b"", ctypes.c_int(target_fd), b"",
                     ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)) != 0:
        raise _fail(f'move_mount "{label}"')


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes, flags: int) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): install a classic-BPF filter (8-byte instructions);
    the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    rc = _libc.syscall(SYS["seccomp"], ctypes.c_uint(1), ctypes.c_uint(flags), ctypes.byref(prog))
    if rc < 0:
        raise _fail("seccomp")
    return rc


def pidfd_open(pid: int) -> int:
    fd = _libc.syscall(SYS["pidfd_open"], ctypes.c_int(pid), ctypes.c_uint(0))
    if fd < 0:
        raise _fail(f"pidfd_open({pid})")
    return fd


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    if _libc.syscall(SYS["pidfd_send_signal"], ctypes.c_int(pidfd), ctypes.c_int(sig), None, ctypes.c_uint(0)) != 0:
        raise _fail(f"pidfd_send_signal({sig})")
