"""cgroup v2 manager: one directory in the unified hierarchy.

The OCI resources are written in v1 terms, so some are converted as runc converts them (cpu shares
to cpu.weight, memory+swap to swap alone, blkio weight to io.weight). Devices are an eBPF program.
Fields v2 has no knob for and that runc ignores there (swappiness, disableOOMKiller, kernel memory,
network, blkio leaf weights) are ignored; realtime CPU settings are refused, as ignoring a
scheduling guarantee would be worse.

The manager can be pointed at any cgroup2 mount (`mountpoint`), e.g. the hybrid-mode
/sys/fs/cgroup/unified for tests.
"""

from __future__ import annotations

import errno
import math
import os
import posixpath

from oci_runtime.cgroups import paths
from oci_runtime.cgroups.fileio import (CgroupError, Transaction, describe_errno, read_file, read_file_or_none, read_key_values,
                     read_uint, write_file)
from oci_runtime.cgroups.tree import (SIGKILL, move_pid, move_pid_below, pids_in_tree, remove_tree, signal_frozen,
                                      signal_pids, wait_for)

FREEZE_TIMEOUT = 10.0


def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2..262144] (default 1024) to v2 cpu.weight [1..10000] (default 100):
    runc's current mapping, a quadratic in log2(shares) that keeps the ends and the default."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    l = math.log2(shares)
    return math.ceil(10 ** ((l * l + 125 * l) / 612.0 - 7.0 / 34.0))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio weight [10..1000] to io.weight [1..10000], linearly (runc)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def memory_swap_to_v2(swap: int, memory: int) -> int:
    """OCI swap is memory+swap; memory.swap.max is swap alone. Returns -1 for "max", 0 for "unset"."""
    if memory == -1 and swap == 0:
        return -1   # unlimited memory and no swap value: unlimited swap too, as on v1
    if swap in (-1, 0):
        return swap
    if memory == -1:
        return swap
    if memory == 0:
        raise CgroupError("cgroup: cannot set memory.swap without a memory limit on cgroup v2")
    if swap < memory:
        raise CgroupError(f"cgroup: memory+swap limit {swap} must be >= memory limit {memory}")
    return swap - memory


def _limit_str(value: int) -> str:
    return "max" if value == -1 else str(value)


