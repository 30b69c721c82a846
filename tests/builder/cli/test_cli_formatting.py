"""pydock's -o parsing and docker-style output: sizes, ages, Go-template fields (pure)."""

from __future__ import annotations

import pytest

from builder.cli.build import parse_output
from builder.cli.formatting import human_duration, human_size, render_template
from builder.errors import BuildError


def test_cli_helpers():
    assert parse_output("type=oci,dest=/x") == {"type": "oci", "dest": "/x"}
    assert parse_output("out") == {"type": "local", "dest": "out"}
    assert parse_output("type=image,name=a,push=true")["type"] == "registry"
    with pytest.raises(BuildError):
        parse_output("type=s3,dest=x")
    assert human_size(0) == "0B" and human_size(4_260_000) == "4.26MB" and human_size(712_000) == "712kB"
    assert human_duration(30) == "30 seconds" and human_duration(3 * 86400) == "3 days"
    data = {"Os": "linux", "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}}}
    assert render_template("{{.Os}} {{.Config.Env}} {{json .Config.Labels}} {{index .Config.Labels \"k\"}}",
                           data) == 'linux [A=1 B=2] {"k":"v"} v'


def test_malformed_templates_are_errors_not_echoed():
    from builder.cli.formatting import check_template

    with pytest.raises(BuildError, match=r"^template parsing error: template: :1: unclosed action$"):
        render_template("{{.Nope", {"Nope": 1})
    with pytest.raises(BuildError, match=r":2: unclosed action"):
        check_template("{{.A}}\n{{.B")
    with pytest.raises(BuildError, match="missing value for command"):
        check_template("x {{ }} y")
    assert render_template("a }} b {{.A}}", {"A": 1}) == "a }} b 1"  # a lone }} is text, as in Go


def test_methods_with_arguments_and_json_as_docker_prints_them():
    data = {"Names": "web", "Label": lambda key: {"a": "1"}.get(key, ""), "Cmd": "a > b …"}
    assert render_template('{{.Names}} {{.Label "a"}}/{{.Label "zz"}}', data) == "web 1/"
    assert render_template("{{json .Cmd}}", data) == '"a > b …"'  # no \\u escapes, as docker's json
    with pytest.raises(BuildError, match="can't give argument to non-function .Names"):
        render_template('{{.Names "x"}}', data)
    with pytest.raises(BuildError, match="wrong number of args for Label"):
        render_template("{{.Label}}", data)
    # a header row stops at an action it cannot render, keeping what came before (docker's table headers)
    assert render_template('A{{.Names}}\t{{.Label "a"}}\tB', {"Names": "N"}, partial=True) == "AN\t"
