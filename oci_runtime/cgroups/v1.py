"""cgroup v1 (and hybrid) manager: one directory per mounted hierarchy.

Controllers are written in runc's order (cpuset, devices, memory, cpu, pids, blkio, hugetlb,
net_cls, net_prio, rdma). In hybrid mode the container also joins the cgroup2 hierarchy, as runc
does, which gives `kill_all` a cgroup.kill to use.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

from oci_runtime.cgroups import paths
from oci_runtime.cgroups.fileio import CgroupError, Transaction, describe_errno, read_file, read_file_or_none, read_uint, write_file
from oci_runtime.cgroups.tree import (SIGKILL, move_pid, move_pid_below, pids_in_tree, remove_tree, signal_frozen,
                                      signal_pids)

UNIFIED = ""   # the subsystem key of the cgroup2 hierarchy in hybrid mode


class Hierarchy:
    """A mounted v1 hierarchy and the container's directory in it."""

    __slots__ = ("mountpoint", "subsystems", "path")

    def __init__(self, mountpoint: str, subsystems: tuple[str, ...], path: str):
        self.mountpoint = mountpoint    # e.g. /sys/fs/cgroup/cpu,cpuacct
        self.subsystems = subsystems    # e.g. ("cpu", "cpuacct"), ("name=systemd",), ("",) for cgroup2
        self.path = path

    @property
    def name(self) -> str:
        return posixpath.basename(self.mountpoint)


