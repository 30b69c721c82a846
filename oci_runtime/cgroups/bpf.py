"""cgroup v2 device control: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here from
instructions and loaded and attached with the bpf(2) syscall.

The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, where
access_type is (access << 16) | type, and returns 1 to allow the access or 0 to refuse it (EPERM).
It encodes a `DeviceState`: one block per exception, each returning the opposite of the default,
then the default.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from oci_runtime.cgroups.devices import WILDCARD, DeviceState
from oci_runtime.cgroups.fileio import CgroupError, describe_errno

# bpf(2) commands, program and attach types, flags (include/uapi/linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx values
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPE_CODES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# Instruction opcodes used (class | op | source)
_LDX_MEM_W = 0x61   # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54  # dst = (u32)dst & imm
_ALU32_RSH_K = 0x74  # dst = (u32)dst >> imm
_MOV64_X = 0xBF     # dst = src
_MOV64_K = 0xB7     # dst = imm
_JEQ_K = 0x15       # if dst == imm: pc += off
_JNE_K = 0x55       # if dst != imm: pc += off
_JNE_X = 0x5D       # if dst != src: pc += off
_EXIT = 0x95

_SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351, "riscv64": 280}


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_mask(access: str) -> int:
    mask = 0
    for ch in access:
        mask |= _ACCESS_BITS[ch]
    return mask


def assemble_device_program(state: DeviceState) -> bytes:
    """The program's instructions for `state`, as bytes ready for BPF_PROG_LOAD."""
    prog = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),     # r2 = access_type
        _insn(_ALU32_AND_K, dst=2, imm=0xFFFF),     # r2 = device type
        _insn(_LDX_MEM_W, dst=3, src=1, off=0),
        _insn(_ALU32_RSH_K, dst=3, imm=16),         # r3 = requested access bits
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),     # r4 = major
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),     # r5 = minor
    ]
    verdict = 0 if state.default_allow else 1
    for (dev_type, major, minor), access in state.ordered_exceptions():
        # A block: tests that each jump past the block when the device does not match, then the
        # verdict. Jumps are (opcode, dst, src, imm) until the block length is known.
        steps: list[bytes | tuple[int, int, int, int]] = [(_JNE_K, 2, 0, _TYPE_CODES[dev_type])]
        mask = _access_mask(access)
        if mask != 7:
            steps.append(_insn(_MOV64_X, dst=1, src=3))
            steps.append(_insn(_ALU32_AND_K, dst=1, imm=mask))
            if state.default_allow:
                steps.append((_JEQ_K, 1, 0, 0))   # a deny exception matches any overlap
            else:
                steps.append((_JNE_X, 1, 3, 0))   # an allow exception must grant every bit
        if major != WILDCARD:
            steps.append((_JNE_K, 4, 0, major))
        if minor != WILDCARD:
            steps.append((_JNE_K, 5, 0, minor))
        steps.append(_insn(_MOV64_K, dst=0, imm=verdict))
        steps.append(_insn(_EXIT))
        for i, step in enumerate(steps):
            if isinstance(step, tuple):
                op, dst, src, imm = step
                step = _insn(op, dst=dst, src=src, off=len(steps) - i - 1, imm=imm)
            prog.append(step)
    prog.append(_insn(_MOV64_K, dst=0, imm=1 if state.default_allow else 0))
    prog.append(_insn(_EXIT))
    return b"".join(prog)


# --- the bpf(2) syscall ------------------------------------------------------------------------

_libc = None


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    number = _SYSCALL_NUMBERS.get(os.uname().machine)
    if number is None:
        raise CgroupError(f"cgroup: bpf(2) syscall number unknown for {os.uname().machine}")
    ret = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def load_program(insns: bytes, *, name: bytes = b"pyrunc_devices") -> int:
    """BPF_PROG_LOAD; returns the program fd (O_CLOEXEC). A verifier refusal carries its log."""
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"Apache")

    def attempt(log: ctypes.Array | None) -> int:
        attr = ctypes.create_string_buffer(72)
        struct.pack_into("<IIQQIIQII16sII", attr, 0,
                         BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8, ctypes.addressof(code),
                         ctypes.addressof(license_), 1 if log is not None else 0,
                         len(log) if log is not None else 0, ctypes.addressof(log) if log is not None else 0,
                         0, 0, name[:15], 0, BPF_CGROUP_DEVICE)
        return _bpf(BPF_PROG_LOAD, attr)

    try:
        try:
            return attempt(None)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            # Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; lift it and try again.
            import resource
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            return attempt(None)
    except OSError as exc:
        log = ctypes.create_string_buffer(65536)
        try:
            return attempt(log)
        except OSError:
            pass
        detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise CgroupError(f"cgroup: loading the device eBPF program: {describe_errno(exc.errno)}"
                          + (f" (verifier: {' / '.join(detail)})" if detail else ""),
                          errno_value=exc.errno) from None


