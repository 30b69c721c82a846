"""The -ENOSYS stub runc puts in front of a deny-by-default filter.

A syscall newer than every syscall the profile names is one the profile's author could not know: it gets
ENOSYS ("not implemented"), on which glibc and other programs fall back to an older call, instead of the
default action's EPERM ("refused"), which breaks programs that probe for clone3, faccessat2 and the like.
The stub is a few classic-BPF instructions prepended to libseccomp's program; the combined program is
loaded with seccomp(2) directly.
"""

from __future__ import annotations

import struct

SECCOMP_RET_ERRNO = 0x00050000
ENOSYS = 38
DENYING_DEFAULTS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
                              "SCMP_ACT_TRAP"})
# machine -> (its audit arch, the syscall-number bit of its ABI variant whose numbers are not comparable: x32)
NATIVE_ARCH = {"x86_64": (0xC000003E, 0x40000000), "aarch64": (0xC00000B7, 0)}
_LD_W_ABS, _JEQ_K, _JGT_K, _JSET_K, _RET_K = 0x20, 0x15, 0x25, 0x45, 0x06
_ARCH_OFFSET, _NR_OFFSET = 4, 0  # in struct seccomp_data


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def with_enosys_stub(program: bytes, last_syscall: int, machine: str) -> bytes | None:
    """program (libseccomp's exported BPF) behind a stub answering ENOSYS for native syscalls numbered above
    last_syscall; None where the stub does not apply (an architecture it does not know, or no syscall named)."""
    native = NATIVE_ARCH.get(machine)
    if native is None or last_syscall < 0:
        return None
    arch, variant_bit = native
    enosys = _insn(_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS)
    if variant_bit:
        # 0 ld arch; 1 not native -> 6; 2 ld nr; 3 x32 -> 6; 4 nr > last -> 5 else 6; 5 ENOSYS; 6 program
        stub = [_insn(_LD_W_ABS, 0, 0, _ARCH_OFFSET), _insn(_JEQ_K, 0, 4, arch), _insn(_LD_W_ABS, 0, 0, _NR_OFFSET),
                _insn(_JSET_K, 2, 0, variant_bit), _insn(_JGT_K, 0, 1, last_syscall), enosys]
    else:
        # 0 ld arch; 1 not native -> 5; 2 ld nr; 3 nr > last -> 4 else 5; 4 ENOSYS; 5 program
        stub = [_insn(_LD_W_ABS, 0, 0, _ARCH_OFFSET), _insn(_JEQ_K, 0, 3, arch), _insn(_LD_W_ABS, 0, 0, _NR_OFFSET),
                _insn(_JGT_K, 0, 1, last_syscall), enosys]
    return b"".join(stub) + program
