"""`pyrunc run`: create + start, then (unless --detach) stay in the foreground as the container's parent:
forward signals, proxy a terminal, and exit with the container's exit code."""

from __future__ import annotations

import os
import select

import _signal as signal  # the C modules: `signal` and `socket` spend milliseconds building enums
import _socket as socket

from . import linux
from .errors import RuntimeFailure
from .log import logger

# runc forwards every signal but these to the container's init
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH, signal.SIGURG}


def _terminal_wanted(bundle_dir: str) -> bool:
    from .config import read_json

    config = read_json(os.path.join(os.path.abspath(bundle_dir), "config.json"), "config.json")
    return bool((config.get("process") or {}).get("terminal"))


def run(root: str, args, extra_fds: int = 0, extra_env: dict | None = None) -> int:
    from .cli import console_socket
    from .container import create

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # init is our grandchild; its exit must come to us
    own_pty = None
    sock = console_socket(args.console_socket)
    if sock is None and not args.detach and _terminal_wanted(args.bundle):
        own_pty, sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        container = create(root, args.id, args.bundle, console_sock=sock, pid_file=args.pid_file,
                           no_pivot=args.no_pivot, no_new_keyring=args.no_new_keyring,
                           preserve_fds=args.preserve_fds + extra_fds, systemd_cgroup=args.systemd_cgroup,
                           extra_env=extra_env)
    finally:
        if sock is not None:
            sock.close()
    master = None
    try:
        if own_pty is not None:
            from .console import recv_fd

            master = recv_fd(own_pty)
            own_pty.close()
        if args.detach:
            container.start()
            return 0
        forwarded = _forward_signals(container.pid, master)
        try:
            container.start()
        except RuntimeFailure:
            _restore(forwarded)
            _cleanup(container, args)
            raise
        status = _wait(container.pid, master)
        _restore(forwarded)
    except BaseException:
        if master is not None:
            os.close(master)
        raise
    if master is not None:
        os.close(master)
    if not args.keep:
        _cleanup(container, args)
    return status


def wait_foreground(pid: int, master: int | None) -> int:
    """Forward signals to `pid`, proxy the terminal if any, and return its exit code (128+N if killed)."""
    forwarded = _forward_signals(pid, master)
    try:
        return _wait(pid, master)
    finally:
        _restore(forwarded)


def _restore(signals: list[int]) -> None:
    for sig in signals:
        signal.signal(sig, signal.SIG_DFL)


def _cleanup(container, args) -> None:
    try:
        with container.dir.locked():
            container.delete(force=True)
    except RuntimeFailure as e:
        logger.warning(f"deleting container {args.id}: {e}")


def _forward_signals(pid: int, master: int | None) -> list[int]:
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
        from .console import set_size
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


def _wait(init_pid: int, master: int | None) -> int:
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