def _attach_attr(target_fd: int, prog_fd: int, flags: int) -> ctypes.Array:
    attr = ctypes.create_string_buffer(20)
    struct.pack_into("<IIIII", attr, 0, target_fd, prog_fd, BPF_CGROUP_DEVICE, flags, 0)
    return attr


def query_programs(cgroup_fd: int) -> tuple[int, list[int]]:
    """(attach flags, ids of device programs attached directly to this cgroup)."""
    attr = ctypes.create_string_buffer(32)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0)
    _bpf(BPF_PROG_QUERY, attr)
    flags = struct.unpack_from("<I", attr, 12)[0]
    count = struct.unpack_from("<I", attr, 24)[0]
    if count == 0:
        return flags, []
    ids = (ctypes.c_uint32 * count)()
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), count)
    _bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", attr, 24)[0]
    return struct.unpack_from("<I", attr, 12)[0], list(ids)[:count]


def program_fd_by_id(prog_id: int) -> int:
    attr = ctypes.create_string_buffer(12)
    struct.pack_into("<III", attr, 0, prog_id, 0, 0)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr)


def set_device_filter(cgroup_dir: str, state: DeviceState) -> None:
    """Attach a program for `state` to the cgroup, then detach the ones it replaces (so there is no
    moment with no filter at all), as runc does."""
    insns = assemble_device_program(state)
    prog_fd = load_program(insns)
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(prog_fd)
        raise CgroupError(f"cgroup: opening {cgroup_dir}: {describe_errno(exc.errno)}", errno_value=exc.errno) from None
    try:
        try:
            old_flags, old_ids = query_programs(dir_fd)
        except OSError as exc:
            raise CgroupError(f"cgroup: querying device programs of {cgroup_dir}: {describe_errno(exc.errno)}",
                              errno_value=exc.errno) from None
        # Someone (systemd) may have attached without ALLOW_MULTI; the kernel then only lets us
        # replace that program by attaching with the same flags.
        flags = BPF_F_ALLOW_MULTI if not old_ids or old_flags & BPF_F_ALLOW_MULTI else old_flags
        try:
            _bpf(BPF_PROG_ATTACH, _attach_attr(dir_fd, prog_fd, flags))
        except OSError as exc:
            raise CgroupError(f"cgroup: attaching the device eBPF program to {cgroup_dir}: "
                              f"{describe_errno(exc.errno)}", errno_value=exc.errno) from None
        if flags & BPF_F_ALLOW_MULTI:
            for prog_id in old_ids:
                _detach_by_id(dir_fd, prog_id, cgroup_dir)
    finally:
        os.close(dir_fd)
        os.close(prog_fd)


def _detach_by_id(dir_fd: int, prog_id: int, cgroup_dir: str) -> None:
    try:
        old_fd = program_fd_by_id(prog_id)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise CgroupError(f"cgroup: opening old device program {prog_id} of {cgroup_dir}: "
                          f"{describe_errno(exc.errno)}", errno_value=exc.errno) from None
    try:
        _bpf(BPF_PROG_DETACH, _attach_attr(dir_fd, old_fd, 0))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise CgroupError(f"cgroup: detaching old device program {prog_id} from {cgroup_dir}: "
                              f"{describe_errno(exc.errno)}", errno_value=exc.errno) from None
    finally:
        os.close(old_fd)


def attached_program_ids(cgroup_dir: str) -> list[int]:
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return query_programs(dir_fd)[1]
    finally:
        os.close(dir_fd)
