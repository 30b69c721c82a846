"""Terminals: a pty allocated inside the container's devpts, its master handed over --console-socket."""

from __future__ import annotations

import fcntl
import os
import struct

import _socket as socket  # the C module: `socket` is slow to import

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_pty_in_container() -> tuple[int, str]:
    """Open /dev/ptmx of the container's devpts; return (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{number}"


TIOCSWINSZ = 0x5414
TIOCSCTTY = 0x540E


def set_size(fd: int, size: dict | None) -> None:
    if size:
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))


def send_fd(sock: socket.socket, fd: int, name: str = "/dev/ptmx") -> None:
    """One message: the name as payload and exactly one fd in SCM_RIGHTS (what engines expect)."""
    sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])


def recv_fd(sock: socket.socket) -> int:
    fds: list[int] = []
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f'connecting to console socket "{path}": {e.strerror}') from None
    return sock


def make_controlling(slave_fd: int) -> None:
    """Make the pty slave the session's controlling terminal and the process's stdio."""
    fcntl.ioctl(slave_fd, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave_fd, target)
