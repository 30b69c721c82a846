"""pyrunc under docker 20.10 (dockerd --add-runtime pyrunc=..., docker run --runtime pyrunc), and pydock's
images loaded into docker."""

from __future__ import annotations

import os

import pytest

from support import PYDOCK, run_captured
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