class V1Manager:
    version = 1

    def __init__(self, inner: str, hierarchies: list[Hierarchy]):
        self.inner = inner
        self.hierarchies = hierarchies
        self._dirs = {s: h.path for h in hierarchies for s in h.subsystems}
        if "devices" not in self._dirs:
            # Without it there is no device isolation at all; runc refuses too.
            raise CgroupError("cgroup: the devices controller is not mounted; refusing to run a container "
                              "without device access control")

    @classmethod
    def open(cls, cgroups_path: str | None, container_id: str, *, root: str = paths.CGROUP_ROOT) -> "V1Manager":
        inner = paths.inner_path(cgroups_path, container_id)
        mounts = paths.cgroup_mounts()
        own = paths.own_cgroups() if not inner.startswith("/") else {}
        hierarchies = [Hierarchy(m.mountpoint, m.subsystems, paths.v1_directory(m, inner, own))
                       for m in paths.v1_hierarchies(mounts, root)]
        unified = [m for m in mounts if m.fstype == "cgroup2" and posixpath.dirname(m.mountpoint) == root]
        if unified:
            m = unified[0]
            if inner.startswith("/"):
                path = posixpath.join(m.mountpoint, inner.lstrip("/"))
            else:
                path = paths.dir_in_mount(m, posixpath.join(own.get("", "/"), inner))
            hierarchies.append(Hierarchy(m.mountpoint, (UNIFIED,), path))
        return cls(inner, hierarchies)

    # --- state -------------------------------------------------------------------------------

    def to_state(self) -> dict:
        return {"version": 1, "path": self.inner,
                "hierarchies": [{"mountpoint": h.mountpoint, "subsystems": list(h.subsystems), "path": h.path}
                                for h in self.hierarchies]}

    @classmethod
    def from_state(cls, state: dict) -> "V1Manager":
        return cls(state["path"], [Hierarchy(h["mountpoint"], tuple(h["subsystems"]), h["path"])
                                   for h in state["hierarchies"]])

    def path(self, subsystem: str) -> str | None:
        """The container's directory for a controller (e.g. "memory"), or None if not mounted."""
        return self._dirs.get(subsystem)

    def _need(self, subsystem: str, what: str) -> str:
        path = self._dirs.get(subsystem)
        if path is None:
            raise CgroupError(f"cgroup: cannot set {what}: the {subsystem} controller is not mounted on this host")
        return path

    # --- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        for h in self.hierarchies:
            if "cpuset" in h.subsystems:
                self._create_cpuset(h)
            else:
                _mkdirs(h.path)

    def _create_cpuset(self, h: Hierarchy) -> None:
        # A new cpuset cgroup starts with no CPUs and no memory nodes, and refuses tasks until
        # both are set, so each level we pass through inherits its parent's.
        rel = posixpath.relpath(h.path, h.mountpoint)
        current = h.mountpoint
        for part in ([] if rel == "." else rel.split("/")):
            parent, current = current, posixpath.join(current, part)
            _mkdirs(current)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read_file(current, name).strip():
                    write_file(current, name, read_file(parent, name).strip())

    def apply(self, pid: int) -> None:
        for h in self.hierarchies:
            move_pid(h.path, pid)

    def join_self(self) -> None:
        """Move the calling (single-threaded) process into the v1 hierarchies by writing "0" to `tasks`:
        moving one thread that is the caller skips the kernel's threadgroup lock, and with it an RCU grace
        period (~10 ms) that a cgroup.procs write waits for. The hybrid host's cgroup2 is left to
        apply_rest()."""
        for h in self.hierarchies:
            if h.subsystems != (UNIFIED,):
                write_file(h.path, "tasks", "0")

    def apply_sub(self, pid: int, subs: dict) -> None:
        """Place pid in sub-cgroups of the container's (exec --cgroup): subs maps a controller, or None for
        every hierarchy not named, to a path below the container's cgroup ("" is the container's own)."""
        known = {s for s in self._dirs if s != UNIFIED}
        unknown = sorted(k for k in subs if k is not None and k not in known)
        if unknown:
            raise CgroupError(f"cgroup: unknown controller {unknown[0]}")
        for h in self.hierarchies:
            sub = next((subs[s] for s in h.subsystems if s in subs), subs.get(None, ""))
            move_pid_below(h.path, sub, pid)

    def apply_rest(self, pid: int) -> None:
        """What join_self() leaves: the cgroup2 hierarchy of a hybrid host."""
        for h in self.hierarchies:
            if h.subsystems == (UNIFIED,):
                move_pid(h.path, pid)

    def destroy(self, keep: frozenset = frozenset()) -> None:
        """Remove the container's directories, but those in `keep` (ones it found made: not ours)."""
        errors = []
        for h in self.hierarchies:
            if h.path in keep:
                continue
            try:
                remove_tree(h.path)
            except CgroupError as exc:
                errors.append(str(exc))
        if errors:
            raise CgroupError("; ".join(errors))

    def exists(self) -> bool:
        """Whether any of the container's cgroup directories is there already."""
        return bool(self.existing_dirs())

    def existing_dirs(self) -> list[str]:
        """The container's cgroup directories that are there already (one hierarchy may have it, not another)."""
        return [h.path for h in self.hierarchies if os.path.isdir(h.path)]

    # --- resources ---------------------------------------------------------------------------
    # resources.py and devices.py are imported here, where limits are written: the commands that only
    # read, signal or remove a cgroup (state, kill, exec, delete, pause) skip them.

    def set(self, resources: dict | None) -> None:
        from oci_runtime.cgroups.resources import parse_resources
        self._write(parse_resources(resources), update=False)

    def update(self, resources: dict | None) -> None:
        from oci_runtime.cgroups.resources import parse_resources
        self._write(parse_resources(resources), update=True)

    def _write(self, r: Resources, *, update: bool) -> None:
        if r.unified:
            raise CgroupError("invalid configuration: linux.resources.unified is set, but this host uses cgroup v1 "
                              f"(unified keys {sorted(r.unified)} need cgroup v2)")
        tx = Transaction()
        try:
            self._set_cpuset(r, tx)
            if not update or r.devices:
                from oci_runtime.cgroups.devices import DEFAULT_DEVICE_RULES
                self._set_devices((r.devices or []) + list(DEFAULT_DEVICE_RULES), tx)
            self._set_memory(r, tx)
            self._set_cpu(r, tx)
            self._set_pids(r, tx)
            self._set_blkio(r, tx)
            self._set_hugetlb(r, tx)
            self._set_network(r, tx)
            self._set_rdma(r, tx)
        except CgroupError:
            tx.rollback()
            raise

    def _set_cpuset(self, r: Resources, tx: Transaction) -> None:
        if r.cpuset_cpus:
            tx.write(self._need("cpuset", "cpu.cpus"), "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems:
            tx.write(self._need("cpuset", "cpu.mems"), "cpuset.mems", r.cpuset_mems)

    def _set_devices(self, rules, tx: Transaction) -> None:
        from oci_runtime.cgroups.devices import DeviceState
        d = self._dirs["devices"]
        current = DeviceState.from_devices_list(read_file(d, "devices.list"))
        target = DeviceState.from_rules(rules)
        # Undo = the way back, registered before writing so a half-done change is undone too.
        for rule in reversed(current.transition_from(target)):
            tx.remember(d, "devices.allow" if rule.allow else "devices.deny", rule.cgroup_string())
        for rule in target.transition_from(current):
            write_file(d, "devices.allow" if rule.allow else "devices.deny", rule.cgroup_string())
        if not target.default_allow:
            now = DeviceState.from_devices_list(read_file(d, "devices.list"))
            if now != target:
                raise CgroupError(f"cgroup: {d}/devices.list does not match the requested device rules "
                                  f"after applying them (have {now}, want {target})")

    def _set_memory(self, r: Resources, tx: Transaction) -> None:
        limit, swap = r.memory_limit or 0, r.memory_swap or 0
        wants = limit or swap or r.memory_reservation or r.memory_swappiness is not None \
            or r.disable_oom_killer or r.kernel_memory_tcp
        if not wants:
            return
        d = self._need("memory", "memory limits")
        has_memsw = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap == 0 and has_memsw:
            swap = -1   # "unlimited memory" means unlimited memory+swap too, as in runc
        if r.check_before_update:
            _check_usage(d, "memory.usage_in_bytes", limit, "memory limit")
            if has_memsw:
                _check_usage(d, "memory.memsw.usage_in_bytes", swap, "memory+swap limit")
        if swap and not has_memsw:
            raise CgroupError(f"cgroup: cannot set memory.swap={swap}: swap accounting is not enabled in this "
                              f"kernel ({d}/memory.memsw.limit_in_bytes is missing)")
        if limit and swap:
            current = read_uint(d, "memory.limit_in_bytes")
            # The kernel insists memory <= memory+swap at every step, so the order depends on
            # whether the limits go up or down.
            if swap == -1 or current < swap:
                tx.write(d, "memory.memsw.limit_in_bytes", str(swap))
                _write_memory_limit(tx, d, limit)
                swap = 0
            else:
                _write_memory_limit(tx, d, limit)
                limit = 0
        if limit:
            _write_memory_limit(tx, d, limit)
        if swap:
            tx.write(d, "memory.memsw.limit_in_bytes", str(swap))
        if r.memory_reservation:
            tx.write(d, "memory.soft_limit_in_bytes", str(r.memory_reservation))
        # memory.kmem.limit_in_bytes is a no-op since Linux 5.16 (and gone later): kernel is ignored.
        if r.kernel_memory_tcp and os.path.exists(os.path.join(d, "memory.kmem.tcp.limit_in_bytes")):
            tx.write(d, "memory.kmem.tcp.limit_in_bytes", str(r.kernel_memory_tcp))
        if r.disable_oom_killer:
            was = "1" if "oom_kill_disable 1" in read_file(d, "memory.oom_control") else "0"
            tx.write(d, "memory.oom_control", "1", undo=was)
        if r.memory_swappiness is not None:
            tx.write(d, "memory.swappiness", str(r.memory_swappiness))

    def _set_cpu(self, r: Resources, tx: Transaction) -> None:
        wants = r.cpu_shares or r.cpu_quota or r.cpu_period or r.cpu_burst is not None \
            or r.cpu_idle is not None or r.cpu_rt_period or r.cpu_rt_runtime
        if not wants:
            return
        d = self._need("cpu", "cpu limits")
        if r.cpu_shares:
            tx.write(d, "cpu.shares", str(r.cpu_shares))
            got = read_uint(d, "cpu.shares")
            # The kernel clamps instead of refusing; report it as runc does.
            if got != r.cpu_shares:
                bound = "maximum" if r.cpu_shares > got else "minimum"
                raise CgroupError(f'cgroup: writing "{r.cpu_shares}" to {d}/cpu.shares: '
                                  f"the {bound} allowed cpu-shares is {got}")
        # Quota, period and burst are checked against each other (and the parent) at each write:
        # a write refused with EINVAL is retried after the quota is in place.
        pending = []
        if r.cpu_period:
            if not _try_write(tx, d, "cpu.cfs_period_us", str(r.cpu_period), retry_later=bool(r.cpu_quota)):
                pending.append(("cpu.cfs_period_us", str(r.cpu_period)))
        if r.cpu_burst is not None and os.path.exists(os.path.join(d, "cpu.cfs_burst_us")):
            if not _try_write(tx, d, "cpu.cfs_burst_us", str(r.cpu_burst), retry_later=bool(r.cpu_quota)):
                pending.append(("cpu.cfs_burst_us", str(r.cpu_burst)))
        if r.cpu_quota:
            tx.write(d, "cpu.cfs_quota_us", str(r.cpu_quota))
            for name, value in pending:
                tx.write(d, name, value)
        if r.cpu_idle is not None:
            tx.write(d, "cpu.idle", str(r.cpu_idle))
        self._set_rt(d, r, tx)

    def _set_rt(self, d: str, r: Resources, tx: Transaction) -> None:
        later = None
        if r.cpu_rt_period:
            if not _try_write(tx, d, "cpu.rt_period_us", str(r.cpu_rt_period), retry_later=bool(r.cpu_rt_runtime)):
                later = str(r.cpu_rt_period)
        if r.cpu_rt_runtime:
            tx.write(d, "cpu.rt_runtime_us", str(r.cpu_rt_runtime))
            if later:
                tx.write(d, "cpu.rt_period_us", later)

    def _set_pids(self, r: Resources, tx: Transaction) -> None:
        if r.pids_limit:
            d = self._need("pids", "pids.limit")
            tx.write(d, "pids.max", "max" if r.pids_limit < 0 else str(r.pids_limit))

    def _set_blkio(self, r: Resources, tx: Transaction) -> None:
        wants = r.blkio_weight or r.blkio_leaf_weight or r.blkio_weight_devices or \
            any(devs for _f, _k, devs in r.throttles())
        if not wants:
            return
        d = self._need("blkio", "blockIO limits")
        # CFQ's files, or BFQ's when CFQ is gone (blk-mq kernels).
        if os.path.exists(os.path.join(d, "blkio.weight")):
            weight_file, weight_device_file = "blkio.weight", "blkio.weight_device"
        else:
            weight_file, weight_device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
        if r.blkio_weight:
            _write_existing(tx, d, weight_file, str(r.blkio_weight), "blockIO.weight")
        if r.blkio_leaf_weight:
            _write_existing(tx, d, "blkio.leaf_weight", str(r.blkio_leaf_weight), "blockIO.leafWeight")
        for wd in r.blkio_weight_devices:
            if wd.weight:
                _write_device_line(tx, d, weight_device_file, wd.major, wd.minor, str(wd.weight), "blockIO.weightDevice")
            if wd.leaf_weight:
                _write_device_line(tx, d, "blkio.leaf_weight_device", wd.major, wd.minor, str(wd.leaf_weight),
                                   "blockIO.weightDevice.leafWeight")
        for name, _key, devices in r.throttles():
            for td in devices:
                _write_device_line(tx, d, name, td.major, td.minor, str(td.rate), "blockIO throttle")

    def _set_hugetlb(self, r: Resources, tx: Transaction) -> None:
        if not r.hugepage_limits:
            return
        d = self._need("hugetlb", "hugepageLimits")
        for size, limit in r.hugepage_limits:
            _write_existing(tx, d, f"hugetlb.{size}.limit_in_bytes", str(limit), f"hugepage size {size}")
            if os.path.exists(os.path.join(d, f"hugetlb.{size}.rsvd.limit_in_bytes")):
                tx.write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", str(limit))

    def _set_network(self, r: Resources, tx: Transaction) -> None:
        if r.net_class_id:
            tx.write(self._need("net_cls", "network.classID"), "net_cls.classid", str(r.net_class_id))
        if r.net_priorities:
            d = self._need("net_prio", "network.priorities")
            current = _parse_pairs(read_file_or_none(d, "net_prio.ifpriomap") or "")
            for name, prio in r.net_priorities:
                tx.write(d, "net_prio.ifpriomap", f"{name} {prio}", undo=f"{name} {current.get(name, '0')}")

    def _set_rdma(self, r: Resources, tx: Transaction) -> None:
        if r.rdma:
            write_rdma(tx, self._need("rdma", "rdma limits"), r.rdma)

    # --- processes -----------------------------------------------------------------------------

    def _tree(self) -> str:
        return self._dirs.get("freezer") or self._dirs["devices"]

    def pids(self) -> list[int]:
        return pids_in_tree(self._tree())

    def freeze(self) -> None:
        d = self._need("freezer", "pause (freezer)")
        try:
            # FREEZING can stick while tasks keep forking; re-asserting FROZEN, with an occasional
            # thaw to let a busy cgroup settle, is what gets a v1 freezer there (runc does the same).
            for attempt in range(1000):
                if attempt % 50 == 49:
                    write_file(d, "freezer.state", "THAWED")
                    time.sleep(0.01)
                write_file(d, "freezer.state", "FROZEN")
                state = read_file(d, "freezer.state").strip()
                if state == "FROZEN":
                    return
                if state != "FREEZING":
                    raise CgroupError(f"cgroup: {d}/freezer.state is {state!r} while freezing")
            raise CgroupError(f"cgroup: {d}/freezer.state stayed FREEZING; could not freeze the container")
        except CgroupError:
            try:
                write_file(d, "freezer.state", "THAWED")
            except CgroupError:
                pass
            raise

    def thaw(self) -> None:
        write_file(self._need("freezer", "resume (freezer)"), "freezer.state", "THAWED")

    def frozen(self) -> bool:
        d = self._dirs.get("freezer")
        if d is None:
            return False
        state = (read_file_or_none(d, "freezer.state") or "").strip()
        if state != "FROZEN":
            return False
        # FROZEN because an ancestor is frozen does not make this container paused.
        self_freezing = read_file_or_none(d, "freezer.self_freezing")
        return self_freezing is None or self_freezing.strip() == "1"

    def kill_all(self, sig: int) -> None:
        unified = self._dirs.get(UNIFIED)
        if sig == SIGKILL and unified and os.path.exists(os.path.join(unified, "cgroup.kill")):
            # Hybrid hosts: the kernel kills the whole cgroup2 subtree at once, forks included.
            # The v1 pass below still runs for anything moved around in v1 hierarchies only.
            write_file(unified, "cgroup.kill", "1")
        if "freezer" not in self._dirs:
            signal_pids(self.pids(), sig)
            return
        signal_frozen(self, sig, thaw_to_kill=True)  # v1's freezer delivers a SIGKILL only once thawed

    # --- reporting -------------------------------------------------------------------------------

    def stats(self) -> dict:
        from oci_runtime.cgroups.stats import v1_stats
        return v1_stats(self._dirs)

    def mounts_for_container(self) -> list[tuple[str, str]]:
        """For the container's /sys/fs/cgroup on v1: (host dir, name) per hierarchy to bind-mount at
        /sys/fs/cgroup/<name>, then (target, name) pairs with a relative target for the symlinks
        (e.g. ("cpu,cpuacct", "cpu")): combined hierarchies get one per controller, like runc, plus
        any other symlinks the host's cgroup root has to a hierarchy."""
        binds, links = [], []
        names = set()
        for h in self.hierarchies:
            if h.subsystems == (UNIFIED,):
                continue
            binds.append((h.path, h.name))
            names.add(h.name)
        for h in self.hierarchies:
            if h.name in names and len(h.subsystems) > 1:
                for s in h.subsystems:
                    if s != h.name and not s.startswith("name=") and s not in names:
                        links.append((h.name, s))
        roots = {posixpath.dirname(h.mountpoint) for h in self.hierarchies}
        for root in roots:
            try:
                entries = os.listdir(root)
            except OSError:
                continue
            for entry in sorted(entries):
                full = os.path.join(root, entry)
                if os.path.islink(full):
                    target = os.readlink(full)
                    if target in names and (target, entry) not in links and entry not in names:
                        links.append((target, entry))
        return binds + links


# --- helpers ---------------------------------------------------------------------------------------

def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CgroupError(f"cgroup: creating {path}: {describe_errno(exc.errno)}", errno_value=exc.errno) from None


def _check_usage(d: str, usage_file: str, limit: int, what: str) -> None:
    if limit <= 0:
        return
    usage = read_uint(d, usage_file, default=0)
    if limit <= usage:
        raise CgroupError(f"cgroup: rejecting {what} {limit} <= usage {usage} ({d}/{usage_file})")


def _write_memory_limit(tx: Transaction, d: str, limit: int) -> None:
    try:
        tx.write(d, "memory.limit_in_bytes", str(limit))
    except CgroupError as exc:
        if exc.errno != errno.EBUSY:
            raise
        usage = read_uint(d, "memory.usage_in_bytes", default=0)
        peak = read_uint(d, "memory.max_usage_in_bytes", default=0)
        raise CgroupError(f'{exc}: unable to set memory limit to {limit} (current usage: {usage}, '
                          f"peak usage: {peak})", errno_value=exc.errno) from None


def _try_write(tx: Transaction, d: str, name: str, value: str, *, retry_later: bool) -> bool:
    """Write; if the kernel says EINVAL and a later write may make the value valid, report False."""
    try:
        tx.write(d, name, value)
        return True
    except CgroupError as exc:
        if exc.errno == errno.EINVAL and retry_later:
            return False
        raise


def _write_existing(tx: Transaction, d: str, name: str, value: str, what: str) -> None:
    if not os.path.exists(os.path.join(d, name)):
        raise CgroupError(f"cgroup: cannot set {what}={value}: this kernel has no {d}/{name}")
    tx.write(d, name, value)


def _parse_pairs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[-1]
    return out


def _write_device_line(tx: Transaction, d: str, name: str, major: int, minor: int, value: str, what: str) -> None:
    """Per-device files take "major:minor value"; undo writes the device's old value (0 = no rule)."""
    if not os.path.exists(os.path.join(d, name)):
        raise CgroupError(f"cgroup: cannot set {what} for {major}:{minor}: this kernel has no {d}/{name}")
    old = _parse_pairs(read_file(d, name)).get(f"{major}:{minor}", "0")
    tx.write(d, name, f"{major}:{minor} {value}", undo=f"{major}:{minor} {old}")


def write_rdma(tx: Transaction, d: str, limits: dict[str, tuple[int | None, int | None]]) -> None:
    """rdma.max lines: "<device> hca_handle=N hca_object=M" (v1 and v2 alike)."""
    current = {}
    for line in (read_file_or_none(d, "rdma.max") or "").splitlines():
        name, _, rest = line.partition(" ")
        current[name] = rest
    for name, (handles, objects) in limits.items():
        parts = []
        if handles is not None:
            parts.append(f"hca_handle={handles}")
        if objects is not None:
            parts.append(f"hca_object={objects}")
        if parts:
            tx.write(d, "rdma.max", f"{name} {' '.join(parts)}",
                     undo=f"{name} {current.get(name, 'hca_handle=max hca_object=max')}")
