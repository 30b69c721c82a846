"""Seccomp for the container process, through libseccomp.

    flt = prepare_filter(spec["linux"].get("seccomp"))   # runtime, before fork: checks everything
    notify_fd = flt.load()                               # container init, just before exec
    flt.send_listener(fd, state)                         # runtime side, when flt.notify_required

`prepare_filter` raises SeccompError for anything wrong in the profile, so the container fails
before any process exists. `load` needs no_new_privs or CAP_SYS_ADMIN: the runtime sets
no_new_privs itself when `process.noNewPrivileges` asks, and otherwise must load the filter
while init still holds CAP_SYS_ADMIN.
"""

from __future__ import annotations

import errno
import os

from oci_runtime.seccomp.enosys import DENYING_DEFAULTS, with_enosys_stub
from oci_runtime.seccomp.errors import SeccompError
from oci_runtime.seccomp.profile import FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_WAIT_KILLABLE_RECV

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:       # these are imported only when a profile is used
    from oci_runtime.seccomp.lib import Libseccomp
    from oci_runtime.seccomp.profile import SeccompProfile

__all__ = ["SeccompError", "SeccompFilter", "features", "prepare_filter"]


class SeccompFilter:
    """A built, not yet loaded filter. A disabled one (no profile) loads nothing."""

    def __init__(self, profile: SeccompProfile):
        self.profile = profile
        self._lib: Libseccomp          # set by _build() when the profile is enabled
        self._ctx: int | None = None
        self._program: bytes | None = None
        self._loaded = False
        self.flags: tuple[str, ...] = ()
        self.rule_count = 0
        self.notify_required = False
        # Names libseccomp does not know; skipped like runc does (worth a debug log line).
        self.unknown_syscalls: tuple[str, ...] = ()
        if profile.enabled:
            self._build()

    @property
    def enabled(self) -> bool:
        return self.profile.enabled

    def _build(self) -> None:
        from oci_runtime.seccomp import lib as seccomp_lib
        from oci_runtime.seccomp.build import build_context

        self._lib = seccomp_lib.library()
        built = build_context(self._lib, self.profile)
        self._ctx = built.ctx
        self.flags = built.flags
        self.rule_count = built.rule_count
        self.notify_required = built.notify
        self.unknown_syscalls = built.unknown_syscalls
        self._program = None  # the BPF to load ourselves, when the ENOSYS stub applies (else libseccomp loads)
        if self.profile.default_action in DENYING_DEFAULTS:
            self._program = with_enosys_stub(self._export("bpf"), built.last_syscall, os.uname().machine)

    def load(self) -> int | None:
        """Install the filter on the calling process; the listener fd when SCMP_ACT_NOTIFY is used, else None.

        The listener fd is O_CLOEXEC: it does not leak into the container's program.
        """
        if not self.enabled:
            return None
        if self._ctx is None and self._program is None:
            raise SeccompError("the seccomp filter was closed before it was loaded")
        if self._loaded:
            raise SeccompError("the seccomp filter is already loaded in this process")
        if self._program is not None:
            return self._load_program()
        rc = self._lib.load(self._ctx)
        if rc < 0:
            raise SeccompError(f"loading the seccomp filter into the kernel failed: {os.strerror(-rc)}"
                               + _LOAD_HINTS.get(-rc, ""))
        self._loaded = True
        if not self.notify_required:
            return None
        fd = self._lib.notify_fd(self._ctx)
        if fd < 0:
            raise SeccompError(f"the seccomp filter is loaded but its notify fd is missing: {os.strerror(-fd)}")
        return fd

    def _load_program(self) -> int | None:
        """seccomp(SECCOMP_SET_MODE_FILTER) with our stub + libseccomp's program, and the profile's flags."""
        from oci_runtime import linux

        flags = sum(_FLAG_BITS[flag] for flag in self.flags)
        if self.notify_required:
            flags |= _NEW_LISTENER | (_TSYNC_ESRCH if flags & _FLAG_BITS[FLAG_TSYNC] else 0)
        try:
            fd = linux.seccomp_set_filter(self._program, flags)
        except OSError as e:
            raise SeccompError(f"loading the seccomp filter into the kernel failed: {e.strerror}"
                               + _LOAD_HINTS.get(e.errno, "")) from None
        self._loaded = True
        return fd if self.notify_required else None

    def send_listener(self, notify_fd: int, state: dict, pid: int | None = None) -> None:
        """Send the notify fd and the container process state to `linux.seccomp.listenerPath`.

        `state` is the container's state (ociVersion, id, status, pid, bundle, annotations);
        `pid` is the process the filter was loaded in, by default state["pid"].
        """
        from oci_runtime.seccomp.listener import send_listener_fd

        if not self.profile.listener_path:
            raise SeccompError("linux.seccomp.listenerPath is not set: there is no agent to send the notify fd to")
        send_listener_fd(self.profile.listener_path, notify_fd, state,
                         state.get("pid", 0) if pid is None else pid, self.profile.listener_metadata)

    def hand_over(self, pid: int, fd: int, state: dict) -> None:
        """Send the listener `fd` of process `pid` (which loaded this filter; fd is the runtime's copy, closed
        here) to the agent at linux.seccomp.listenerPath with the container's state."""
        try:
            self.send_listener(fd, state, pid)
        finally:
            os.close(fd)

    def export_pfc(self) -> str:
        """libseccomp's pseudo filter code: a readable dump of the filter, for debugging."""
        return self._export("pfc").decode()

    def export_bpf(self) -> bytes:
        """The BPF program seccomp_load() would install."""
        return self._export("bpf")

    def _export(self, fmt: str) -> bytes:
        if self._ctx is None:
            raise SeccompError("a disabled or closed seccomp filter has nothing to export")
        return self._lib.export(self._ctx, fmt)

    def close(self) -> None:
        """Free the libseccomp context (a loaded filter stays in the kernel)."""
        if self._ctx is not None:
            self._lib.release(self._ctx)
            self._ctx = None

    def __enter__(self) -> SeccompFilter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


