"""pydock attach, detach keys and window sizes against real containers, over real ptys: output and
input through the monitor's attach socket, Ctrl-P Ctrl-Q (or --detach-keys) letting the CLI go while
the container runs on (attach, run -it, start -ai), the pty following the terminal's size."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

from builder_support import Pydock
from support import PYDOCK, wait_for

pytestmark = pytest.mark.root


class Terminal:
    """A pydock command whose controlling terminal is a pty we hold the master of."""

    def __init__(self, dock: Pydock, *args: str, rows: int = 24, cols: int = 80):
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen([*PYDOCK, "--root", dock.root, *args], stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, marker: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.seen += chunk
        assert marker in self.seen, self.seen
        return self.seen

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def status(dock: Pydock, cid: str) -> str:
    return dock("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip()


def test_attach_to_a_detached_tty_container_then_detach_with_ctrl_p_ctrl_q(dock):
    cid = dock("run", "-d", "-it", "busybox", "sh", check=True).stdout.strip()
    term = Terminal(dock, "attach", cid, rows=33, cols=101)
    term.type(b"stty size; echo $((6*7))\r")
    term.expect(b"42\r\n")
    assert b"33 101" in term.seen  # the pty took our terminal's size when we attached
    term.resize(40, 120)  # SIGWINCH to the attached CLI: the container's pty follows
    time.sleep(0.3)
    term.type(b"stty size\r")
    term.expect(b"40 120")
    term.type(b"\x10\x11")  # Ctrl-P Ctrl-Q
    term.expect(b"read escape sequence")
    assert term.wait() == 1  # docker's status for a detached attach
    assert status(dock, cid) == "running"
    term = Terminal(dock, "attach", cid)  # again, and this time the shell exits: its status is ours
    term.type(b"exit 6\r")
    assert term.wait() == 6
    assert status(dock, cid) == "exited"


def test_a_broken_detach_sequence_reaches_the_container(dock):
    cid = dock("run", "-d", "-it", "busybox", "sh", check=True).stdout.strip()
    term = Terminal(dock, "attach", "--detach-keys", "ctrl-a,x", cid)
    term.type(b"\x10\x11echo still-here\r")  # docker's default keys mean nothing now
    term.expect(b"still-here\r\n")
    term.type(b"\x01echo y\r")  # ctrl-a then no x: both go on (the shell sees ^A)
    term.expect(b"y\r\n")
    assert term.proc.poll() is None
    term.type(b"\x01x")
    assert term.wait() == 1
    assert status(dock, cid) == "running"
    dock("rm", "-f", cid, check=True)


def test_run_it_detaches_and_start_ai_does_too(dock):
    term = Terminal(dock, "run", "-it", "--name", "detachable", "busybox", "sh")
    term.type(b"echo $((6*7))\r")
    term.expect(b"42\r\n")
    term.type(b"\x10\x11")
    assert term.wait() == 0  # docker run returns 0 on a detach
    assert status(dock, "detachable") == "running"
    dock("stop", "-t", "1", "detachable", check=True)
    term = Terminal(dock, "start", "-ai", "detachable")
    term.type(b"echo again-$((2+3))\r")
    term.expect(b"again-5")
    term.type(b"\x10\x11")
    assert term.wait() == 0
    assert status(dock, "detachable") == "running"
    term = Terminal(dock, "attach", "detachable")
    term.type(b"exit 4\r")
    assert term.wait() == 4
    dock("rm", "detachable", check=True)


def test_attach_without_a_tty_streams_output_and_stdin(dock):
    cid = dock("run", "-d", "-i", "busybox", "sh", "-c",
               "echo ready; read line; echo got:$line; echo to-err >&2; exit 3", check=True).stdout.strip()
    assert wait_for(lambda: "ready" in dock("logs", cid).stdout)
    proc = dock("attach", cid, input="typed\n", timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "got:typed\n", "to-err\n")


def test_attach_no_stdin_does_not_feed_the_container(dock):
    cid = dock("run", "-d", "-i", "busybox", "sh", "-c", "read line; echo got:$line; exit 2",
               check=True).stdout.strip()
    cli = subprocess.Popen([*PYDOCK, "--root", dock.root, "attach", "--no-stdin", cid], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    cli.stdin.write("ignored\n")
    cli.stdin.close()
    time.sleep(1)
    assert cli.poll() is None  # the container still waits for its input
    dock("kill", cid, check=True)
    assert cli.wait(timeout=15) == 137
    assert "got:" not in cli.stdout.read()


def test_attach_refusals(dock):
    cid = dock("create", "busybox", "true", check=True).stdout.strip()
    proc = dock("attach", cid)
    assert proc.returncode == 125 and "You cannot attach to a stopped container, start it first" in proc.stderr
    proc = dock("attach", "--detach-keys", "ctrl-zz", cid)
    assert proc.returncode == 125 and "Invalid detach keys (ctrl-zz) provided" in proc.stderr
    before = dock("ps", "-aq").stdout
    proc = dock("run", "--detach-keys", "ctrl-", "busybox", "true")
    assert proc.returncode == 125 and "Invalid detach keys" in proc.stderr
    assert dock("ps", "-aq").stdout == before  # the refused run left nothing
    assert dock("attach", "nope").returncode == 125
    dock("rm", cid, check=True)
    running = dock("run", "-d", "busybox", "sleep", "30", check=True).stdout.strip()
    dock("pause", running, check=True)
    proc = dock("attach", running)
    assert proc.returncode == 125 and "unpause it first" in proc.stderr
    dock("rm", "-f", running, check=True)
