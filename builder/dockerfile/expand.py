"""Variable substitution and word splitting, as docker build (BuildKit) does it.

Docker does not run a shell to expand `$VAR` in instructions such as COPY or ENV: its
own small lexer does it, with these rules (behaviour learned from BuildKit's
frontend/dockerfile/shell and the Dockerfile reference):

- `$name`, `${name}`; a name is letters, digits and `_`, or all digits (positional,
  never set), or one special character of `@*#?-$!0` (never set either). A `$` not
  followed by a name stays a literal `$`.
- `${v:-w}` / `${v-w}`: w when v is unset or empty / unset.  `${v:+w}` / `${v+w}`:
  w when v is set and not empty / set.  `${v:?msg}` / `${v?msg}`: an error naming v
  when v is unset or empty / unset.  `${v#pat}` `${v##pat}` `${v%pat}` `${v%%pat}`:
  shortest/longest prefix/suffix removal, `${v/pat/repl}` `${v//pat/repl}`: first/all
  replacement; in patterns `*` is any string and `?` any character (no brackets).
  Anything else (`${v:=w}`, `${}`, `${v`) is an error.
- The escape character (backslash, or backtick after `# escape=``) makes the next
  character literal; at the very end of a word it is dropped.
- Single quotes keep everything literal; double quotes allow `$` expansion and escapes
  of `"`, `$` and the escape character only (other escapes stay as written).
- Quotes are removed from the result.

Which instructions docker expands, and how, is in EXPANDED_INSTRUCTIONS /
EXPANDED_FLAGS below. One more docker rule the engine must keep: all key=value pairs of
one ENV (or LABEL) instruction are expanded against the environment as it was *before*
the instruction (`ENV a=1 b=$a` gives b the previous value of a).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from builder.errors import BuildError
from oci_runtime.units import go_quote

# Instructions whose arguments docker expands with the build's ARG/ENV values before
# using them.  RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are not expanded: their text
# goes to the shell (or exec) as written.  MAINTAINER is not expanded either.
#   ADD/COPY: every source and the destination (each whitespace-separated word, or each
#             JSON array item; quotes removed, no re-splitting after expansion), plus
#             the contents of heredocs whose delimiter was not quoted (expand_heredoc).
#   ARG:      the default value only (the name is never expanded).
#   ENV/LABEL: keys and values (see parse_key_values in builder.dockerfile.syntax).
#   EXPOSE:   each word, and the result is split again into words (expand_words).
#   FROM:     the image name (and --platform) with the global ARGs (those before the
#             first FROM) only, never with ENV.
#   STOPSIGNAL, USER, WORKDIR: the single argument.  VOLUME: each path.
# ONBUILD triggers are stored unexpanded; they are expanded when a child build runs them.
EXPANDED_INSTRUCTIONS: frozenset[str] = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)

# Flag values docker expands (same environment as the instruction).  Every other flag is
# used as written; COPY --from in particular refuses variables.
EXPANDED_FLAGS: Mapping[str, frozenset[str]] = {
    "ADD": frozenset({"chown", "chmod", "checksum"}),
    "COPY": frozenset({"chown", "chmod"}),
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"mount"}),
}

_SPECIAL_PARAMS = "@*#?-$!0"


def is_go_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which docker uses to split words.

    Python's str.isspace differs on \\x1c-\\x1f (separators, not spaces to Go).
    """
    if ch <= "\xff":
        return ch in " \t\n\v\f\r\x85\xa0"
    return ch.isspace()


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


