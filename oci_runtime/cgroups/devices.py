"""Device access rules: parsing OCI rules, runc's default allow list, and a model of the kernel's
v1 devices controller.

The v1 controller keeps a default (allow or deny) plus a table of exceptions; rules are applied in
order: a rule of type "a" resets the default and empties the table, any other rule adds an
exception (when it goes against the default) or removes one (when it agrees with it). Modelling
that lets v1 move a running cgroup to new rules with the fewest writes, never passing through
"allow everything", and gives v2's eBPF program exactly the v1 meaning.
"""

from __future__ import annotations

from oci_runtime.cgroups.fileio import CgroupError

WILDCARD = -1
_ACCESS_ORDER = "rwm"


class DeviceRule(tuple):
    """One device access rule: (allow, type, major, minor, access). Immutable and hashable.

    type is "a" (all), "b" (block) or "c" (char); major/minor -1 mean any; access is a subset of "rwm".
    A plain tuple subclass rather than a dataclass: this module is imported on every container start.
    """

    __slots__ = ()

    def __new__(cls, allow: bool, type: str, major: int, minor: int, access: str) -> "DeviceRule":
        return tuple.__new__(cls, (allow, type, major, minor, access))

    allow = property(lambda self: self[0])
    type = property(lambda self: self[1])
    major = property(lambda self: self[2])
    minor = property(lambda self: self[3])
    access = property(lambda self: self[4])

    def __repr__(self) -> str:
        return (f"DeviceRule(allow={self.allow}, type={self.type!r}, major={self.major}, minor={self.minor}, "
                f"access={self.access!r})")

    def cgroup_string(self) -> str:
        """The devices.allow / devices.deny line, e.g. "c 1:3 rwm" or "c 136:* rwm"."""
        if self.type == "a":
            return "a"
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def to_oci(self) -> dict:
        rule: dict = {"allow": self.allow, "type": self.type, "access": self.access}
        if self.major != WILDCARD:
            rule["major"] = self.major
        if self.minor != WILDCARD:
            rule["minor"] = self.minor
        return rule


def _c(major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(True, "c", major, minor, access)


# What runc appends after the spec's rules: mknod of anything, the standard /dev nodes, the
# terminals, and /dev/net/tun (kept by runc for compatibility with engines that rely on it).
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    _c(WILDCARD, WILDCARD, "m"),
    DeviceRule(True, "b", WILDCARD, WILDCARD, "m"),
    _c(1, 3),     # /dev/null
    _c(1, 8),     # /dev/random
    _c(1, 7),     # /dev/full
    _c(5, 0),     # /dev/tty
    _c(1, 5),     # /dev/zero
    _c(1, 9),     # /dev/urandom
    _c(136, WILDCARD),  # /dev/pts/*
    _c(5, 2),     # /dev/ptmx
    _c(10, 200),  # /dev/net/tun
)


def normalise_access(access: str, where: str) -> str:
    if not access or any(ch not in _ACCESS_ORDER for ch in access):
        raise CgroupError(f'cgroup: {where}: device access "{access}" must be a non-empty subset of "rwm"')
    return "".join(ch for ch in _ACCESS_ORDER if ch in access)


def parse_oci_rules(rules: list | None) -> list[DeviceRule]:
    """linux.resources.devices -> DeviceRule list; type defaults to "a", major/minor to any (like runc)."""
    out = []
    for i, raw in enumerate(rules or []):
        where = f"linux.resources.devices[{i}]"
        if not isinstance(raw, dict):
            raise CgroupError(f"cgroup: {where}: expected an object, got {raw!r}")
        dev_type = raw.get("type") or "a"
        if dev_type not in ("a", "b", "c"):
            raise CgroupError(f'cgroup: {where}: invalid device type "{dev_type}" (want "a", "b" or "c")')
        numbers = []
        for key in ("major", "minor"):
            value = raw.get(key)
            if value is None:
                value = WILDCARD
            # Linux device numbers are 12-bit major, 20-bit minor; anything near 2**31 is a mistake.
            if not isinstance(value, int) or isinstance(value, bool) or value < WILDCARD or value >= 2**31:
                raise CgroupError(f"cgroup: {where}: invalid {key} {value!r}")
            numbers.append(value)
        access = normalise_access(raw.get("access") or "", where)
        out.append(DeviceRule(bool(raw.get("allow", False)), dev_type, numbers[0], numbers[1], access))
    return out


_Key = tuple[str, int, int]


