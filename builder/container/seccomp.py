"""pydock's default seccomp filter: everything is allowed but the calls docker's default profile refuses
to a container without the matching capability (kernel keyrings, modules, kexec, BPF, perf, userfaultfd,
new user namespaces, the clock, swap, accounting, reboot...), which fail with EPERM. A denylist of our
own, not docker's allowlist: the container keeps every ordinary call, and loses the ones docker takes
away. --cap-add of the capability a call needs gives it back, as in docker; --privileged and
--security-opt seccomp=unconfined drop the filter."""

from __future__ import annotations

EPERM = 1
CLONE_NEWUSER = 0x10000000

# refused whatever the capabilities (docker allows none of them to a container)
_ALWAYS = ["add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load", "lookup_dcookie",
           "userfaultfd", "uselib", "nfsservctl", "create_module", "get_kernel_syms", "query_module", "_sysctl",
           "sysfs", "ustat", "vm86", "vm86old"]
# refused unless the container has the capability
_BY_CAPABILITY = {
    "CAP_SYS_ADMIN": ["bpf", "perf_event_open", "fanotify_init", "quotactl", "setns", "unshare", "mount",
                      "umount", "umount2", "pivot_root", "name_to_handle_at", "open_tree", "move_mount", "fsopen",
                      "fsconfig", "fsmount", "fspick", "mount_setattr", "syslog", "swapon", "swapoff"],
    "CAP_SYS_MODULE": ["init_module", "finit_module", "delete_module"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime",
                     "clock_adjtime64"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "process_vm_readv", "process_vm_writev", "process_madvise"],
    "CAP_SYS_NICE": ["get_mempolicy", "set_mempolicy", "mbind", "move_pages", "set_mempolicy_home_node"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}


def default_seccomp(caps: list[str]) -> dict:
    """The spec's linux.seccomp for a container with these capabilities."""
    have = set(caps)
    refused = list(_ALWAYS)
    for cap, names in _BY_CAPABILITY.items():
        if cap not in have:
            refused += names
    rules = [{"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    if "CAP_SYS_ADMIN" not in have:
        # a new user namespace (clone with CLONE_NEWUSER) is refused, as docker refuses it; clone3's
        # flags sit in memory a filter cannot read, so it answers ENOSYS and libc falls back to clone
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                      "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    import os

    arches = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
              "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(os.uname().machine, [])
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": arches, "syscalls": rules}
