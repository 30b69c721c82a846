"""docker's json-file log driver: CONTAINER/<id>-json.log, one {"log","stream","time"} object a line,
each line of output ("...\\n"; a last line without newline is written as it is at the end). With
--log-opt max-size (and max-file, default 1) the file rotates as docker's does: when the next write would
pass max-size, <id>-json.log.1 becomes .2 (up to max-file - 1 kept), the log becomes .1 and a new one
starts (max-file 1: the log starts over). Readers take the rotated files oldest first."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from oci_runtime.units import rfc3339


def log_path(container_dir: Path, container_id: str) -> Path:
    return Path(container_dir) / f"{container_id}-json.log"


def log_options(opts: list[str]) -> dict:
    """--log-opt KEY=VALUE values (one each, or comma-separated) as docker's LogConfig.Config, checked
    as docker's json-file driver checks them."""
    from builder.container.records import ContainerError
    from oci_runtime.units import ram_in_bytes

    config = {}
    for item in (part for opt in opts for part in opt.split(",") if part):
        key, sep, value = item.partition("=")
        if not sep:
            raise ContainerError(f"invalid log opt {item!r}: expected KEY=VALUE")
        if key not in ("max-size", "max-file"):
            raise ContainerError(f"unknown log opt '{key}' for json-file log driver")
        config[key] = value
    try:
        if "max-size" in config and ram_in_bytes(config["max-size"]) <= 0:
            raise ContainerError("max-size must be a positive number")
        if "max-file" in config:
            if "max-size" not in config:
                raise ContainerError("max-file cannot be set when max-size is not set")
            if int(config["max-file"]) < 1:
                raise ContainerError("max-file cannot be less than 1")
    except ValueError as e:
        raise ContainerError(f"invalid log opt: {e}") from None
    return dict(sorted(config.items()))  # a Go map: its JSON has sorted keys


def rotation(log_config: dict | None) -> tuple[int, int]:
    """(max size in bytes or 0, max files) from a record's HostConfig.LogConfig."""
    from oci_runtime.units import ram_in_bytes

    config = (log_config or {}).get("Config") or {}
    size = ram_in_bytes(config["max-size"]) if config.get("max-size") else 0
    return size, int(config.get("max-file") or 1)


def log_files(path: Path) -> list[Path]:
    """The log's files, oldest first: the rotated ones (<log>.N ... <log>.1), then the log."""
    path = Path(path)
    rotated = []
    for entry in os.listdir(path.parent):
        suffix = entry[len(path.name) + 1:]
        if entry.startswith(path.name + ".") and suffix.isdigit():
            rotated.append((int(suffix), path.parent / entry))
    return [p for _, p in sorted(rotated, reverse=True)] + [path]


class LogWriter:
    """Splits each stream into lines and appends them to the log file (rotating it past max_size). A
    write that fails (a full disk) drops those lines, never a torn one, and is told to on_error once
    until writing works again: the container goes on."""

    def __init__(self, path: Path, max_size: int = 0, max_files: int = 1, on_error=None):
        self.path, self.max_size, self.max_files = Path(path), max_size, max(1, max_files)
        self.on_error, self._failing = on_error, False
        self._fd, self._size = -1, 0
        self._reopen()
        self._partial: dict[str, bytes] = {}

    def _reopen(self) -> None:
        try:
            self._fd = self._open()
            self._size = os.fstat(self._fd).st_size
        except OSError as e:
            self._fd = -1
            self._failed(e)

    def _failed(self, e: OSError) -> None:
        if not self._failing and self.on_error is not None:
            self.on_error(f"writing the log {self.path.name} failed: {e.strerror or e}")
        self._failing = True

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _rotate(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            if self.max_files > 1:
                for n in range(self.max_files - 1, 1, -1):
                    older = Path(f"{self.path}.{n - 1}")
                    if older.exists():
                        os.replace(older, f"{self.path}.{n}")
                os.replace(self.path, f"{self.path}.1")
            else:
                os.unlink(self.path)
        except OSError as e:
            self._failed(e)
        self._reopen()

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
        """Write the entries, as few writes as the rotation allows (a file is rotated before the entry
        that would take it past max_size, as docker's json-file does)."""
        stamp = rfc3339()
        batch = b""
        for stream, data in entries:
            line = (json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream, "time": stamp})
                    + "\n").encode()
            if self.max_size and self._size + len(batch) and self._size + len(batch) + len(line) > self.max_size:
                self._write(batch)
                batch = b""
                if self._size:
                    self._rotate()
            batch += line
        self._write(batch)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self._fd < 0:
            self._reopen()
            if self._fd < 0:
                return
        try:
            written = os.write(self._fd, data)
            if written < len(data):  # the disk filled up in the middle: no torn line stays behind
                os.ftruncate(self._fd, self._size)
                if data.count(b"\n") > 1:  # keep the whole lines that fit
                    for line in data.splitlines(keepends=True):
                        self._write(line)
                        if self._failing:
                            return
                    return
                raise OSError(28, os.strerror(28))
        except OSError as e:
            self._failed(e)
            return
        self._size += len(data)
        self._failing = False

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)


def read_entries(path: Path, *, follow_while=None) -> Iterator[dict]:
    """The log's entries, its rotated files' first; with follow_while (a callable), keep reading new ones
    while it returns True (across rotations)."""
    for older in log_files(path)[:-1]:
        yield from _read_file(older, None)
    while (yield from _read_file(path, follow_while)):
        pass  # the writer rotated the log under us: go on with the new one


def _parse(data: bytes) -> Iterator[dict]:
    for line in data.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            pass  # a torn line


def _read_file(path: Path, follow_while):
    """Yields a file's entries; with follow_while, waits for more while it holds. Returns whether the
    file stopped being the log (rotated) while we followed it."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return False
    with f:
        buffered = b""
        while True:
            chunk = f.readline()
            if chunk:
                buffered += chunk
                if buffered.endswith(b"\n"):
                    yield from _parse(buffered)
                    buffered = b""
                continue
            if follow_while is not None and _rotated(f, path):
                yield from _parse(buffered + f.read())  # what was written before the rotation
                return True
            if follow_while is None or not follow_while():
                # one last look: the writer may have appended between our read and its exit
                yield from _parse(buffered + f.read())
                return False
            time.sleep(0.1)


def _rotated(f, path: Path) -> bool:
    """Whether the file we read is no longer the log (the writer rotated it)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def time_bound(text: str, flag: str, now: float | None = None) -> float:
    """A --since/--until value as docker reads it, in seconds since the epoch (see parse_time_bound)."""
    from builder.container.records import ContainerError
    from oci_runtime.units import parse_time_bound

    stamp = parse_time_bound(text, time.time() if now is None else now)
    if stamp is None:
        raise ContainerError(f"invalid value for {flag}: {text!r} is neither a time (RFC 3339 or Unix) "
                             "nor a duration (e.g. 10m)")
    return stamp


def within(entries: Iterator[dict], since: float | None, until: float | None) -> Iterator[dict]:
    """The entries logged at or after since and at or before until (docker's bounds)."""
    from oci_runtime.units import parse_rfc3339

    for entry in entries:
        stamp = parse_rfc3339(entry.get("time", ""))
        if stamp is None:
            continue
        if until is not None and stamp > until:
            return  # the log is in time order: nothing later can match
        if since is None or stamp >= since:
            yield entry
