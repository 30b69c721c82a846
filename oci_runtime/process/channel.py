"""The runtime's conversation with the children it forks (stage1, init, an exec'd process's parent): one JSON
object per SOCK_SEQPACKET message, tagged with its kind. Every kind of message is named here.

  GO      runtime -> stage1   the cgroup is placed; join_self: stage1 joins the cgroup v1 hierarchies itself
                              (or init / the exec'd process, when the runtime forks it without stage1)
  USERNS  stage1 -> runtime   a user namespace was made: write its id maps (answered with OK)
  PID     stage1 -> runtime   pid: the host pid of init, or of the exec'd process (not sent without stage1)
  HOOKS   init -> runtime     run the createRuntime hooks (answered with OK carrying the hooks' state)
  OK      runtime -> child    go on
  SECCOMP child -> runtime    the seccomp listener the child just made, attached (SCM_RIGHTS; the runtime's copy
                              arrives as the message's "fd"): the runtime gives it to the agent and answers OK
  READY   init -> runtime     waiting on exec.fifo
  ERROR   child -> runtime    msg: why the child failed (it exits right after)
  LOG     child -> runtime    msg: a debug line, sent with --debug only; the runtime writes it to its log (the
                              child may no longer reach the log file, and must not hold it open)
"""

from __future__ import annotations

import os
import sys

import _socket as socket  # the C module: `socket` costs milliseconds of enum set-up at import

from oci_runtime.errors import child_failed
from oci_runtime.jsonio import dumps, loads
from oci_runtime.log import logger

GO, USERNS, PID, HOOKS, OK, SECCOMP, READY, ERROR, LOG = ("go", "userns", "pid", "hooks", "ok", "seccomp", "ready",
                                                          "error", "log")
_MAX_MESSAGE = 1 << 16
_FD_SIZE = 4  # an int, as SCM_RIGHTS carries it


class Channel:
    """One end of a runtime <-> child socketpair."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(self, kind: str, **fields) -> None:
        self.sock.send(dumps({"t": kind, **fields}, compact=True).encode())

    def recv(self) -> dict | None:
        """The next message, or None once the other end has closed (or exec'd: the socket is close-on-exec).
        LOG messages are written to the runtime's log here and never returned (only children send them).
        A SECCOMP message's fd is ours (close-on-exec) as its "fd"; an fd attached to anything else is closed."""
        while (msg := self._recv_one()) is not None and msg.get("t") == LOG:
            logger.debug(msg["msg"])
        return msg

    def _recv_one(self) -> dict | None:
        data, ancillary, _, _ = self.sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(_FD_SIZE), socket.MSG_CMSG_CLOEXEC)
        msg = loads(data) if data else None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(payload) - _FD_SIZE + 1, _FD_SIZE):
                    fd = int.from_bytes(payload[i:i + _FD_SIZE], sys.byteorder, signed=True)
                    if msg is not None and msg.get("t") == SECCOMP and "fd" not in msg:
                        msg["fd"] = fd
                    else:
                        os.close(fd)
        return msg

    def expect(self, kind: str) -> dict:
        """In a child: the next message, which must be `kind`; anything else means the runtime is gone or
        gave up, and the child ends at once."""
        msg = self.recv()
        if not msg or msg.get("t") != kind:
            os._exit(1)
        return msg

    def debug(self, msg: str) -> None:
        """In a child: a debug line for the runtime's log (runc's stage names lead the text: scripts grep for them)."""
        if logger.debugging:
            try:
                self.send(LOG, msg=msg)
            except OSError:
                pass  # refused by the container's own seccomp filter: the line is lost, the container is not

    def fail(self, e: BaseException, code: int = 1):
        """In a child: report the failure to the runtime and end (never returns)."""
        child_failed(lambda text: self.send(ERROR, msg=text), e, code)

    def hand_over_listener(self, fd: int) -> None:
        """In a child: give the runtime our seccomp listener and wait until the agent has it. The fd itself
        travels with the message: taking it from us (pidfd_getfd) would need ptrace access to a non-dumpable
        process, which an unprivileged runtime does not have."""
        self.sock.sendmsg([dumps({"t": SECCOMP}, compact=True).encode()],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(_FD_SIZE, sys.byteorder))])
        self.expect(OK)
        os.close(fd)

    def close(self) -> None:
        self.sock.close()


def channel_pair() -> tuple[Channel, Channel]:
    """(the runtime's end, the child's end), both close-on-exec."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    return Channel(ours), Channel(theirs)


def fork_child(body) -> tuple[int, Channel]:
    """Fork a child that runs body(its end of a new channel) and then ends: it never returns into our code,
    and any failure in body is reported as ERROR. Returns (the child's pid, our end)."""
    ours, theirs = channel_pair()
    try:
        pid = os.fork()
    except BaseException:
        ours.close()
        theirs.close()
        raise
    if pid == 0:  # pragma: no cover - runs in the child
        ours.close()
        try:
            body(theirs)
        except BaseException as e:  # noqa: BLE001 - every failure must reach the runtime
            theirs.fail(e)
        os._exit(1)
    theirs.close()
    return pid, ours


def fork_announced(channel: Channel, body, fail_code: int = 1):
    """In stage1: fork the child that runs body(), tell the runtime its pid (PID) before the child can say
    anything, so that messages arrive in order, and end stage1. The child never returns into our code."""
    released_r, released_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(released_w)
        try:
            os.read(released_r, 1)  # until our pid is sent
            os.close(released_r)
            body()
        except BaseException as e:  # noqa: BLE001 - every failure must reach the runtime
            channel.fail(e, fail_code)
        os._exit(fail_code)
    channel.send(PID, pid=pid)
    os.write(released_w, b"1")
    os._exit(0)
