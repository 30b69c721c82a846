"""pyrunc under docker 20.10 (dockerd --add-runtime pyrunc=..., docker run --runtime pyrunc), and pydock's
images loaded into docker or pulled by it from a registry on loopback."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import PYDOCK, REPO, Registry, run_captured
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


def _pydock(env: dict, *args: str, input: str | None = None):
    out = run_captured([*PYDOCK, *args], env=env, timeout=300, input=input)
    assert out.returncode == 0, (args, out.stderr)
    return out


def test_pydock_export_imports_into_docker_and_runs(engine, names, busybox_template, tmp_path):
    """A container's filesystem from `pydock export` is a rootfs tar that `docker import` takes."""
    env = {**os.environ, "PYDOCK_ROOT": str(tmp_path / "store")}
    _pydock(env, "import", str(busybox_tarball(busybox_template, tmp_path / "base.tar")), "base:latest")
    cid = _pydock(env, "run", "-d", "base:latest", "sh", "-c",
                  "mkdir -p /srv && echo exported-by-pydock > /srv/proof && rm /bin/true").stdout.strip()
    _pydock(env, "wait", cid)
    _pydock(env, "export", "-o", str(tmp_path / "fs.tar"), cid)
    ref = f"pydock-exported:{names()}"
    imported = engine("import", tmp_path / "fs.tar", ref)
    assert imported.returncode == 0, imported.stderr
    try:
        run = engine("run", "--rm", *engine.runc, ref, "sh", "-c", "cat /srv/proof; [ -e /bin/true ] || echo gone")
        assert (run.returncode, run.stdout) == (0, "exported-by-pydock\ngone\n"), run.stderr
    finally:
        engine("rmi", ref)
        _pydock(env, "rm", cid)


def test_pydock_commit_saved_loads_into_docker_and_runs(engine, names, busybox_template, tmp_path):
    """`pydock commit` (with --change) then `pydock save`: docker loads the image and runs it as committed."""
    env = {**os.environ, "PYDOCK_ROOT": str(tmp_path / "store")}
    _pydock(env, "import", str(busybox_tarball(busybox_template, tmp_path / "base.tar")), "base:latest")
    cid = _pydock(env, "run", "-d", "base:latest", "sh", "-c",
                  "echo committed-by-pydock > /proof && rm /bin/true").stdout.strip()
    _pydock(env, "wait", cid)
    ref = f"pydock-committed:{names()}"
    _pydock(env, "commit", "-c", "ENV WHO=docker", "-c", 'CMD ["sh", "-c", "cat /proof; echo $WHO; '
            '[ -e /bin/true ] || echo gone"]', "-m", "from pydock", cid, ref)
    _pydock(env, "save", "-o", str(tmp_path / "committed.tar"), ref)
    loaded = engine("load", "-i", tmp_path / "committed.tar")
    assert loaded.returncode == 0 and f"Loaded image: {ref}" in loaded.stdout, loaded.stderr
    try:
        run = engine("run", "--rm", *engine.runc, ref)
        assert (run.returncode, run.stdout) == (0, "committed-by-pydock\ndocker\ngone\n"), run.stderr
        history = engine("history", "--no-trunc", "--format", "{{.Comment}}", ref)
        assert history.stdout.splitlines()[0] == "from pydock"
    finally:
        engine("rmi", ref)
        _pydock(env, "rm", cid)


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


PROBE_SOURCE = REPO / "tests" / "builder" / "container" / "syscall_probe.c"
# calls whose answer both docker 20.10's default profile and ours decide the same way (io_uring is not
# among them: docker 20.10 still allowed it; current docker and pydock refuse it)
SAME_ANSWER = ["getppid", "fork", "socket_inet", "personality_linux", "personality_bsd", "clone3", "clone_newuts",
               "mount", "swapon", "keyctl", "add_key", "unshare_user", "kcmp"]


@pytest.mark.parametrize("flags", [[], ["--cap-add", "SYS_ADMIN"], ["--security-opt", "seccomp=unconfined"]],
                         ids=lambda flags: " ".join(flags) or "default")
def test_default_seccomp_profile_answers_as_dockers(engine, names, busybox_template, tmp_path, flags):
    """The same probe under `docker run` (docker's own default profile, runc) and `pydock run`: the same
    errno for every call."""
    subprocess.run(["gcc", "-static", "-O1", "-o", tmp_path / "probe", PROBE_SOURCE], check=True)
    volume = f"{tmp_path}:/probe:ro"
    docker = engine("run", "--rm", "--name", names(), *engine.runc, "--network", "none", "-v", volume, *flags,
                    engine.image, "/probe/probe", *SAME_ANSWER)
    assert docker.returncode == 0, docker.stderr
    env = {**os.environ, "PYDOCK_ROOT": str(tmp_path / "store")}
    tarball = busybox_tarball(busybox_template, tmp_path / "busybox.tar")
    for step in (["import", str(tarball), "busybox:latest"],
                 ["run", "--rm", "--network", "none", "-v", volume, *flags, "busybox", "/probe/probe", *SAME_ANSWER]):
        ours = run_captured([*PYDOCK, *step], env=env, timeout=120)
        assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == docker.stdout.splitlines()
