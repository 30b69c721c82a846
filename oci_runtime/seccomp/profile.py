"""The OCI `linux.seccomp` object, checked and turned into records; no libseccomp needed here.

Every name table follows the runtime spec (which copies libseccomp's seccomp.h), and every
refusal names the field and the value so the user can fix config.json.
"""

from __future__ import annotations

import errno
from collections import namedtuple

from oci_runtime.seccomp.errors import SeccompError

FIELD = "linux.seccomp"

# Action name -> libseccomp action value (seccomp.h); ERRNO and TRACE carry a 16-bit datum.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,           # historical name of KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
ACTIONS_WITH_ERRNO = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

# Spec architecture name -> the name libseccomp's seccomp_arch_resolve_name() knows.
ARCHITECTURES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
}

# Operator name -> enum scmp_compare.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

FLAG_TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
FLAG_LOG = "SECCOMP_FILTER_FLAG_LOG"
FLAG_SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
FLAG_WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
FLAGS = (FLAG_TSYNC, FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_WAIT_KILLABLE_RECV)

MAX_SYSCALL_ARGS = 6
UINT64_MAX = (1 << 64) - 1
ERRNO_DATUM_MAX = 0xFFFF        # SECCOMP_RET_DATA is 16 bits wide


# Records are namedtuples, not dataclasses: docker sends a profile with every container, so this
# module is on the create path, where importing dataclasses alone costs more than parsing.

class ArgCondition(namedtuple("ArgCondition", "index op value value_two")):
    """One `args[]` entry: compare syscall argument `index` with `value` (MASKED_EQ: mask, then valueTwo)."""
    __slots__ = ()
    index: int
    op: str
    value: int
    value_two: int

    @property
    def op_code(self) -> int:
        return OPERATORS[self.op]


class SyscallRule(namedtuple("SyscallRule", "names action errno_ret args field")):
    """One `syscalls[]` entry; `field` is where it sits in config.json, for messages."""
    __slots__ = ()
    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[ArgCondition, ...]
    field: str

    @property
    def action_value(self) -> int:
        return action_value(self.action, self.errno_ret)

    def shares_an_arg_index(self) -> bool:
        """True when two conditions test the same argument (libseccomp cannot AND those in one rule)."""
        indexes = [cond.index for cond in self.args]
        return len(indexes) != len(set(indexes))


class SeccompProfile(namedtuple("SeccompProfile", "default_action default_errno_ret architectures flags "
                                                  "listener_path listener_metadata rules enabled",
                                defaults=(True,))):
    __slots__ = ()
    default_action: str
    default_errno_ret: int | None
    architectures: tuple[str, ...]
    flags: tuple[str, ...] | None       # None: not given, so the runc default (SPEC_ALLOW) applies
    listener_path: str
    listener_metadata: str
    rules: tuple[SyscallRule, ...]
    enabled: bool

    @property
    def default_action_value(self) -> int:
        return action_value(self.default_action, self.default_errno_ret)

    @property
    def uses_notify(self) -> bool:
        return any(rule.action == "SCMP_ACT_NOTIFY" for rule in self.rules)


DISABLED = SeccompProfile("SCMP_ACT_ALLOW", None, (), (), "", "", (), enabled=False)


def action_value(action: str, errno_ret: int | None) -> int:
    """The libseccomp action word; ERRNO and TRACE default to EPERM as the spec and runc say."""
    base = ACTIONS[action]
    if action in ACTIONS_WITH_ERRNO:
        return base | (errno.EPERM if errno_ret is None else errno_ret)
    return base


def parse_profile(seccomp: dict | None) -> SeccompProfile:
    """Check `linux.seccomp` and return it as records; raise SeccompError naming the bad field."""
    if seccomp is None:
        return DISABLED
    seccomp = _dict(seccomp, FIELD)
    raw_rules = _list(seccomp.get("syscalls") or [], f"{FIELD}.syscalls", "an array")
    # runc: neither a default action nor rules means seccomp is not wanted at all.
    if not seccomp.get("defaultAction") and not raw_rules:
        return DISABLED
    default_action = _action(seccomp.get("defaultAction"), f"{FIELD}.defaultAction")
    default_errno = _errno_ret(seccomp, "defaultErrnoRet", default_action, FIELD)
    if default_action == "SCMP_ACT_NOTIFY":
        # The init could never report the listener fd: every syscall it makes would wait on the agent.
        raise SeccompError(f"{FIELD}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")

    listener_path = _optional_str(seccomp, "listenerPath")
    listener_metadata = _optional_str(seccomp, "listenerMetadata")
    if listener_metadata and not listener_path:
        raise SeccompError(f"{FIELD}.listenerMetadata: must not be set without {FIELD}.listenerPath")

    rules = tuple(_rule(raw, f"{FIELD}.syscalls[{i}]") for i, raw in enumerate(raw_rules))
    if any(rule.action == "SCMP_ACT_NOTIFY" for rule in rules) and not listener_path:
        raise SeccompError(f"{FIELD}.listenerPath: must be set when a rule uses SCMP_ACT_NOTIFY "
                           "(the runtime sends the notify fd to the agent listening there)")

    return SeccompProfile(
        default_action=default_action,
        default_errno_ret=default_errno,
        architectures=_architectures(seccomp.get("architectures")),
        flags=_flags(seccomp.get("flags")),
        listener_path=listener_path,
        listener_metadata=listener_metadata,
        rules=rules,
    )


