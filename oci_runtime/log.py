"""runc-compatible logging: `--log FILE` and `--log-format text|json`.

Engines read the *last* `"level":"error"` JSON object of the log file and show its msg to the user
(see runtime-cli-contract.md, section 6), so every failure is written there as one line.
"""

from __future__ import annotations

import os
import sys

from oci_runtime.jsonio import dumps

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path = path
        self.fmt = fmt
        self.threshold = _LEVELS["debug" if debug else "info"]
        self.debugging = debug  # checked before building a debug message: with --debug off they cost nothing

    def _line(self, level: str, msg: str, kind: str | None) -> str:
        from oci_runtime.units import rfc3339  # only when something is logged

        stamp = rfc3339(fraction=False)
        if self.fmt == "json":
            record = {"level": level, "msg": msg, "time": stamp}
            if kind:
                record["kind"] = kind  # the error class, for oci_runtime.api (engines read only msg)
            return dumps(record, compact=True) + "\n"
        return f'time="{stamp}" level={level} msg={dumps(msg)}\n'

    def log(self, level: str, msg: str, kind: str | None = None) -> None:
        if _LEVELS[level] < self.threshold:
            return
        line = self._line(level, msg, kind)
        if self.path:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
                return
            except OSError:
                pass  # an unwritable log file must not hide the message: fall back to stderr
        if level != "error":  # errors are printed by error() below in any case
            sys.stderr.write(line)

    def debug(self, msg: str) -> None:
        self.log("debug", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str, kind: str | None = None) -> None:
        """Log to the --log file and always print the plain message on stderr."""
        self.log("error", msg, kind)
        try:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


# The process-wide logger; the CLI sets it up once the global flags are parsed (in place, so that modules
# which imported it earlier log to the same place).
logger = Logger()


def configure(path: str | None, fmt: str, debug: bool) -> Logger:
    logger.__init__(path, fmt, debug)
    if path:  # as runc does: the file exists once the command ran, even if nothing was logged
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError:
            pass
    return logger