_FLAG_BITS = {FLAG_TSYNC: 1, FLAG_LOG: 2, FLAG_SPEC_ALLOW: 4, FLAG_WAIT_KILLABLE_RECV: 32}  # seccomp(2)'s
_NEW_LISTENER, _TSYNC_ESRCH = 8, 16
_LOAD_HINTS = {
    errno.EACCES: " (the process needs no_new_privs or CAP_SYS_ADMIN to load a filter: "
                  "set process.noNewPrivileges, or load before dropping capabilities)",
    errno.EBUSY: " (only one seccomp notify listener is allowed per process)",
}


def prepare_filter(seccomp: dict | None, *, strict: bool = False, keep_in: str | None = None) -> SeccompFilter:
    """Check `linux.seccomp` and build its filter; call before fork. Raises SeccompError.

    Syscall names libseccomp does not know are skipped (runc's behaviour, for profiles written for newer
    kernels) unless `strict`, when they are refused: the runtime is strict, so a typo is never silently a
    hole in the filter."""
    from oci_runtime.seccomp.profile import parse_profile

    profile = parse_profile(seccomp)
    kept = _kept_path(seccomp, keep_in) if keep_in and profile.enabled else None
    if kept is not None:
        program = _read_kept(kept)
        if program is not None:
            return _from_program(profile, *program)
    flt = SeccompFilter(profile)
    if kept is not None and flt._program is not None and not flt.notify_required and not flt.unknown_syscalls:
        _keep(kept, flt)
    if strict and flt.unknown_syscalls:
        from oci_runtime.seccomp.lib import library

        names = ", ".join(f'"{n}"' for n in flt.unknown_syscalls)
        raise SeccompError(f"linux.seccomp: unknown syscall name(s) {names}: not known to libseccomp "
                           f"{library().version_text} on this system")
    return flt


def features() -> dict:
    """The `linux.seccomp` part of `features` output, for this libseccomp and kernel."""
    from oci_runtime.seccomp import lib as seccomp_lib
    from oci_runtime.seccomp.build import flag_supported
    from oci_runtime.seccomp.profile import ACTIONS, ARCHITECTURES, FLAGS, OPERATORS

    try:
        lib = seccomp_lib.library()
    except SeccompError:
        return {"enabled": False}
    ctx = lib.new_context(ACTIONS["SCMP_ACT_ALLOW"])
    try:
        supported = [flag for flag in FLAGS if flag_supported(lib, ctx, flag) == 0]
    finally:
        lib.release(ctx)
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(arch for arch, name in ARCHITECTURES.items() if lib.arch_token(name)),
        "knownFlags": list(FLAGS),
        "supportedFlags": supported,
    }


# Every create and exec compiles its profile again (libseccomp building the BPF for each ABI: ~15 ms of CPU
# for docker's default profile), mostly the same few profiles. The finished program of a filter we load
# ourselves (one with the ENOSYS stub, no notify listener) is kept in a cache of root's under /run (gone at
# reboot, outside every state root: a failed create leaves nothing there), named by what it was built
# from: the profile, the kernel (which flags it supports) and the libseccomp that compiled it.
CACHE_DIR = "/run/pyrunc-seccomp"


def cache_dir() -> str | None:
    """The cache directory, made on first use; None when not root or when what is there is not root's own
    private directory (then nothing is read from or written to it)."""
    import stat

    if os.geteuid() != 0:
        return None
    try:
        os.mkdir(CACHE_DIR, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(CACHE_DIR)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        return None
    return CACHE_DIR


def _sha256_hex(data: bytes) -> str:
    """sha256 from Python's own module: hashlib loads OpenSSL's first (~4 ms of every exec)."""
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # 3.12 and later
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _kept_path(seccomp: dict, directory: str) -> str:
    from oci_runtime import jsonio  # json.dumps's text (the key of programs kept before), without json's imports
    from oci_runtime.seccomp.lib import library

    uname = os.uname()
    source = jsonio.dumps([seccomp, uname.release, uname.machine, library().version_text], sort_keys=True)
    return os.path.join(directory, f"seccomp-{_sha256_hex(source.encode())[:32]}.bpf")


def _read_kept(path: str) -> tuple[tuple[str, ...], bytes] | None:
    """(flags, program) from a kept file: a first line of flags, then the program."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, newline, program = data.partition(b"\n")
    if not newline or not program or len(program) % 8:  # struct sock_filter: 8 bytes an instruction
        return None
    return tuple(head.decode().split()), program


def _keep(path: str, flt: SeccompFilter) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(" ".join(flt.flags).encode() + b"\n" + flt._program)
        os.rename(tmp, path)
    except OSError:  # only a cache: the next create or exec builds it again
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _from_program(profile: SeccompProfile, flags: tuple[str, ...], program: bytes) -> SeccompFilter:
    flt = SeccompFilter.__new__(SeccompFilter)
    flt.profile, flt._ctx, flt._program, flt._loaded = profile, None, program, False
    flt.flags, flt.rule_count, flt.notify_required, flt.unknown_syscalls = flags, 0, False, ()
    return flt