def _rule(raw: object, field: str) -> SyscallRule:
    raw = _dict(raw, field)
    action = _action(raw.get("action"), f"{field}.action")
    names = _list(raw.get("names"), f"{field}.names", "a non-empty array of syscall names")
    if not names:
        raise SeccompError(f"{field}.names: expected a non-empty array of syscall names, got []")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise SeccompError(f"{field}.names[{i}]: expected a syscall name, got {name!r}")
    if action == "SCMP_ACT_NOTIFY" and "write" in names:
        # The init writes the listener fd number to the runtime after loading; notifying write would hang it.
        raise SeccompError(f"{field}: SCMP_ACT_NOTIFY cannot be used for the write syscall")
    raw_args = _list(raw.get("args") or [], f"{field}.args", "an array")
    args = tuple(_condition(arg, f"{field}.args[{i}]") for i, arg in enumerate(raw_args))
    return SyscallRule(tuple(names), action, _errno_ret(raw, "errnoRet", action, field), args, field)


def _condition(raw: object, field: str) -> ArgCondition:
    raw = _dict(raw, field)
    index = _uint(raw.get("index"), f"{field}.index", MAX_SYSCALL_ARGS - 1,
                  f"an argument index from 0 to {MAX_SYSCALL_ARGS - 1}")
    op = raw.get("op")
    if op not in OPERATORS:
        raise SeccompError(f"{field}.op: unknown operator {op!r} (known: {', '.join(OPERATORS)})")
    value = _uint(raw.get("value"), f"{field}.value", UINT64_MAX, "an unsigned 64-bit integer")
    value_two = _uint(raw.get("valueTwo", 0), f"{field}.valueTwo", UINT64_MAX, "an unsigned 64-bit integer")
    return ArgCondition(index, op, value, value_two)


def _action(name: object, field: str) -> str:
    if name not in ACTIONS:
        raise SeccompError(f"{field}: unknown action {name!r} (known: {', '.join(ACTIONS)})")
    return str(name)


def _errno_ret(raw: dict, key: str, action: str, field: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if action not in ACTIONS_WITH_ERRNO:
        # The spec: "When the action doesn't support an errno, the runtime MUST print an error and fail."
        raise SeccompError(f"{field}.{key}: {action} takes no errno; "
                           f"{key} is only valid with {' or '.join(sorted(ACTIONS_WITH_ERRNO))}")
    return _uint(value, f"{field}.{key}", ERRNO_DATUM_MAX, f"an integer from 0 to {ERRNO_DATUM_MAX}")


def _architectures(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    for i, arch in enumerate(_list(raw, f"{FIELD}.architectures", "an array")):
        if arch not in ARCHITECTURES:
            raise SeccompError(f"{FIELD}.architectures[{i}]: unknown architecture {arch!r} "
                               f"(known: {', '.join(ARCHITECTURES)})")
    return tuple(raw)  # type: ignore[arg-type]  # each element checked above


def _flags(raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    for i, flag in enumerate(_list(raw, f"{FIELD}.flags", "an array")):
        if flag not in FLAGS:
            raise SeccompError(f"{FIELD}.flags[{i}]: unknown seccomp flag {flag!r} (known: {', '.join(FLAGS)})")
    return tuple(raw)  # type: ignore[arg-type]  # each element checked above


def _optional_str(raw: dict, key: str) -> str:
    value = raw.get(key) or ""
    if not isinstance(value, str):
        raise SeccompError(f"{FIELD}.{key}: expected a string, got {value!r}")
    return value


def _uint(value: object, field: str, maximum: int, wanted: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    raise SeccompError(f"{field}: expected {wanted}, got {value!r}")


def _dict(value: object, field: str) -> dict:
    if isinstance(value, dict):
        return value
    raise SeccompError(f"{field}: expected an object, got {value!r}")


def _list(value: object, field: str, wanted: str) -> list:
    if isinstance(value, list):
        return value
    raise SeccompError(f"{field}: expected {wanted}, got {value!r}")
