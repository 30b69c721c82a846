"""Setting up the container process just before execve: limits, identity, privileges, executable.

Shared by `create` (the container's init) and `exec` (a process joining a running container).
"""

from __future__ import annotations

import os
import resource  # imported here: init calls set_rlimits after pivot_root, when the host's stdlib is gone

from oci_runtime import linux
from oci_runtime.errors import ConfigInvalid, RuntimeFailure
from oci_runtime.specgen import DEFAULT_PATH
from oci_runtime.process import capabilities

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


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
        linux.close_range(first, 0xFFFFFFFF, linux.CLOSE_RANGE_CLOEXEC)
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


def _rlim(value: int) -> int:
    """The spec's uint64 as setrlimit takes it: 2**64-1 (RLIM_INFINITY, as docker and runc write
    "unlimited") does not fit a C long; Python's RLIM_INFINITY is its signed -1."""
    return resource.RLIM_INFINITY if value >= 2**63 else value


def set_rlimits(rlimits: list[dict] | None) -> None:
    for limit in rlimits or []:
        kind = RLIMITS[limit["type"]]
        try:
            resource.setrlimit(kind, (_rlim(limit.get("soft", 0)), _rlim(limit.get("hard", 0))))
        except (ValueError, OSError, OverflowError) as e:
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


def set_user(user: dict | None, caps: dict | None, *, setgroups_allowed: bool = True) -> None:
    """Switch to the configured uid/gid/groups while keeping exactly the configured capabilities."""
    user = user or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    capabilities.drop_bounding(caps)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    try:
        if setgroups_allowed:
            os.setgroups(list(user.get("additionalGids") or []))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeFailure(f"setting user {uid}:{gid} (groups {user.get('additionalGids') or []}): "
                             f"{e.strerror}") from None
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
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
        from oci_runtime import users  # loaded by preload(): no file is read here

        env["HOME"] = users.home_of(uid) or "/"
    return env


def set_no_new_privs(process: dict) -> None:
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


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


class Prepared:
    """A process ready to exec: only the late seccomp filter and execve itself are left."""

    def __init__(self, executable: str, args: list[str], env: dict[str, str], seccomp_late):
        self.executable = executable
        self.args = args
        self.env = env
        self.seccomp_late = seccomp_late

    def load_late_seccomp(self) -> None:
        """The filter loaded as late as possible (with no_new_privs): just before the startContainer hooks
        and execve, which both run under it, as with runc."""
        if self.seccomp_late is not None:
            self.seccomp_late.load()
            self.seccomp_late = None

    def execute(self) -> None:
        restore_signals()
        self.load_late_seccomp()
        os.execve(self.executable, self.args, self.env)


def restore_signals() -> None:
    """Undo what the Python interpreter did to signals: it ignores SIGPIPE and SIGXFSZ at start-up, and an
    ignored disposition survives execve (a `yes | head` in the container would then never end)."""
    import _signal

    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def preload(process: dict) -> None:
    """Import now what prepare() will need once the host's filesystem is out of reach
    (after pivot_root, or setns into the container's mount namespace)."""
    if process.get("terminal"):
        from oci_runtime.process import console  # noqa: F401
    if "HOME" not in env_dict(process.get("env")):
        from oci_runtime import users  # noqa: F401 - final_env looks HOME up in the container's passwd


