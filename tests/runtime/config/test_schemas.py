"""spec/ checked with the real jsonschema: the schemas are valid, real engine configs pass, broken ones do not.

The engine-shaped documents here are what docker 20.10, podman 4.3 and containerd 1.6 sent to runc (the
runtime CLI contract engines expect, section 5); test_validate.py reuses them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import spec
from oci_runtime.validate import load_schema
from oci_runtime.specgen import default_spec

CONTAINER_ID = "3f9d0c5e7a1b" + "4c2e" * 13

# 14 capabilities: what all three engines put in bounding, effective and permitted.
ENGINE_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
ENGINE_MASKED = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
]
ENGINE_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/sys/dev/block"]

# Syscall names for the big "allow" rule of an engine seccomp profile (x86_64 names, then 32-bit ones).
ALLOWED_SYSCALLS = """
    read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
    rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap msync mincore
    madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket
    connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair
    setsockopt getsockopt fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd
    msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir
    rmdir creat link unlink symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit
    getrusage sysinfo times getuid getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid
    setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid getsid
    capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime mknod statfs
    fstatfs getpriority setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock mlockall munlockall prctl
    setrlimit chroot sync gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr
    llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
    sched_getaffinity io_setup io_destroy io_getevents io_submit io_cancel epoll_create remap_file_pages
    getdents64 set_tid_address restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime
    timer_getoverrun timer_delete clock_gettime clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl
    tgkill utimes mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr waitid ioprio_set
    ioprio_get inotify_init inotify_add_watch inotify_rm_watch openat mkdirat mknodat fchownat futimesat
    newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll set_robust_list
    get_robust_list splice tee sync_file_range vmsplice utimensat epoll_pwait signalfd timerfd_create eventfd
    fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1
    preadv pwritev rt_tgsigqueueinfo recvmmsg fanotify_mark prlimit64 syncfs sendmmsg getcpu sched_setattr
    sched_getattr renameat2 seccomp getrandom memfd_create execveat membarrier mlock2 copy_file_range preadv2
    pwritev2 pkey_mprotect pkey_alloc pkey_free statx rseq pidfd_send_signal io_uring_setup io_uring_enter
    io_uring_register pidfd_open close_range openat2 faccessat2 epoll_pwait2
    _llseek _newselect chown32 fadvise64_64 fchown32 fcntl64 fstat64 fstatat64 fstatfs64 ftruncate64 getegid32
    geteuid32 getgid32 getgroups32 getresgid32 getresuid32 getuid32 lchown32 lstat64 mmap2 recv send sendfile64
    setfsgid32 setfsuid32 setgid32 setgroups32 setregid32 setresgid32 setresuid32 setreuid32 setuid32 sigreturn
    socketcall stat64 statfs64 truncate64 ugetrlimit waitpid clock_gettime64 clock_nanosleep_time64
    clock_getres_time64 futex_time64 mq_timedreceive_time64 mq_timedsend_time64 ppoll_time64 pselect6_time64
    recvmmsg_time64 rt_sigtimedwait_time64 sched_rr_get_interval_time64 semtimedop_time64 timer_gettime64
    timer_settime64 timerfd_gettime64 timerfd_settime64 utimensat_time64 sigprocmask
