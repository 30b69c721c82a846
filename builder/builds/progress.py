"""What a build prints (build --progress): plain docker-classic step lines on stdout, warnings on stderr,
RUN output on the same fds; quiet nothing; tty a live view on stderr (tqdm: the step in progress with its
count and time, each finished step kept above it with its time or CACHED, RUN output streamed above it)."""

from __future__ import annotations

import os
import re
import sys
import threading
import time

PROGRESS_MODES = ("auto", "plain", "tty", "quiet")
_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")


class Progress:
    """docker-classic style step lines on stdout (nothing in quiet mode); RUN output goes to the same fds."""

    layer_bars: bool | None = None  # a bar while a layer is written: None = when stderr is a terminal

    def __init__(self, quiet: bool, out=None, err=None):
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._devnull = None
        if quiet:
            self.layer_bars = False

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

    def failed(self) -> None:
        """The build failed in the step shown last (the error itself is printed by the caller)."""

    def close(self) -> None:
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None


class TtyProgress(Progress):
    """The live view of --progress=tty, all on stderr (stdout stays free, as with BuildKit)."""

    layer_bars = False  # the step bar is the one bar

    def __init__(self, err=None):
        super().__init__(False, out=err or sys.stderr, err=err or sys.stderr)
        self._bar = None
        self._step: tuple[str, float] | None = None  # (its line, start time)
        self._cached = False
        self._failed = False
        self._pipe: tuple[int, threading.Thread] | None = None

    def _write(self, text: str) -> None:
        if self._bar is None:
            self.err.write(text + "\n")
            self.err.flush()
        else:
            self._bar.write(text, file=self.err)

    def line(self, text: str) -> None:
        self._drain()
        m = _STEP.match(text)
        if m is None:
            if text.startswith(" ---> "):
                self._cached = self._cached or text == " ---> Using cache"
                return
            if text.startswith("Successfully "):  # the build's end: the last step is done
                self._finish_step()
            self._write(text)
            return
        self._finish_step()
        number, total, instruction = int(m.group(1)), int(m.group(2)), m.group(3)
        if self._bar is None:
            from tqdm import tqdm  # only for this view

            self._bar = tqdm(total=total, file=self.err, dynamic_ncols=True, leave=False,
                             bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]")
        self._bar.n = number - 1
        self._bar.set_description_str(f"=> [{number}/{total}] {instruction}", refresh=True)
        self._step = (f"=> [{number}/{total}] {instruction}", time.monotonic())
        self._cached = False

    def _finish_step(self) -> None:
        if self._step is not None:
            text, started = self._step
            took = f"{time.monotonic() - started:.1f}s"
            self._write(f"{text}  {'ERROR after ' + took if self._failed else 'CACHED' if self._cached else took}")
            self._step = None

    def warn(self, text: str) -> None:
        self._write(text)

    def failed(self) -> None:
        self._failed = True

    def run_fds(self) -> tuple[int, int]:
        """A pipe whose lines a thread writes above the bar until the step's next line."""
        self._drain()
        r, w = os.pipe2(os.O_CLOEXEC)

        def pump() -> None:
            with os.fdopen(r, "rb") as f:
                for raw in f:
                    self._write("   " + raw.decode("utf-8", "replace").rstrip("\n"))

        thread = threading.Thread(target=pump, name="run-output", daemon=True)
        thread.start()
        self._pipe = (w, thread)
        return w, w

    def _drain(self) -> None:
        if self._pipe is not None:
            w, thread = self._pipe
            self._pipe = None
            os.close(w)
            thread.join()

    def close(self) -> None:
        self._drain()
        self._finish_step()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        super().close()


def make_progress(mode: str, quiet: bool, out=None) -> Progress:
    """The Progress for build --progress=MODE (auto: tty when stderr is a terminal, else plain)."""
    if quiet or mode == "quiet":
        return Progress(True, out=out)
    if mode == "tty" or (mode == "auto" and sys.stderr.isatty()):
        return TtyProgress()
    return Progress(False, out=out)
