"""Go's path/filepath.Match, which docker uses for COPY/ADD source wildcards.

'*' and '?' never match '/', '[...]' is a character class ('^' negates, 'a-z' ranges),
and a backslash escapes the next character.
"""

from __future__ import annotations

import functools
import re

from builder.errors import BuildError


def has_wildcards(pattern: str) -> bool:
    """True if the pattern has an unescaped '*', '?' or '['."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[":
            return True
        i += 1
    return False


def unescape(pattern: str) -> str:
    """The literal path a pattern without wildcards names (backslash escapes removed)."""
    return re.sub(r"\\(.)", r"\1", pattern)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= n:
                raise BuildError(f"syntax error in pattern: {pattern!r}")
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i, cls = _char_class(pattern, i + 1)
            out.append(cls)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _char_class(pattern: str, i: int) -> tuple[int, str]:
    """Translate a Go character class starting just after '['; returns (index after ']', regex)."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[str] = []

    def char_at(j: int) -> tuple[str, int]:
        if j >= n:
            raise BuildError(f"syntax error in pattern: {pattern!r}")
        if pattern[j] == "\\":
            if j + 1 >= n:
                raise BuildError(f"syntax error in pattern: {pattern!r}")
            return pattern[j + 1], j + 2
        if pattern[j] in "-]":
            raise BuildError(f"syntax error in pattern: {pattern!r}")
        return pattern[j], j + 1

    first = True
    while True:
        if i >= n:
            raise BuildError(f"syntax error in pattern: {pattern!r}")
        if pattern[i] == "]" and not first:
            i += 1
            break
        lo, i = char_at(i)
        hi = lo
        if i < n and pattern[i] == "-":
            hi, i = char_at(i + 1)
            if hi < lo:
                raise BuildError(f"syntax error in pattern: {pattern!r}")
        ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        first = False
    body = "".join(ranges)
    # A negated class still never matches the separator, as in Go.
    return i, (f"[^/{body}]" if negate else f"(?!/)[{body}]")


def match(pattern: str, name: str) -> bool:
    """filepath.Match(pattern, name); a malformed pattern raises BuildError."""
    return _compile(pattern).match(name) is not None
