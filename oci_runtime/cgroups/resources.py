"""OCI `linux.resources` checked and flattened into one record, before anything is written.

Values keep the spec's meaning: None is "absent", and for the fields where runc treats 0 as
"leave unchanged" (docker's update sends zeros) the controllers skip zeros. A malformed value is
refused here with the JSON path of the field, so no cgroup file is touched for it.
"""

from __future__ import annotations

from oci_runtime.cgroups.devices import DeviceRule, parse_oci_rules
from oci_runtime.cgroups.fileio import CgroupError


class WeightDevice(tuple):
    """(major, minor, weight, leaf_weight); weights may be None."""

    __slots__ = ()

    def __new__(cls, major: int, minor: int, weight: int | None, leaf_weight: int | None) -> "WeightDevice":
        return tuple.__new__(cls, (major, minor, weight, leaf_weight))

    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])
    weight = property(lambda self: self[2])
    leaf_weight = property(lambda self: self[3])


class ThrottleDevice(tuple):
    """(major, minor, rate)."""

    __slots__ = ()

    def __new__(cls, major: int, minor: int, rate: int) -> "ThrottleDevice":
        return tuple.__new__(cls, (major, minor, rate))

    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])
    rate = property(lambda self: self[2])


class Resources:
    """linux.resources, flattened like runc's internal config. None means absent.

    A plain class (not a dataclass): it is built on every container start.
    """

    __slots__ = ("memory_limit", "memory_reservation", "memory_swap", "kernel_memory", "kernel_memory_tcp",
                 "memory_swappiness", "disable_oom_killer", "check_before_update",
                 "cpu_shares", "cpu_quota", "cpu_period", "cpu_burst", "cpu_rt_runtime", "cpu_rt_period",
                 "cpu_idle", "cpuset_cpus", "cpuset_mems", "pids_limit",
                 "blkio_weight", "blkio_leaf_weight", "blkio_weight_devices", "throttle_read_bps",
                 "throttle_write_bps", "throttle_read_iops", "throttle_write_iops", "hugepage_limits",
                 "net_class_id", "net_priorities", "rdma", "devices", "unified")

    def __init__(self) -> None:
        self.memory_limit: int | None = None
        self.memory_reservation: int | None = None
        self.memory_swap: int | None = None
        self.kernel_memory: int | None = None
        self.kernel_memory_tcp: int | None = None
        self.memory_swappiness: int | None = None
        self.disable_oom_killer: bool | None = None
        self.check_before_update = False
        self.cpu_shares: int | None = None
        self.cpu_quota: int | None = None
        self.cpu_period: int | None = None
        self.cpu_burst: int | None = None
        self.cpu_rt_runtime: int | None = None
        self.cpu_rt_period: int | None = None
        self.cpu_idle: int | None = None
        self.cpuset_cpus: str | None = None
        self.cpuset_mems: str | None = None
        self.pids_limit: int | None = None
        self.blkio_weight: int | None = None
        self.blkio_leaf_weight: int | None = None
        self.blkio_weight_devices: list[WeightDevice] = []
        self.throttle_read_bps: list[ThrottleDevice] = []
        self.throttle_write_bps: list[ThrottleDevice] = []
        self.throttle_read_iops: list[ThrottleDevice] = []
        self.throttle_write_iops: list[ThrottleDevice] = []
        self.hugepage_limits: list[tuple[str, int]] = []
        self.net_class_id: int | None = None
        self.net_priorities: list[tuple[str, int]] = []
        self.rdma: dict[str, tuple[int | None, int | None]] = {}
        self.devices: list[DeviceRule] | None = None   # None: the spec has no "devices" key
        self.unified: dict[str, str] = {}

    def throttles(self) -> list[tuple[str, str, list[ThrottleDevice]]]:
        """(v1 file, v2 io.max key, devices) for the four throttle lists."""
        return [("blkio.throttle.read_bps_device", "rbps", self.throttle_read_bps),
                ("blkio.throttle.write_bps_device", "wbps", self.throttle_write_bps),
                ("blkio.throttle.read_iops_device", "riops", self.throttle_read_iops),
                ("blkio.throttle.write_iops_device", "wiops", self.throttle_write_iops)]


def _fail(where: str, expected: str, value: object) -> CgroupError:
    return CgroupError(f"cgroup: linux.resources.{where}: expected {expected}, got {value!r}")


def _int(obj: dict, key: str, where: str, *, minimum: int | None = None) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{where}.{key}", "an integer", value)
    if minimum is not None and value < minimum:
        raise _fail(f"{where}.{key}", f"an integer >= {minimum}", value)
    return value


def _str(obj: dict, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where}.{key}", "a string", value)
    return value


def _bool(obj: dict, key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(f"{where}.{key}", "true or false", value)
    return value


def _obj(parent: dict, key: str, where: str) -> dict:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    return value


def _list(parent: dict, key: str, where: str) -> list:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "a list", value)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _fail(f"{where}[{i}]", "an object", item)
    return value


def _device_number(item: dict, key: str, where: str) -> int:
    value = _int(item, key, where, minimum=0)
    if value is None:
        raise _fail(f"{where}.{key}", "a device number", None)
    return value


