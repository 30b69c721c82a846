"""The Dockerfile parser, against behaviour read from BuildKit's Dockerfile frontend."""

from __future__ import annotations

import pytest

from builder.dockerfile.parser import Dockerfile, from_parts, parse
from builder.dockerfile.syntax import (
    Heredoc,
    Instruction,
    chomp_heredoc,
    copy_parts,
    healthcheck_config,
    parse_arg,
    parse_heredoc_word,
    parse_key_values,
    volume_paths,
)
from builder.dockerfile.runmount import RunMount, parse_mount
from builder.errors import BuildError, DockerfileError
from builder.dockerfile.expand import expand
from oci_runtime.units import go_duration


def only(text: str, escape_line: str = "") -> Instruction:
    """The single instruction after a leading FROM."""
    df = parse(escape_line + "FROM scratch\n" + text)
    assert len(df.instructions) == 2, df.instructions
    return df.instructions[1]


def error_of(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as caught:
        parse(text)
    return caught.value


# ---------------------------------------------------------------- basic structure


def test_parse_returns_instructions_with_lines() -> None:
    df = parse("# a comment\nFROM alpine AS base\n\nRUN echo hi\nCMD [\"sh\"]\n", "my.Dockerfile")
    assert isinstance(df, Dockerfile)
    assert df.filename == "my.Dockerfile"
    assert df.escape == "\\"
    assert df.directives == {}
    assert [(i.cmd, i.lineno, i.end_lineno) for i in df.instructions] == [
        ("FROM", 2, 2), ("RUN", 4, 4), ("CMD", 5, 5),
    ]
    run = df.instructions[1]
    assert run.args == ["echo hi"] and not run.json_form and run.original == "RUN echo hi"


def test_instruction_names_are_case_insensitive() -> None:
    df = parse("from alpine\nrun echo\nCopy a b\nhealthCheck NONE\n")
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN", "COPY", "HEALTHCHECK"]


# (source line, cmd, args, json_form, words)
FORM_CASES = [
    # exec form vs shell form: only a valid JSON array of strings is exec form
    ('CMD ["a", "b"]', "CMD", ["a", "b"], True, ["a", "b"]),
    ('CMD [ "a" , "b" ]', "CMD", ["a", "b"], True, ["a", "b"]),
    ('CMD\t[\t"a",\t"b"\t]\t', "CMD", ["a", "b"], True, ["a", "b"]),
    ("CMD []", "CMD", [], True, []),
    ('CMD [""]', "CMD", [""], True, [""]),
    ('CMD ["\\u2665", "\\" \\\\ \\/ \\t"]', "CMD", ["\u2665", '" \\ / \t'], True, ["\u2665", '" \\ / \t']),
    ("CMD ['echo','single quotes']", "CMD", ["['echo','single quotes']"], False, ["['echo','single quotes']"]),
    ('CMD ["echo", "unterminated"', "CMD", ['["echo", "unterminated"'], False, ['["echo", "unterminated"']),
    ("CMD '[\"in\", \"a string\"]'", "CMD", ["'[\"in\", \"a string\"]'"], False, ["'[\"in\", \"a string\"]'"]),
    ('CMD ["a"] trailing', "CMD", ['["a"] trailing'], False, ['["a"] trailing']),
    ('CMD ["a",]', "CMD", ['["a",]'], False, ['["a",]']),
    ("CMD [NaN]", "CMD", ["[NaN]"], False, ["[NaN]"]),
    ("CMD echo hi", "CMD", ["echo hi"], False, ["echo hi"]),
    ("CMD", "CMD", [], False, []),
    ("ENTRYPOINT   /bin/app   --flag  ", "ENTRYPOINT", ["/bin/app   --flag"], False, ["/bin/app   --flag"]),
    ('ENTRYPOINT ["/bin/app"]', "ENTRYPOINT", ["/bin/app"], True, ["/bin/app"]),
    ('RUN ["sh", "-c", "echo $HOME"]', "RUN", ["sh", "-c", "echo $HOME"], True, ["sh", "-c", "echo $HOME"]),
    ("RUN echo 'a  b'   \"c\"", "RUN", ["echo 'a  b'   \"c\""], False, ["echo 'a  b'   \"c\""]),
    ('SHELL ["/bin/bash", "-c"]', "SHELL", ["/bin/bash", "-c"], True, ["/bin/bash", "-c"]),
    # ADD/COPY/VOLUME: JSON array, or words split at blanks (quotes are not special)
    ("COPY a b /dst/", "COPY", ["a b /dst/"], False, ["a", "b", "/dst/"]),
    ("COPY\t.\t/go/src", "COPY", [".\t/go/src"], False, [".", "/go/src"]),
    ('COPY ["test file", "/tmp/test file"]', "COPY", ["test file", "/tmp/test file"], True,
     ["test file", "/tmp/test file"]),
    ('COPY "a b" /c', "COPY", ['"a b" /c'], False, ['"a', 'b"', "/c"]),
    ("ADD null /", "ADD", ["null /"], False, ["null", "/"]),
    ("ADD https://example.com/x.tgz /opt/", "ADD", ["https://example.com/x.tgz /opt/"], False,
     ["https://example.com/x.tgz", "/opt/"]),
    ("VOLUME /data", "VOLUME", ["/data"], False, ["/data"]),
    ("VOLUME /a  /b", "VOLUME", ["/a  /b"], False, ["/a", "/b"]),
    ('VOLUME ["/a", "/b c"]', "VOLUME", ["/a", "/b c"], True, ["/a", "/b c"]),
    # whitespace-split instructions
    ("EXPOSE 80 443/tcp  53/udp", "EXPOSE", ["80 443/tcp  53/udp"], False, ["80", "443/tcp", "53/udp"]),
    ('EXPOSE ["80"]', "EXPOSE", ['["80"]'], False, ['["80"]']),
    # single-string instructions keep the whole rest of the line
    ("USER app:app", "USER", ["app:app"], False, ["app:app"]),
    ("USER a b", "USER", ["a b"], False, ["a b"]),
    ("WORKDIR /my dir", "WORKDIR", ["/my dir"], False, ["/my dir"]),
    ('WORKDIR ["/x"]', "WORKDIR", ['["/x"]'], False, ['["/x"]']),
    ("STOPSIGNAL SIGKILL", "STOPSIGNAL", ["SIGKILL"], False, ["SIGKILL"]),
    ("MAINTAINER Jane Doe <jane@example.com>", "MAINTAINER", ["Jane Doe <jane@example.com>"], False,
     ["Jane Doe <jane@example.com>"]),
    # ARG words keep their quotes
    ("ARG a b=2 c=\"x y\"", "ARG", ['a b=2 c="x y"'], False, ["a", "b=2", 'c="x y"']),
    # ENV and LABEL keep the raw text (see parse_key_values)
    ('ENV a=1 b="2 3"', "ENV", ['a=1 b="2 3"'], False, ['a=1 b="2 3"']),
    ("LABEL version=1.0", "LABEL", ["version=1.0"], False, ["version=1.0"]),
    # HEALTHCHECK: words are the type and then the command
    ("HEALTHCHECK CMD curl -f http://x/", "HEALTHCHECK", ["CMD curl -f http://x/"], False,
     ["CMD", "curl -f http://x/"]),
    ('HEALTHCHECK CMD ["curl", "-f"]', "HEALTHCHECK", ['CMD ["curl", "-f"]'], True, ["CMD", "curl", "-f"]),
    ("HEALTHCHECK   cmd   a b", "HEALTHCHECK", ["cmd   a b"], False, ["cmd", "a b"]),
    ("HEALTHCHECK NONE", "HEALTHCHECK", ["NONE"], False, ["NONE"]),
]


@pytest.mark.parametrize(("line", "cmd", "args", "json_form", "words"), FORM_CASES)
def test_forms(line: str, cmd: str, args: list[str], json_form: bool, words: list[str]) -> None:
    inst = only(line + "\n")
    assert (inst.cmd, inst.args, inst.json_form, inst.words) == (cmd, args, json_form, words)


def test_json_array_of_non_strings_is_an_error() -> None:
    for line in ("CMD [1, 2]", 'RUN ["a", null]', 'COPY ["a", {"b": 1}]', "ENTRYPOINT [[\"a\"]]", "CMD [true]"):
        err = error_of("FROM scratch\n" + line + "\n")
        assert err.lineno == 2
        assert err.message == "when using JSON array syntax, arrays must be comprised of strings only"


# ---------------------------------------------------------------- continuations and comments

# (Dockerfile body after FROM, expected args of the single RUN)
CONTINUATION_CASES = [
    ("RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\n",
     "echo hello  world  goodnight    moon  lightning"),
    ("RUN echo hello  \\\n  world\n", "echo hello    world"),
    ("RUN echo hello  \\\nworld\n", "echo hello  world"),
    ("RUN echo hello \\\ngoodbye\\\nfrog\n", "echo hello goodbyefrog"),
    ("RUN echo hello  \\  \nworld\n", "echo hello  world"),
    ("RUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\n", "echo hi   world  goodnight"),
    ("RUN echo good\\\nbye\\\nfrog\n", "echo goodbyefrog"),
    # blank lines and comment lines inside a continuation are skipped
    ("RUN echo hello \\\n# this is a comment\n\n# another\n\nthis is more\n", "echo hello this is more"),
    ("RUN a \\\n    # indented comment\n    b\n", "a     b"),
    ("RUN foo \\\n\nbar \\\n\nbaz\n", "foo bar baz"),
    # a continuation at the end of the file just ends the instruction
    ("RUN something \\", "something"),
    ("RUN something \\\n", "something"),
    # an escaped escape character is not a continuation
    ("RUN echo \\\\\n", "echo \\\\"),
    # CRLF line endings
    ("RUN a \\\r\n  b\r\n", "a   b"),
    # an escape character inside the line is left for the shell
    ("RUN echo \\$HOME \\\"q\\\"\n", "echo \\$HOME \\\"q\\\""),
]


@pytest.mark.parametrize(("body", "expected"), CONTINUATION_CASES)
def test_continuations(body: str, expected: str) -> None:
    inst = only(body)
    assert inst.cmd == "RUN"
    assert inst.args == [expected]


def test_continuation_line_numbers() -> None:
    df = parse("FROM a\n\nRUN one \\\n  two \\\n\n  # c\n  three\nRUN four\n")
    run, run2 = df.instructions[1:]
    assert (run.lineno, run.end_lineno) == (3, 7)
    assert (run2.lineno, run2.end_lineno) == (8, 8)


def test_comments_and_whitespace() -> None:
    df = parse("   # indented comment\n\t\nFROM a   \n  RUN   x  # not a comment\n#RUN y\n")
    assert [(i.cmd, i.args) for i in df.instructions] == [("FROM", ["a"]), ("RUN", ["x  # not a comment"])]
    assert df.instructions[0].words == ["a"]


def test_byte_order_mark_is_ignored() -> None:
    df = parse("\ufeff# escape=`\nFROM a\nRUN x `\n  y\n")
    assert df.escape == "`"
    assert df.instructions[1].args == ["x   y"]


# ---------------------------------------------------------------- parser directives

DIRECTIVE_CASES = [
    ("# escape=`\n", {"escape": "`"}, "`"),
    ("#escape = `\n", {"escape": "`"}, "`"),
    ("# ESCAPE=`\n", {"escape": "`"}, "`"),
    ("  # escape=`\n", {"escape": "`"}, "`"),
    ("# escape=\\\n", {"escape": "\\"}, "\\"),
    ("# syntax=docker/dockerfile:1\n# escape=`\n", {"syntax": "docker/dockerfile:1", "escape": "`"}, "`"),
    ("# syntax = docker/dockerfile:1.7  \n", {"syntax": "docker/dockerfile:1.7"}, "\\"),
    ("# check=skip=all\n", {"check": "skip=all"}, "\\"),
    ("# check=error=true\n# syntax=x\n", {"check": "error=true", "syntax": "x"}, "\\"),
    # not directives: after a comment, a blank line or an instruction, or unknown names
    ("# a comment\n# escape=`\n", {}, "\\"),
    ("\n# escape=`\n", {}, "\\"),
    ("# unknown=x\n# escape=`\n", {}, "\\"),
    ("#!/usr/bin/env docker\n# escape=`\n", {}, "\\"),
    ("# escape `\n", {}, "\\"),
    ("# 1escape=`\n", {}, "\\"),
]


@pytest.mark.parametrize(("head", "directives", "escape"), DIRECTIVE_CASES)
def test_directives(head: str, directives: dict[str, str], escape: str) -> None:
    df = parse(head + "FROM a\n")
    assert df.directives == directives
    assert df.escape == escape


def test_directive_after_instruction_is_a_comment() -> None:
    df = parse("FROM a\n# escape=`\nRUN x \\\n  y\n")
    assert df.escape == "\\" and df.directives == {}
    assert df.instructions[1].args == ["x   y"]


def test_backtick_escape() -> None:
    df = parse("# escape=`\n\nFROM image\nENV GOPATH `\n\\go\nRUN dir C:\\ `\n  && echo done\n")
    env, run = df.instructions[1:]
    assert env.args == ["GOPATH \\go"]
    assert parse_key_values(env.args[0], df.escape, cmd="ENV") == [("GOPATH", "\\go")]
    assert run.args == ["dir C:\\   && echo done"]


def test_backslash_ends_line_under_backtick_escape() -> None:
    df = parse("# escape=`\nFROM a\nRUN echo \\\nRUN b\n")
    assert [i.args for i in df.instructions[1:]] == [["echo \\"], ["b"]]


DIRECTIVE_ERRORS = [
    ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive can be used"),
    ("# syntax=a\n# SYNTAX=b\nFROM a\n", 2, "only one syntax parser directive can be used"),
    ("# escape=x\nFROM a\n", 1, "invalid escape token 'x' does not match ` or \\"),
    ("# escape=\\\\\nFROM a\n", 1, "invalid escape token"),
]


@pytest.mark.parametrize(("text", "lineno", "message"), DIRECTIVE_ERRORS)
def test_directive_errors(text: str, lineno: int, message: str) -> None:
    err = error_of(text)
    assert err.lineno == lineno
    assert message in err.message


# ---------------------------------------------------------------- flags

FLAG_CASES = [
    ("COPY --from=build a b", {"from": ["build"]}, ["a b"]),
    ("COPY --from=build --chown=1:2 --chmod=755 a b", {"from": ["build"], "chown": ["1:2"], "chmod": ["755"]},
     ["a b"]),
    ("COPY --link a b", {"link": ["true"]}, ["a b"]),
    ("COPY --link=false a b", {"link": ["false"]}, ["a b"]),
    ("COPY --link=TRUE a b", {"link": ["true"]}, ["a b"]),
    ("COPY --parents --exclude=*.txt --exclude=tmp a b", {"parents": ["true"], "exclude": ["*.txt", "tmp"]},
     ["a b"]),
    ("COPY --chown=\"app user\" a b", {"chown": ["app user"]}, ["a b"]),
    ("COPY --chown='1:1' a b", {"chown": ["1:1"]}, ["a b"]),
    ("COPY --chown=a\\ b x y", {"chown": ["a b"]}, ["x y"]),
    ("COPY --from= a b", {"from": [""]}, ["a b"]),
    ("COPY -- --from=x /dst", {}, ["--from=x /dst"]),
    ("COPY --link -- a b", {"link": ["true"]}, ["a b"]),
    ("COPY -x a b", {}, ["-x a b"]),
    ('COPY --from=x ["a b", "/c"]', {"from": ["x"]}, ["a b", "/c"]),
    ("ADD --chown=1 --chmod=644 --checksum=sha256:abc --keep-git-dir --link --unpack=false a b",
     {"chown": ["1"], "chmod": ["644"], "checksum": ["sha256:abc"], "keep-git-dir": ["true"], "link": ["true"],
      "unpack": ["false"]}, ["a b"]),
    ("ADD --exclude=x a b", {"exclude": ["x"]}, ["a b"]),
    ("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t make",
     {"mount": ["type=cache,target=/c", "type=tmpfs,target=/t"]}, ["make"]),
    ("RUN --mount=\"type=bind,source=a b,target=/x\" ls", {"mount": ["type=bind,source=a b,target=/x"]}, ["ls"]),
    ("RUN --network=none --security=insecure id", {"network": ["none"], "security": ["insecure"]}, ["id"]),
    ("RUN --network=host true", {"network": ["host"]}, ["true"]),
    ("RUN --network=default true", {"network": ["default"]}, ["true"]),
    ("RUN --device=/dev/fuse true", {"device": ["/dev/fuse"]}, ["true"]),
    ("RUN --mount=type=secret,id=x -- --not-a-flag", {"mount": ["type=secret,id=x"]}, ["--not-a-flag"]),
    ("HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --start-interval=2s --retries=3 CMD true",
     {"interval": ["5s"], "timeout": ["3s"], "start-period": ["1s"], "start-interval": ["2s"], "retries": ["3"]},
     ["CMD true"]),
    ("ARG --anything=goes x", {}, ["x"]),
    ("STOPSIGNAL --ignored SIGTERM", {}, ["SIGTERM"]),
    ("HEALTHCHECK --bogus NONE", {}, ["NONE"]),
]


@pytest.mark.parametrize(("line", "flags", "args"), FLAG_CASES)
def test_flags(line: str, flags: dict[str, list[str]], args: list[str]) -> None:
    inst = only(line + "\n")
    assert inst.flags == flags
    assert inst.args == args


def test_from_platform_flag() -> None:
    df = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n")
    inst = df.instructions[0]
    assert inst.flags == {"platform": ["$BUILDPLATFORM"]}
    assert inst.flag("platform") == "$BUILDPLATFORM"
    assert inst.flag("missing", "dflt") == "dflt"
    assert from_parts(inst) == ("golang:1.22", "build")


# (line after FROM, error message)
FLAG_ERRORS = [
    ("COPY --foo=bar a b", "unknown flag: --foo"),
    ("COPY --form=x a b", "unknown flag: --form (did you mean from?)"),
    ("COPY --from a b", "missing a value on flag: --from"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("COPY --link= a b", "missing a value on flag: --link"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe"),
    ("COPY --keep-git-dir a b", "unknown flag: --keep-git-dir"),
    ("ADD --from=x a b", "unknown flag: --from"),
    ("ADD --parents a b", "unknown flag: --parents"),
    ("RUN --network=bridge true", 'invalid network mode "bridge"'),
    ("RUN --security=privileged true", 'security "privileged" is not valid'),
    ("RUN --mount true", "missing a value on flag: --mount"),
    ("RUN --mount=type=bind,from=$STAGE true", "'from' doesn't support variable expansion"),
    ("RUN --mount='type=bind,source=\"x\"y' true", "failed to parse csv mounts"),
    ("RUN --mount='type=bind,source=\"x' true", "failed to parse csv mounts"),
    ("RUN --chown=1 true", "unknown flag: --chown"),
    ("CMD --doit true", "unknown flag: --doit"),
    ("ENTRYPOINT --x=1 a", "unknown flag: --x"),
    ("ENV --x=1 a=b", "unknown flag: --x"),
    ("LABEL --x a=b", "unknown flag: --x"),
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
    ("EXPOSE --proto=tcp 80", "unknown flag: --proto"),
    ("VOLUME --x /v", "unknown flag: --x"),
    ("USER --x u", "unknown flag: --x"),
    ("WORKDIR --x /w", "unknown flag: --x"),
    ('SHELL --x ["sh"]', "unknown flag: --x"),
    ("ONBUILD --x RUN true", "unknown flag: --x"),
    ("HEALTHCHECK --intervall=5s CMD true", "unknown flag: --intervall"),
    ("HEALTHCHECK --interval CMD true", "missing a value on flag: --interval"),
]


@pytest.mark.parametrize(("line", "message"), FLAG_ERRORS)
def test_flag_errors(line: str, message: str) -> None:
    err = error_of("FROM scratch\n\n" + line + "\n")
    assert err.lineno == 3
    assert message in err.message
    assert str(err).startswith("Dockerfile:3: ")


def test_unknown_from_flag() -> None:
    err = error_of("FROM --plattform=linux/amd64 alpine\n")
    assert (err.lineno, err.message) == (1, "unknown flag: --plattform (did you mean platform?)")


# ---------------------------------------------------------------- ENV, LABEL, ARG

KEY_VALUE_CASES = [
    ("name value", [("name", "value")]),
    ("name value with  spaces", [("name", "value with  spaces")]),
    ("name=value", [("name", "value")]),
    ("name=value name2=value2", [("name", "value"), ("name2", "value2")]),
    ('name="value value1"', [("name", '"value value1"')]),
    ("name=value\\ value2", [("name", "value\\ value2")]),
    ("name=\"value'quote space'value2\"", [("name", "\"value'quote space'value2\"")]),
    ("name='value\"double quote\"value2'", [("name", "'value\"double quote\"value2'")]),
    ('name="a\\"b"', [("name", '"a\\"b"')]),
    ("name='a\\'b'", [("name", "'a\\'b'")]),
    ('name="\'\'"', [("name", "\"''\"")]),
    ("a= b=", [("a", ""), ("b", "")]),
    ('a="" b=c', [("a", '""'), ("b", "c")]),
    ("a=b=c", [("a", "b=c")]),
    ("=x", [("", "x")]),
    ('"k"="v"', [('"k"', '"v"')]),
    ("  a=1\t b=2  ", [("a", "1"), ("b", "2")]),
    ("", []),
]


@pytest.mark.parametrize(("text", "pairs"), KEY_VALUE_CASES)
def test_parse_key_values(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_key_values(text, "\\", cmd="ENV") == pairs


def test_parse_key_values_errors() -> None:
    with pytest.raises(BuildError, match="^ENV must have two arguments$"):
        parse_key_values("name", cmd="ENV")
    with pytest.raises(BuildError, match="^LABEL must have two arguments$"):
        parse_key_values("name", cmd="LABEL")
    with pytest.raises(BuildError, match=r"can't find = in \"b\". Must be of the form: name=value"):
        parse_key_values("a=1 b", cmd="ENV")


def test_multiline_env_keeps_continuation_text() -> None:
    inst = only('ENV name=value \\\n    name1=value1 \\\n    name2="value2a \\\n           value2b" \\\n'
                '    name3="value3a\\n\\"value3b\\"" \\\n\tname4="value4a\\\\nvalue4b" \\\n')
    assert parse_key_values(inst.args[0], cmd="ENV") == [
        ("name", "value"),
        ("name1", "value1"),
        ("name2", '"value2a            value2b"'),
        ("name3", '"value3a\\n\\"value3b\\""'),
        ("name4", '"value4a\\\\nvalue4b"'),
    ]


ARG_CASES = [
    ("a", [("a", None)]),
    ("a=1", [("a", "1")]),
    ("a=", [("a", "")]),
    ("a b=2 c", [("a", None), ("b", "2"), ("c", None)]),
    ('a="x y" b=\'z\'', [("a", '"x y"'), ("b", "'z'")]),
    ("a=b=c", [("a", "b=c")]),
    ("a=$OTHER", [("a", "$OTHER")]),
    ("a=x\\ y", [("a", "x\\ y")]),
]


@pytest.mark.parametrize(("text", "pairs"), ARG_CASES)
def test_parse_arg(text: str, pairs: list[tuple[str, str | None]]) -> None:
    assert parse_arg(text) == pairs


def test_arg_before_from_and_several_per_line() -> None:
    df = parse("ARG VERSION=1.0 BASE\nFROM alpine:$VERSION\nARG VERSION\n")
    assert [i.cmd for i in df.instructions] == ["ARG", "FROM", "ARG"]
    assert parse_arg(df.instructions[0].args[0]) == [("VERSION", "1.0"), ("BASE", None)]


# ---------------------------------------------------------------- heredocs


def test_run_heredoc() -> None:
    df = parse("FROM a\nRUN <<EOF\necho hello\necho world\nEOF\nRUN after\n")
    run, after = df.instructions[1:]
    assert run.args == ["<<EOF"]
    assert run.heredocs == [Heredoc(name="EOF", content="echo hello\necho world\n", expand=True, chomp=False)]
    assert (run.lineno, run.end_lineno) == (2, 5)
    assert (after.lineno, after.args) == (6, ["after"])


# (instruction line, body lines, expected heredocs as (name, content, expand, chomp, fd))
HEREDOC_CASES = [
    ("RUN <<EMPTY", "EMPTY\n", [("EMPTY", "", True, False, 0)]),
    ("RUN 3<<FD", "FD\n", [("FD", "", True, False, 3)]),
    ("RUN <<INDENT", "\tfoo\n\tbar\nINDENT\n", [("INDENT", "\tfoo\n\tbar\n", True, False, 0)]),
    ("RUN <<-UNINDENT", "\tbaz\n\tquux\nUNINDENT\n", [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)]),
    ("RUN <<-UNINDENT", "\tbaz\n\t\tUNINDENT\n", [("UNINDENT", "\tbaz\n", True, True, 0)]),
    ("RUN <<-'NOEXPAND'", "\tdon't $EXPAND\nNOEXPAND\n", [("NOEXPAND", "\tdon't $EXPAND\n", False, True, 0)]),
    ('RUN <<"QUOTED"', "x\nQUOTED\n", [("QUOTED", "x\n", False, False, 0)]),
    ("RUN <<eo'f'", "echo\neof\n", [("eof", "echo\n", False, False, 0)]),
    ("RUN <<eo\\'f", "echo\neo'f\n", [("eo'f", "echo\n", True, False, 0)]),
    ("RUN <<'e'o\\'f", "echo\neo'f\n", [("eo'f", "echo\n", False, False, 0)]),
    ("RUN <<'one two'", "echo\none two\n", [("one two", "echo\n", False, False, 0)]),
    ("RUN <<$EOF", "$EOF\n", [("$EOF", "", True, False, 0)]),
    ("RUN <<  EOF", "EOF\n", [("EOF", "", True, False, 0)]),
    ("RUN <<  EOF  > foo", "EOF\n", [("EOF", "", True, False, 0)]),
    ("RUN <<COMMENT", "# inside\nx # trailing\nCOMMENT\n", [("COMMENT", "# inside\nx # trailing\n", True, False, 0)]),
    ("RUN --mount=type=cache,target=/c <<M", "echo\nM\n", [("M", "echo\n", True, False, 0)]),
    ("RUN <<COMPLEX python3", "print('hi')\nCOMPLEX\n", [("COMPLEX", "print('hi')\n", True, False, 0)]),
    ("RUN python3 <<EOF", "print(1)\nEOF\n", [("EOF", "print(1)\n", True, False, 0)]),
    ("RUN <<A <<B", "a\nA\nb\nB\n", [("A", "a\n", True, False, 0), ("B", "b\n", True, False, 0)]),
    ("RUN cat <<A && cat <<-B", "a\nA\n\tb\n\tB\n", [("A", "a\n", True, False, 0), ("B", "\tb\n", True, True, 0)]),
    ("COPY <<FILE1 <<FILE2 /dest", "content 1\nFILE1\ncontent 2\nFILE2\n",
     [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)]),
    ("COPY <<X <<Y /dest", "Y\nX\nX\nY\n", [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)]),
    ("COPY <<EOF /quotes", "\"foo\"\n'bar'\nEOF\n", [("EOF", "\"foo\"\n'bar'\n", True, False, 0)]),
    ("COPY <<file.txt /dest", "hello\nfile.txt\n", [("file.txt", "hello\n", True, False, 0)]),
    ("ADD <<EOF /x", "body\nEOF\n", [("EOF", "body\n", True, False, 0)]),
    ("RUN <<EOF", "keeps\r\nEOF\r\n", [("EOF", "keeps\r\n", True, False, 0)]),
    # not heredocs
    ('RUN "<<NOHEREDOC"', "", []),
    ("RUN '<<NOHEREDOC'", "", []),
    ("RUN <<- EOF", "", []),
    ("RUN echo <<", "", []),
    ("RUN a<b", "", []),
    ("RUN cat<<EOF", "", []),  # "<<" must start the word

    ('RUN ["<<EOF"]', "", []),
    ("RUN cat <<'EOF", "", []),
]


@pytest.mark.parametrize(("line", "body", "expected"), HEREDOC_CASES)
def test_heredocs(line: str, body: str, expected: list[tuple]) -> None:
    df = parse("FROM a\n" + line + "\n" + body + "USER after\n")
    inst, user = df.instructions[1:]
    got = [(h.name, h.content, h.expand, h.chomp, h.fd) for h in inst.heredocs]
    assert got == expected
    assert user.cmd == "USER" and user.args == ["after"]


def test_heredoc_not_read_for_other_instructions() -> None:
    df = parse("FROM a\nUSER <<INVALID\nENV x=y\n")
    assert df.instructions[1].heredocs == []
    assert df.instructions[1].args == ["<<INVALID"]


def test_heredoc_in_continued_line_and_flags() -> None:
    df = parse("FROM a\nRUN --network=none \\\n  cat <<EOF \\\n  | wc -l\nline\nEOF\n")
    run = df.instructions[1]
    assert run.flags == {"network": ["none"]}
    assert run.args == ["cat <<EOF   | wc -l"]
    assert [h.content for h in run.heredocs] == ["line\n"]
    assert (run.lineno, run.end_lineno) == (2, 6)


def test_heredoc_text_chomps_tabs() -> None:
    doc = Heredoc(name="E", content="\tone\n\t\ttwo\n  three\n", expand=True, chomp=True)
    assert doc.text == "one\ntwo\n  three\n"
    assert Heredoc(name="E", content="\tx\n", expand=True, chomp=False).text == "\tx\n"
    assert chomp_heredoc("\ta\n\tb\n") == "a\nb\n"


def test_unterminated_heredoc() -> None:
    err = error_of("FROM a\n\nRUN <<EOF\necho hi\nEOFX\n")
    assert (err.lineno, err.message) == (3, "unterminated heredoc EOF")


def test_heredoc_as_copy_destination_is_refused() -> None:
    err = error_of("FROM a\nCOPY a <<EOF\nx\nEOF\n")
    assert (err.lineno, err.message) == (2, "COPY cannot accept a heredoc as a destination")


HEREDOC_WORDS = [
    ("<<EOF", ("EOF", True, False, 0)),
    ("<<'EOF'", ("EOF", False, False, 0)),
    ('<<"EOF"', ("EOF", False, False, 0)),
    ("<<-EOF", ("EOF", True, True, 0)),
    ("<<-'EOF'", ("EOF", False, True, 0)),
    ('<<-"EOF"', ("EOF", False, True, 0)),
    ('<<EO"F"', ("EOF", False, False, 0)),
    ("<< EOF", ("EOF", True, False, 0)),
    ("<<- EOF", ("EOF", True, True, 0)),
    ("12<<EOF", ("EOF", True, False, 12)),
    ("", None),
    ("EOF", None),
    ("<<", None),
    ("<<-", None),
    ("<EOF", None),
    ("<<<EOF", None),
    ("<<EOF sh", None),
]


@pytest.mark.parametrize(("word", "expected"), HEREDOC_WORDS)
def test_parse_heredoc_word(word: str, expected: tuple | None) -> None:
    heredoc = parse_heredoc_word(word)
    if expected is None:
        assert heredoc is None
    else:
        assert heredoc is not None
        assert (heredoc.name, heredoc.expand, heredoc.chomp, heredoc.fd) == expected


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_parse_heredoc_word_errors(word: str) -> None:
    with pytest.raises(BuildError):
        parse_heredoc_word(word)


def test_copy_parts() -> None:
    df = parse("FROM a\nCOPY x <<-ONE y <<'TWO' /dst/\n\tfirst\nONE\nsecond $V\nTWO\n")
    parts = copy_parts(df.instructions[1])
    assert parts.sources == ["x", "y"]
    assert parts.dest == "/dst/"
    assert [(h.name, h.text, h.expand) for h in parts.heredocs] == [
        ("ONE", "first\n", True), ("TWO", "second $V\n", False),
    ]
    json_copy = only('COPY ["a b", "c", "/d"]\n')
    assert copy_parts(json_copy).sources == ["a b", "c"] and copy_parts(json_copy).heredocs == []


# ---------------------------------------------------------------- ONBUILD


def test_onbuild_trigger_is_parsed() -> None:
    inst = only("ONBUILD COPY --chown=1:1 . /app\n")
    assert inst.cmd == "ONBUILD"
    assert inst.args == ["COPY --chown=1:1 . /app"]
    assert inst.trigger is not None
    assert (inst.trigger.cmd, inst.trigger.words, inst.trigger.flags) == ("COPY", [".", "/app"], {"chown": ["1:1"]})
    assert inst.onbuild_expression == "COPY --chown=1:1 . /app"


def test_onbuild_json_and_lowercase() -> None:
    inst = only('onbuild run ["echo", "test"]\n')
    assert inst.trigger.cmd == "RUN" and inst.trigger.json_form and inst.trigger.args == ["echo", "test"]
    assert inst.onbuild_expression == 'run ["echo", "test"]'


def test_onbuild_heredoc_expression_round_trips() -> None:
    inst = only("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert [h.content for h in inst.heredocs] == ["echo hi\n"]
    assert inst.trigger.heredocs == inst.heredocs
    expression = inst.onbuild_expression
    assert expression == "RUN <<EOF\necho hi\nEOF"
    again = parse("FROM a\n" + expression + "\n").instructions[1]
    assert again.cmd == "RUN" and [h.content for h in again.heredocs] == ["echo hi\n"]


ONBUILD_ERRORS = [
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("onbuild from scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FOO bar", "unknown instruction: FOO"),
    ("ONBUILD COPY onlyone", "COPY requires at least two arguments"),
    ("ONBUILD RUN --bad true", "unknown flag: --bad"),
    ("ONBUILD SHELL sh -c", "SHELL requires the arguments to be in JSON form"),
]


@pytest.mark.parametrize(("line", "message"), ONBUILD_ERRORS)
def test_onbuild_errors(line: str, message: str) -> None:
    err = error_of("FROM a\n" + line + "\n")
    assert err.lineno == 2
    assert message in err.message


# ---------------------------------------------------------------- FROM, HEALTHCHECK, VOLUME

FROM_CASES = [
    ("FROM alpine", ("alpine", None)),
    ("FROM alpine:3.19 AS build", ("alpine:3.19", "build")),
    ("FROM alpine as Build-2.x_y", ("alpine", "build-2.x_y")),
    ("from alpine As b", ("alpine", "b")),
    ("FROM ${BASE:-alpine} AS b", ("${BASE:-alpine}", "b")),
    ("FROM scratch", ("scratch", None)),
]


@pytest.mark.parametrize(("line", "expected"), FROM_CASES)
def test_from_parts(line: str, expected: tuple[str, str | None]) -> None:
    assert from_parts(parse(line + "\n").instructions[0]) == expected


def test_healthcheck_configs() -> None:
    def config(line: str) -> dict:
        return healthcheck_config(only(line + "\n"))

    assert config("HEALTHCHECK NONE") == {"Test": ["NONE"]}
    assert config("HEALTHCHECK none") == {"Test": ["NONE"]}
    assert config("HEALTHCHECK CMD curl -f http://x/ || exit 1") == {
        "Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"],
    }
    assert config('HEALTHCHECK CMD ["curl", "-f", "http://x/"]') == {"Test": ["CMD", "curl", "-f", "http://x/"]}
    assert config("HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\\n  CMD /check --quiet") == {
        "Test": ["CMD-SHELL", "/check --quiet"], "Interval": 5 * 10**9, "Timeout": 3 * 10**9, "Retries": 3,
    }
    assert config("HEALTHCHECK --start-period=1m30s --start-interval=250ms CMD true") == {
        "Test": ["CMD-SHELL", "true"], "StartPeriod": 90 * 10**9, "StartInterval": 250 * 10**6,
    }
    zeroes = "HEALTHCHECK --start-period=0s --start-interval=0s --interval=5s --timeout=0s --retries=0 CMD [\"foo\"]"
    assert config(zeroes) == {"Test": ["CMD", "foo"], "Interval": 5 * 10**9}


HEALTHCHECK_ERRORS = [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK NONE extra", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=50ns CMD true", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=-1s CMD true", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --interval=5 CMD true", 'time: missing unit in duration "5"'),
    ("HEALTHCHECK --interval=5x CMD true", 'time: unknown unit "x" in duration "5x"'),
    ("HEALTHCHECK --interval=abc CMD true", 'time: invalid duration "abc"'),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=x CMD true", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("HEALTHCHECK --retries=9999999999 CMD true", "value out of range"),
]


