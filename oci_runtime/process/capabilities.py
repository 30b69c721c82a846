"""Linux capabilities: names to numbers, and applying the five sets of process.capabilities."""

from __future__ import annotations

from oci_runtime import linux
from oci_runtime.errors import ConfigInvalid

CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def check(caps: dict | None) -> None:
    """Refuse unknown capability names before anything is created."""
    for set_name in SETS:
        for name in (caps or {}).get(set_name) or []:
            if name not in CAP_NUMBERS:
                raise ConfigInvalid(f"process.capabilities.{set_name}: unknown capability {name!r}")


def mask(names: list[str] | None, top: int) -> int:
    bits = 0
    for name in names or []:
        number = CAP_NUMBERS.get(name)
        if number is None:
            raise ConfigInvalid(f"unknown capability {name!r}")
        if number <= top:  # a capability newer than the kernel cannot be granted; runc skips it too
            bits |= 1 << number
    return bits


def drop_bounding(caps: dict | None) -> None:
    """Drop from the bounding set all that the config does not list (needs CAP_SETPCAP: do it before setuid)."""
    if caps is None:
        return
    top = last_cap()
    keep = mask(caps.get("bounding"), top)
    for number in range(top + 1):
        if not keep & (1 << number):
            linux.prctl(linux.PR_CAPBSET_DROP, number)


def apply(caps: dict | None) -> None:
    """Set effective/permitted/inheritable, then raise the ambient set (after the uid change)."""
    top = last_cap()
    caps = caps or {}
    linux.capset(mask(caps.get("effective"), top), mask(caps.get("permitted"), top),
                mask(caps.get("inheritable"), top))
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.get("ambient") or []:
        number = CAP_NUMBERS[name]
        if number <= top:
            try:
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, number)
            except OSError as e:
                # like runc: an ambient cap not also in permitted+inheritable is ignored, not fatal
                if e.errno != 1:
                    raise
