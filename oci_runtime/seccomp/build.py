"""Build a libseccomp filter context from a checked profile, following runc's choices.

- Syscall names libseccomp does not know are skipped, so profiles written for newer kernels load.
- A rule whose action equals the default action is skipped (libseccomp refuses it as redundant).
- Conditions on distinct arguments are ANDed in one rule; when two conditions test the same
  argument (libseccomp refuses that in one rule) each condition becomes a rule of its own.
- no_new_privs is left to the runtime: the filter does not set it.
- `flags` absent means SPEC_ALLOW when the kernel supports it; `flags: []` means no flags.
"""

from __future__ import annotations

import errno
import os
from collections import namedtuple

from oci_runtime.seccomp import lib as lib_
from oci_runtime.seccomp.errors import SeccompError
from oci_runtime.seccomp.profile import (
    ARCHITECTURES, FIELD, FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_WAIT_KILLABLE_RECV, SeccompProfile,
    SyscallRule,
)

FLAG_ATTRIBUTES = {
    FLAG_TSYNC: lib_.ATTR_CTL_TSYNC,
    FLAG_LOG: lib_.ATTR_CTL_LOG,
    FLAG_SPEC_ALLOW: lib_.ATTR_CTL_SSB,
    FLAG_WAIT_KILLABLE_RECV: lib_.ATTR_CTL_WAITKILL,
}
FLAG_MIN_LIBSECCOMP = {FLAG_WAIT_KILLABLE_RECV: (2, 6, 0)}
NOTIFY_MIN_API_LEVEL = 6        # notify + TSYNC together, as runc requires
OPTIMIZE_ABOVE_RULES = 32       # binary-tree dispatch pays off for long profiles (runc's threshold)

Condition = tuple[int, int, int, int]


class BuiltFilter(namedtuple("BuiltFilter", "ctx flags rule_count notify unknown_syscalls last_syscall")):
    """A context ready to load, with what went into it."""
    __slots__ = ()
    ctx: int
    flags: tuple[str, ...]
    rule_count: int
    notify: bool
    unknown_syscalls: tuple[str, ...]
    last_syscall: int  # the highest native number the profile names (-1: none)


def build_context(lib: lib_.Libseccomp, profile: SeccompProfile) -> BuiltFilter:
    """A ready-to-load context; the caller owns it (lib.release)."""
    if profile.uses_notify and lib.api_level < NOTIFY_MIN_API_LEVEL:
        raise SeccompError(f"{FIELD}: SCMP_ACT_NOTIFY needs libseccomp API level {NOTIFY_MIN_API_LEVEL} "
                           f"(libseccomp >= 2.5.0 and Linux >= 5.7); this system has level {lib.api_level}")
    ctx = lib.new_context(profile.default_action_value)
    try:
        _check(lib.attr_set(ctx, lib_.ATTR_CTL_NNP, 0), "cannot leave no_new_privs to the runtime")
        # Report the kernel's own errno from seccomp_load() instead of a generic ECANCELED.
        lib.attr_set(ctx, lib_.ATTR_API_SYSRAWRC, 1)
        _add_architectures(lib, ctx, profile.architectures)
        flags = _apply_flags(lib, ctx, profile.flags)
        rule_count, notify, unknown = _add_rules(lib, ctx, profile)
        if rule_count > OPTIMIZE_ABOVE_RULES:
            lib.attr_set(ctx, lib_.ATTR_CTL_OPTIMIZE, 2)    # an older libseccomp without it still works
        numbers = (lib.syscall_number(name) for rule in profile.rules for name in rule.names)
        last = max((n for n in numbers if n >= 0), default=-1)
        return BuiltFilter(ctx, flags, rule_count, notify, unknown, last)
    except BaseException:
        lib.release(ctx)
        raise


def flag_supported(lib: lib_.Libseccomp, ctx: int, flag: str) -> int:
    """Try to set the flag's attribute on ctx; 0 or a negative errno."""
    minimum = FLAG_MIN_LIBSECCOMP.get(flag)
    if minimum and lib.version < minimum:
        return -errno.EINVAL
    return lib.attr_set(ctx, FLAG_ATTRIBUTES[flag], 1)


def _add_architectures(lib: lib_.Libseccomp, ctx: int, architectures: tuple[str, ...]) -> None:
    for i, arch in enumerate(architectures):
        field = f"{FIELD}.architectures[{i}]"
        token = lib.arch_token(ARCHITECTURES[arch])
        if token == 0:
            raise SeccompError(f"{field}: {arch} is not supported by the installed libseccomp "
                               f"{lib.version_text}")
        if lib.arch_present(ctx, token):          # the native one is there from the start
            continue
        _check(lib.arch_add(ctx, token), f"{field}: cannot add {arch} to the filter")


def _apply_flags(lib: lib_.Libseccomp, ctx: int, flags: tuple[str, ...] | None) -> tuple[str, ...]:
    if flags is None:
        return (FLAG_SPEC_ALLOW,) if flag_supported(lib, ctx, FLAG_SPEC_ALLOW) == 0 else ()
    for i, flag in enumerate(flags):
        rc = flag_supported(lib, ctx, flag)
        if rc == 0:
            continue
        minimum = FLAG_MIN_LIBSECCOMP.get(flag)
        if minimum and lib.version < minimum:
            raise SeccompError(f"{FIELD}.flags[{i}]: {flag} needs libseccomp >= {'.'.join(map(str, minimum))} "
                               f"(this system has {lib.version_text})")
        raise SeccompError(f"{FIELD}.flags[{i}]: {flag} is not supported by libseccomp {lib.version_text} "
                           f"on this kernel: {os.strerror(-rc)}")
    return flags


def _add_rules(lib: lib_.Libseccomp, ctx: int, profile: SeccompProfile) -> tuple[int, bool, tuple[str, ...]]:
    default = profile.default_action_value
    count, notify, unknown = 0, False, []
    for rule in profile.rules:
        action = rule.action_value
        if action == default:
            continue
        for name in rule.names:
            number = lib.syscall_number(name)
            if number == lib_.NR_SCMP_ERROR:
                unknown.append(name)
                continue
            for conditions in _condition_sets(rule):
                rc = lib.rule_add(ctx, action, number, conditions)
                _check(rc, f"{rule.field}: libseccomp refused the {rule.action} rule for syscall {name!r}")
            count += 1
            notify = notify or rule.action == "SCMP_ACT_NOTIFY"
    return count, notify, tuple(dict.fromkeys(unknown))


def _condition_sets(rule: SyscallRule) -> list[list[Condition]]:
    conditions = [(c.index, c.op_code, c.value, c.value_two) for c in rule.args]
    if rule.shares_an_arg_index():
        # runc's fallback: any one condition matching triggers the action (OR, not AND).
        return [[condition] for condition in conditions]
    return [conditions]


def _check(rc: int, doing: str) -> None:
    if rc < 0:
        raise SeccompError(f"{doing}: {os.strerror(-rc)}")