""".split()


def _engine_seccomp(rules: int, names: int, default_errno: int | None) -> dict:
    """A profile shaped like docker's/podman's: one big allow rule, then small rules with args and errnoRet."""
    small = [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in (0, 8, 131072, 131080, 4294967295)
    ] + [
        {"names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
        {"names": ["bpf", "perf_event_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    ]
    while len(small) < rules - 1:
        small.append({"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    small = small[: rules - 1]
    used = sum(len(r["names"]) for r in small)
    allow = (ALLOWED_SYSCALLS * 2)[: names - used]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}, *small],
    }
    if default_errno is not None:
        profile["defaultErrnoRet"] = default_errno
    return profile


def _dev_rule(allow, kind=None, major=None, minor=None, access="rwm") -> dict:
    rule = {"allow": allow}
    if kind:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


def _standard_mounts(shm: dict) -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        shm,
    ]


def docker_config(read_only: bool = False) -> dict:
    """config.json as dockerd 20.10 (via containerd-shim-runc-v2) sends it for `docker run -m 128m --pids-limit 100`."""
    state = f"/var/lib/docker/containers/{CONTAINER_ID}"
    mounts = _standard_mounts({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]})
    mounts.insert(4, {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["ro", "nosuid", "noexec", "nodev"]})
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": f"{state}/{name}",
                       "options": ["rbind", "rprivate"]})
    mounts.append({"destination": "/data", "type": "bind", "source": "/srv/data",
                   "options": ["rbind", "ro", "rprivate"]})
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27]},
            "args": ["sh", "-c", "echo hi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    f"HOSTNAME={CONTAINER_ID[:12]}"],
            "cwd": "/",
            "capabilities": {"bounding": list(ENGINE_CAPS), "effective": list(ENGINE_CAPS),
                             "permitted": list(ENGINE_CAPS)},
            "oomScoreAdj": 0,
        },
        "root": {"path": f"/var/lib/docker/overlay2/{'a1' * 32}/merged", **({"readonly": True} if read_only else {})},
        "hostname": CONTAINER_ID[:12],
        "mounts": mounts,
        "hooks": {},
        "linux": {
            "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
            "resources": {
                "devices": [
                    _dev_rule(False), _dev_rule(True, "c", 1, 5), _dev_rule(True, "c", 1, 3),
                    _dev_rule(True, "c", 1, 9), _dev_rule(True, "c", 1, 8), _dev_rule(True, "c", 5, 0),
                    _dev_rule(True, "c", 5, 1), _dev_rule(False, "c", 10, 229),
                ],
                "memory": {"limit": 134217728, "swap": 268435456, "disableOOMKiller": False},
                "cpu": {"shares": 0},
                "pids": {"limit": 100},
                "blockIO": {"weight": 0},
            },
            "cgroupsPath": f"/docker/{CONTAINER_ID}",
            "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
            "seccomp": _engine_seccomp(rules=12, names=357, default_errno=None),
            "maskedPaths": ENGINE_MASKED[:10],
            "readonlyPaths": ENGINE_READONLY[:5],
        },
    }


def podman_config(read_only: bool = True) -> dict:
    """config.json as podman 4.3 (through conmon) sends it for `podman run --read-only -m 128m`."""
    userdata = f"/var/lib/containers/storage/overlay-containers/{CONTAINER_ID}/userdata"
    mounts = _standard_mounts({"destination": "/dev/shm", "type": "bind", "source": f"{userdata}/shm",
                               "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"]})
    mounts += [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": "/etc/resolv.conf", "type": "bind", "source": f"{userdata}/resolv.conf",
         "options": ["bind", "rprivate"]},
        {"destination": "/run/.containerenv", "type": "bind", "source": f"{userdata}/.containerenv",
         "options": ["bind", "rprivate"]},
    ]
    if read_only:
        for dest in ("/run", "/tmp", "/var/tmp"):
            mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                           "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]})
        for name in ("hosts", "hostname"):
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": f"{userdata}/{name}",
                           "options": ["bind", "rprivate", "ro"]})
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0, "umask": 18},
            "args": ["/bin/sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm",
                    "container=podman", "HOME=/root", f"HOSTNAME={CONTAINER_ID[:12]}"],
            "cwd": "/",
            "capabilities": {"bounding": list(ENGINE_CAPS), "effective": list(ENGINE_CAPS),
                             "permitted": list(ENGINE_CAPS)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
                        {"type": "RLIMIT_NPROC", "hard": 32768, "soft": 32768}],
            "oomScoreAdj": 0,
        },
        "root": {"path": f"/var/lib/containers/storage/overlay/{'b2' * 32}/merged", "readonly": read_only},
        "hostname": CONTAINER_ID[:12],
        "mounts": mounts,
        "annotations": {
            "io.container.manager": "libpod",
            "io.kubernetes.cri-o.Created": "2023-05-02T10:11:12.123456789Z",
            "io.kubernetes.cri-o.TTY": "true",
            "io.podman.annotations.autoremove": "FALSE",
            "io.podman.annotations.init": "FALSE",
            "io.podman.annotations.privileged": "FALSE",
            "io.podman.annotations.publish-all": "FALSE",
            "org.opencontainers.image.stopSignal": "15",
        },
        "linux": {
            "sysctl": {},
            "resources": {"devices": [_dev_rule(False)], "memory": {"limit": 134217728, "swap": 268435456},
                          "pids": {"limit": 2048}},
            "cgroupsPath": f"/libpod_parent/libpod-{CONTAINER_ID}",
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": _engine_seccomp(rules=19, names=434, default_errno=38),
            "maskedPaths": list(ENGINE_MASKED),
            "readonlyPaths": list(ENGINE_READONLY),
        },
    }


def containerd_config() -> dict:
    """config.json as `ctr run` (containerd 1.6, runc shim) sends it: relative rootfs, no seccomp."""
    mounts = _standard_mounts({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]})
    mounts.append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]})
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]},
            "args": ["sleep", "60"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": list(ENGINE_CAPS), "effective": list(ENGINE_CAPS),
                             "permitted": list(ENGINE_CAPS)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "mounts": mounts,
        "linux": {
            "resources": {
                "devices": [
                    _dev_rule(False), _dev_rule(True, "c", 1, 3), _dev_rule(True, "c", 1, 8),
                    _dev_rule(True, "c", 1, 7), _dev_rule(True, "c", 5, 0), _dev_rule(True, "c", 1, 5),
                    _dev_rule(True, "c", 1, 9), _dev_rule(True, "c", 5, 1), _dev_rule(True, "c", 136),
                    _dev_rule(True, "c", 5, 2),
                ],
                "cpu": {"shares": 1024},
                "memory": {"limit": 67108864},
            },
            "cgroupsPath": f"/default/{CONTAINER_ID[:12]}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ENGINE_MASKED[:10],
            "readonlyPaths": ENGINE_READONLY[:5],
        },
    }


def exec_process(engine: str) -> dict:
    """The process.json of `exec --process` as each engine sends it."""
    proc = {
        "user": {"uid": 0, "gid": 0},
        "args": ["ls", "-l"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": {"bounding": list(ENGINE_CAPS), "effective": list(ENGINE_CAPS), "permitted": list(ENGINE_CAPS)},
    }
    if engine in ("docker", "containerd"):
        proc["user"]["additionalGids"] = [0, 10]
    if engine == "docker":
        proc["oomScoreAdj"] = 0
    if engine == "podman":
        proc["terminal"] = True
        proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
    if engine == "containerd":
        proc["noNewPrivileges"] = True
        proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    return proc


# What `update --resources` gets: docker on stdin (zeros mean unchanged), podman from a file.
UPDATE_RESOURCES = [
    {"memory": {"limit": 134217728, "reservation": 0, "swap": 268435456, "kernel": 0},
     "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}},
    {"memory": {"limit": 134217728, "swap": 268435456}},
]


def full_linux_config() -> dict:
    """Every Linux field the spec defines, set to a valid value."""
    config = default_spec(args=["sh"])
    config["domainname"] = "example.test"
    config["annotations"] = {"com.example.key": "value", "org.opencontainers.image.stopSignal": "SIGTERM"}
    proc = config["process"]
    proc.update({
        "consoleSize": {"height": 25, "width": 80},
        "apparmorProfile": "acme_secure_profile",
        "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
        "oomScoreAdj": -999,
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 0, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                      "runtime": 1000000, "deadline": 2000000, "period": 3000000},
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
        "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
    })
    proc["user"].update({"umask": 18, "additionalGids": [5, 6]})
    proc["capabilities"]["inheritable"] = ["CAP_KILL"]
    proc["rlimits"].append({"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0})
    config["hooks"] = {name: [{"path": "/usr/bin/hook", "args": ["hook", name], "env": ["A=b"], "timeout": 5}]
                       for name in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                                    "poststop")}
    config["mounts"].append({"destination": "/data", "type": "none", "source": "/srv", "options": ["rbind", "idmap"],
                             "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                             "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]})
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "cgroup", "time")]
    linux["namespaces"].append({"type": "network", "path": "/var/run/netns/blue"})
    linux.update({
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "timeOffsets": {"monotonic": {"secs": 172800, "nanosecs": 0}, "boottime": {"secs": -604800}},
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                    {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432},
                    {"path": "/dev/myfifo", "type": "p"}],
        "netDevices": {"eth1": {"name": "container_eth1"}, "dummy0": {}},
        "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
        "cgroupsPath": "/myRuntime/myContainer",
        "rootfsPropagation": "rslave",
        "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        "intelRdt": {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0;1=1f",
                     "memBwSchema": "MB:0=20;1=70", "schemata": ["L2:0=ff"], "enableMonitoring": True},
        "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "0-3,7", "flags": ["MPOL_F_STATIC_NODES"]},
        "personality": {"domain": "LINUX32", "flags": []},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                    "listenerPath": "/run/seccomp-agent.sock", "listenerMetadata": "opaque",
                    "syscalls": [{"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                                 {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                                 {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                                  "args": [{"index": 1, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]},
    })
    linux["resources"] = {
        "devices": [_dev_rule(False), _dev_rule(True, "c", 10, 229, "rw"), _dev_rule(True, "b", 8, 0, "r"),
                    _dev_rule(True, "a", access="")],
        "memory": {"limit": 536870912, "reservation": 536870912, "swap": -1, "kernel": -1, "kernelTCP": -1,
                   "swappiness": 0, "disableOOMKiller": False, "useHierarchy": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 1024, "quota": 1000000, "burst": 100000, "period": 500000, "realtimeRuntime": 950000,
                "realtimePeriod": 1000000, "cpus": "2-3", "mems": "0-7", "idle": 1},
        "pids": {"limit": -1},
        "blockIO": {"weight": 10, "leafWeight": 10,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                                     {"major": 8, "minor": 16, "leafWeight": 500}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 700}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 9223372036854772000}, {"pageSize": "64KB", "limit": 1000000}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
        "unified": {"io.weight": "default 100", "memory.high": "max"},
    }
    return config


def runc_spec(tmp_path, *flags) -> dict:
    """The config.json `runc spec` writes."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    bundle = tmp_path / "runc-bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", *flags, "--bundle", str(bundle)], check=True, cwd=bundle)
    return json.loads((bundle / "config.json").read_text())


