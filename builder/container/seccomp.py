"""A seccomp profile in docker's format (ours by default, seccomp_default.py, or a --security-opt
seccomp=FILE) turned into the spec's linux.seccomp for one container, as docker's daemon does it.

A rule applies when all its `includes` hold and none of its `excludes`: caps by the container's bounding
set (includes: every one listed; excludes: any one listed), arches by the machine (docker's names: amd64,
arm64...), minKernel by the running kernel. `archMap` gives the architectures of this machine.
--privileged and seccomp=unconfined take the filter away (bundle.py, security.py)."""

from __future__ import annotations

import os

from builder.container.records import ContainerError

# machine -> (the spec's arch name, docker's name of it in includes/excludes)
_MACHINES = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
             "s390x": ("SCMP_ARCH_S390X", "s390x"), "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
             "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"), "loongarch64": ("SCMP_ARCH_LOONGARCH64", "loong64")}
# the spec's own keys copied as they are
_COPIED = ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")


def default_seccomp(caps: list[str]) -> dict:
    """docker's default profile for a container with these capabilities."""
    from builder.container.seccomp_default import default_profile

    return seccomp_from_profile(default_profile(), caps)


def seccomp_from_profile(profile: dict, caps: list[str]) -> dict:
    """The spec's linux.seccomp; ContainerError names what is wrong in a profile."""
    if not isinstance(profile, dict):
        raise ContainerError("seccomp profile: expected a JSON object")
    if profile.get("architectures") and profile.get("archMap"):
        raise ContainerError("seccomp profile: both 'architectures' and 'archMap' are given, use one of them")
    spec_arch, arch = _MACHINES.get(os.uname().machine, ("", ""))
    architectures = list(profile.get("architectures") or [])
    for entry in _list(profile, "archMap"):
        if isinstance(entry, dict) and entry.get("architecture") == spec_arch:
            architectures = [spec_arch, *(entry.get("subArchitectures") or [])]
            break
    have = set(caps)
    syscalls = []
    for i, rule in enumerate(_list(profile, "syscalls")):
        if not isinstance(rule, dict):
            raise ContainerError(f"seccomp profile: syscalls[{i}] is not an object")
        if rule.get("name") and rule.get("names"):
            raise ContainerError(f"seccomp profile: syscalls[{i}] has both 'name' and 'names', use one of them")
        if not _applies(rule, have, arch, i):
            continue
        out = {"names": list(rule.get("names") or ([rule["name"]] if rule.get("name") else [])),
               "action": rule.get("action")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                out[key] = rule[key]
        syscalls.append(out)
    seccomp = {"defaultAction": profile.get("defaultAction"), "architectures": architectures,
               "syscalls": syscalls}
    seccomp.update((key, profile[key]) for key in _COPIED if profile.get(key) is not None)
    return seccomp


def _list(profile: dict, key: str) -> list:
    value = profile.get(key) or []
    if not isinstance(value, list):
        raise ContainerError(f"seccomp profile: '{key}' is not a list")
    return value


def _applies(rule: dict, caps: set[str], arch: str, index: int) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if not isinstance(inc, dict) or not isinstance(exc, dict):
        raise ContainerError(f"seccomp profile: syscalls[{index}] includes/excludes must be objects")
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], index):
        return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("minKernel") and _kernel_at_least(exc["minKernel"], index))


def _kernel_at_least(wanted: object, index: int) -> bool:
    """minKernel "MAJOR.MINOR" against the running kernel."""
    try:
        major, minor = (int(part) for part in str(wanted).split("."))
    except ValueError:
        raise ContainerError(f"seccomp profile: syscalls[{index}] minKernel {wanted!r} is not MAJOR.MINOR") from None
    running = os.uname().release.split("-")[0].split(".")
    return (int(running[0]), int(running[1])) >= (major, minor)


def without_unknown_names(seccomp: dict) -> dict:
    """The filter less the syscall names this host's libseccomp does not know (calls newer than it, such
    as mseal or listmount on libseccomp 2.5): our runtime refuses them as typos, docker's runc skips them.
    Resolving ~370 names costs well under a millisecond."""
    from oci_runtime.api import unknown_syscall_names

    rules = seccomp.get("syscalls") or []
    unknown = unknown_syscall_names([n for rule in rules for n in rule.get("names") or [] if isinstance(n, str)])
    kept = []
    for rule in rules:
        names = [n for n in rule.get("names") or [] if n not in unknown]
        if names:
            kept.append(dict(rule, names=names))
    return dict(seccomp, syscalls=kept)
