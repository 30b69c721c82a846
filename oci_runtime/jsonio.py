"""JSON for the hot path, straight from CPython's `_json` accelerator.

`import json` drags in `re` and `enum` (about as long as the rest of a container start takes here), yet the
parsing and encoding themselves are done by `_json` in C. This module drives `_json` directly; it produces
exactly what `json.loads`/`json.dumps` produce (tests/runtime/config/test_jsonio.py compares them on many documents).
"""

from __future__ import annotations

import errno
import os

import _json

_encode_string = _json.encode_basestring_ascii


class _Context:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())
_WHITESPACE = " \t\n\r"


class JSONDecodeError(ValueError):
    def __init__(self, msg: str, doc: str, pos: int):
        line = doc.count("\n", 0, pos) + 1
        column = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {line} column {column} (char {pos})")
        self.pos = pos


def loads(data: str | bytes | bytearray) -> object:
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8-sig" if data[:3] == b"\xef\xbb\xbf" else "utf-8")
    pos = 0
    end = len(data)
    while pos < end and data[pos] in _WHITESPACE:
        pos += 1
    try:
        value, pos = _scan(data, pos)
    except StopIteration as e:
        raise JSONDecodeError("Expecting value", data, e.value) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except SystemError:
        # _json reports some errors (a trailing comma, say) through json.decoder, which we do not import on
        # the hot path; on this error path, let the json package say what is wrong.
        _explain(data)
        raise ValueError("malformed JSON") from None
    finally:
        _Context.memo.clear()
    while pos < end and data[pos] in _WHITESPACE:
        pos += 1
    if pos != end:
        raise JSONDecodeError("Extra data", data, pos)
    return value


def load_file(path: str, max_bytes: int, *, pipes: bool = False) -> object:
    """The JSON document in a regular file of at most max_bytes (ValueError when larger). Anything else is
    refused (OSError naming the problem), so a device is never read nor a FIFO waited on; with pipes=True a
    pipe is read too (a shell's `<(...)`)."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | (0 if pipes else os.O_NONBLOCK))
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or (pipes and stat.S_ISFIFO(mode))):
            raise OSError(errno.EINVAL, "not a regular file", path)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"larger than {max_bytes >> 20} MiB")
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        return loads(b"".join(chunks))
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 (byte {e.start})") from None


def _explain(data: str) -> None:
    """Raise the JSONDecodeError the json package gives for data (only called for data known to be bad)."""
    import json

    try:
        json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise JSONDecodeError(e.msg, data, e.pos) from None


def _float_repr(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return float.__repr__(value)


def _default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _default, _encode_string, None, ":", ",", False, False, True)
_spaced = _json.make_encoder(None, _default, _encode_string, None, ": ", ", ", False, False, True)
_spaced_sorted = _json.make_encoder(None, _default, _encode_string, None, ": ", ", ", True, False, True)


def dumps(obj: object, indent: int | str | None = None, compact: bool = False, sort_keys: bool = False) -> str:
    """json.dumps(obj) (or separators=(",", ":") with compact=True, or indent=...; sort_keys=True without
    those two)."""
    if indent is not None:
        unit = indent if isinstance(indent, str) else " " * indent
        return "".join(_indented(obj, unit, 0))
    if sort_keys:
        return "".join(_spaced_sorted(obj, 0))
    return "".join((_compact if compact else _spaced)(obj, 0))


def _indented(obj: object, unit: str, level: int):
    if isinstance(obj, dict) and obj:
        inner = "\n" + unit * (level + 1)
        yield "{"
        first = True
        for key, value in obj.items():
            yield (inner if first else "," + inner) + _encode_string(str(key)) + ": "
            first = False
            yield from _indented(value, unit, level + 1)
        yield "\n" + unit * level + "}"
    elif isinstance(obj, (list, tuple)) and obj:
        inner = "\n" + unit * (level + 1)
        yield "["
        for i, value in enumerate(obj):
            yield (inner if i == 0 else "," + inner)
            yield from _indented(value, unit, level + 1)
        yield "\n" + unit * level + "]"
    else:
        yield "".join(_compact(obj, 0))
