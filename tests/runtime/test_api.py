"""oci_runtime.api: the runtime as an orchestrator calls it, with typed results and the runtime's own errors."""

from __future__ import annotations

import ctypes

import pytest

from oci_runtime.api import Runtime
from oci_runtime.errors import BadState, ConfigInvalid, ContainerExists, ContainerNotFound

pytestmark = pytest.mark.root


@pytest.fixture
def runtime(state_root):
    rt = Runtime(str(state_root))
    yield rt
    for state in rt.list():
        rt.delete(state.id, force=True)


def test_lifecycle_through_the_library(runtime, make_bundle, tmp_path):
    bundle = make_bundle(["sh", "-c", "echo started > /tmp/mark; sleep 1000"])
    runtime.create("lib", bundle, pid_file=tmp_path / "pid")
    state = runtime.state("lib")
    assert state.status == "created" and state.id == "lib" and state.bundle == str(bundle)
    assert int((tmp_path / "pid").read_text()) == state.pid
    runtime.start("lib")
    assert runtime.state("lib").status == "running"
    assert [s.id for s in runtime.list()] == ["lib"]
    assert state.pid in runtime.processes("lib")
    runtime.pause("lib")
    assert runtime.state("lib").status == "paused"
    runtime.resume("lib")
    out = tmp_path / "exec.out"
    with open(out, "wb") as f:
        status = runtime.exec("lib", {"args": ["sh", "-c", "cat /tmp/mark; exit 3"], "cwd": "/",
                                      "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}, stdout=f)
    assert status == 3 and out.read_text() == "started\n"
    runtime.update("lib", {"pids": {"limit": 50}})
    assert runtime.stats("lib")["pids"]["limit"] == 50
    runtime.kill("lib", "KILL")
    for _ in range(200):
        if runtime.state("lib").status == "stopped":
            break
    assert runtime.state("lib").status == "stopped"
    runtime.delete("lib")
    assert runtime.list() == []


def test_errors_keep_their_kind_and_message(runtime, make_bundle):
    with pytest.raises(ContainerNotFound, match="container ghost does not exist"):
        runtime.state("ghost")
    bundle = make_bundle(["sleep", "1000"])
    runtime.create("twice", bundle)
    with pytest.raises(ContainerExists, match="already exists"):
        runtime.create("twice", bundle)
    with pytest.raises(BadState, match="not stopped"):
        runtime.delete("twice")
    bad = make_bundle(["true"], edit=lambda spec: spec.update(ociVersion=1))
    with pytest.raises(ConfigInvalid, match="ociVersion"):
        runtime.create("bad", bad)
    assert [s.id for s in runtime.list()] == ["twice"]


def test_run_returns_the_container_exit_code(runtime, make_bundle, tmp_path):
    out = tmp_path / "out"
    with open(out, "wb") as f:
        assert runtime.run("fg", make_bundle(["sh", "-c", "echo hi; exit 7"]), stdout=f) == 7
    assert out.read_text() == "hi\n"
    assert runtime.list() == []  # deleted after it exited


def test_the_runtime_runs_in_a_child_not_in_the_caller(runtime, make_bundle):
    """The caller's signal dispositions and subreaper flag are untouched by a run."""
    before = open("/proc/self/status").read().split("SigCgt:")[1].split()[0]
    assert runtime.run("child", make_bundle(["true"])) == 0
    after = open("/proc/self/status").read().split("SigCgt:")[1].split()[0]
    assert before == after
    subreaper = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(37, ctypes.byref(subreaper))  # PR_GET_CHILD_SUBREAPER
    assert subreaper.value == 0
