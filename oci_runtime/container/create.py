"""create: a container whose init waits for `start`; on any failure nothing is left behind."""

from __future__ import annotations

import errno
import os

from oci_runtime.bundle import load_bundle
from oci_runtime.container.lifecycle import SIGKILL, Container, proc_start_time, wait_gone, write_pid_file
from oci_runtime.container.state import StateDir
from oci_runtime.errors import RuntimeFailure
from oci_runtime.log import logger
from oci_runtime.process import launch
from oci_runtime.units import rfc3339


def create(root: str, container_id: str, bundle_dir: str, *, console_sock=None, pid_file: str | None = None,
           no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
           systemd_cgroup: bool = False, extra_env: dict | None = None) -> Container:
    """Create a container whose init waits for `start`; on any failure nothing is left behind."""
    bundle = load_bundle(bundle_dir)
    logger.debug(f"create {container_id}: bundle {bundle.path}, rootfs {bundle.rootfs}")
    config = bundle.config
    linux_cfg = config.get("linux") or {}
    seccomp = None
    if linux_cfg.get("seccomp"):
        from oci_runtime.seccomp.filter import cache_dir, prepare_filter

        seccomp = prepare_filter(linux_cfg["seccomp"], strict=True, keep_in=cache_dir())
    state_dir = StateDir(root, container_id)
    state_dir.claim()
    mgr = None
    cgroup_owned = False
    init_pid = 0
    try:
        mgr = _open_cgroup(container_id, linux_cfg, systemd_cgroup)
        # a cgroup we find is not ours to empty or remove; on a v1 host it may be there in some hierarchies
        # only, and the directories we make in the others are ours
        found = mgr.existing_dirs() if mgr is not None else []
        if found and os.geteuid() != 0 and not _may_join(found):
            # someone else's cgroup of the same name (a root container with our id): never joined, not checked
            _go_without_cgroup(linux_cfg, f"{found[0]}: cgroup.procs is not writable")
            mgr, found = None, []
        cgroup_owned = mgr is not None and not found
        if mgr is not None and not cgroup_owned:
            _check_found_cgroup(mgr, linux_cfg.get("cgroupsPath") or container_id)
        # Recorded before anything is made, so that `delete --force` can clean up after a create that was
        # killed at any point (its status reads "stopped": pid 0).
        first = {"id": container_id, "ociVersion": config.get("ociVersion", ""), "pid": 0, "bundle": bundle.path,
                 "cgroup": mgr.to_state() if mgr is not None else None, "cgroup_owned": cgroup_owned}
        state_dir.save(first)
        if mgr is not None and not _setup_cgroup(mgr, linux_cfg):
            mgr = None  # rootless without a cgroup we may write: none, as runc does
            state_dir.save(dict(first, cgroup=None))
        os.mkfifo(state_dir.fifo, 0o622)
        os.chmod(state_dir.fifo, 0o622)  # not cut by the umask: init may be another uid (user namespaces)
        spec = launch.LaunchSpec(container_id, bundle, state_dir, mgr, console_sock, no_pivot,
                                 no_new_keyring, preserve_fds, extra_env or {}, seccomp)
        init_pid = launch.spawn_init(spec)
        logger.debug(f"create {container_id}: init is pid {init_pid}, waiting on {state_dir.fifo}")
        info = proc_start_time(init_pid)
        state = {
            "id": container_id, "ociVersion": config.get("ociVersion", ""), "pid": init_pid,
            "pid_start": info[0] if info else 0, "bundle": bundle.path, "rootfs": bundle.rootfs,
            "created": rfc3339(), "owner": "", "annotations": config.get("annotations") or {},
            "hooks": {k: v for k, v in (config.get("hooks") or {}).items()
                      if k in ("prestart", "poststart", "poststop")},
            "cgroup": mgr.to_state() if mgr is not None else None, "cgroup_owned": cgroup_owned,
            "own_pidns": bundle.ns.creates("pid"), "config": _config_for_exec(config),
            "resources": linux_cfg.get("resources") or {},
        }
        state_dir.save(state)
        if pid_file:
            write_pid_file(pid_file, init_pid)
        return Container(state_dir, state)
    except BaseException:
        if init_pid:
            try:
                os.kill(init_pid, SIGKILL)
            except ProcessLookupError:
                pass
            wait_gone(init_pid, None, 5.0)
        if mgr is not None:
            try:
                mgr.destroy(keep=frozenset(found))
            except OSError:
                pass
        state_dir.remove()
        raise


def _config_for_exec(config: dict) -> dict:
    """What `exec` needs later, kept so that later edits of config.json do not affect the container."""
    linux_cfg = config.get("linux") or {}
    keep = {k: linux_cfg[k] for k in ("namespaces", "seccomp", "uidMappings", "gidMappings") if k in linux_cfg}
    process = config.get("process") or {}
    return {"linux": keep, "process": {k: v for k, v in process.items() if k != "args"}}


def _open_cgroup(container_id: str, linux_cfg: dict, systemd: bool):
    try:
        from oci_runtime.cgroups import open_manager
    except ImportError:
        return None
    # PYRUNC_CGROUP2_MOUNT puts containers on that cgroup2 mount even on a v1/hybrid host (e.g.
    # /sys/fs/cgroup/unified): how the v2 code runs here, and a choice for hybrid hosts.
    v2_mount = os.environ.get("PYRUNC_CGROUP2_MOUNT") or None
    return open_manager(linux_cfg.get("cgroupsPath"), container_id, systemd=systemd, v2_mountpoint=v2_mount)


def _check_found_cgroup(mgr, where: str) -> None:
    """A cgroup that exists before we make it: joinable unless frozen (init would join it and stop there,
    and create would never return; runc refuses it too), and shared with its processes (runc warns)."""
    try:
        frozen = mgr.frozen()
    except OSError:
        frozen = False
    if frozen:
        raise RuntimeFailure(f"container's cgroup unexpectedly frozen: {where}")
    try:
        already = mgr.pids()
    except OSError:
        already = []
    if already:  # someone else's processes share the limits (and a kill --all)
        logger.warning(f"container's cgroup is not empty: {len(already)} process(es) already in it")


def _setup_cgroup(mgr, linux_cfg: dict) -> bool:
    """Make the cgroup and set its limits; False when an unprivileged user may not make one and asked for
    neither limits nor a cgroupsPath (runc's rootless rule: such a container runs in its caller's cgroup)."""
    try:
        mgr.create()
    except OSError as e:
        if os.geteuid() == 0 or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        _go_without_cgroup(linux_cfg, str(e))
        return False
    mgr.set(linux_cfg.get("resources") or {})
    return True


def _go_without_cgroup(linux_cfg: dict, why: str) -> None:
    """An unprivileged runtime denied its cgroup: runs without one, unless the config asked for it by path or
    for limits (runc's rootless rule); `why` names the denial."""
    if linux_cfg.get("cgroupsPath"):  # a path asked for by name is not skipped quietly
        raise RuntimeFailure(f"rootless container: unable to apply cgroup configuration: {why}")
    if _limits_asked(linux_cfg.get("resources") or {}):
        raise RuntimeFailure("rootless container: rootless needs no limits + no cgrouppath when no permission "
                             f"is granted for cgroups: {why}")


def _may_join(dirs: list[str]) -> bool:
    return all(os.access(os.path.join(d, "cgroup.procs"), os.W_OK) for d in dirs)


def _limits_asked(resources: dict) -> bool:
    """Whether resources ask for anything a cgroup would have to enforce (device rules alone do not:
    without a cgroup the kernel's own rules for an unprivileged user apply)."""
    return any(value for key, value in resources.items() if key != "devices")