def prepare(process: dict, *, console_sock=None, preserve_fds: int = 0, seccomp=None, in_userns: bool = False,
            extra_env: dict | None = None, bind_console: bool = True, hand_over=None) -> Prepared:
    """Everything about the process that can fail, done while errors can still reach the caller:
    terminal, limits, identity, privileges, cwd and the executable's path. Runs inside the container.

    hand_over(fd) gives a seccomp listener to the runtime, which passes it to the agent, and returns once
    the agent has it: called the moment the filter is loaded, since any syscall after that may be one the
    agent must answer (an open, a close, a read of our own).
    """
    # Whatever the caller leaked to us (a shim's socket, ...) must not reach the process; marked now,
    # before any seccomp filter could refuse close_range. Every fd we open later is O_CLOEXEC.
    mark_cloexec_from(3 + preserve_fds)
    if process.get("terminal"):
        setup_terminal(process, console_sock, bind_console)
    elif console_sock is not None:
        console_sock.close()
    set_oom_score_adj(process.get("oomScoreAdj"))
    set_rlimits(process.get("rlimits"))
    check_lsm(process)
    user = process.get("user") or {}
    env = final_env(process, user.get("uid", 0))
    env.update(extra_env or {})
    seccomp_early = seccomp is not None and not process.get("noNewPrivileges")
    if seccomp_early:  # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before dropping caps
        _load_seccomp(seccomp, hand_over)
    # runc's order: into cwd while still privileged (the user may not be allowed to walk there); a refusal
    # is tried again as the user (who may own a directory the runtime's user cannot enter).
    cwd = process.get("cwd", "/")
    entered = _chdir(cwd, retry_later=True)
    set_user(user, process.get("capabilities"), setgroups_allowed=setgroups_allowed(in_userns))
    set_no_new_privs(process)
    if seccomp is not None and not seccomp_early and getattr(seccomp, "notify_required", False):
        # the listener fd must reach the agent before the process runs: load now, while create waits
        _load_seccomp(seccomp, hand_over)
        seccomp_early = True
    if not entered:
        _chdir(cwd, retry_later=False)
    _check_cwd_inside()
    args = process["args"]
    executable = lookup_executable(args[0], env, cwd)
    apply_lsm(process)
    return Prepared(executable, args, env, seccomp if seccomp is not None and not seccomp_early else None)


def _load_seccomp(seccomp, hand_over) -> None:
    notify_fd = seccomp.load()
    if notify_fd is not None:
        if hand_over is None:
            raise RuntimeFailure("SCMP_ACT_NOTIFY: no way to reach the seccomp agent from here")
        hand_over(notify_fd)


def _chdir(cwd: str, *, retry_later: bool) -> bool:
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        if retry_later:
            return False
        raise RuntimeFailure(f'chdir to cwd ("{cwd}") set in config.json failed: permission denied') from None
    except OSError as e:
        raise RuntimeFailure(f'chdir to cwd ("{cwd}") set in config.json failed: {e.strerror.lower()}') from None


def _check_cwd_inside() -> None:
    """A cwd outside the container's root (a leaked host directory) reads as "(unreachable)...": refuse
    to run there (CVE-2024-21626)."""
    try:
        cwd = os.getcwd()
    except OSError:
        return  # getcwd refused by the container's own seccomp profile: nothing to check with
    if not cwd.startswith("/"):
        raise RuntimeFailure("the working directory is outside the container's root")


def setgroups_allowed(in_userns: bool) -> bool:
    if not in_userns:
        return True
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return False


def setup_terminal(process: dict, console_sock, bind_console: bool) -> None:
    """A pty from the container's devpts: the master goes to the console socket, the slave becomes our
    controlling terminal and stdio (and /dev/console)."""
    if console_sock is None:
        raise RuntimeFailure("process.terminal is true but no --console-socket was given")
    from oci_runtime.process import console  # imported by the caller before the container's root became ours: see preload()

    master, slave_path = console.open_pty_in_container()
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    # The user owns its terminal; the group stays what devpts gave it (gid=5, tty), as runc leaves it.
    os.fchown(slave, (process.get("user") or {}).get("uid", 0), -1)
    console.set_size(master, process.get("consoleSize"))
    try:
        if bind_console:
            _bind_console(slave_path)
        console.send_fd(console_sock, master)
    finally:
        console_sock.close()
        os.close(master)
    console.make_controlling(slave)
    os.close(slave)


def _bind_console(slave_path: str) -> None:
    """/dev/console in the container is the pty slave, as runc sets it up."""
    try:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        linux.mount(slave_path, "/dev/console", None, linux.MS_BIND, None)
    except OSError:
        pass  # a read-only /dev is allowed; the console then is only the process's stdio
