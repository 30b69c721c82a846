"""pyrunc under docker 20.10 (dockerd --add-runtime pyrunc=..., docker run --runtime pyrunc), and pydock's
images loaded into docker or pulled by it from a registry on loopback."""

from __future__ import annotations

import os

import pytest

from support import PYDOCK, Registry, run_captured
from engines_fixtures import CliEngineCases, busybox_tarball, engine_fixture, names  # noqa: F401 (fixtures)

pytestmark = pytest.mark.engines

engine = engine_fixture("docker")


class TestDocker(CliEngineCases):
    pass


def test_pydock_image_saved_then_docker_load_runs_under_pyrunc(engine, names, busybox_template, tmp_path):
    """`pydock save` writes a docker-archive that `docker load` accepts; the image keeps its config."""
    env = {**os.environ, "PYDOCK_ROOT": str(tmp_path / "store")}
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base:latest\nENV GREETING=hi\nWORKDIR /srv\n"
                                    "RUN echo built > /srv/built.txt\nCMD [\"sh\", \"-c\", \"echo $GREETING; cat built.txt; pwd\"]\n")
    steps = [["import", str(busybox_tarball(busybox_template, tmp_path / "base.tar")), "base:latest"],
             ["build", "-q", "-t", "pydock-made:v1", str(ctx)],
             ["save", "-o", str(tmp_path / "archive.tar"), "pydock-made:v1"]]
    for step in steps:
        out = run_captured([*PYDOCK, *step], env=env, timeout=300)
        assert out.returncode == 0, (step, out.stderr)
    loaded = engine("load", "-i", tmp_path / "archive.tar")
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded image: pydock-made:v1" in loaded.stdout
    run = engine("run", "--rm", "--name", names(), "--runtime", "pyrunc", "pydock-made:v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["hi", "built", "/srv"]
    engine("rmi", "pydock-made:v1")


def test_pydock_push_then_docker_pull_and_run(engine, names, busybox_template, tmp_path):
    """An image pydock built (plain layers in its store) and pushed (gzip layers) to a registry on loopback
    is pulled by docker (127.0.0.0/8 is an insecure registry to docker: plain http) with pydock's digest,
    and runs under runc and under pyrunc."""
    registry = Registry(tmp_path / "registry")
    try:
        env = {**os.environ, "PYDOCK_ROOT": str(tmp_path / "store"), "DOCKER_CONFIG": str(tmp_path / "config")}
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM base:latest\nRUN echo pushed by pydock > /made\n")
        ref = f"{registry.host}/interop/for-docker:v1"
        steps = [["import", str(busybox_tarball(busybox_template, tmp_path / "base.tar")), "base:latest"],
                 ["build", "-q", "-t", ref, str(ctx)], ["push", ref]]
        for step in steps:
            out = run_captured([*PYDOCK, *step], env=env, timeout=300)
            assert out.returncode == 0, (step, out.stderr)
        digest = out.stdout.rsplit("digest: ", 1)[1].split()[0]
        pulled = engine("pull", ref, timeout=300)
        assert pulled.returncode == 0, pulled.stderr + engine.daemon_log()
        assert f"Digest: {digest}" in pulled.stdout
        try:
            for runtime in (engine.runc, engine.runtime):
                run = engine("run", "--rm", "--name", names(), *runtime, ref, "cat", "/made")
                assert (run.returncode, run.stdout) == (0, "pushed by pydock\n"), run.stderr
        finally:
            engine("rmi", ref)
    finally:
        registry.stop()
