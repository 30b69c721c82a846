"""The sandbox a RUN command runs in: a container made by our own runtime, over a step's overlay rootfs.

The bundle's rootfs is the workspace's merged dir. Like BuildKit: hostname "buildkitsandbox", generated
/etc/hosts and /etc/resolv.conf bind-mounted in, docker's default capabilities and seccomp profile, a new
network namespace with only loopback for --network none (the default), the host's for --network host, or one
on pydock's default bridge network for --network bridge. Mount points the
runtime needs but the image lacks are created before and removed after, so they never reach the layer.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from builder.builds.files import mkdir_in_root, resolve_in_root
from builder.builds.users import image_user
from builder.bundle.spec import process_spec
from builder.container.bundle import DOCKER_DEFAULT_CAPS, host_capabilities, make_privileged
from builder.network.etcfiles import resolv_conf
from oci_runtime.api import delete_container, run_container
from oci_runtime.users import ExecUser
from oci_runtime.units import go_quote

HOSTNAME = "buildkitsandbox"
_STUB_DIRS = ("/proc", "/sys", "/dev")
_STUB_FILES = ("/etc/hosts", "/etc/resolv.conf")


@dataclass
class RunSpec:
    args: list[str]
    env: list[str]
    user: str = ""
    cwd: str = "/"
    network: str = "none"
    files: dict[str, bytes] = field(default_factory=dict)  # read-only extra files: container path -> content
    container_id: str = ""
    mounts: list[dict] = field(default_factory=list)  # extra runtime mounts (RUN --mount), dirs as targets
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)  # build --add-host (name, address)
    limits: object = None  # build's resource flags (limits.RunLimits), or None
    store_root: Path | None = None  # the pydock store (its networks), for --network bridge
    insecure: bool = False  # RUN --security=insecure (with --allow security.insecure): privileged, unfiltered


def hosts_file(extra_hosts: list[tuple[str, str]] = ()) -> str:
    text = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    return text + "".join(f"{address}\t{name}\n" for name, address in extra_hosts)


def _make_stubs(root: Path, extra: list[tuple[str, bool]] = ()) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """Create missing mount points; returns (created paths, attributes of existing parents they touched)."""
    created: list[str] = []
    parents: dict[str, tuple[int, int, int]] = {}
    for path, is_dir in [(p, True) for p in _STUB_DIRS] + [(p, False) for p in _STUB_FILES] + list(extra):
        host = resolve_in_root(root, path, follow_last=False)
        if host.exists() or host.is_symlink():
            continue
        parent = path.rsplit("/", 1)[0] or "/"
        walk = parent
        while walk != "/":
            hp = resolve_in_root(root, walk)
            if hp.is_dir():
                st = os.stat(hp)
                parents.setdefault(walk, (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
            else:
                created.append(walk)
            walk = walk.rsplit("/", 1)[0] or "/"
        mkdir_in_root(root, parent)
        if is_dir:
            os.mkdir(host, 0o755)
        else:
            host.touch(0o644)
        created.append(path)
    return created, parents


def _remove_stubs(upper: Path, created: list[str], parents: dict[str, tuple[int, int, int]]) -> None:
    """On the unmounted upper dir: drop the stubs we made, then directories that only got copied up
    because a stub went into them (empty, not opaque, attributes unchanged)."""
    for path in sorted(set(created), key=lambda p: -p.count("/")):
        p = upper / path.lstrip("/")
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(p)
            except OSError:
                pass
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            p.unlink()
    for path in sorted(parents, key=lambda p: -p.count("/")):
        p = upper / path.lstrip("/")
        try:
            st = os.lstat(p)
            if not stat.S_ISDIR(st.st_mode) or os.listdir(p):
                continue
            if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != parents[path]:
                continue
            try:
                if os.getxattr(p, "trusted.overlay.opaque", follow_symlinks=False):
                    continue
            except OSError:
                pass
            os.rmdir(p)
        except OSError:
            continue


def _spec(rootfs: Path, bundle: Path, run: RunSpec, user: ExecUser) -> dict:
    """The image's process (bundle.spec) in BuildKit's sandbox: docker's default capabilities, a high
    open-files limit, its hostname, generated hosts and resolv.conf, and the step's extra mounts."""
    spec = process_spec(run.args, env=run.env, cwd=run.cwd or "/", user=user)
    spec["root"] = {"path": str(rootfs), "readonly": False}
    proc = spec["process"]
    caps = host_capabilities() if run.insecure else list(DOCKER_DEFAULT_CAPS)
    proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    proc["noNewPrivileges"] = False
    if run.insecure:  # BuildKit's insecure mode: as `docker run --privileged`
        make_privileged(spec)
    else:  # BuildKit's sandbox filters RUN as docker filters containers: the default profile for these caps
        from builder.container.seccomp import default_seccomp, without_unknown_names

        spec["linux"]["seccomp"] = without_unknown_names(default_seccomp(caps))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1048576 if hard == resource.RLIM_INFINITY else min(hard, 1048576)
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": limit, "soft": limit}]
    spec["hostname"] = HOSTNAME
    mounts = spec["mounts"]
    mounts.append({"destination": "/etc/hosts", "type": "bind", "source": str(bundle / "hosts"),
                   "options": ["rbind", "rprivate"]})
    mounts.append({"destination": "/etc/resolv.conf", "type": "bind", "source": str(bundle / "resolv.conf"),
                   "options": ["rbind", "rprivate"]})
    for i, (path, _) in enumerate(sorted(run.files.items())):
        mounts.append({"destination": path, "type": "bind", "source": str(bundle / f"file-{i}"),
                       "options": ["rbind", "ro", "rprivate"]})
    mounts.extend(run.mounts)
    linux = spec["linux"]
    if run.network == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    return spec


