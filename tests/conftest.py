"""Fixtures shared by every test folder: a busybox rootfs built from Debian's busybox-static, bundles, a pyrunc
runner with its own state root; and the `root` marker (tests that need root are skipped for other users, so
`pytest -m "not root"` runs the pure tests anywhere)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from oci_runtime.specgen import default_spec
from support import BUSYBOX, PYRUNC, build_busybox_rootfs, run_captured


HOST_NETNS_FD = -1  # the network namespace pytest started in (the host's), kept open by pytest_configure


def pytest_configure(config):
    """As root, the whole test session leaves the host's network namespace for a new one of its own (only
    loopback, up): pydock's default bridge networking, the engines' daemons and every server a test starts
    can then never change the host's interfaces, routes, sysctls or firewall. The host's namespace stays
    reachable through HOST_NETNS_FD (the network tests compare it before and after)."""
    global HOST_NETNS_FD
    if os.geteuid() != 0 or HOST_NETNS_FD >= 0:
        return
    from oci_runtime import linux
    from oci_runtime.process.namespaces import loopback_up

    HOST_NETNS_FD = os.open("/proc/self/ns/net", os.O_RDONLY)
    os.set_inheritable(HOST_NETNS_FD, False)
    linux.unshare(linux.CLONE_NEWNET)
    loopback_up()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    needs_root = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(needs_root)


@pytest.fixture(scope="session")
def host_netns() -> str:
    """A path naming the host's network namespace (the one pytest started in), for nsenter --net=."""
    if HOST_NETNS_FD < 0:
        pytest.skip("the session did not leave the host's network namespace (not root)")
    return f"/proc/{os.getpid()}/fd/{HOST_NETNS_FD}"


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory) -> Path:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="session")
def busybox_tar(busybox_template, tmp_path_factory) -> Path:
    """The busybox rootfs as a tar file: an image for `pydock import`."""
    import tarfile

    out = tmp_path_factory.mktemp("bbtar") / "busybox.tar"
    with tarfile.open(out, "w") as tar:
        for entry in sorted(os.listdir(busybox_template)):
            tar.add(busybox_template / entry, arcname=entry)
    return out


@pytest.fixture
def rootfs(busybox_template, tmp_path) -> Path:
    """A private copy of the busybox rootfs for one test."""
    dest = tmp_path / "bundle" / "rootfs"
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(busybox_template), str(dest)], check=True)
    return dest


@pytest.fixture
def make_bundle(rootfs):
    """make_bundle(args, edit=callable) writes config.json beside the test's rootfs and returns the bundle dir."""

    def make(args=("true",), edit=None, terminal=False, readonly=False) -> Path:
        spec = default_spec(args=list(args), terminal=terminal)
        spec["root"]["readonly"] = readonly
        if edit:
            edit(spec)
        bundle = rootfs.parent
        (bundle / "config.json").write_text(json.dumps(spec, indent=2))
        return bundle

    return make


@pytest.fixture
def state_root(tmp_path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def pyrunc(state_root):
    """pyrunc(*args) -> CompletedProcess (text stdout/stderr), with --root set to the test's own state dir.
    Containers left behind by a test are force-deleted afterwards."""

    def run(*args, timeout=60, **kw):
        return run_captured([*PYRUNC, "--root", str(state_root), *map(str, args)], timeout=timeout, **kw)

    yield run
    for cid in os.listdir(state_root):
        run("delete", "--force", cid)
