"""Variable expansion and word splitting, checked against docker's (BuildKit's) rules."""

from __future__ import annotations

import pytest

from builder.errors import BuildError
from oci_runtime.units import go_quote
from builder.dockerfile.expand import (
    EXPANDED_FLAGS,
    EXPANDED_INSTRUCTIONS,
    ShellLexer,
    expand,
    expand_heredoc,
    expand_words,
)

ENV = {"HOME": "/root", "SHELL": "sh", "EMPTY": "", "GREET": "안녕", "SPACED": "a  b", "EDGE": "  x y  "}

# (word, expected result); None means a BuildError.
WORD_CASES = [
    # plain words and quote removal
    ("plain", "plain"),
    ("in'si'de", "inside"),
    ('in"si"de', "inside"),
    ('"a b"', "a b"),
    ("'a b'", "a b"),
    ("'\"quoted\"'", '"quoted"'),
    ("\"''\"", "''"),
    ('"it\'s"', "it's"),
    ("un'terminated", None),
    ('un"terminated', None),
    ("'ends with escape\\'", "ends with escape\\"),
    ('"escaped quote\\"', None),
    # the escape character outside quotes
    ("a\\tb", "atb"),
    ("a\\'b", "a'b"),
    ("a\\\\'b", None),
    ("trailing\\", "trailing"),
    ("trailing\\\\", "trailing\\"),
    ("a\\ b", "a b"),
    # inside double quotes only ", $ and the escape character are escapable
    ('"a\\tb"', "a\\tb"),
    ('"a\\\\tb"', "a\\tb"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$HOME"', "a$HOME"),
    # inside single quotes nothing is special
    ("'a\\tb'", "a\\tb"),
    ("'a\\\\b'", "a\\\\b"),
    ("'$HOME'", "$HOME"),
    ("'${HOME}'", "${HOME}"),
    ("'\\$HOME'", "\\$HOME"),
    # $name
    ("$HOME", "/root"),
    ("x$HOME", "x/root"),
    ("$HOME/bin", "/root/bin"),
    ("$HOME.d", "/root.d"),
    ("$HOMEx", ""),
    ("$UNSET", ""),
    ("a$UNSET-b", "a-b"),
    ("$", "$"),
    ("a$", "a$"),
    ("$.", "$."),
    ("a$.b", "a$.b"),
    ("$ x", "$ x"),
    ("\\$HOME", "$HOME"),
    ("\\\\$HOME", "\\/root"),
    ('"$HOME"', "/root"),
    ('"x\'$HOME\'"', "x'/root'"),
    ('"\\\\$HOME"', "\\/root"),
    ("$GREET!", "안녕!"),
    ("안$GREET", "안안녕"),
    # positional and special parameters are never set
    ("$1", ""),
    ("a$1b", "ab"),
    ("$123abc", "abc"),
    ("$0", ""),
    ("$@x", "x"),
    ("$@@", "@"),
    ("$$", ""),
    ("$#", ""),
    ("$?", ""),
    ("$*", ""),
    ("$!", ""),
    ("$-", ""),
    ("${1}", ""),
    ("${1:-one}", "one"),
    ("${1:+one}", ""),
    ("${@:-at}", "at"),
    ("${#:-hash}", "hash"),
    ("${999}x", "x"),
    # ${name}
    ("${HOME}", "/root"),
    ("a${HOME}b", "a/rootb"),
    ("${UNSET}", ""),
    ("${HOME}}", "/root}"),
    ("\\${HOME}", "${HOME}"),
    ("\\${}", "${}"),
    ("${}", None),
    ("${", None),
    ("a${}b", None),
    ("${HOME", None),
    ("${.}", None),
    ("${{HOME}", None),
    ("${:}", None),
    ("${:-x}", None),
    # ${v:-w} / ${v-w}
    ("${UNSET:-dflt}", "dflt"),
    ("${EMPTY:-dflt}", "dflt"),
    ("${HOME:-dflt}", "/root"),
    ("${UNSET-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""),
    ("${HOME-dflt}", "/root"),
    ("${UNSET:-$HOME}", "/root"),
    ("${UNSET:-${HOME:-x}}", "/root"),
    ("${UNSET:-${ALSO:-deep}}", "deep"),
    ("${UNSET:-}", ""),
    ("${UNSET:-a b}", "a b"),
    ("${UNSET:-a {b}", "a {b"),
    ("${UNSET:-a ${HOME}", None),
    ("${UNSET:-\\$HOME:}", "$HOME:"),
    ("${UNSET:-\\${HOME}z}", "${HOMEz}"),
    ("${UNSET:-'single'}", "single"),
    ('${UNSET:-"dq $HOME"}', "dq /root"),
    ("${UNSET:-x}}", "x}"),
    ("${UNSET:-x", None),
    # ${v:+w} / ${v+w}
    ("${HOME:+set}", "set"),
    ("${EMPTY:+set}", ""),
    ("${UNSET:+set}", ""),
    ("${HOME+set}", "set"),
    ("${EMPTY+set}", "set"),
    ("${UNSET+set}", ""),
    ("${HOME:+${SHELL}}", "sh"),
    ("${HOME:+${UNSET}}", ""),
    ("${HOME:+$HOME:}", "/root:"),
    ("${UNSET:+${HOME}}", ""),
    # ${v:?msg} / ${v?msg}
    ("${HOME:?}", "/root"),
    ("${HOME?}", "/root"),
    ("${EMPTY?}", ""),
    ("${EMPTY:?}", None),
    ("${UNSET?}", None),
    ("${UNSET:?}", None),
    ("${UNSET:?custom}", None),
    # unsupported forms
    ("${HOME:=x}", None),
    ("${HOME=x}", None),
    ("${HOME:x}", None),
    ("${HOME!}", None),
    ("${#HOME}", None),
    # prefix / suffix removal and replacement (BuildKit extensions)
    ("${HOME#/}", "root"),
    ("${HOME#*o}", "ot"),
    ("${HOME##*o}", "t"),
    ("${HOME%o*}", "/ro"),
    ("${HOME%%o*}", "/r"),
    ("${HOME#nomatch}", "/root"),
    ("${HOME#}", "/root"),
    ("${HOME%}", "/root"),
    ("${HOME#?}", "root"),
    ("${HOME%?}", "/roo"),
    ("${UNSET#x}", ""),
    ("${HOME:#x}", None),
    ("${HOME:%x}", None),
    ("${HOME#\\x}", None),
    ("${HOME/o/0}", "/r0ot"),
    ("${HOME//o/0}", "/r00t"),
    ("${HOME/#/x}", "/root"),
    ("${HOME//\\//:}", ":root"),
    ("${HOME/r*/X}", "/X"),
    ("${HOME/o?/_}", "/r_t"),
    ("${HOME/x/y}", "/root"),
    ("${UNSET/a/b}", ""),
    ("${HOME/o}", None),
    ("${HOME//}", None),
    ("${HOME///}", "/root"),
    # combinations
    ("pre-${HOME:+x}-${UNSET:-y}-$SHELL", "pre-x-y-sh"),
    ("'$HOME'\"$HOME\"$HOME", "$HOME/root/root"),
]


@pytest.mark.parametrize(("word", "expected"), WORD_CASES)
def test_expand(word: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(BuildError):
            expand(word, ENV)
    else:
        assert expand(word, ENV) == expected


def test_expand_keeps_whitespace_of_values() -> None:
    assert expand("[$SPACED]", ENV) == "[a  b]"
    assert expand("  lead", ENV) == "  lead"


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(BuildError, match=r'^failed to process "\$\{UNSET:\?need it\}": UNSET: need it$'):
        expand("${UNSET:?need it}", ENV)
    with pytest.raises(BuildError, match="UNSET: is not allowed to be unset"):
        expand("${UNSET?}", ENV)
    with pytest.raises(BuildError, match="EMPTY: is not allowed to be empty"):
        expand("${EMPTY:?}", ENV)
    with pytest.raises(BuildError, match="bad substitution"):
        expand("${}", ENV)
    with pytest.raises(BuildError, match="missing '}'"):
        expand("${HOME:-x", ENV)
    with pytest.raises(BuildError, match="matching single-quote"):
        expand("'x", ENV)
    with pytest.raises(BuildError, match="matching double-quote"):
        expand('"x', ENV)
    with pytest.raises(BuildError, match=r"unsupported modifier \(:=\)"):
        expand("${HOME:=x}", ENV)
    with pytest.raises(BuildError, match=r"unsupported modifier \(:#\)"):
        expand("${HOME:#x}", ENV)
    with pytest.raises(BuildError, match="invalid escape"):
        expand("${HOME#\\x}", ENV)


def test_error_message_of_required_variable_is_expanded() -> None:
    env = {"VAR": "", "ARG": "x"}
    for word in ("${VAR:?message here$ARG}", "${NOPE?message here$ARG}"):
        with pytest.raises(BuildError, match="message herex"):
            expand(word, env)
    assert expand("${VAR?message here$ARG}", env) == ""


def test_pattern_special_characters_are_literal() -> None:
    env = {"FOO": "()[]{}^$.*?|\\x", "STARS": "xx**", "MIXED": "a***yy*", "Q": "???y"}
    assert expand("${FOO#()[]{\\}^$.\\*\\?|\\\\}", env) == "x"
    assert expand("${STARS%%\\**}", env) == "xx"
    assert expand("${MIXED%%\\**\\*}", env) == "a"
    assert expand("${Q#?\\?}", env) == "?y"


def test_pattern_and_replacement_expand_variables() -> None:
    env = {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPL": "/", "EMPTY": ""}
    assert expand("${FOO/$NEEDLE/$REPL}", env) == "/foo/b/c.txt"
    assert expand("${FOO//$NEEDLE/$REPL}", env) == "/foo/c.txt"
    assert expand("${FOO#$EMPTY}", env) == "/a/foo/b/c.txt"
    assert expand("${FOO/$EMPTY/>}", env) == ">/a/foo/b/c.txt"
    env = {"URL": "http://example.org", "FROM": "http://", "TO": "https://"}
    assert expand("${URL/$FROM/$TO}", env) == "https://example.org"


def test_platform_style_optional_suffix() -> None:
    word = "tool-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tgz"
    base = {"VERSION": "v1", "TARGETOS": "linux", "TARGETARCH": "arm"}
    assert expand(word, {**base, "TARGETVARIANT": "v7"}) == "tool-v1.linux-arm-v7.tgz"
    assert expand(word, {**base, "TARGETVARIANT": ""}) == "tool-v1.linux-arm.tgz"
    assert expand(word, base) == "tool-v1.linux-arm.tgz"


# The backtick escape (`# escape=``): backslash becomes an ordinary character.
BACKTICK_CASES = [
    ("C:\\path", "C:\\path"),
    ("a`$HOME", "a$HOME"),
    ("a`b", "ab"),
    ("a``b", "a`b"),
    ('"a`"b"', 'a"b'),
    ('"C:\\dir\\$HOME"', "C:\\dir\\/root"),
    ("`", ""),
    ("$HOME\\x", "/root\\x"),
]


@pytest.mark.parametrize(("word", "expected"), BACKTICK_CASES)
def test_expand_with_backtick_escape(word: str, expected: str) -> None:
    assert expand(word, ENV, "`") == expected


def test_bad_escape_character_is_refused() -> None:
    with pytest.raises(ValueError):
        expand("x", ENV, "!")


# (text, expected words); None means a BuildError.
WORDS_CASES = [
    ("one", ["one"]),
    ("one two", ["one", "two"]),
    ("  one   two  ", ["one", "two"]),
    ("one\ttwo", ["one", "two"]),
    ('"one two" three', ["one two", "three"]),
    ("one\\ two", ["one two"]),
    ('one\\" two', ['one"', "two"]),
    ("a'b c'd", ["ab cd"]),
    ("pre${HOME}post", ["pre/rootpost"]),
    ("pre${UNSET}post", ["prepost"]),
    ("x${SPACED}y", ["xa", "by"]),
    ('x"${SPACED}"y', ["xa  by"]),
    ('x "${SPACED}"y', ["x", "a  by"]),
    ("x${EDGE}y", ["x", "x", "y", "y"]),
    ("x${EDGE}", ["x", "x", "y"]),
    ('"${EDGE}"', ["  x y  "]),
    ("$SPACED", ["a", "b"]),
    ("80/tcp $UNSET 443", ["80/tcp", "443"]),
    ('"" a', ["a"]),
    ("'' ''", []),
    ("", []),
    ("'open", None),
    ('80 "open', None),
    ("${", None),
]


@pytest.mark.parametrize(("text", "expected"), WORDS_CASES)
def test_expand_words(text: str, expected: list[str] | None) -> None:
    if expected is None:
        with pytest.raises(BuildError):
            expand_words(text, ENV)
    else:
        assert expand_words(text, ENV) == expected


def test_words_after_nested_substitution_keep_their_prefix() -> None:
    # The text before a ${v:-w} belongs to the same word (a shell would agree).
    assert expand_words("a${UNSET:-b}c d", ENV) == ["abc", "d"]
    assert expand_words("x${HOME:+y z}", ENV) == ["xy", "z"]


def test_heredoc_marker_stays_one_word() -> None:
    assert expand_words("cat <<  EOF > out", {}) == ["cat", "<<  EOF", ">", "out"]
    assert expand_words("a<b", {}) == ["a<b"]


def test_expand_heredoc_treats_quotes_as_text() -> None:
    body = "name='$NAME' \"$NAME\"\n\\$NAME ${NAME:-x} `$NAME`\n"
    assert expand_heredoc(body, {"NAME": "me"}) == "name='me' \"me\"\n$NAME me `me`\n"
    assert expand_heredoc("it's fine\n", {}) == "it's fine\n"


def test_raw_and_skip_unset_options() -> None:
    lexer = ShellLexer(raw_quotes=True, skip_unset=True)
    assert lexer.process_word("'a'\"$X\"$Y${Z:-d}", {"X": "x"}) == "'a'\"x\"$Y${Z:-d}"
    lexer = ShellLexer(raw_escapes=True)
    assert lexer.process_word("a\\ b", {}) == "a\\ b"
    assert ShellLexer(process_quotes=False).process_word("'$X'", {"X": "1"}) == "'1'"


def test_expanded_instruction_set() -> None:
    assert EXPANDED_INSTRUCTIONS == {
        "ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
    for shell_bound in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"):
        assert shell_bound not in EXPANDED_INSTRUCTIONS
    assert "from" not in EXPANDED_FLAGS["COPY"]
    assert EXPANDED_FLAGS["RUN"] == {"mount"}


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t') == '"a\\"b\\\\c\\n\\t"'
    assert go_quote("\x01é") == '"\\x01é"'
