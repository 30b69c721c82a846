"""The attach socket: CONTAINER/attach.sock, served by the monitor, used by `pydock attach` and by a
foreground `run -t`'s window-size changes.

Frames both ways: 1 byte kind, 3 zero bytes, a 4-byte big-endian length, the payload (docker's stream
header). From the monitor: STDOUT, STDERR, then EXIT (payload: the status in decimal) when the container
ends. From a client: STDIN (passed on when the container has -i), RESIZE (rows, cols as two 16-bit
numbers: the pty's window size, when it has -t).

AF_UNIX paths stop at 108 bytes and a store's may be longer, so the socket is bound and reached through
/proc/self/fd/N/attach.sock, N a descriptor of the container directory."""

from __future__ import annotations

import os
import socket
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STDIN, STDOUT, STDERR, EXIT, RESIZE = 0, 1, 2, 3, 4
STREAM_KINDS = {"stdout": STDOUT, "stderr": STDERR}
SOCKET_NAME = "attach.sock"
_HEADER = struct.Struct(">B3xI")
_SEND_TIMEOUT = 2.0  # a client that reads slower than this is dropped: the container never waits on it


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def resize_frame(rows: int, cols: int) -> bytes:
    return frame(RESIZE, struct.pack(">HH", rows, cols))


class FrameReader:
    """Collects received bytes; frames() yields the complete (kind, payload) pairs."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buffer += data
        while len(self.buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < _HEADER.size + size:
                return
            payload = self.buffer[_HEADER.size:_HEADER.size + size]
            self.buffer = self.buffer[_HEADER.size + size:]
            yield kind, payload


@contextmanager
def _short_path(container_dir: Path) -> Iterator[str]:
    fd = os.open(container_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{SOCKET_NAME}"
    finally:
        os.close(fd)


def connect(container_dir: Path) -> socket.socket:
    """A connection to the container's monitor (OSError when it serves none: the container is not running)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        with _short_path(container_dir) as path:
            sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def set_window_size(pty_fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass  # the pty is gone with the container


class AttachServer:
    """The monitor's side: accepts clients, sends them the container's output and its end, and takes
    their input and window sizes."""

    def __init__(self, container_dir: Path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with _short_path(container_dir) as path:
            try:
                os.unlink(path)  # a crashed monitor's
            except FileNotFoundError:
                pass
            self.listener.bind(path)
        self.listener.listen(8)
        self.clients: dict[int, tuple[socket.socket, FrameReader]] = {}

    def fds(self) -> list[int]:
        return [self.listener.fileno(), *self.clients]

    def handle(self, fd: int, stdin_w: int | None, pty: int | None) -> None:
        """fd is readable: a new client, or frames from one (stdin to stdin_w, window sizes to pty)."""
        if fd == self.listener.fileno():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.settimeout(_SEND_TIMEOUT)
            self.clients[conn.fileno()] = (conn, FrameReader())
            return
        conn, reader = self.clients[fd]
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        for kind, payload in reader.feed(data):
            if kind == STDIN and stdin_w is not None:
                try:
                    os.write(stdin_w, payload)
                except OSError:
                    pass  # the container closed its stdin
            elif kind == RESIZE and pty is not None and len(payload) == 4:
                set_window_size(pty, *struct.unpack(">HH", payload))

    def broadcast(self, stream: str, data: bytes) -> None:
        self._send_all(frame(STREAM_KINDS[stream], data))

    def end(self, code: int) -> None:
        """The container exited: tell every client and let them go (a restart takes new attaches)."""
        self._send_all(frame(EXIT, str(code).encode()))
        for fd in list(self.clients):
            self._drop(fd)

    def close(self) -> None:
        for fd in list(self.clients):
            self._drop(fd)
        self.listener.close()

    def _send_all(self, data: bytes) -> None:
        for fd, (conn, _) in list(self.clients.items()):
            try:
                conn.sendall(data)
            except OSError:
                self._drop(fd)

    def _drop(self, fd: int) -> None:
        conn, _ = self.clients.pop(fd)
        conn.close()