def run_in_workspace(ws, run: RunSpec, *, state_root: Path, stdout=None, stderr=None) -> int:
    """Run the command over ws.merged, then unmount and tidy the upper dir. Returns the exit status."""
    root = Path(os.path.abspath(ws.merged))
    user = image_user(root, run.user)
    cwd_host = resolve_in_root(root, run.cwd or "/")
    if not cwd_host.exists():
        mkdir_in_root(root, run.cwd, owner=(user.uid, user.gid))
    extra = []
    for m in run.mounts:
        is_dir = m["type"] != "bind" or os.path.isdir(m["source"])  # a file or socket is bound onto a file
        extra.append((m["destination"], is_dir))
    created, parents = _make_stubs(root, extra)
    bundle = Path(os.path.abspath(ws.dir)) / "bundle"
    bundle.mkdir()
    (bundle / "hosts").write_text(hosts_file(run.extra_hosts))
    (bundle / "resolv.conf").write_text(resolv_conf(run.network))
    for i, (_, content) in enumerate(sorted(run.files.items())):
        f = bundle / f"file-{i}"
        f.write_bytes(content)
        f.chmod(0o755)
    spec = _spec(root, bundle, run, user)
    container_id = run.container_id or "pydock-build-" + secrets.token_hex(6)
    if run.limits is not None:
        run.limits.apply(spec, container_id)
    (bundle / "config.json").write_text(json.dumps(spec))
    state_root.mkdir(parents=True, exist_ok=True)
    sandbox = bundle / "netns"
    try:
        if run.network == "bridge":
            from builder.network.endpoints import attach_build

            attach_build(run.store_root, container_id, sandbox)
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = str(sandbox)
            (bundle / "config.json").write_text(json.dumps(spec))
        status = _run_container(bundle, container_id, state_root, stdout, stderr)
    finally:
        if run.network == "bridge":
            from builder.network.endpoints import detach_build

            detach_build(run.store_root, container_id, sandbox)
        ws.unmount()
        _remove_stubs(ws.upper, created, parents)
    return status


def _run_container(bundle: Path, container_id: str, state_root: Path, stdout, stderr) -> int:
    status = -1
    try:
        status = run_container(bundle, container_id, root=str(state_root), stdout=stdout, stderr=stderr)
        return status
    finally:
        if status != 0:
            # After an interruption or a runtime failure, remove whatever the runtime left behind.
            delete_container(container_id, root=str(state_root))


def failure_message(args: list[str], status: int) -> str:
    return f"process {go_quote(' '.join(args))} did not complete successfully: exit code: {status}"
