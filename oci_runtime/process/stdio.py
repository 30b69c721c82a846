"""The foreground side of `run` and `exec`: the runtime stays the container process's parent, forwards
signals to it, proxies its terminal when no --console-socket was given, and returns its exit code.
pydock's container monitor uses the same pieces."""

from __future__ import annotations

import os
import select

import _signal as signal  # the C modules: `signal` and `socket` spend milliseconds building enums
import _socket as socket

from oci_runtime import linux


def terminal_socketpair():
    """(ours, theirs): init sends the pty master over `theirs`, as it would to a --console-socket."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)


def receive_terminal(ours) -> int:
    """The pty master init sent over our end of terminal_socketpair() (which is closed)."""
    from oci_runtime.process.console import recv_fd

    try:
        return recv_fd(ours)
    finally:
        ours.close()


# runc forwards every signal but these to the container's init
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH, signal.SIGURG}


def wait_foreground(pid: int, master: int | None) -> int:
    """Forward signals to `pid`, proxy the terminal if any, and return its exit code (128+N if killed)."""
    forwarded = forward_signals(pid, master)
    try:
        return wait_exit(pid, master)
    finally:
        restore_signals(forwarded)


def restore_signals(signals: list[int]) -> None:
    for sig in signals:
        signal.signal(sig, signal.SIG_DFL)


def forward_signals(pid: int, master: int | None) -> list[int]:
    installed = []

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in signal.valid_signals():
        if sig in _NOT_FORWARDED or sig in (signal.SIGPIPE,):
            continue
        try:
            signal.signal(sig, forward)
            installed.append(sig)
        except (OSError, ValueError):
            continue
    if master is not None and os.isatty(0):
        from oci_runtime.process.console import set_size
        import fcntl
        import struct
        import termios

        def resize(_signum, _frame):
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            set_size(master, {"height": rows, "width": cols})

        signal.signal(signal.SIGWINCH, resize)
        installed.append(signal.SIGWINCH)
        resize(None, None)
    return installed


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def wait_exit(init_pid: int, master: int | None) -> int:
    if master is None:
        while True:
            pid, status = os.waitpid(-1, 0)  # reaps re-parented orphans too
            if pid == init_pid:
                return _exit_code(status)
    return _proxy_terminal(init_pid, master)


def _proxy_terminal(init_pid: int, master: int) -> int:
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    pidfd = linux.pidfd_open(init_pid)
    try:
        inputs = [master, pidfd] + ([0] if _readable_stdin() else [])
        while True:
            ready, _, _ = select.select(inputs, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    inputs.remove(master)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(0)
            if pidfd in ready:
                # drain what the process wrote before it went
                while True:
                    r, _, _ = select.select([master], [], [], 0)
                    if not r:
                        break
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    os.write(1, data)
                _, status = os.waitpid(init_pid, 0)
                return _exit_code(status)
    finally:
        os.close(pidfd)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _readable_stdin() -> bool:
    try:
        os.fstat(0)
        return True
    except OSError:
        return False