@pytest.mark.parametrize(("line", "message"), HEALTHCHECK_ERRORS)
def test_healthcheck_errors(line: str, message: str) -> None:
    err = error_of("FROM a\n" + line + "\n")
    assert err.lineno == 2
    assert message in err.message


DURATIONS = [
    ("0", 0), ("5s", 5 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9), ("300ms", 300 * 10**6),
    ("10us", 10_000), ("10\u00b5s", 10_000), ("7ns", 7), ("-2s", -2 * 10**9), ("+1m", 60 * 10**9),
    (".5s", 5 * 10**8), ("1h2m3s4ms", 3723004 * 10**6),
]


@pytest.mark.parametrize(("text", "nanos"), DURATIONS)
def test_parse_go_duration(text: str, nanos: int) -> None:
    assert go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "s", "1", "1x", ".s", "1.2.3s", "-", "1s 2s"])
def test_parse_go_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        go_duration(text)


def test_volume_paths_are_trimmed() -> None:
    assert volume_paths(only('VOLUME [" /data ", "/logs"]\n')) == ["/data", "/logs"]
    assert volume_paths(only("VOLUME /a /b\n")) == ["/a", "/b"]


# ---------------------------------------------------------------- errors with line numbers

# (Dockerfile text, line, exact message)
ERROR_CASES = [
    ("", 0, "the Dockerfile cannot be empty"),
    ("\n\n  \n", 0, "file with no instructions"),
    ("# only a comment\n", 0, "file with no instructions"),
    ("ARG A=1\n", 0, "dockerfile contains no stages to build"),
    ("FROM a\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM a\nfoo bar\n", 2, "unknown instruction: foo"),
    ("FROM a\n\nRUNN true\n", 3, "unknown instruction: RUNN (did you mean run?)"),
    ("RUN true\nFROM a\n", 1, "no build stage in current context"),
    ("ARG X\nENV A=b\nFROM a\n", 2, "no build stage in current context"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS b c\n", 1, "FROM requires either one or three arguments"),
    ("FROM a TO b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1st\n", 1, 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols'),
    ("FROM a AS b/c\n", 1, 'invalid name for build stage: "b/c", name can\'t start with a number or contain symbols'),
    ("FROM a\nCOPY onlyone\n", 2,
     "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("FROM a\nADD\n", 2,
     "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("FROM a\nCOPY\t\n\t\tquux \\\n      \n", 2,
     "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ('FROM a\nCOPY ["onlyone"]\n', 2,
     "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("FROM a\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM a\nLABEL\n", 2, "LABEL requires at least one argument"),
    ("FROM a\nENV onlyname\n", 2, "ENV must have two arguments"),
    ("FROM a\nLABEL onlyname\n", 2, "LABEL must have two arguments"),
    ("FROM a\nENV a=1 b\n", 2, 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("FROM a\nENV =x\n", 2, "ENV names can not be blank"),
    ("FROM a\nLABEL =x\n", 2, "LABEL names can not be blank"),
    ("FROM a\nARG\n", 2, "ARG requires at least one argument"),
    ("FROM a\nARG =x\n", 2, "ARG names can not be blank"),
    ("FROM a\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM a\nVOLUME\n", 2, "VOLUME requires at least one argument"),
    ("FROM a\nVOLUME []\n", 2, "VOLUME requires at least one argument"),
    ('FROM a\nVOLUME ["/a", " "]\n', 2, "VOLUME specified can not be an empty string"),
    ("FROM a\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM a\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM a\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL\n", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM a\nSHELL\n", 2, "SHELL requires at least one argument"),
    ("FROM a\nSHELL []\n", 2, "SHELL requires at least one argument"),
    ("FROM a\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nCMD [1]\n", 2, "when using JSON array syntax, arrays must be comprised of strings only"),
    ("FROM a\nRUN <<EOF\nno end\n", 2, "unterminated heredoc EOF"),
    # pass-1 errors come before pass-2 errors, as in docker
    ("FROM a\nFOO x\nCMD [1]\n", 3, "when using JSON array syntax, arrays must be comprised of strings only"),
    ("FOO x\nENV x\n", 2, "ENV must have two arguments"),
]


@pytest.mark.parametrize(("text", "lineno", "message"), ERROR_CASES)
def test_errors(text: str, lineno: int, message: str) -> None:
    err = error_of(text)
    assert isinstance(err, BuildError)
    assert err.filename == "Dockerfile"
    assert (err.lineno, err.message) == (lineno, message)


def test_error_string_names_file_and_line() -> None:
    with pytest.raises(DockerfileError) as caught:
        parse("FROM a\n\n\nBOGUS x\n", "ctx/Dockerfile.dev")
    assert str(caught.value) == "ctx/Dockerfile.dev:4: unknown instruction: BOGUS"
    with pytest.raises(DockerfileError) as caught:
        parse("", "Dockerfile")
    assert str(caught.value) == "Dockerfile: the Dockerfile cannot be empty"


def test_error_line_is_the_first_line_of_a_continued_instruction() -> None:
    err = error_of("FROM a\nCOPY \\\n  \\\n  onlyone\n")
    assert err.lineno == 2


# ---------------------------------------------------------------- a realistic file


def test_realistic_multistage_file() -> None:
    text = """# syntax=docker/dockerfile:1.7
# check=skip=JSONArgsRecommended

ARG GO_VERSION=1.22
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \\
    go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \\
    CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM alpine:3.19
LABEL org.opencontainers.image.title="app" \\
      org.opencontainers.image.version=1.0
RUN apk add --no-cache ca-certificates && \\
    adduser -D app
COPY --from=build --chown=app:app --chmod=0755 /out/app /usr/local/bin/app
COPY <<EOF /etc/app/config.yaml
listen: :8080
EOF
ENV APP_ENV=production \\
    APP_PORT=8080
EXPOSE 8080/tcp
USER app
HEALTHCHECK --interval=30s CMD ["wget", "-qO-", "http://localhost:8080/health"]
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve"]
"""
    df = parse(text)
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=JSONArgsRecommended"}
    assert [i.cmd for i in df.instructions] == [
        "ARG", "FROM", "WORKDIR", "COPY", "RUN", "COPY", "RUN", "FROM", "LABEL", "RUN", "COPY", "COPY", "ENV",
        "EXPOSE", "USER", "HEALTHCHECK", "VOLUME", "STOPSIGNAL", "ENTRYPOINT", "CMD",
    ]
    by_line = {i.lineno: i for i in df.instructions}
    assert by_line[8].args == ["go mod download"] and by_line[8].end_lineno == 9
    label = by_line[15]
    assert parse_key_values(label.args[0], cmd="LABEL") == [
        ("org.opencontainers.image.title", '"app"'), ("org.opencontainers.image.version", "1.0"),
    ]
    copy = by_line[19]
    assert copy.flags == {"from": ["build"], "chown": ["app:app"], "chmod": ["0755"]}
    assert copy_parts(by_line[20]).heredocs[0].content == "listen: :8080\n"
    assert by_line[23].lineno == 23 and by_line[23].end_lineno == 24
    assert healthcheck_config(by_line[27])["Test"][0] == "CMD"


# ---------------------------------------------------------------- RUN --mount

MOUNT_CASES = [
    ("type=cache,target=/root/.cache", RunMount(type="cache", target="/root/.cache", readonly=False)),
    ("target=/src", RunMount(type="bind", target="/src", readonly=True)),
    ("type=bind,source=.,target=/src,rw", RunMount(type="bind", source=".", target="/src", readonly=False)),
    ("type=bind,src=a,dst=/b,readonly=false", RunMount(type="bind", source="a", target="/b", readonly=False)),
    ("type=bind,from=build,source=/out,destination=/in",
     RunMount(type="bind", from_="build", source="/out", target="/in")),
    ("type=tmpfs,target=/tmp,size=64m", RunMount(type="tmpfs", target="/tmp", readonly=False, size=64 * 2**20)),
    ("type=tmpfs,target=/t,size=1.5g", RunMount(type="tmpfs", target="/t", readonly=False, size=3 * 2**29)),
    ("type=cache,target=/c,id=go,sharing=locked,mode=0755,uid=1000,gid=1000",
     RunMount(type="cache", target="/c", id="go", sharing="locked", mode=0o755, uid=1000, gid=1000,
              readonly=False)),
    ("type=cache,target=/c,ro", RunMount(type="cache", target="/c", readonly=True)),
    ("type=secret,id=token", RunMount(type="secret", id="token")),
    ("type=secret,id=token,env=TOKEN,required", RunMount(type="secret", id="token", env="TOKEN", required=True)),
    ("type=ssh,required=true", RunMount(type="ssh", required=True)),
    ("TYPE=Cache,Target=/c", RunMount(type="cache", target="/c", readonly=False)),
    ('type=bind,"source=a,b",target=/x', RunMount(type="bind", source="a,b", target="/x")),
]


@pytest.mark.parametrize(("spec", "expected"), MOUNT_CASES)
def test_parse_mount(spec: str, expected: RunMount) -> None:
    assert parse_mount(spec) == expected


MOUNT_ERRORS = [
    ("type=volume,target=/x", 'unsupported mount type "volume"'),
    ("type=cache,target=/c,sharing=all", 'unsupported sharing value "all"'),
    ("type=bind,target=/c,sharing=shared", "invalid cache sharing set for bind mount"),
    ("target=/c,mode=0644", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,target=/c,uid=0", 'uid not allowed for "tmpfs" type mounts'),
    ("type=cache,target=/c,uid=-1", "invalid value -1 for uid"),
    ("type=cache,target=/c,mode=9", "invalid value 9 for mode"),
    ("type=bind,target=/c,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=tmpfs,target=/c,size=lots", "invalid value for size: lots"),
    ("type=bind,target=/c,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,target=/c,ro=maybe", "invalid value for ro: maybe"),
    ("type=bind,target=/c,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=bind,nokey", "invalid field 'nokey' must be a key=value pair"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=secret,id=a,from=x", "secret mount should not have a from"),
]


@pytest.mark.parametrize(("spec", "message"), MOUNT_ERRORS)
def test_parse_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(BuildError) as caught:
        parse_mount(spec)
    assert message in str(caught.value)


def test_parse_mount_expands_values() -> None:
    env = {"CACHE": "/var/cache/apt", "KIND": "cache"}
    mount = parse_mount("type=$KIND,target=${CACHE},sharing=locked", lambda word: expand(word, env))
    assert (mount.type, mount.target, mount.sharing, mount.readonly) == ("cache", "/var/cache/apt", "locked", False)
