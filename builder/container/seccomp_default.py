"""The syscalls a container may make by default, as docker's default seccomp profile decides them.

An allowlist: a call named nowhere here fails with EPERM. Groups below are by purpose; a group tied to a
capability is allowed only to a container holding it (in its bounding set), so --cap-add SYS_ADMIN gives
back mount, unshare, setns and the rest. Calls left out on purpose, as in current docker: io_uring_*
(a large attack surface), keyrings (add_key, keyctl, request_key: not namespaced), swapon/swapoff,
kexec_*, userfaultfd, vm86, uselib, nfsservctl, sysfs, ustat, _sysctl, the old module calls.

Names some libseccomp or kernel do not know (newer calls, 32-bit variants) are fine: the runtime skips
what its libseccomp cannot resolve, as runc does. The list follows docker's profile of 2025-2026.
"""

from __future__ import annotations

EPERM, ENOSYS = 1, 38
AF_ALG, AF_VSOCK = 38, 40
# the namespace flags clone may not carry without CAP_SYS_ADMIN (NEWNS UTS IPC USER PID NET CGROUP)
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000
# personality(2) values a program may set: PER_LINUX, its UNAME26 and ADDR_NO_RANDOMIZE forms, and
# 0xffffffff, which only queries the current one
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# allowed to every container
ALLOWED = {
    "files": _names("""
        access cachestat chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3
        faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2 fchown fchown32
        fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fremovexattr fsetxattr fstat fstat64
        fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futimesat getcwd getdents getdents64 getxattr
        getxattrat ioctl lchown lchown32 lgetxattr link linkat listmount listxattr listxattrat llistxattr
        _llseek lremovexattr lseek lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat name_to_handle_at
        newfstatat open openat openat2 pipe pipe2 pread64 preadv preadv2 pwrite64 pwritev pwritev2 read
        readahead readlink readlinkat readv removexattr removexattrat rename renameat renameat2 rmdir sendfile
        sendfile64 setxattr setxattrat splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
        sync sync_file_range syncfs tee truncate truncate64 unlink unlinkat utime utimensat utimensat_time64
        utimes vmsplice write writev"""),
    "events and async io": _names("""
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
        eventfd eventfd2 fanotify_mark inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
        io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit _newselect poll ppoll
        ppoll_time64 pselect6 pselect6_time64 select timerfd_create timerfd_gettime timerfd_gettime64
        timerfd_settime timerfd_settime64"""),
    "memory": _names("""
        brk madvise map_shadow_stack memfd_create memfd_secret mincore mlock mlock2 mlockall mmap mmap2 mprotect
        mremap mseal msync munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect process_mrelease
        remap_file_pages"""),
    "processes": _names("""
        execve execveat exit exit_group fork getpgid getpgrp getpid getppid getrandom getsid gettid
        landlock_add_rule landlock_create_ruleset landlock_restrict_self pidfd_open prctl riscv_hwprobe seccomp
        setpgid setsid sysinfo umask uname uretprobe vfork wait4 waitid waitpid"""),
    "threads and futexes": _names("""
        futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake get_robust_list get_thread_area
        membarrier rseq set_robust_list set_thread_area set_tid_address"""),
    "signals": _names("""
        alarm kill pause pidfd_send_signal restart_syscall rt_sigaction rt_sigpending rt_sigprocmask
        rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
        sigaltstack signalfd signalfd4 sigprocmask sigreturn tgkill tkill"""),
    "users and capabilities": _names("""
        capget capset getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getresgid
        getresgid32 getresuid getresuid32 getuid getuid32 setfsgid setfsgid32 setfsuid setfsuid32 setgid
        setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
        setreuid32 setuid setuid32"""),
    # adjtimex and clock_adjtime read the clock here; setting it needs CAP_SYS_TIME, which the kernel checks
    "time": _names("""
        adjtimex clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
        clock_nanosleep clock_nanosleep_time64 getitimer gettimeofday nanosleep setitimer time timer_create
        timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 times"""),
    "scheduling and limits": _names("""
        getcpu getpriority getrlimit getrusage ioprio_get ioprio_set prlimit64 sched_getaffinity sched_getattr
        sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
        sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
        sched_yield setpriority setrlimit ugetrlimit"""),
    "sockets": _names("""
        accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg
        recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketcall socketpair"""),
    "system v and posix ipc": _names("""
        ipc mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
        mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
        semtimedop_time64 shmat shmctl shmdt shmget"""),
}

