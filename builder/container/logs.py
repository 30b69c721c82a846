"""docker's json-file log driver: CONTAINER/<id>-json.log, one {"log","stream","time"} object a line,
each line of output ("...\\n"; a last line without newline is written as it is at the end)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

from oci_runtime.units import rfc3339


def log_path(container_dir: Path, container_id: str) -> Path:
    return Path(container_dir) / f"{container_id}-json.log"


class LogWriter:
    """Splits each stream into lines and appends them to the log file."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        data = self._partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial[stream] = rest
        if lines:
            self._append([(stream, line + b"\n") for line in lines])

    def flush(self) -> None:
        """Write what is left of unfinished lines (at the container's end)."""
        self._append([(stream, rest) for stream, rest in self._partial.items()])
        self._partial.clear()

    def _append(self, entries: list[tuple[str, bytes]]) -> None:
        stamp = rfc3339()
        text = "".join(json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream, "time": stamp})
                       + "\n" for stream, data in entries)
        if text:
            os.write(self._fd, text.encode())

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


def read_entries(path: Path, *, follow_while=None) -> Iterator[dict]:
    """The log's entries; with follow_while (a callable), keep reading new ones while it returns True."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        buffered = b""
        while True:
            chunk = f.readline()
            if chunk:
                buffered += chunk
                if buffered.endswith(b"\n"):
                    try:
                        yield json.loads(buffered)
                    except ValueError:
                        pass
                    buffered = b""
                continue
            if follow_while is None or not follow_while():
                # one last look: the writer may have appended between our read and its exit
                rest = f.read()
                for line in (buffered + rest).splitlines():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        pass
                return
            time.sleep(0.1)
