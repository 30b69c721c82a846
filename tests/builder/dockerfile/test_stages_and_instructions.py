"""The multi-stage plan, ARG scoping and the instructions that edit an image config (pure)."""

from __future__ import annotations

import pytest

from builder.dockerfile.parser import parse
from builder.errors import BuildError, DockerfileError
from builder.dockerfile.instructions import (Expander, ImageState, check_signal, dest_path, do_arg, do_cmd, do_entrypoint,
                                  do_env, normalize_workdir, parse_port, run_history)
from builder.dockerfile.stages import make_plan
from oci_runtime.units import format_go_duration


def plan(text, build_args=None, target=None):
    return make_plan(parse(text), build_args or {}, target)


MULTI = """\
ARG BASE=busybox
ARG TAG
FROM ${BASE}:${TAG:-latest} AS base
FROM base AS builder
RUN make
FROM busybox AS unrelated
RUN exit 1
FROM scratch AS final
COPY --from=builder /out /out
COPY --from=alpine:3 /etc/os-release /
"""


def test_plan_target_needs_only_its_dependencies():
    p = plan(MULTI)
    assert [s.display_name for s in p.needed] == ["base", "builder", "final"]
    assert p.stages[0].base_name == "busybox:latest"
    assert p.stages[1].base_stage is p.stages[0]
    p = plan(MULTI, {"TAG": "1.36"}, target="builder")
    assert p.stages[0].base_name == "busybox:1.36"
    assert [s.display_name for s in p.needed] == ["base", "builder"]
    assert p.step_count() == 3
    with pytest.raises(BuildError, match="nosuch"):
        plan(MULTI, target="nosuch")


def test_plan_stage_references_and_errors():
    p = plan("FROM busybox\nRUN true\nFROM scratch\nCOPY --from=0 /a /a\n")
    assert p.find_stage("0") is p.stages[0] and p.stages[1].uses == [p.stages[0]]
    with pytest.raises(DockerfileError, match="duplicate stage name"):
        plan("FROM busybox AS a\nFROM busybox AS A\n")
    with pytest.raises(DockerfileError, match="variable expansion is not supported for --from"):
        plan("FROM busybox\nCOPY --from=$X /a /a\n")


# The stage graph as BuildKit builds it: COPY --from and RUN --mount from= may name a later stage (it is
# built first), FROM may not (a later stage's name there is an image), and a loop is refused naming the first
# stage, in Dockerfile order, that leads into it.
@pytest.mark.parametrize("dockerfile,target,needed", [
    ("FROM busybox AS a\nCOPY --from=b /f /f\nFROM busybox AS b\n", "a", ["b", "a"]),
    ("FROM busybox AS a\nRUN --mount=from=b,target=/m true\nFROM busybox AS b\n", "a", ["b", "a"]),
    ("FROM busybox AS a\nCOPY --from=2 /f /f\nFROM busybox AS b\nFROM b AS c\nCOPY --from=b /g /g\n", "a",
     ["b", "c", "a"]),
    ("FROM busybox AS a\nCOPY --from=c /f /f\nFROM busybox AS b\nFROM busybox AS c\n", None, ["c"]),
])
def test_plan_forward_stage_references(dockerfile, target, needed):
    assert [s.display_name for s in plan(dockerfile, target=target).needed] == needed


@pytest.mark.parametrize("dockerfile,stage", [
    ("FROM busybox AS a\nCOPY --from=b /f /f\nFROM busybox AS b\nCOPY --from=a /f /g\n", "a"),
    ("FROM busybox AS a\nCOPY --from=a /bin/sh /x\n", "a"),
    ("FROM busybox AS a\nRUN --mount=from=a,target=/m true\n", "a"),
    ("FROM busybox\nFROM busybox AS b\nCOPY --from=c /f /f\nFROM b AS c\n", "b"),
    ("FROM busybox AS x\nCOPY --from=1 /f /f\nFROM busybox\nCOPY --from=x /f /f\nFROM busybox AS y\n", "x"),
    ("FROM busybox\nCOPY --from=0 /f /f\nFROM busybox AS y\n", "stage-0"),
])
def test_plan_refuses_a_stage_cycle_even_off_the_target(dockerfile, stage):
    with pytest.raises(DockerfileError) as e:
        plan(dockerfile, target="y" if "AS y" in dockerfile else None)
    assert str(e.value) == f"Dockerfile: circular dependency detected on stage: {stage}"


