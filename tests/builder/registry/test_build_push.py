"""build --push: the built image goes to the registry of each -t name (a real registry on loopback)."""

from __future__ import annotations

from builder_support import make_context
from registry_support import Client, Registry


def test_build_push_then_pull_elsewhere(tmp_path, busybox_tar):
    registry = Registry(tmp_path / "registry")
    try:
        builder = Client(tmp_path / "a" / "store", tmp_path / "a" / "docker")
        builder("import", busybox_tar, "busybox:latest", check=True)
        ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo pushed > /made\n")
        name = f"{registry.host}/team/app:1"
        proc = builder("build", "--push", "-t", name, ctx, check=True)
        assert f"The push refers to repository [{registry.host}/team/app]" in proc.stdout
        other = Client(tmp_path / "b" / "store", tmp_path / "b" / "docker")
        other("pull", name, check=True)
        assert other("run", "--rm", name, "cat", "/made", check=True).stdout == "pushed\n"
        # -o type=registry,name=N is --push -t N; -o type=image,name=N only stores it
        builder("build", "-o", f"type=registry,name={registry.host}/team/app:2", ctx, check=True)
        builder("build", "-o", "type=image,name=local-only:1", ctx, check=True)
        other("pull", f"{registry.host}/team/app:2", check=True)
        assert builder("inspect", "local-only:1").returncode == 0
        assert other("pull", f"{registry.host}/local-only:1").returncode != 0
        # a registry that is not there: the build's image stays, the command fails with one line
        proc = builder("build", "--push", "-t", "127.0.0.1:1/nothing:1", ctx)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    finally:
        registry.stop()