class _Words:
    """Accumulates the words of a ProcessWords call: unquoted whitespace splits."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_go_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        # Quoted text joins the current word even when it is empty or has blanks.
        self.buf += text
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
        self.buf = ""
        self.in_word = False
        return self.words


class _LexError(Exception):
    pass


class ShellLexer:
    """Docker's word lexer with its options.

    raw_quotes keeps quote characters in the output, raw_escapes keeps escape
    characters, process_quotes=False treats quotes as ordinary characters (heredoc
    bodies), skip_unset leaves references to unset variables as written.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        process_quotes: bool = True,
        skip_unset: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"escape must be a backslash or a backtick, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.process_quotes = process_quotes
        self.skip_unset = skip_unset

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand word into one string (whitespace kept): docker's ProcessWord."""
        return self._run(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand word and split the result at unquoted whitespace: docker's ProcessWords."""
        return self._run(word, env)[1]

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        scan = _Scan(self, word, env)
        try:
            return scan.process_stop_on(None, self.raw_escapes)
        except _LexError as err:
            raise BuildError(f"failed to process {go_quote(word)}: {err}") from None


MAX_NESTING = 64  # ${A:-${B:-...}} deeper than this is refused (an error, not a RecursionError)


class _Scan:
    """One pass of the lexer over one word."""

    def __init__(self, lexer: ShellLexer, text: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.depth = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        if self.pos < len(self.text):
            self.pos += 1
            return self.text[self.pos - 1]
        return None

    def process_stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise _LexError(f"substitutions nested more than {MAX_NESTING} deep")
            return self._process_stop_on(stop)
        finally:
            self.depth -= 1
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lx.escape
        quotes = "'\"" if self.lx.process_quotes else ""
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            if ch == "$":
                value = self.process_dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "<":
                value = self.process_possible_heredoc()
                result.append(value)
                words.add_raw_string(value)
            elif ch in quotes and ch:
                value = self.process_single_quote() if ch == "'" else self.process_double_quote()
                result.append(value)
                words.add_raw_string(value)
            else:
                self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch is None:  # a trailing escape character is dropped
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        out: list[str] = []
        quote = self.next()
        if self.lx.raw_quotes:
            out.append(quote)
        while True:
            ch = self.next()
            if ch is None:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        # $ expands; the escape character only escapes ", $ and itself.
        out: list[str] = []
        quote = self.next()
        if self.lx.raw_quotes:
            out.append(quote)
        escape = self.lx.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following is None:
                    continue
                if following in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def process_possible_heredoc(self) -> str:
        # "<<" and the blanks after it stay glued to the next word, so "<< EOF" is
        # one word (that is how docker recognises heredocs written with a space).
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces = []
        while self.peek() in ("\t", "\r", " "):
            spaces.append(self.next())
        return "<<" + "".join(spaces)

    def process_name(self) -> str:
        name: list[str] = []
        while (ch := self.peek()) is not None:
            if not name and _is_digit(ch):
                while (ch := self.peek()) is not None and _is_digit(ch):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def process_dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value

        self.next()  # the {
        first = self.peek()
        if first is None:
            raise _LexError("syntax error: missing '}'")
        if first in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch is None:
            raise _LexError("syntax error: missing '}'")
        modifier = ch
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._substitute(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch or ""
        elif ch not in ("+", "-", "?", "#", "%"):
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        pattern_like = ch in ("#", "%")
        if null_is_unset and pattern_like:
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        word = self._word_until("}", pattern_like, "syntax error: missing '}'")

        value, found = self.get_env(name)
        if self.lx.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _LexError(f"unsupported modifier ({modifier}) in substitution")

    def _word_until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            return self.process_stop_on(stop, raw_escapes)[0]
        except _LexError:
            if self.peek() is None:
                raise _LexError(missing) from None
            raise

    def _substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self._word_until("/", True, "syntax error: missing '/' in ${}")
        replacement = self._word_until("}", True, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lx.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern of ${v#pat} and friends as a regex: * any string, ? one char."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            following = pattern[i] if i < len(pattern) else None
            if following in ("}", "/"):
                # "\}" and "\/" only protect the ${} syntax; the escape is not part of the pattern
                continue
            if following not in ("*", "?", "\\"):
                shown = following if following is not None else ""
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append("\\" + following)
            i += 1
        elif tok in "[]{}.+()|^$":
            out.append("\\" + tok)
        else:
            out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse the pattern but keep each escape pair in order ("a\*c" -> "c\*a").
    pairs: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            pairs.append(pattern[i : i + 2])
            i += 2
        else:
            pairs.append(pattern[i])
            i += 1
    return "".join(reversed(pairs))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds the shortest match leftmost only, so match the reversed pattern
    # against the reversed value.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_DEFAULT = {"\\": ShellLexer("\\"), "`": ShellLexer("`")}


def _lexer(escape: str) -> ShellLexer:
    try:
        return _DEFAULT[escape]
    except KeyError:
        raise ValueError(f"escape must be a backslash or a backtick, not {escape!r}") from None


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables in word and remove quotes, as docker does for one argument.

    Raises BuildError on bad syntax (`${}`, unterminated quotes, `${v:?msg}` failing).
    """
    return _lexer(escape).process_word(word, env)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand variables in text and split it into words at unquoted whitespace.

    Whitespace coming from a variable's value splits too (as for EXPOSE $PORTS);
    quoted whitespace does not.
    """
    return _lexer(escape).process_words(text, env)


_HEREDOC_LEXER = ShellLexer("\\", process_quotes=False)


def expand_heredoc(content: str, env: Mapping[str, str]) -> str:
    """Expand a COPY/ADD heredoc body whose delimiter was not quoted.

    Docker treats quotes in the body as ordinary text and always uses backslash as the
    escape character here, whatever the `# escape=` directive says.
    """
    return _HEREDOC_LEXER.process_word(content, env)