def test_plan_from_a_later_stage_name_is_an_image():
    p = plan("FROM b AS a\nRUN true\nFROM busybox AS b\n", target="a")
    assert p.stages[0].base_stage is None and p.stages[0].base_name == "b"
    assert [s.display_name for s in p.needed] == ["a"]


def test_unused_build_args_and_predefined():
    p = plan("ARG A\nFROM busybox\nARG B\n")
    assert p.unused_build_args({"A": "1", "B": "2", "C": "3", "HTTP_PROXY": "x", "TARGETARCH": "y"}) == ["C"]
    assert p.global_args["TARGETOS"] == "linux" and p.global_args["TARGETPLATFORM"].startswith("linux/")


def _state():
    return ImageState({"config": {"Env": ["PATH=/bin"]}}, [], "k", {"PATH": "/bin"})


def test_env_expands_against_previous_env_and_arg_scoping():
    st = _state()
    ex = Expander("\\")
    df = parse("FROM x\nENV A=1\nENV A=2 B=$A\nARG V\nARG W=$A-w\nARG G\n")
    ins = df.instructions
    do_env(st, ins[1], ex)
    assert do_env(st, ins[2], ex) == "ENV A=2 B=1"
    assert st.cc["Env"] == ["PATH=/bin", "A=2", "B=1"]
    assert do_arg(st, ins[3], ex, build_args={"V": "bv"}, global_args={}) == "ARG V=bv"
    assert do_arg(st, ins[4], ex, build_args={}, global_args={}) == "ARG W=2-w"
    assert do_arg(st, ins[5], ex, build_args={}, global_args={"G": "global"}) == "ARG G=global"
    assert st.env["V"] == "bv" and "V=bv" not in st.cc["Env"]
    assert run_history(["/bin/sh", "-c", "x"], st) == "RUN |3 V=bv W=2-w G=global /bin/sh -c x"


def test_cmd_entrypoint_shell_forms():
    st = _state()
    ex = Expander("\\")
    ins = parse('FROM x\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT run it\nCMD ["a"]\n').instructions
    st.cc["Shell"] = ["/bin/bash", "-c"]
    st.cc["Cmd"] = ["inherited"]
    assert do_entrypoint(st, ins[2], ex) == 'ENTRYPOINT ["/bin/bash" "-c" "run it"]'
    assert "Cmd" not in st.cc  # ENTRYPOINT without a CMD in this stage clears the inherited one
    do_cmd(st, ins[3], ex)
    assert st.cc["Cmd"] == ["a"] and st.cc["ArgsEscaped"] is True


@pytest.mark.parametrize("word,ports", [
    ("80", ["80/tcp"]), ("53/UDP", ["53/udp"]), ("8000-8002/tcp", ["8000/tcp", "8001/tcp", "8002/tcp"]),
    ("127.0.0.1:8080:80", ["80/tcp"]),
])
def test_expose_ports(word, ports):
    assert parse_port(word) == ports


def test_expose_bad_port():
    for bad in ("abc", "80/icmp", "70000"):
        with pytest.raises(BuildError):
            parse_port(bad)


def test_paths_and_signals_and_durations():
    assert normalize_workdir("/a", "b/../c") == "/a/c"
    assert normalize_workdir("/a", "/x/") == "/x"
    assert dest_path("/app", ".") == "/app/"
    assert dest_path("/app", "sub/") == "/app/sub/"
    assert dest_path("/app", "/abs") == "/abs"
    check_signal("SIGKILL")
    check_signal("term")
    check_signal("9")
    check_signal("SIGRTMIN+3")
    with pytest.raises(BuildError):
        check_signal("SIGNOPE")
    assert format_go_duration(30 * 10**9) == "30s"
    assert format_go_duration(90 * 10**9) == "1m30s"
    assert format_go_duration(0) == "0s"
    assert format_go_duration(1500 * 10**6) == "1.5s"
