"""What a build prints: docker-classic step lines on stdout (nothing in quiet mode), warnings on stderr,
and the fds RUN commands write their output to."""

from __future__ import annotations

import os
import sys


class Progress:
    """docker-classic style step lines on stdout (nothing in quiet mode); RUN output goes to the same fds."""

    def __init__(self, quiet: bool, out=None, err=None):
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._devnull = None

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def run_fds(self) -> tuple[int, int]:
        """The fds a RUN command writes to."""
        if self.quiet:
            if self._devnull is None:
                self._devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            return self._devnull, self._devnull
        self.out.flush()
        self.err.flush()
        return self.out.fileno(), self.err.fileno()

    def close(self) -> None:
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None
