"""Setting up the container process just before execve: limits, identity, privileges, executable.

Shared by `create` (the container's init) and `exec` (a process joining a running container).
"""

from __future__ import annotations

import os
import resource  # imported here: init calls set_rlimits after pivot_root, when the host's stdlib is gone

from . import sys as lsys
from .errors import ConfigInvalid, RuntimeFailure
from .security import capabilities

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def check(process: dict) -> None:
    """Checks that need no container: refuse a bad process before anything is created."""
    if not process.get("args"):
        raise ConfigInvalid("process.args must not be empty")
    cwd = process.get("cwd", "/")
    if not cwd.startswith("/"):
        raise ConfigInvalid(f"process.cwd {cwd!r} must be an absolute path")
    for limit in process.get("rlimits") or []:
        if limit.get("type") not in RLIMITS:
            raise ConfigInvalid(f"process.rlimits: unknown rlimit type {limit.get('type')!r}")
        if limit.get("soft", 0) > limit.get("hard", 0):
            raise ConfigInvalid(f"process.rlimits: {limit['type']} soft limit {limit.get('soft')} is above "
                                f"the hard limit {limit.get('hard')}")
    capabilities.check(process.get("capabilities"))


def mark_cloexec_from(first: int) -> None:
    """Set close-on-exec on every fd >= first."""
    try:
        lsys.close_range(first, 0xFFFFFFFF, lsys.CLOSE_RANGE_CLOEXEC)
    except OSError:  # kernels before 5.11: walk our fd table instead
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def env_dict(env: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if key:
            result[key] = value
    return result


def set_rlimits(rlimits: list[dict] | None) -> None:
    for limit in rlimits or []:
        kind = RLIMITS[limit["type"]]
        try:
            resource.setrlimit(kind, (limit.get("soft", 0), limit.get("hard", 0)))
        except (ValueError, OSError) as e:
            raise RuntimeFailure(f"setting rlimit {limit['type']} to soft {limit.get('soft')} hard "
                                 f"{limit.get('hard')}: {getattr(e, 'strerror', None) or e}") from None


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise RuntimeFailure(f"setting oom_score_adj to {value}: {e.strerror}") from None


def _passwd_home(uid: int) -> str | None:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5]
    except OSError:
        pass
    return None


def set_user(user: dict | None, caps: dict | None, *, setgroups_allowed: bool = True) -> None:
    """Switch to the configured uid/gid/groups while keeping exactly the configured capabilities."""
    user = user or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    capabilities.drop_bounding(caps)
    lsys.prctl(lsys.PR_SET_KEEPCAPS, 1)
    try:
        if setgroups_allowed:
            os.setgroups(list(user.get("additionalGids") or []))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeFailure(f"setting user {uid}:{gid} (groups {user.get('additionalGids') or []}): "
                             f"{e.strerror}") from None
    lsys.prctl(lsys.PR_SET_KEEPCAPS, 0)
    capabilities.apply(caps)
    if "umask" in user and user["umask"] is not None:
        os.umask(user["umask"])


def lookup_executable(arg0: str, env: dict[str, str], cwd: str) -> str:
    """Find the program as execvp would, with the container's PATH; errors use runc's wording."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        try:
            st = os.stat(path)
        except OSError as e:
            raise RuntimeFailure(f'exec: "{arg0}": stat {arg0}: {e.strerror.lower()}') from None
        if os.path.isdir(path) or not st.st_mode & 0o111:
            raise RuntimeFailure(f'exec: "{arg0}": permission denied')
        return path
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeFailure(f'exec: "{arg0}": executable file not found in $PATH')


def final_env(process: dict, uid: int) -> dict[str, str]:
    env = env_dict(process.get("env"))
    if "HOME" not in env:
        env["HOME"] = _passwd_home(uid) or "/"
    return env


def set_no_new_privs(process: dict) -> None:
    if process.get("noNewPrivileges"):
        lsys.prctl(lsys.PR_SET_NO_NEW_PRIVS, 1)


def check_lsm(process: dict) -> None:
    """AppArmor/SELinux fields: applied where the host supports them, refused clearly where it cannot."""
    profile = process.get("apparmorProfile")
    if profile and not os.path.exists("/sys/kernel/security/apparmor"):
        raise RuntimeFailure(f'apparmor profile "{profile}" specified but AppArmor is not enabled on this system')
    label = process.get("selinuxLabel")
    if label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise RuntimeFailure(f'selinux label "{label}" specified but SELinux is not enabled on this system')


def apply_lsm(process: dict) -> None:
    """Ask the kernel to switch LSM context at the next execve."""
    profile = process.get("apparmorProfile")
    if profile:
        _write_attr("/proc/self/attr/apparmor/exec", f"exec {profile}", "/proc/self/attr/exec")
    label = process.get("selinuxLabel")
    if label:
        _write_attr("/proc/self/attr/exec", label)


def _write_attr(path: str, value: str, fallback: str | None = None) -> None:
    for candidate in (path, fallback):
        if not candidate:
            continue
        try:
            with open(candidate, "w") as f:
                f.write(value)
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RuntimeFailure(f"setting LSM attribute {value!r}: {e.strerror}") from None
