"""The units users type, read the way docker and Go read them: memory sizes, durations, signal names, and
RFC 3339 times. Shared by the runtime and pydock, so each rule exists once.

Errors are ValueError with the message a user should see; each caller wraps it in its own error type.
This module is on the runtime's hot path: only builtin modules, and no `re`.
"""

from __future__ import annotations

import time

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """A memory size as docker's units.RAMInBytes reads it: "128", "64m", "1.5g", "512 KiB", "2GB".

    Binary multiples (k = 1024); the unit letter, "i" and "b" are optional and case-insensitive;
    one space may separate number and unit; fractions are truncated after multiplying.
    """
    body = text.lower()
    if body.endswith("b"):
        body = body[:-1]
    if body.endswith("i"):
        body = body[:-1]
    unit = body[-1] if body and body[-1] in "kmgtp" else ""
    number = body[:len(body) - len(unit)]
    if number.endswith(" "):
        number = number[:-1]
    whole, dot, fraction = number.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (dot and not (fraction.isascii() and fraction.isdigit())):
        raise ValueError(f"invalid size: '{text}'")
    if not dot:
        return int(whole) * _SIZE_UNITS[unit]
    return int(float(number) * _SIZE_UNITS[unit])


# -- Go durations ----------------------------------------------------------------------------------
_DURATION_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DIGITS = "0123456789"


def go_duration(text: str) -> int:
    """Nanoseconds from a duration as Go's time.ParseDuration reads it: "1m30s", "1.5h", "300ms", "0"."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {go_quote(text)}")
    total = 0
    while rest:
        i = 0
        while i < len(rest) and rest[i] in _DIGITS:
            i += 1
        whole, rest = rest[:i], rest[i:]
        frac = ""
        if rest[:1] == ".":
            j = 1
            while j < len(rest) and rest[j] in _DIGITS:
                j += 1
            frac, rest = rest[1:j], rest[j:]
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {go_quote(text)}")
        end = 0
        while end < len(rest) and rest[end] != "." and rest[end] not in _DIGITS:
            end += 1
        if end == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(text)}")
        unit = _DURATION_UNITS.get(rest[:end])
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(rest[:end])} in duration {go_quote(text)}")
        rest = rest[end:]
        total += int(whole or 0) * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        if total > 2**63 - 1:
            raise ValueError(f"time: invalid duration {go_quote(text)}")
    return -total if negative else total


def format_go_duration(ns: int) -> str:
    """A duration as Go's time.Duration.String() writes it: "1m30s", "1.5s", "300ms", "0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 10**6:
        return f"{sign}{_trim(ns / 1000)}µs"
    if ns < 10**9:
        return f"{sign}{_trim(ns / 10**6)}ms"
    hours, rem = divmod(ns, 3600 * 10**9)
    minutes, rem = divmod(rem, 60 * 10**9)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim(rem / 10**9)}s"


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".") or "0"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Quote text the way Go's %q does, so that messages read like docker's and runc's."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# -- signals ---------------------------------------------------------------------------------------
def parse_signal(text: str) -> int:
    """A signal as runc and docker read it: a number (1..64), or a name with or without "SIG", in any case,
    including SIGRTMIN+N and SIGRTMAX-N."""
    import _signal as signal  # names as constants, without the enum set-up of `signal`

    text = text.strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise ValueError(f"invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(signal, name, None)
    if isinstance(number, int) and not name.startswith("SIG_"):  # SIG_DFL, SIG_BLOCK... are not signals
        return number
    for base_name, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        offset = name[len(base_name):]
        if name.startswith(base_name) and offset.isascii() and offset.isdigit():
            number = getattr(signal, base_name[:-1]) + sign * int(offset)
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
    raise ValueError(f"invalid signal: {text}")


# -- times -----------------------------------------------------------------------------------------
def rfc3339(ns: int | None = None, *, fraction: bool = True) -> str:
    """A UTC time (nanoseconds since the epoch; now when None) as Go's time.RFC3339Nano writes it: the
    fraction without trailing zeros, none at all for a whole second. fraction=False: whole seconds."""
    if ns is None:
        ns = time.time_ns()
    seconds, nanos = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction and nanos:
        stamp += "." + f"{nanos:09d}".rstrip("0")
    return stamp + "Z"


def parse_time_bound(text: str, now: float) -> float | None:
    """Seconds since the epoch from a since/until value as docker reads it (logs --since/--until, prune's
    until= filter): a Go duration before now ("10m", "1h30m"), a Unix time ("1700000000", "1700000000.5"),
    or an RFC 3339 time (a date, or a time without a zone, is local time); None when it is none of them."""
    try:
        return now - go_duration(text) / 1e9
    except ValueError:
        pass
    whole, dot, fraction = text.partition(".")
    if whole.isascii() and whole.isdigit() and (not dot or (fraction.isascii() and fraction.isdigit())):
        return float(text)
    return parse_rfc3339(text)


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch from an RFC 3339 time (any number of fraction digits, "Z" or an offset);
    None when text is empty or not such a time."""
    from datetime import datetime  # off the runtime's hot path: only pydock reads times back

    if not text:
        return None
    t = text.replace("Z", "+00:00")
    if "." in t:  # datetime takes at most 6 fraction digits
        head, _, rest = t.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        t = head + "." + digits[:6] + rest[len(digits):]
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None