class V2Manager:
    version = 2

    def __init__(self, path: str, *, mountpoint: str = paths.CGROUP_ROOT, inner: str | None = None):
        path = posixpath.normpath(path)
        mountpoint = posixpath.normpath(mountpoint)
        if path == mountpoint or not path.startswith(mountpoint + "/"):
            raise CgroupError(f"cgroup: {path} is not a cgroup below the cgroup2 mount {mountpoint}")
        self.path = path
        self.mountpoint = mountpoint
        self.inner = inner if inner is not None else "/" + posixpath.relpath(path, mountpoint)

    @classmethod
    def open(cls, cgroups_path: str | None, container_id: str, *,
             mountpoint: str = paths.CGROUP_ROOT) -> "V2Manager":
        inner = paths.inner_path(cgroups_path, container_id)
        own = paths.own_cgroups() if not inner.startswith("/") else {}
        return cls(paths.v2_directory(mountpoint, inner, own), mountpoint=mountpoint, inner=inner)

    def to_state(self) -> dict:
        return {"version": 2, "path": self.inner, "dir": self.path, "mountpoint": self.mountpoint}

    @classmethod
    def from_state(cls, state: dict) -> "V2Manager":
        return cls(state["dir"], mountpoint=state["mountpoint"], inner=state["path"])

    # --- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        """Make the directory and every missing parent, enabling in each ancestor's subtree_control
        all the controllers it has, so they reach the container (runc does the same). A failure
        removes the directories this call made."""
        made = []
        try:
            current = self.mountpoint
            for part in posixpath.relpath(self.path, self.mountpoint).split("/"):
                _enable_all_controllers(current)
                current = posixpath.join(current, part)
                try:
                    os.mkdir(current, 0o755)
                    made.append(current)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise CgroupError(f"cgroup: creating {current}: {describe_errno(exc.errno)}",
                                      errno_value=exc.errno) from None
        except CgroupError:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise

    def apply(self, pid: int) -> None:
        move_pid(self.path, pid)

    def join_self(self) -> None:
        """cgroup2 has no per-thread shortcut: apply_rest() moves the process."""

    def apply_rest(self, pid: int) -> None:
        move_pid(self.path, pid)

    def apply_sub(self, pid: int, subs: dict) -> None:
        """exec --cgroup: cgroup2 has one hierarchy, so only a path (no controller) means anything."""
        if any(k is not None for k in subs):
            raise CgroupError("cgroup: --cgroup CONTROLLER:PATH needs cgroup v1; give a path only on cgroup v2")
        move_pid_below(self.path, subs.get(None, ""), pid)

    def destroy(self, keep: frozenset = frozenset()) -> None:
        if self.path not in keep:
            remove_tree(self.path)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def existing_dirs(self) -> list[str]:
        return [self.path] if self.exists() else []

    def controllers(self) -> set[str]:
        return set((read_file_or_none(self.path, "cgroup.controllers") or "").split())

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
        if r.cpu_rt_runtime or r.cpu_rt_period:
            raise CgroupError("cgroup: cpu.realtimeRuntime/realtimePeriod cannot be set: cgroup v2 has no "
                              "realtime CPU bandwidth control")
        tx = Transaction()
        try:
            self._set_pids(r, tx)
            self._set_memory(r, tx)
            self._set_io(r, tx)
            self._set_cpu(r, tx)
            self._set_cpuset(r, tx)
            self._set_hugetlb(r, tx)
            if r.rdma:
                from oci_runtime.cgroups.v1 import write_rdma
                self._require("rdma", "rdma limits")
                write_rdma(tx, self.path, r.rdma)
            self._set_unified(r, tx)
            # Last: the kernel cannot give back the old program's rules, so nothing may fail after it.
            if not update or r.devices:
                from oci_runtime.cgroups.devices import DEFAULT_DEVICE_RULES
                self._set_devices((r.devices or []) + list(DEFAULT_DEVICE_RULES))
        except CgroupError:
            tx.rollback()
            raise

    def _require(self, controller: str, what: str) -> None:
        if controller not in self.controllers():
            raise CgroupError(f"cgroup: cannot set {what}: the {controller} controller is not enabled for "
                              f"{self.path} (not in its cgroup.controllers)")

    def _set_pids(self, r: Resources, tx: Transaction) -> None:
        if r.pids_limit:
            self._require("pids", "pids.limit")
            tx.write(self.path, "pids.max", "max" if r.pids_limit < 0 else str(r.pids_limit))

    def _set_memory(self, r: Resources, tx: Transaction) -> None:
        limit, swap, reservation = r.memory_limit or 0, r.memory_swap or 0, r.memory_reservation or 0
        if not (limit or swap or reservation):
            return
        self._require("memory", "memory limits")
        d = self.path
        if r.check_before_update:
            usage = read_uint(d, "memory.current", default=0)
            if swap > 0 and swap <= usage:
                raise CgroupError(f"cgroup: rejecting memory+swap limit {swap} <= usage {usage} ({d}/memory.current)")
            if limit > 0 and limit <= usage:
                raise CgroupError(f"cgroup: rejecting memory limit {limit} <= usage {usage} ({d}/memory.current)")
        memory_for_swap = limit
        if swap and not limit:
            # An update that changes only memory+swap: take the memory limit already in place.
            current = read_file(d, "memory.max").strip()
            memory_for_swap = -1 if current == "max" else int(current)
        swap_only = memory_swap_to_v2(swap, memory_for_swap)
        if swap_only != 0 or swap > 0:
            value = _limit_str(swap_only)
            try:
                tx.write(d, "memory.swap.max", value)
            except CgroupError as exc:
                # No swap accounting: "no swap" and "unlimited swap" are already true.
                if not (exc.errno == errno.ENOENT and value in ("max", "0")):
                    raise
        if limit:
            tx.write(d, "memory.max", _limit_str(limit))
        if reservation:
            tx.write(d, "memory.low", _limit_str(reservation))

    def _set_io(self, r: Resources, tx: Transaction) -> None:
        wants = r.blkio_weight or any(wd.weight for wd in r.blkio_weight_devices) or \
            any(devs for _f, _k, devs in r.throttles())
        if not wants:
            return
        self._require("io", "blockIO limits")
        d = self.path
        bfq = read_file_or_none(d, "io.bfq.weight")
        if r.blkio_weight:
            if bfq is not None:
                tx.write(d, "io.bfq.weight", str(r.blkio_weight), undo=_default_weight(bfq))
            else:
                old = read_file(d, "io.weight")
                tx.write(d, "io.weight", str(blkio_weight_to_io_weight(r.blkio_weight)), undo=_default_weight(old))
        for wd in r.blkio_weight_devices:
            if not wd.weight:
                continue
            dev = f"{wd.major}:{wd.minor}"
            # io.bfq.weight takes per-device lines since Linux 5.4 (it then reads back "default N").
            if bfq is not None and bfq.startswith("default"):
                old = _keyed(bfq).get(dev, "default")
                tx.write(d, "io.bfq.weight", f"{dev} {wd.weight}", undo=f"{dev} {old}")
            elif os.path.exists(os.path.join(d, "io.weight")):
                old = _keyed(read_file(d, "io.weight")).get(dev, "default")
                tx.write(d, "io.weight", f"{dev} {blkio_weight_to_io_weight(wd.weight)}", undo=f"{dev} {old}")
            else:
                raise CgroupError(f"cgroup: cannot set blockIO.weightDevice for {dev}: {d} has neither "
                                  "io.bfq.weight nor io.weight")
        for _v1_name, key, devices in r.throttles():
            for td in devices:
                dev = f"{td.major}:{td.minor}"
                fields = dict(item.split("=", 1) for item in _keyed_fields(read_file(d, "io.max")).get(dev, []))
                tx.write(d, "io.max", f"{dev} {key}={td.rate or 'max'}", undo=f"{dev} {key}={fields.get(key, 'max')}")

    def _set_cpu(self, r: Resources, tx: Transaction) -> None:
        wants = r.cpu_shares or r.cpu_quota or r.cpu_period or r.cpu_burst is not None or r.cpu_idle is not None
        if not wants:
            return
        self._require("cpu", "cpu limits")
        d = self.path
        if r.cpu_idle is not None:
            tx.write(d, "cpu.idle", str(r.cpu_idle))
        if r.cpu_shares:
            tx.write(d, "cpu.weight", str(cpu_shares_to_weight(r.cpu_shares)))
        burst_later = None
        if r.cpu_burst is not None:
            try:
                tx.write(d, "cpu.max.burst", str(r.cpu_burst))
            except CgroupError as exc:
                # A bigger burst can be refused until the new quota is in place.
                if exc.errno != errno.EINVAL or not r.cpu_quota:
                    raise
                burst_later = str(r.cpu_burst)
        if r.cpu_quota or r.cpu_period:
            # cpu.max holds both; keep whichever one this request leaves out.
            current = read_file(d, "cpu.max").split()
            quota = current[0] if r.cpu_quota == 0 or r.cpu_quota is None else \
                ("max" if r.cpu_quota < 0 else str(r.cpu_quota))
            period = str(r.cpu_period) if r.cpu_period else (current[1] if len(current) > 1 else "100000")
            tx.write(d, "cpu.max", f"{quota} {period}", undo=" ".join(current))
            if burst_later is not None:
                tx.write(d, "cpu.max.burst", burst_later)

    def _set_cpuset(self, r: Resources, tx: Transaction) -> None:
        if r.cpuset_cpus or r.cpuset_mems:
            self._require("cpuset", "cpu.cpus/cpu.mems")
        if r.cpuset_cpus:
            tx.write(self.path, "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems:
            tx.write(self.path, "cpuset.mems", r.cpuset_mems)

    def _set_hugetlb(self, r: Resources, tx: Transaction) -> None:
        if not r.hugepage_limits:
            return
        self._require("hugetlb", "hugepageLimits")
        for size, limit in r.hugepage_limits:
            name = f"hugetlb.{size}.max"
            if not os.path.exists(os.path.join(self.path, name)):
                raise CgroupError(f"cgroup: cannot set hugepage limit for page size {size}: "
                                  f"this kernel has no {self.path}/{name}")
            tx.write(self.path, name, str(limit))
            if os.path.exists(os.path.join(self.path, f"hugetlb.{size}.rsvd.max")):
                tx.write(self.path, f"hugetlb.{size}.rsvd.max", str(limit))

    def _set_unified(self, r: Resources, tx: Transaction) -> None:
        for key, value in r.unified.items():
            target = os.path.join(self.path, key)
            if not os.path.exists(target):
                controller = key.partition(".")[0]
                if controller not in ("cgroup",) and controller not in self.controllers():
                    raise CgroupError(f'cgroup: unified resource "{key}" can\'t be set: controller '
                                      f'"{controller}" not available in {self.path}/cgroup.controllers')
                raise CgroupError(f'cgroup: unified resource "{key}": no such file {target}')
            # Multi-line values are one kernel write per line (e.g. several io.max devices).
            for line in value.splitlines() or [""]:
                tx.write(self.path, key, line)

    def _set_devices(self, rules) -> None:
        from oci_runtime.cgroups.bpf import set_device_filter
        from oci_runtime.cgroups.devices import DeviceState
        set_device_filter(self.path, DeviceState.from_rules(rules))

    # --- processes -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return pids_in_tree(self.path)

    def _events_frozen(self) -> bool:
        for line in (read_file_or_none(self.path, "cgroup.events") or "").splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
        return False

    def freeze(self) -> None:
        if not os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            raise CgroupError(f"cgroup: cannot pause: {self.path}/cgroup.freeze is missing (kernel < 5.2?)")
        write_file(self.path, "cgroup.freeze", "1")
        if not wait_for(self._events_frozen, timeout=FREEZE_TIMEOUT):
            write_file(self.path, "cgroup.freeze", "0")
            raise CgroupError(f"cgroup: {self.path} did not reach frozen state (cgroup.events) "
                              f"within {FREEZE_TIMEOUT:g}s; thawed it again")

    def thaw(self) -> None:
        if not os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            return
        write_file(self.path, "cgroup.freeze", "0")
        wait_for(lambda: not self._events_frozen(), timeout=FREEZE_TIMEOUT)

    def frozen(self) -> bool:
        return (read_file_or_none(self.path, "cgroup.freeze") or "0").strip() == "1" and self._events_frozen()

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            write_file(self.path, "cgroup.kill", "1")
            return
        if not os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            signal_pids(self.pids(), sig)
            return
        signal_frozen(self, sig, thaw_to_kill=False)

    # --- reporting -------------------------------------------------------------------------------

    def stats(self) -> dict:
        from oci_runtime.cgroups.stats import v2_stats
        return v2_stats(self.path)

    def mounts_for_container(self) -> list[tuple[str, str]]:
        """On v2 the container's /sys/fs/cgroup is its own directory: one bind, at the root ("")."""
        return [(self.path, "")]

    def memory_events(self) -> dict[str, int]:
        return read_key_values(self.path, "memory.events")


def _enable_all_controllers(directory: str) -> None:
    available = (read_file_or_none(directory, "cgroup.controllers") or "").split()
    enabled = set((read_file_or_none(directory, "cgroup.subtree_control") or "").split())
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        write_file(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
    except CgroupError:
        # One by one, so a controller that cannot be enabled here (a cgroup with processes of its
        # own, a threaded subtree) does not keep the others away. Whatever is still missing shows
        # up later as a clear "controller not enabled" error if the container asks for it.
        for c in missing:
            try:
                write_file(directory, "cgroup.subtree_control", "+" + c)
            except CgroupError:
                pass


def _keyed(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def _keyed_fields(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = parts[1:]
    return out


def _default_weight(text: str) -> str:
    """The default weight from io.weight / io.bfq.weight ("default 100" or a bare "100")."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "default":
            return parts[1]
        if len(parts) == 1:
            return parts[0]
    return "100"
