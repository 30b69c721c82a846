"""Runtime bundles from images: a busybox rootfs tarball imported offline, layers applied, config.json
from the image config (args, env, cwd, user and groups from the image's own /etc files)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from builder.image.archive import import_rootfs
from builder.bundle import make_bundle
from oci_runtime.users import lookup as resolve_user
from builder.errors import BuildError
from builder.image.layers import write_layer_from_dir
from builder.image.store import ImageStore
from oci_runtime.specgen import default_spec


@pytest.fixture
def busybox_image(store, busybox_template, tmp_path):
    tarball = tmp_path / "busybox.tar.gz"
    subprocess.run(["tar", "--numeric-owner", "-C", str(busybox_template), "-czf", str(tarball), "."], check=True)
    return import_rootfs(store, tarball, "busybox")


def derive(store: ImageStore, base, tmp_path: Path, *, files=None, config=None, name: str):
    """A child image of `base`: one more layer (files; a value None makes a whiteout) and config changes."""
    tree = tmp_path / f"layer-{name.replace(':', '-')}"
    tree.mkdir()
    for path, content in (files or {}).items():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target = target.with_name(".wh." + target.name)
            content = ""
        target.write_text(content)
    layer, diff_id = write_layer_from_dir(tree, store)
    cfg = base.config
    cfg["config"] = {**(cfg.get("config") or {}), **(config or {})}
    cfg["rootfs"]["diff_ids"] = base.diff_ids + [diff_id]
    image = store.commit_image(cfg, base.layers + [layer])
    store.tag(image, name)
    return image


def test_bundle_from_imported_busybox(store, busybox_image, busybox_template, tmp_path):
    image = derive(store, busybox_image, tmp_path, name="app:1",
                   files={"app/run.sh": "#!/bin/sh\necho hi\n", "bin/vi": None},
                   config={"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hello; id"], "Env": ["GREETING=hi"],
                           "WorkingDir": "/app", "User": "user", "Labels": {"org.example": "yes"},
                           "StopSignal": "SIGINT", "ExposedPorts": {"80/tcp": {}}})
    assert len(image.layers) == 2 and os.path.islink(busybox_template / "bin" / "vi")
    bundle = make_bundle(store, "app:1", tmp_path / "bundle")
    rootfs = bundle / "rootfs"
    assert os.access(rootfs / "bin" / "busybox", os.X_OK)
    assert os.readlink(rootfs / "bin" / "ls") == "/bin/busybox"
    assert (rootfs / "app" / "run.sh").read_text().startswith("#!/bin/sh")
    assert (rootfs / "etc" / "passwd").exists()
    assert not os.path.lexists(rootfs / "bin" / "vi"), "the second layer's whiteout is honoured"
    assert oct(os.stat(rootfs / "tmp").st_mode & 0o7777) == oct(0o1777)

    spec = json.loads((bundle / "config.json").read_text())
    defaults = default_spec(args=["x"], terminal=False)
    process = spec["process"]
    assert process["args"] == ["/bin/sh", "-c", "echo hello; id"]
    assert process["terminal"] is False
    assert process["cwd"] == "/app"
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hi",
                              "HOME=/home/user"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert process["capabilities"] == defaults["process"]["capabilities"]
    assert spec["mounts"] == defaults["mounts"] and spec["linux"] == defaults["linux"]
    assert spec["root"] == {"path": "rootfs", "readonly": defaults["root"]["readonly"]}
    assert spec["annotations"]["org.example"] == "yes"
    assert spec["annotations"]["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert spec["annotations"]["org.opencontainers.image.exposedPorts"] == "80/tcp"
    assert spec["annotations"]["org.opencontainers.image.architecture"] == "amd64"

    with pytest.raises(BuildError, match="not empty"):
        make_bundle(store, "app:1", tmp_path / "bundle")


@pytest.mark.root
def test_bundle_runs_with_our_runtime(store, busybox_image, tmp_path):
    derive(store, busybox_image, tmp_path, name="run:1",
           config={"Cmd": ["sh", "-c", "echo $GREETING from $(pwd) as $(id -u):$(id -g) groups $(id -G)"],
                   "Env": ["GREETING=hello"], "WorkingDir": "/home/user", "User": "user"})
    bundle = make_bundle(store, "run:1", tmp_path / "bundle")
    from oci_runtime.api import run_container

    state = tmp_path / "state"
    out = tmp_path / "stdout"
    with open(out, "wb") as stdout:
        status = run_container(bundle, "bundle-test", root=str(state), stdout=stdout,
                               stderr=subprocess.PIPE)
    assert status == 0, out.read_text()
    assert out.read_text().strip() == "hello from /home/user as 1000:1000 groups 1000 10"


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, [], "/root")),
    ("root", (0, 0, [], "/root")),
    ("user", (1000, 1000, [10], "/home/user")),
    ("1000", (1000, 1000, [10], "/home/user")),
    ("user:root", (1000, 0, [], "/home/user")),
    ("user:5", (1000, 5, [], "/home/user")),
    ("4242", (4242, 0, [], "/")),
    ("4242:4343", (4242, 4343, [], "/")),
    ("nobody:nogroup", (65534, 65534, [], "/nonexistent")),
])
def test_resolve_user(rootfs, user, expected):
    resolved = resolve_user(rootfs, user)
    assert (resolved.uid, resolved.gid, resolved.additional_gids, resolved.home) == expected


def test_resolve_user_errors_and_symlinked_passwd(rootfs, tmp_path):
    with pytest.raises(ValueError, match="unable to find user ghost"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(ValueError, match="unable to find group ghosts"):
        resolve_user(rootfs, "user:ghosts")
    # an absolute symlink is read inside the rootfs, never from the host
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("user:x:7:7::/host:/bin/sh\n")
    (rootfs / "etc" / "real-passwd").write_text("user:x:2000:2000::/inside:/bin/sh\n")
    os.unlink(rootfs / "etc" / "passwd")
    (rootfs / "etc" / "passwd").symlink_to("/etc/real-passwd")
    assert resolve_user(rootfs, "user").uid == 2000
    os.unlink(rootfs / "etc" / "passwd")
    (rootfs / "etc" / "passwd").symlink_to(host_passwd)
    with pytest.raises(ValueError, match="unable to find user"):
        resolve_user(rootfs, "user")


def test_bundle_needs_a_command(store, tmp_path):
    tree = tmp_path / "empty"
    tree.mkdir()
    (tree / "f").write_text("x")
    layer, diff_id = write_layer_from_dir(tree, store)
    image = store.commit_image({"architecture": "amd64", "os": "linux", "config": {},
                                "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, [layer])
    with pytest.raises(BuildError, match="no command specified"):
        make_bundle(store, image.id, tmp_path / "bundle")