# ptrace and cross-process memory access: allowed to all from Linux 4.8 on, where seccomp is checked
# again after a tracer changes the call (before, ptrace could step around the filter)
PTRACE_FROM_KERNEL = ((4, 8), _names("process_vm_readv process_vm_writev ptrace"))

# allowed only with the capability
BY_CAPABILITY = {
    "CAP_SYS_ADMIN": _names("""
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
        lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl
        quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare"""),
    "CAP_DAC_READ_SEARCH": _names("open_by_handle_at"),
    "CAP_SYS_BOOT": _names("reboot"),
    "CAP_SYS_CHROOT": _names("chroot"),
    "CAP_SYS_MODULE": _names("delete_module init_module finit_module"),
    "CAP_SYS_PACCT": _names("acct"),
    "CAP_SYS_PTRACE": _names("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    "CAP_SYS_RAWIO": _names("iopl ioperm"),
    "CAP_SYS_TIME": _names("settimeofday stime clock_settime clock_settime64"),
    "CAP_SYS_TTY_CONFIG": _names("vhangup"),
    "CAP_SYS_NICE": _names("get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    "CAP_SYSLOG": _names("syslog"),
    "CAP_BPF": _names("bpf"),
    "CAP_PERFMON": _names("perf_event_open"),
}

# calls of one architecture family, by the machine names docker's profile uses
BY_ARCHITECTURE = (
    (("amd64", "x32"), _names("arch_prctl")),
    (("amd64", "x32", "x86"), _names("modify_ldt")),
    (("arm", "arm64"), _names("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls")),
    (("ppc64le",), _names("sync_file_range2 swapcontext")),
    (("s390", "s390x"), _names("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr")),
    (("riscv64",), _names("riscv_flush_icache")),
)

# the machine's own ABI and the others its kernel runs (x86_64 runs i386 and x32 programs)
ARCH_MAP = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    ("SCMP_ARCH_RISCV64", ()),
    ("SCMP_ARCH_LOONGARCH64", ()),
)


def _allow(names, *, args=None, includes=None, excludes=None) -> dict:
    rule = {"names": list(names), "action": "SCMP_ACT_ALLOW"}
    if args:
        rule["args"] = args
    if includes:
        rule["includes"] = includes
    if excludes:
        rule["excludes"] = excludes
    return rule


def _arg0(op: str, value: int, value_two: int = 0) -> list[dict]:
    return [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]


def default_profile() -> dict:
    """The rules above in docker's profile format (includes/excludes by capability, architecture and
    kernel), so the default and a --security-opt seccomp=FILE go through the same translation."""
    rules = [_allow(n for group in ALLOWED.values() for n in group)]
    minimum, names = PTRACE_FROM_KERNEL
    rules.append(_allow(names, includes={"minKernel": "%d.%d" % minimum}))
    # socket: every address family but AF_ALG (kernel crypto) and AF_VSOCK (the host's vsock), one rule
    # per range since the conditions of one rule are ANDed
    rules.append(_allow(["socket"], args=_arg0("SCMP_CMP_LT", AF_ALG)))
    rules += [_allow(["socket"], args=_arg0("SCMP_CMP_EQ", family)) for family in range(AF_ALG + 1, AF_VSOCK)]
    rules.append(_allow(["socket"], args=_arg0("SCMP_CMP_GT", AF_VSOCK)))
    rules += [_allow(["personality"], args=_arg0("SCMP_CMP_EQ", value)) for value in PERSONALITIES]
    rules += [_allow(names, includes={"arches": list(arches)}) for arches, names in BY_ARCHITECTURE]
    rules += [_allow(names, includes={"caps": [cap]}) for cap, names in BY_CAPABILITY.items()]
    # without CAP_SYS_ADMIN: clone with no namespace flag (s390 swaps clone's first two arguments), and
    # clone3, whose flags sit in memory a filter cannot read, answers ENOSYS so libc falls back to clone
    rules.append(_allow(["clone"], args=_arg0("SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),
                        excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}))
    rules.append(_allow(["clone"], args=[{"index": 1, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                          "op": "SCMP_CMP_MASKED_EQ"}],
                        includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]}))
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                  "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "archMap": [{"architecture": arch, "subArchitectures": list(subs)} for arch, subs in ARCH_MAP],
            "syscalls": rules}