class DeviceState:
    """The v1 devices controller's state: a default and a table of exceptions to it."""

    def __init__(self, default_allow: bool = False, exceptions: dict[_Key, str] | None = None):
        self.default_allow = default_allow
        self.exceptions: dict[_Key, str] = dict(exceptions or {})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceState) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow}, exceptions={self.exceptions})"

    @classmethod
    def from_rules(cls, rules: list[DeviceRule]) -> "DeviceState":
        """Start from "deny everything", as runc does, then apply the rules in order."""
        state = cls(default_allow=False)
        for rule in rules:
            state.apply(rule)
        return state

    @classmethod
    def from_devices_list(cls, text: str) -> "DeviceState":
        """Parse v1 devices.list: "a *:* rwm" alone means allow-all; otherwise each line is an allowed exception."""
        state = cls(default_allow=False)
        for line in text.splitlines():
            fields = line.replace(":", " ").split()
            if len(fields) != 4:
                continue
            dev_type, major, minor, access = fields
            if dev_type == "a":
                return cls(default_allow=True)
            key = (dev_type, WILDCARD if major == "*" else int(major), WILDCARD if minor == "*" else int(minor))
            state._add(key, access)
        return state

    def _add(self, key: _Key, access: str) -> None:
        merged = set(self.exceptions.get(key, "")) | set(access)
        self.exceptions[key] = "".join(ch for ch in _ACCESS_ORDER if ch in merged)

    def _remove(self, key: _Key, access: str, rule: DeviceRule) -> None:
        # The kernel only removes an exact match, so "deny c 1:3" after "allow c *:*" would leave
        # 1:3 allowed on v1. Refuse such a hole rather than silently not applying it (as runc does).
        dev_type, major, minor = key
        for wider in ((dev_type, WILDCARD, minor), (dev_type, major, WILDCARD), (dev_type, WILDCARD, WILDCARD)):
            if wider != key and set(self.exceptions.get(wider, "")) & set(access):
                raise CgroupError(f'cgroup: device rule "{rule.cgroup_string()}" ({"allow" if rule.allow else "deny"}) '
                                  f"cannot punch a hole in the wider rule covering {wider[0]} "
                                  f"{'*' if wider[1] == WILDCARD else wider[1]}:{'*' if wider[2] == WILDCARD else wider[2]}")
        left = "".join(ch for ch in self.exceptions.get(key, "") if ch not in access)
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def apply(self, rule: DeviceRule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow == self.default_allow:
            self._remove(key, rule.access, rule)
        else:
            self._add(key, rule.access)

    def ordered_exceptions(self) -> list[tuple[_Key, str]]:
        """In the order the rules named them: the kernel lists exceptions in the order they were written,
        and the spec (and runtime-tools) expect the configured entries first and in their order."""
        return list(self.exceptions.items())

    def transition_from(self, current: "DeviceState") -> list[DeviceRule]:
        """The v1 writes that turn `current` into this state. The default can only change by a reset,
        and an allow-by-default cgroup's deny list cannot be read back, so those start over."""
        rules: list[DeviceRule] = []
        old = current.exceptions
        if current.default_allow or current.default_allow != self.default_allow:
            rules.append(DeviceRule(self.default_allow, "a", WILDCARD, WILDCARD, "rwm"))
            old = {}
        for key, old_access in sorted(old.items(), key=lambda item: (item[0][1], item[0][2], item[0][0])):
            dropped = "".join(ch for ch in old_access if ch not in self.exceptions.get(key, ""))
            if dropped:
                rules.append(DeviceRule(self.default_allow, key[0], key[1], key[2], dropped))
        for key, new_access in self.ordered_exceptions():
            gained = "".join(ch for ch in new_access if ch not in old.get(key, ""))
            if gained:
                rules.append(DeviceRule(not self.default_allow, key[0], key[1], key[2], gained))
        return rules

    def allows(self, dev_type: str, major: int, minor: int, access: str) -> bool:
        """The kernel's v1 check (and so the eBPF program's): in deny-by-default mode an exception must
        grant every requested access; in allow-by-default mode any overlap with an exception denies."""
        for (t, ma, mi), acc in self.exceptions.items():
            if t != dev_type or ma not in (WILDCARD, major) or mi not in (WILDCARD, minor):
                continue
            if self.default_allow and set(access) & set(acc):
                return False
            if not self.default_allow and set(access) <= set(acc):
                return True
        return self.default_allow