def parse_resources(res: dict | None) -> Resources:
    if res is None:
        return Resources()
    if not isinstance(res, dict):
        raise CgroupError(f"cgroup: linux.resources: expected an object, got {res!r}")
    r = Resources()

    mem = _obj(res, "memory", "memory")
    r.memory_limit = _int(mem, "limit", "memory", minimum=-1)
    r.memory_reservation = _int(mem, "reservation", "memory", minimum=-1)
    r.memory_swap = _int(mem, "swap", "memory", minimum=-1)
    r.kernel_memory = _int(mem, "kernel", "memory", minimum=-1)
    r.kernel_memory_tcp = _int(mem, "kernelTCP", "memory", minimum=-1)
    swappiness = _int(mem, "swappiness", "memory", minimum=-1)
    if swappiness is not None and swappiness > 100:
        raise _fail("memory.swappiness", "a value between 0 and 100", swappiness)
    r.memory_swappiness = None if swappiness == -1 else swappiness
    r.disable_oom_killer = _bool(mem, "disableOOMKiller", "memory")
    r.check_before_update = bool(_bool(mem, "checkBeforeUpdate", "memory"))

    cpu = _obj(res, "cpu", "cpu")
    r.cpu_shares = _int(cpu, "shares", "cpu", minimum=0)
    r.cpu_quota = _int(cpu, "quota", "cpu", minimum=-1)
    r.cpu_period = _int(cpu, "period", "cpu", minimum=0)
    r.cpu_burst = _int(cpu, "burst", "cpu", minimum=0)
    r.cpu_rt_runtime = _int(cpu, "realtimeRuntime", "cpu", minimum=-1)
    r.cpu_rt_period = _int(cpu, "realtimePeriod", "cpu", minimum=0)
    r.cpu_idle = _int(cpu, "idle", "cpu")
    r.cpuset_cpus = _str(cpu, "cpus", "cpu")
    r.cpuset_mems = _str(cpu, "mems", "cpu")

    pids = _obj(res, "pids", "pids")
    r.pids_limit = _int(pids, "limit", "pids")

    bio = _obj(res, "blockIO", "blockIO")
    r.blkio_weight = _int(bio, "weight", "blockIO", minimum=0)
    r.blkio_leaf_weight = _int(bio, "leafWeight", "blockIO", minimum=0)
    for i, item in enumerate(_list(bio, "weightDevice", "blockIO.weightDevice")):
        where = f"blockIO.weightDevice[{i}]"
        r.blkio_weight_devices.append(WeightDevice(
            _device_number(item, "major", where), _device_number(item, "minor", where),
            _int(item, "weight", where, minimum=0), _int(item, "leafWeight", where, minimum=0)))
    for key, target in (("throttleReadBpsDevice", r.throttle_read_bps),
                        ("throttleWriteBpsDevice", r.throttle_write_bps),
                        ("throttleReadIOPSDevice", r.throttle_read_iops),
                        ("throttleWriteIOPSDevice", r.throttle_write_iops)):
        for i, item in enumerate(_list(bio, key, f"blockIO.{key}")):
            where = f"blockIO.{key}[{i}]"
            rate = _int(item, "rate", where, minimum=0)
            target.append(ThrottleDevice(_device_number(item, "major", where), _device_number(item, "minor", where),
                                         rate or 0))

    for i, item in enumerate(_list(res, "hugepageLimits", "hugepageLimits")):
        where = f"hugepageLimits[{i}]"
        size = item.get("pageSize", item.get("pagesize"))
        if not isinstance(size, str) or not size or "/" in size:
            raise _fail(f"{where}.pageSize", 'a page size such as "2MB"', size)
        limit = _int(item, "limit", where, minimum=0)
        r.hugepage_limits.append((size, limit or 0))

    net = _obj(res, "network", "network")
    r.net_class_id = _int(net, "classID", "network", minimum=0)
    for i, item in enumerate(_list(net, "priorities", "network.priorities")):
        where = f"network.priorities[{i}]"
        name = _str(item, "name", where)
        if not name:
            raise _fail(f"{where}.name", "an interface name", name)
        r.net_priorities.append((name, _int(item, "priority", where, minimum=0) or 0))

    rdma = _obj(res, "rdma", "rdma")
    for name, limits in rdma.items():
        if not isinstance(limits, dict):
            raise _fail(f"rdma.{name}", "an object", limits)
        r.rdma[name] = (_int(limits, "hcaHandles", f"rdma.{name}", minimum=0),
                        _int(limits, "hcaObjects", f"rdma.{name}", minimum=0))

    if "devices" in res and res["devices"] is not None:
        if not isinstance(res["devices"], list):
            raise _fail("devices", "a list", res["devices"])
        r.devices = parse_oci_rules(res["devices"])

    unified = _obj(res, "unified", "unified")
    for key, value in unified.items():
        if not isinstance(value, str):
            raise _fail(f"unified.{key}", "a string", value)
        if not key or "/" in key or key in (".", ".."):
            raise CgroupError(f'cgroup: linux.resources.unified: "{key}" must be a file name (no slashes)')
        r.unified[key] = value
    return r
