"""pydock attach: the terminal joined to a running container's output (and input, with -i) through its
monitor's attach socket, until the container exits (its status is ours) or the detach keys are typed.
Also the window-size forwarding a foreground `run -t`/`start -a` uses."""

from __future__ import annotations

import os
import signal
import struct
import sys
from pathlib import Path


def _window_size(fd: int) -> tuple[int, int] | None:
    import fcntl
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def forward_window_changes(container_dir: Path) -> None:
    """On SIGWINCH, give the container's pty our terminal's new size (a foreground -t run, whose output
    the monitor writes to our terminal itself)."""
    from builder.container.attach import connect, resize_frame

    def on_change(_signum, _frame):
        size = _window_size(0)
        if size is None:
            return
        try:
            with connect(container_dir) as sock:
                sock.sendall(resize_frame(*size))
        except OSError:
            pass  # the container has ended

    if os.isatty(0):
        signal.signal(signal.SIGWINCH, on_change)


def relay(sock, *, send_stdin: bool, tty: bool, detach_keys: bytes) -> int | None:
    """Copy the container's output to ours and our input to it until it exits (its status) or the
    detach keys are typed on a -t container (None). -1 when the monitor went without a status."""
    import select

    from builder.container.attach import EXIT, STDERR, STDIN, STDOUT, FrameReader, frame, resize_frame
    from builder.container.detachkeys import DetachScanner

    frames = FrameReader()
    scanner = DetachScanner(detach_keys) if tty and send_stdin and detach_keys else None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    follow_size = tty and os.isatty(0)
    previous = None
    if follow_size:
        previous = signal.signal(signal.SIGWINCH, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        size = _window_size(0)
        if size:
            sock.sendall(resize_frame(*size))
    reading = send_stdin
    try:
        while True:
            ready, _, _ = select.select([sock, wake_r] + ([0] if reading else []), [], [])
            if wake_r in ready:
                os.read(wake_r, 64)
                size = _window_size(0)
                if size:
                    sock.sendall(resize_frame(*size))
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    reading = False  # docker keeps the container's stdin open after ours ends
                else:
                    if scanner is not None:
                        data, detached = scanner.feed(data)
                        if detached:
                            return None
                    if data:
                        sock.sendall(frame(STDIN, data))
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return -1
                for kind, payload in frames.feed(data):
                    if kind in (STDOUT, STDERR):
                        out = sys.stdout.buffer if kind == STDOUT else sys.stderr.buffer
                        out.write(payload)
                        out.flush()
                    elif kind == EXIT:
                        return int(payload)
    finally:
        if follow_size:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def cmd_attach(args) -> int:
    from builder.cli.containers import _proxy_signals, _raw_terminal, _records, _store_root
    from builder.container.attach import connect
    from builder.container.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys
    from builder.container.liveness import live_state
    from builder.container.records import ContainerError

    keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    records = _records(args)
    doc = records.lookup(args.container)
    status = live_state(records.load(doc["Id"]))["Status"]
    if status == "paused":
        raise ContainerError("You cannot attach to a paused container, unpause it first")
    if status not in ("running", "starting"):
        raise ContainerError("You cannot attach to a stopped container, start it first")
    try:
        sock = connect(records.path(doc["Id"]))
    except OSError:
        raise ContainerError("You cannot attach to a stopped container, start it first") from None
    tty = bool(doc["Config"].get("Tty"))
    send_stdin = not args.no_stdin and bool(doc["Config"].get("OpenStdin"))
    if args.sig_proxy and not tty:
        _proxy_signals(_store_root(args), doc["Id"], tty)
    with sock, _raw_terminal(tty and send_stdin):
        code = relay(sock, send_stdin=send_stdin, tty=tty, detach_keys=keys)
    if code is None:
        print("read escape sequence", file=sys.stderr)  # docker's words, and its status
        return 1
    if code < 0:  # the monitor went without telling: the record has the end
        code = live_state(records.load(doc["Id"]))["ExitCode"]
    return code


def add_detach_keys_option(p) -> None:
    p.add_argument("--detach-keys", help="the key sequence that detaches (default ctrl-p,ctrl-q)")


def add_sig_proxy_option(p) -> None:
    from builder.cli.shared import add_bool_flag

    add_bool_flag(p, "--sig-proxy", default=True,
                  help="pass the signals we receive on to the container (default true; not with -t)")


def add_parsers(sub) -> None:
    p = sub.add_parser("attach", help="attach to a running container's input and output")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    add_sig_proxy_option(p)
    add_detach_keys_option(p)
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_attach)
