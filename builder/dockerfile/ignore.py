""".dockerignore matching, as docker build (BuildKit) applies it to the build context.

Rules (learned from moby/patternmatcher, its ignorefile reader, and the way
tonistiigi/fsutil walks the context with them):

- One pattern a line.  A line starting with `#` (in column one) is a comment; blank
  lines are skipped; leading and trailing whitespace is dropped.
- `!pattern` is an exception: it re-includes what earlier patterns excluded.  The last
  pattern that matches a path decides.
- Patterns are cleaned like Go's filepath.Clean (`a//b/./c/` -> `a/b/c`, `a/../b` -> `b`)
  and a leading `/` is dropped: patterns are relative to the context root.
- `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]` `[^a]` are
  classes, `\\` escapes the next character, `**` is any number of directories
  (`**/x`, `a/**/b`, `a/**`).
- A pattern matching a directory matches everything under it.
- The context root itself is never excluded.

matches() reproduces what docker's walk decides for a path, including a quirk of its
per-directory bookkeeping; may_match_inside() says when docker skips a whole directory.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from builder.errors import BuildError
from oci_runtime.units import go_quote
from builder.dockerfile.expand import is_go_space

# Characters that make an exception pattern "not a plain prefix"; with any of them in an
# exception docker never prunes an excluded directory.
_PATTERN_CHARS = "*[]?^\\"
# Characters that mean something to a regex but nothing to a path pattern.
_REGEX_ONLY = ".+()|{}$"
# Escapes both Go's RE2 and Python's re read the same way (Perl classes as ASCII).
_SAME_ESCAPES = {c: "\\" + c for c in "dDsSwWbBAafnrtv"}
_SAME_ESCAPES["z"] = r"\Z"


def go_clean(path: str) -> str:
    """Go's filepath.Clean for '/'-separated paths."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        else:
            parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and is_go_space(text[start]):
        start += 1
    while end > start and is_go_space(text[end - 1]):
        end -= 1
    return text[start:end]


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as docker reads them."""
    patterns: list[str] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#"):
            continue
        pattern = _trim(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _trim(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _bad_pattern(pattern: str) -> str:
    return f"invalid .dockerignore pattern {go_quote(pattern)}: syntax error in pattern"


def _check_glob_syntax(pattern: str) -> None:
    """Refuse what Go's filepath.Match calls a bad pattern (docker checks every pattern)."""
    i, n = 0, len(pattern)

    def class_char(j: int) -> int:
        # one possibly-escaped character of a class; returns the index after it
        if j >= n or pattern[j] in "-]":
            raise ValueError
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                raise ValueError
        j += 1
        if j >= n:
            raise ValueError  # a class must be closed
        return j

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = class_char(i)
                if pattern[i] == "-":
                    i = class_char(i + 1)
                ranges += 1
        else:
            i += 1


@dataclass
class Pattern:
    """One cleaned pattern, compiled the way docker's patternmatcher compiles it."""

    text: str
    exclusion: bool
    kind: str = field(init=False)  # "exact", "prefix", "suffix" or "regex"
    regex: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.kind, source = _compile(self.text)
        if self.kind == "regex":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "[[" is fine, as in Go
                try:
                    self.regex = re.compile(source, re.ASCII)
                except re.error:
                    raise BuildError(_bad_pattern(self.text)) from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])  # without the trailing **
        if self.kind == "suffix":
            suffix = self.text[2:]  # without the leading **
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]  # **/foo matches foo
        assert self.regex is not None
        return self.regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        text = self.text
        if text.endswith("/**"):
            text = text[:-3]
        if text.endswith("/*"):
            text = text[:-2]
        return text


def _compile(pattern: str) -> tuple[str, str]:
    """(match kind, regex source): plain patterns are compared as strings, as docker does."""
    out = ["^"]
    kind = "exact"
    i, n = 0, len(pattern)
    index = 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":  # "**/" is "**"
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if index == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_ONLY:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                escaped = pattern[i]
                i += 1
                out.append(_escape(escaped, pattern))
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)
        index += 1
    out.append(r"\Z")
    return kind, "".join(out)


def _escape(ch: str, pattern: str) -> str:
    # Docker hands "\x" to Go's regexp as is; keep the escapes both engines agree on.
    if ch.isascii() and ch.isalnum():
        if ch in _SAME_ESCAPES:
            return _SAME_ESCAPES[ch]
        raise BuildError(_bad_pattern(pattern))
    return re.escape(ch)


class IgnoreMatcher:
    """Decides which context paths .dockerignore excludes."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = _trim(raw)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise BuildError('illegal exclusion pattern: "!"')
                text = text[1:]
            try:
                _check_glob_syntax(text)
            except ValueError:
                raise BuildError(_bad_pattern(raw)) from None
            self.patterns.append(Pattern(text, exclusion))
        self.has_exceptions = any(p.exclusion for p in self.patterns)
        # Docker prunes excluded directories only when every exception is a plain prefix.
        self._prefix_exceptions = all(
            not any(c in _PATTERN_CHARS for c in p.without_trailing_glob()) for p in self.patterns if p.exclusion
        )
        self._dir_cache: dict[str, tuple[bool, tuple[bool, ...]]] = {}

    @classmethod
    def from_text(cls, text: str) -> IgnoreMatcher:
        """A matcher for the content of a .dockerignore file."""
        return cls(read_patterns(text))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, relpath: str) -> bool:
        """True when the context path (relative, '/'-separated) is excluded."""
        path = _relative(relpath)
        if path == "." or not self.patterns:
            return False
        parts = path.split("/")
        parent: tuple[bool, ...] = ()
        matched = False
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if depth < len(parts):
                matched, parent = self._dir_result(prefix, parent)
            else:
                matched, parent = self._match_with_parent(prefix, parent)
        return matched

    def may_match_inside(self, reldir: str) -> bool:
        """False when nothing under this directory can be in the context (docker skips it)."""
        path = _relative(reldir)
        if path == "." or not self.matches(path):
            return True
        if not self._prefix_exceptions:
            return True
        below = path + "/"
        return any((p.without_trailing_glob() + "/").startswith(below) for p in self.patterns if p.exclusion)

    def _dir_result(self, path: str, parent: tuple[bool, ...]) -> tuple[bool, tuple[bool, ...]]:
        cached = self._dir_cache.get(path)
        if cached is None:
            cached = self._match_with_parent(path, parent)
            self._dir_cache[path] = cached
        return cached

    def _match_with_parent(self, path: str, parent: tuple[bool, ...]) -> tuple[bool, tuple[bool, ...]]:
        """Docker's per-directory matching step (MatchesUsingParentResults).

        parent[i] says pattern i matched the parent directory, so it matches here too.
        A pattern skipped because it could not change the result is recorded as not
        matching, and is then tested against each child path alone: that is docker's
        behaviour, kept so our contexts hold exactly what docker's would.
        """
        matched = False
        info = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            match = parent[i] if parent else False
            if not match:
                if pattern.exclusion != matched:
                    continue
                match = pattern.match(path)
                if not match and not parent:
                    match = _any_parent_matches(pattern, path)
            info[i] = match
            if match:
                matched = not pattern.exclusion
        return matched, tuple(info)


def _any_parent_matches(pattern: Pattern, path: str) -> bool:
    parts = path.split("/")[:-1]
    return any(pattern.match("/".join(parts[: k + 1])) for k in range(len(parts)))


def _relative(path: str) -> str:
    return go_clean(path.lstrip("/")) if path.lstrip("/") else "."
