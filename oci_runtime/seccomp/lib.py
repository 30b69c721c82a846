"""ctypes binding to libseccomp (libseccomp.so.2): only the calls the runtime uses.

The library is opened on first use, so importing the seccomp modules costs nothing when a
container has no seccomp profile. Calls return libseccomp's convention, a negative errno on
failure; callers turn that into a SeccompError that says what was being done.
"""

from __future__ import annotations

import ctypes
import os

from oci_runtime.seccomp.errors import SeccompError

SONAME = "libseccomp.so.2"

# enum scmp_filter_attr (seccomp.h)
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10          # libseccomp >= 2.6.0

NR_SCMP_ERROR = -1              # seccomp_syscall_resolve_name(): name unknown to libseccomp


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_SIGNATURES = {
    # name: (restype, argtypes)
    "seccomp_version": (ctypes.POINTER(_Version), []),
    "seccomp_api_get": (ctypes.c_uint, []),
    "seccomp_init": (ctypes.c_void_p, [ctypes.c_uint32]),
    "seccomp_release": (None, [ctypes.c_void_p]),
    "seccomp_arch_resolve_name": (ctypes.c_uint32, [ctypes.c_char_p]),
    "seccomp_arch_exist": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "seccomp_arch_add": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "seccomp_attr_set": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]),
    "seccomp_attr_get": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]),
    "seccomp_syscall_resolve_name": (ctypes.c_int, [ctypes.c_char_p]),
    "seccomp_rule_add_array": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                              ctypes.c_uint, ctypes.POINTER(ArgCmp)]),
    "seccomp_load": (ctypes.c_int, [ctypes.c_void_p]),
    "seccomp_notify_fd": (ctypes.c_int, [ctypes.c_void_p]),
    "seccomp_export_pfc": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "seccomp_export_bpf": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
}

_library: Libseccomp | None = None


class Libseccomp:
    """The opened library; one per process, shared by every filter."""

    def __init__(self, cdll: ctypes.CDLL):
        for name, (restype, argtypes) in _SIGNATURES.items():
            func = getattr(cdll, name)
            func.restype = restype
            func.argtypes = argtypes
        self._c = cdll
        v = cdll.seccomp_version().contents
        self.version: tuple[int, int, int] = (v.major, v.minor, v.micro)
        # 0 means "cannot tell" (libseccomp < 2.4); >= 6 means the kernel has everything runc needs.
        self.api_level: int = cdll.seccomp_api_get()

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def new_context(self, default_action: int) -> int:
        ctx = self._c.seccomp_init(default_action)
        if not ctx:
            raise SeccompError(f"libseccomp refused default action {default_action:#x} "
                               "(the kernel may not support it)")
        return ctx

    def release(self, ctx: int) -> None:
        self._c.seccomp_release(ctx)

    def arch_token(self, name: str) -> int:
        """The AUDIT_ARCH_* token for a libseccomp arch name, 0 when this libseccomp does not know it."""
        return self._c.seccomp_arch_resolve_name(name.encode())

    def arch_present(self, ctx: int, token: int) -> bool:
        return self._c.seccomp_arch_exist(ctx, token) == 0

    def arch_add(self, ctx: int, token: int) -> int:
        return self._c.seccomp_arch_add(ctx, token)

    def attr_set(self, ctx: int, attr: int, value: int) -> int:
        return self._c.seccomp_attr_set(ctx, attr, value)

    def attr_get(self, ctx: int, attr: int) -> int:
        value = ctypes.c_uint32()
        rc = self._c.seccomp_attr_get(ctx, attr, ctypes.byref(value))
        if rc < 0:
            raise SeccompError(f"cannot read libseccomp attribute {attr}: {os.strerror(-rc)}")
        return value.value

    def syscall_number(self, name: str) -> int:
        """Native number, a negative pseudo number for calls of other arches, or NR_SCMP_ERROR."""
        return self._c.seccomp_syscall_resolve_name(name.encode())

    def rule_add(self, ctx: int, action: int, syscall: int, conditions: list[tuple[int, int, int, int]]) -> int:
        """conditions: (arg index, scmp_compare op, datum_a, datum_b) tuples, ANDed in one rule."""
        array = (ArgCmp * len(conditions))(*(ArgCmp(*cond) for cond in conditions)) if conditions else None
        return self._c.seccomp_rule_add_array(ctx, action, syscall, len(conditions), array)

    def load(self, ctx: int) -> int:
        return self._c.seccomp_load(ctx)

    def notify_fd(self, ctx: int) -> int:
        return self._c.seccomp_notify_fd(ctx)

    def export(self, ctx: int, fmt: str) -> bytes:
        """The filter as pseudo filter code text ("pfc") or raw BPF ("bpf"), through a memfd."""
        func = self._c.seccomp_export_pfc if fmt == "pfc" else self._c.seccomp_export_bpf
        fd = os.memfd_create(f"seccomp-{fmt}", os.MFD_CLOEXEC)
        try:
            rc = func(ctx, fd)
            if rc < 0:
                raise SeccompError(f"libseccomp could not export the filter as {fmt}: {os.strerror(-rc)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)


def library() -> Libseccomp:
    """Open libseccomp once per process."""
    global _library
    if _library is None:
        try:
            cdll = ctypes.CDLL(SONAME, use_errno=True)
        except OSError as err:
            raise SeccompError(f"config.json asks for seccomp but {SONAME} cannot be loaded ({err}); "
                               "install libseccomp2") from None
        _library = Libseccomp(cdll)
    return _library