def runtime_configs() -> dict[str, dict]:
    """Named configs every schema check must accept."""
    return {
        "default": default_spec(),
        "default-rootless": default_spec(rootless=True),
        "docker": docker_config(),
        "docker-read-only": docker_config(read_only=True),
        "podman": podman_config(),
        "podman-writable": podman_config(read_only=False),
        "containerd": containerd_config(),
        "every-linux-field": full_linux_config(),
    }


DIGEST = "sha256:" + "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
DIGEST2 = "sha256:" + "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"


def image_documents() -> dict[str, list[dict]]:
    """Valid image-spec documents per schema, shaped like what docker, buildah and registries produce."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST2, "size": 32654}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 7023},
        "layers": [layer, {**layer, "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 0}],
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }
    artifact = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST, "size": 2}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST2, "size": 1024},
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 7143,
             "platform": {"architecture": "ppc64le", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST2, "size": 7682,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "os.features": ["sse4"]},
             "annotations": {"org.opencontainers.image.ref.name": "v1.0"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": DIGEST2, "size": 525,
             "urls": ["https://example.com/blob"]},
        ],
        "annotations": {"com.example.key1": "value1"},
    }
    docker_image_config = {
        "architecture": "amd64",
        "config": {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "Tty": False,
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"], "Image": DIGEST, "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                   "OnBuild": None, "Labels": None},
        "container": "4b8b1a3b8f3c", "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
        "created": "2023-07-18T23:19:33.655005962Z", "docker_version": "20.10.23",
        "history": [{"created": "2023-07-18T23:19:33.538571854Z", "created_by": "/bin/sh -c #(nop) ADD file:x in / "},
                    {"created": "2023-07-18T23:19:33.655005962Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
                     "empty_layer": True}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [DIGEST2]},
    }
    oci_image_config = {
        "created": "2015-10-31T22:22:56.015925234Z",
        "author": "Alyssa P. Hacker <alyspdev@example.com>",
        "architecture": "arm64", "variant": "v8", "os": "linux",
        "config": {"User": "alice", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "9000": {}},
                   "Env": ["FOO=oci_is_a", "BAR=well_written_spec"], "Entrypoint": ["/bin/my-app-binary"],
                   "Cmd": ["--foreground", "--config", "/etc/my-app.d/default.cfg"],
                   "Volumes": {"/var/job-result-data": {}, "/var/log/my-app-logs": {}},
                   "WorkingDir": "/home/alice", "Labels": {"com.example.project.git.url": "https://example.com/p"},
                   "StopSignal": "SIGRTMIN+3", "ArgsEscaped": False},
        "rootfs": {"type": "layers", "diff_ids": [DIGEST, DIGEST2]},
        "history": [{"created": "2015-10-31T22:22:54.690851953Z", "created_by": "/bin/sh -c #(nop) ADD file in /"},
                    {"created": "2015-10-31T22:22:55.613815829Z", "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]",
                     "empty_layer": True, "comment": "", "author": None}],
    }
    minimal_image_config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                            "created": None, "config": None, "history": None}
    return {
        "descriptor.schema.json": [layer, manifest["config"], artifact["config"], index["manifests"][1],
                                   {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 1,
                                    "digest": "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"},
                                   {"mediaType": "text/plain", "size": 5, "digest": "sha512:" + "ab" * 64}],
        "manifest.schema.json": [manifest, artifact, {**manifest, "layers": []}],
        "index.schema.json": [index, {"schemaVersion": 2, "manifests": []}],
        "image-config.schema.json": [docker_image_config, oci_image_config, minimal_image_config],
        "oci-layout.schema.json": [{"imageLayoutVersion": "1.0.0"}],
    }


def state_documents() -> list[dict]:
    """State JSON as the spec shows it and as `runc state` prints it (extra fields, paused, stopped with pid 0)."""
    return [
        {"ociVersion": "1.0.2-dev", "id": "oci-container1", "status": "running", "pid": 4422,
         "bundle": "/containers/redis", "annotations": {"myKey": "myValue"}},
        {"ociVersion": "1.0.2-dev", "id": "abc", "pid": 12, "status": "paused", "bundle": "/run/b",
         "rootfs": "/run/b/rootfs", "created": "2024-01-02T03:04:05.123456789Z", "owner": ""},
        {"ociVersion": "1.0.2-dev", "id": "abc", "pid": 0, "status": "stopped", "bundle": "/run/b"},
        {"ociVersion": "1.0.2", "id": "abc", "status": "creating", "bundle": "/run/b"},
    ]


def feature_documents() -> list[dict]:
    """Features documents: runc's (when runc is installed), the spec's shape with every field, and the minimum."""
    docs = [
        {"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0",
         "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
         "mountOptions": ["bind", "rbind", "ro", "tmpcopyup"],
         "linux": {"namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
                   "capabilities": ["CAP_CHOWN", "CAP_BPF"],
                   "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": None},
                   "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW"], "operators": ["SCMP_CMP_EQ"],
                               "archs": ["SCMP_ARCH_X86_64"], "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"],
                               "supportedFlags": []},
                   "apparmor": {"enabled": False}, "selinux": {"enabled": None},
                   "intelRdt": {"enabled": True, "schemata": True, "monitoring": False},
                   "memoryPolicy": {"modes": ["MPOL_BIND"], "flags": ["MPOL_F_STATIC_NODES"]},
                   "mountExtensions": {"idmap": {"enabled": True}}, "netDevices": {"enabled": False}},
         "annotations": {"org.opencontainers.runc.version": "1.1.5"},
         "potentiallyUnsafeConfigAnnotations": ["org.systemd.property."]},
        {"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2-dev", "hooks": None, "linux": None, "annotations": None},
    ]
    if shutil.which("runc"):
        docs.append(json.loads(subprocess.run(["runc", "features"], check=True, capture_output=True).stdout))
    return docs


def registry() -> Registry:
    """Every schema file under its $id, so relative $refs resolve without network access."""
    return Registry().with_resources(
        (spec.ID_PREFIX + name, Resource.from_contents(load_schema(name))) for name in spec.schema_names())


_VALIDATORS: dict = {}  # schema name -> validator, and "registry" -> the shared Registry


def jsonschema_validator(schema_name: str) -> Draft202012Validator:
    """A real jsonschema validator for "config.schema.json" or a pointer like "config.schema.json#/$defs/process"."""
    validator = _VALIDATORS.get(schema_name)
    if validator is None:
        if not _VALIDATORS:
            _VALIDATORS["registry"] = registry()
        filename, _, pointer = schema_name.partition("#")
        schema = {"$ref": spec.ID_PREFIX + filename + ("#" + pointer if pointer else "")}
        validator = _VALIDATORS[schema_name] = Draft202012Validator(schema, registry=_VALIDATORS["registry"])
    return validator


def errors_of(instance, schema_name: str) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in jsonschema_validator(schema_name).iter_errors(instance)]


# -- the schemas themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("name", spec.schema_names())
def test_schema_is_valid_2020_12(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == spec.ID_PREFIX + name


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("name", spec.schema_names())
def test_every_ref_resolves(name):
    resolver = registry().resolver(base_uri=spec.ID_PREFIX + name)
    refs = list(_refs(load_schema(name)))
    for ref in refs:
        resolver.lookup(ref)  # raises if the file or pointer is missing


def test_loader_api():
    path = spec.schema_path("config")
    assert os.path.basename(path) == "config.schema.json" and os.path.isfile(path)
    assert load_schema("config") is load_schema("config.schema.json")
    assert load_schema(spec.ID_PREFIX + "state.schema.json")["title"].startswith("OCI runtime state")
    with pytest.raises(FileNotFoundError, match="known: .*config.schema.json"):
        load_schema("nonesuch")
    with pytest.raises(FileNotFoundError):
        spec.schema_path("nonesuch")


# -- runtime config: accepted -----------------------------------------------------------------------

@pytest.mark.parametrize("flags", [(), ("--rootless",)], ids=["root", "rootless"])
def test_runc_spec_output_is_accepted(tmp_path, flags):
    assert errors_of(runc_spec(tmp_path, *flags), "config.schema.json") == []


@pytest.mark.parametrize("name", list(runtime_configs()))
def test_engine_and_project_configs_are_accepted(name):
    assert errors_of(runtime_configs()[name], "config.schema.json") == []


def test_engine_shapes_match_the_contract():
    """Guard the fixtures themselves: counts the contract recorded."""
    docker, podman = docker_config(), podman_config()
    assert len(docker["linux"]["seccomp"]["syscalls"]) == 12
    assert sum(len(r["names"]) for r in docker["linux"]["seccomp"]["syscalls"]) == 357
    assert len(podman["linux"]["seccomp"]["syscalls"]) == 19
    assert sum(len(r["names"]) for r in podman["linux"]["seccomp"]["syscalls"]) == 434
    assert len(docker["linux"]["resources"]["devices"]) == 8
    assert len(containerd_config()["linux"]["resources"]["devices"]) == 10
    assert any("tmpcopyup" in m.get("options", []) for m in podman["mounts"])


@pytest.mark.parametrize("engine", ["docker", "podman", "containerd"])
def test_exec_process_json_is_accepted(engine):
    assert errors_of(exec_process(engine), "config.schema.json#/$defs/process") == []


@pytest.mark.parametrize("resources", UPDATE_RESOURCES, ids=["docker-stdin", "podman-file"])
def test_update_resources_are_accepted(resources):
    assert errors_of(resources, "config.schema.json#/$defs/resources") == []


def test_unknown_properties_are_ignored_as_the_spec_requires():
    config = docker_config()
    config["org.example.extension"] = {"anything": [1, 2]}
    config["process"]["futureField"] = True
    config["linux"]["resources"]["memory"]["futureKnob"] = 1
    config["linux"]["seccomp"]["syscalls"][0]["comment"] = "docker profile leftovers"
    config["mounts"][0]["futureMountField"] = "x"
    config["windows"] = {"layerFolders": []}
    assert errors_of(config, "config.schema.json") == []


# -- runtime config: refused ------------------------------------------------------------------------

def _set(doc: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


DELETE = object()

BROKEN_CONFIGS = {
    "no ociVersion": (("ociVersion",), DELETE),
    "ociVersion not semver": (("ociVersion",), "1.0"),
    "ociVersion a number": (("ociVersion",), 1),
    "no root": (("root",), DELETE),
    "empty root path": (("root", "path"), ""),
    "args empty": (("process", "args"), []),
    "args a string": (("process", "args"), "sh -c true"),
    "args item not string": (("process", "args"), ["sh", 1]),
    "no cwd": (("process", "cwd"), DELETE),
    "relative cwd": (("process", "cwd"), "tmp"),
    "uid negative": (("process", "user", "uid"), -1),
    "uid too big": (("process", "user", "uid"), 2 ** 32),
    "uid a string": (("process", "user", "uid"), "0"),
    "no gid": (("process", "user", "gid"), DELETE),
    "terminal a string": (("process", "terminal"), "true"),
    "consoleSize without width": (("process", "consoleSize"), {"height": 10}),
    "capability lower case": (("process", "capabilities", "bounding"), ["cap_kill"]),
    "capabilities a list": (("process", "capabilities"), ["CAP_KILL"]),
    "rlimit unknown type": (("process", "rlimits"), [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
    "rlimit without soft": (("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "hard": 1}]),
    "rlimit negative": (("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}]),
    "oomScoreAdj out of range": (("process", "oomScoreAdj"), 1001),
    "ioPriority bad class": (("process", "ioPriority"), {"class": "IOPRIO_CLASS_NONE", "priority": 1}),
    "ioPriority priority 8": (("process", "ioPriority"), {"class": "IOPRIO_CLASS_BE", "priority": 8}),
    "scheduler without policy": (("process", "scheduler"), {"nice": 1}),
    "scheduler bad flag": (("process", "scheduler"), {"policy": "SCHED_RR", "flags": ["SCHED_FLAG_NOPE"]}),
    "mount without destination": (("mounts", 0), {"type": "proc", "source": "proc"}),
    "mount options a string": (("mounts", 0, "options"), "nosuid,noexec"),
    "mount uidMappings without gidMappings": (("mounts", 0, "uidMappings"),
                                              [{"containerID": 0, "hostID": 1, "size": 1}]),
    "hook relative path": (("hooks",), {"prestart": [{"path": "bin/hook"}]}),
    "hook without path": (("hooks",), {"poststop": [{"args": ["x"]}]}),
    "hook timeout zero": (("hooks",), {"poststart": [{"path": "/bin/true", "timeout": 0}]}),
    "hooks a list": (("hooks",), []),
    "annotation value not string": (("annotations",), {"a": 1}),
    "annotation empty key": (("annotations",), {"": "x"}),
    "namespace unknown type": (("linux", "namespaces", 2), {"type": "foo"}),
    "namespace relative path": (("linux", "namespaces", 0), {"type": "pid", "path": "proc/1/ns/pid"}),
    "namespace without type": (("linux", "namespaces", 0), {"path": "/proc/1/ns/pid"}),
    "uid mapping without size": (("linux", "uidMappings"), [{"containerID": 0, "hostID": 1000}]),
    "device bad type": (("linux", "devices"), [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]),
    "char device without major": (("linux", "devices"), [{"path": "/dev/x", "type": "c", "minor": 1}]),
    "device relative path": (("linux", "devices"), [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]),
    "device rule without allow": (("linux", "resources", "devices", 0), {"access": "rwm"}),
    "device rule bad access": (("linux", "resources", "devices", 0), {"allow": False, "access": "rwx"}),
    "device rule type p": (("linux", "resources", "devices", 0), {"allow": True, "type": "p"}),
    "memory limit a string": (("linux", "resources", "memory"), {"limit": "128m"}),
    "memory swappiness 101": (("linux", "resources", "memory"), {"swappiness": 101}),
    "cpu shares negative": (("linux", "resources", "cpu"), {"shares": -1}),
    "cpus bad list": (("linux", "resources", "cpu"), {"cpus": "0-3;7"}),
    "pids limit float": (("linux", "resources", "pids"), {"limit": 1.5}),
    "blkio weight too big": (("linux", "resources", "blockIO"), {"weight": 70000}),
    "weightDevice without weights": (("linux", "resources", "blockIO"), {"weightDevice": [{"major": 8, "minor": 0}]}),
    "throttle without rate": (("linux", "resources", "blockIO"), {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
    "hugepage bad size": (("linux", "resources", "hugepageLimits"), [{"pageSize": "2M", "limit": 1}]),
    "rdma entry empty": (("linux", "resources", "rdma"), {"mlx": {}}),
    "unified value not string": (("linux", "resources", "unified"), {"memory.max": 1}),
    "network priority without name": (("linux", "resources", "network"), {"priorities": [{"priority": 1}]}),
    "seccomp without defaultAction": (("linux", "seccomp"), {"syscalls": []}),
    "seccomp bad action": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_NOPE"}),
    "seccomp bad arch": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}),
    "seccomp bad flag": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["TSYNC"]}),
    "seccomp rule without names": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW",
                                                           "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}),
    "seccomp arg bad op": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}),
    "seccomp metadata without listener": (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW",
                                                                  "listenerMetadata": "x"}),
    "rootfsPropagation bad": (("linux", "rootfsPropagation"), "recursive"),
    "maskedPaths relative": (("linux", "maskedPaths"), ["proc/kcore"]),
    "readonlyPaths not a list": (("linux", "readonlyPaths"), "/proc/sys"),
    "sysctl value not string": (("linux", "sysctl"), {"net.ipv4.ip_forward": 1}),
    "timeOffsets unknown clock": (("linux", "timeOffsets"), {"realtime": {"secs": 1}}),
    "timeOffsets negative nanosecs": (("linux", "timeOffsets"), {"boottime": {"nanosecs": -1}}),
    "personality bad domain": (("linux", "personality"), {"domain": "LINUX64"}),
    "memoryPolicy without mode": (("linux", "memoryPolicy"), {"nodes": "0"}),
    "intelRdt memBwSchema without MB:": (("linux", "intelRdt"), {"memBwSchema": "L3:0=1"}),
    "intelRdt memBwSchema with newline": (("linux", "intelRdt"), {"memBwSchema": "MB:0=20\nMB:1=70"}),
    "intelRdt schemata line with newline": (("linux", "intelRdt"), {"schemata": ["L3:0=1\n"]}),
    "linux a list": (("linux",), []),
}


@pytest.mark.parametrize("what", list(BROKEN_CONFIGS))
def test_broken_configs_are_refused(what):
    path, value = BROKEN_CONFIGS[what]
    config = _set(docker_config(), path, value)
    assert errors_of(config, "config.schema.json"), f"{what} was accepted"


def test_config_not_an_object_is_refused():
    for doc in ([], "config", None, 1):
        assert errors_of(doc, "config.schema.json")


# -- state, features ---------------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(state_documents())))
def test_state_documents_are_accepted(index):
    assert errors_of(state_documents()[index], "state.schema.json") == []


@pytest.mark.parametrize("broken", [
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "running", "bundle": "/b"},              # running needs pid
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "created", "pid": -1, "bundle": "/b"},
    {"ociVersion": "1.0.2-dev", "id": "", "status": "stopped", "bundle": "/b"},
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "", "bundle": "/b"},
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "stopped", "bundle": "relative/b"},
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "stopped"},
    {"id": "a", "status": "stopped", "bundle": "/b"},
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "stopped", "bundle": "/b", "annotations": {"k": 1}},
])
def test_broken_states_are_refused(broken):
    assert errors_of(broken, "state.schema.json")


@pytest.mark.parametrize("index", range(len(feature_documents())))
def test_feature_documents_are_accepted(index):
    assert errors_of(feature_documents()[index], "features.schema.json") == []


@pytest.mark.parametrize("broken", [
    {"ociVersionMin": "1.0.0"},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "unknownTopLevel": 1},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "hooks": ["preStart"]},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "linux": {"namespaces": ["net"]}},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "linux": {"cgroup": {"v3": True}}},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "linux": {"seccomp": {"enabled": "yes"}}},
    {"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0", "annotations": []},
])
def test_broken_features_are_refused(broken):
    assert errors_of(broken, "features.schema.json")


# -- image spec ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,index",
                         [(name, i) for name, docs in image_documents().items() for i in range(len(docs))])
def test_image_documents_are_accepted(name, index):
    assert errors_of(image_documents()[name][index], name) == []


def _broken_image_documents():
    docs = image_documents()
    manifest, index = docs["manifest.schema.json"][0], docs["index.schema.json"][0]
    config, layer = docs["image-config.schema.json"][1], docs["descriptor.schema.json"][0]
    return [
        ("descriptor.schema.json", _set(layer, ("digest",), "sha256:ABC")),
        ("descriptor.schema.json", _set(layer, ("digest",), "sha256:" + "A" * 64)),
        ("descriptor.schema.json", _set(layer, ("digest",), "sha256:" + "a" * 63)),
        ("descriptor.schema.json", _set(layer, ("digest",), "no-colon")),
        ("descriptor.schema.json", _set(layer, ("size",), -1)),
        ("descriptor.schema.json", _set(layer, ("size",), DELETE)),
        ("descriptor.schema.json", _set(layer, ("mediaType",), "not a media type")),
        ("descriptor.schema.json", _set(layer, ("data",), "not base64!")),
        ("descriptor.schema.json", _set(layer, ("platform",), {"os": "linux"})),
        ("manifest.schema.json", _set(manifest, ("schemaVersion",), 1)),
        ("manifest.schema.json", _set(manifest, ("mediaType",), "application/vnd.oci.image.index.v1+json")),
        ("manifest.schema.json", _set(manifest, ("config",), DELETE)),
        ("manifest.schema.json", _set(manifest, ("layers",), DELETE)),
        ("manifest.schema.json", _set(manifest, ("layers", 0, "digest"), "md5")),
        ("manifest.schema.json", _set(manifest, ("config", "mediaType"), "application/vnd.oci.empty.v1+json")),
        ("manifest.schema.json", _set(manifest, ("annotations",), {"k": 1})),
        ("index.schema.json", _set(index, ("manifests",), DELETE)),
        ("index.schema.json", _set(index, ("manifests", 0, "platform"), {"architecture": "amd64"})),
        ("index.schema.json", _set(index, ("schemaVersion",), "2")),
        ("image-config.schema.json", _set(config, ("rootfs", "type"), "layer")),
        ("image-config.schema.json", _set(config, ("rootfs",), DELETE)),
        ("image-config.schema.json", _set(config, ("architecture",), DELETE)),
        ("image-config.schema.json", _set(config, ("created",), "yesterday")),
        ("image-config.schema.json", _set(config, ("config", "ExposedPorts"), {"http": {}})),
        ("image-config.schema.json", _set(config, ("config", "Env"), "A=b")),
        ("image-config.schema.json", _set(config, ("config", "StopSignal"), "SIG TERM")),
        ("image-config.schema.json", _set(config, ("rootfs", "diff_ids"), ["sha256:1234"])),
        ("image-config.schema.json", _set(config, ("history", 0, "empty_layer"), "no")),
        ("oci-layout.schema.json", {}),
        ("oci-layout.schema.json", {"imageLayoutVersion": 1}),
    ]


@pytest.mark.parametrize("index", range(len(_broken_image_documents())))
def test_broken_image_documents_are_refused(index):
    name, doc = _broken_image_documents()[index]
    assert errors_of(doc, name), f"{name}: accepted {doc}"
