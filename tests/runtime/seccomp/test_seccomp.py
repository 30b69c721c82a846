"""seccomp through libseccomp, on the real kernel: each filter is loaded in a forked child and
the test observes what the child's syscalls do (errno, signal, audit log, a notify agent)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oci_runtime.seccomp.filter import SeccompError, features, prepare_filter
from oci_runtime.process.channel import OK, SECCOMP, channel_pair


libc = ctypes.CDLL(None, use_errno=True)
BUSYBOX = shutil.which("busybox")
CHILD_DEADLINE = 60.0       # only a guard against a hung child; no test depends on speed

# What a Python child needs between loading a default-deny filter and reporting back.
CHILD_ESSENTIALS = ["write", "exit_group", "brk", "mmap", "munmap", "mremap", "madvise"]

CLONE_NEWUSER = 0x10000000
NAMESPACE_CLONE_FLAGS = 0x7E020000      # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


# --- running code in a filtered child -----------------------------------------------------------

@dataclass
class Child:
    pid: int
    status: int
    output: bytes

    @property
    def killed_by(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    def result(self):
        assert os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0, \
            f"child failed (status {self.status:#x}): {self.output!r}"
        return json.loads(self.output)


def run_filtered(flt, body) -> Child:
    """Fork; the child loads `flt`, runs body() and sends back its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))     # SIGSYS would dump core
            flt.load()
            data = json.dumps(body()).encode()
        except BaseException as err:  # noqa: BLE001 - everything goes back to the test
            data, code = repr(err).encode(), 70
        os.write(w, data)
        os._exit(code)
    os.close(w)
    return _collect(pid, r)


def _collect(pid: int, r: int) -> Child:
    try:
        output = _read_until(r, eof=True)
        _, status = os.waitpid(pid, 0)
        return Child(pid, status, output)
    finally:
        os.close(r)
        _reap(pid)


def _read_until(fd: int, eof: bool, sep: bytes = b"\n") -> bytes:
    data = b""
    deadline = time.monotonic() + CHILD_DEADLINE
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError("the filtered child did not answer")
        chunk = os.read(fd, 65536)
        data += chunk
        if not chunk or (not eof and sep in data):
            return data


def _reap(pid: int) -> None:
    """Kill and reap the child if a failed test left it running."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def errno_of(func, *args) -> int:
    """0 when the call works, else its errno."""
    try:
        func(*args)
        return 0
    except OSError as err:
        return err.errno


def allow_all_but(*rules: dict, **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


MKDIR = ["mkdir", "mkdirat"]


# --- actions ------------------------------------------------------------------------------------

@pytest.mark.root
def test_errno_rule_returns_its_errno_ret(tmp_path):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}))
    child = run_filtered(flt, lambda: [errno_of(os.mkdir, tmp_path / "d"),
                                       errno_of((tmp_path / "f").write_text, "x")])
    assert child.result() == [errno.EROFS, 0]
    assert not (tmp_path / "d").exists()
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.root
def test_errno_rule_without_errno_ret_returns_eperm(tmp_path):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}))
    assert run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d")).result() == errno.EPERM


@pytest.mark.root
def test_default_errno_with_enosys_and_an_allow_list(tmp_path):
    flt = prepare_filter({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOSYS,
        "syscalls": [
            {"names": CHILD_ESSENTIALS + ["getppid"], "action": "SCMP_ACT_ALLOW"},
            # ERRNO(EPERM) differs from the default ERRNO(ENOSYS): a real rule.
            {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
            # Same action as the default: skipped, as runc does (libseccomp would refuse it).
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    })
    child = run_filtered(flt, lambda: {
        "ppid": os.getppid(),
        "mkdir": errno_of(os.mkdir, tmp_path / "d"),
        "chdir": errno_of(os.chdir, "/"),
        "uname": errno_of(os.uname),
    })
    assert child.result() == {"ppid": os.getpid(), "mkdir": errno.ENOSYS, "chdir": errno.EPERM,
                              "uname": errno.ENOSYS}


@pytest.mark.root
@pytest.mark.parametrize("default", ["SCMP_ACT_ERRNO", "SCMP_ACT_TRAP"])
def test_syscalls_newer_than_the_profile_get_enosys(tmp_path, default):
    """runc's stub: a deny-by-default profile answers ENOSYS for native syscalls numbered above every one it
    names (its author could not know them), and its default action for the unknown ones below."""
    flt = prepare_filter({"defaultAction": "SCMP_ACT_ERRNO" if default == "SCMP_ACT_ERRNO" else default,
                          "syscalls": [{"names": CHILD_ESSENTIALS + ["getppid", "rt_sigaction", "rt_sigreturn"],
                                        "action": "SCMP_ACT_ALLOW"},
                                       {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": errno.EROFS}]})
    last = max(_nr(name) for name in CHILD_ESSENTIALS + ["getppid", "rt_sigaction", "rt_sigreturn", "mkdir"])
    libc = ctypes.CDLL(None, use_errno=True)

    def raw(nr):
        ctypes.set_errno(0)
        return ctypes.get_errno() if libc.syscall(ctypes.c_long(nr)) < 0 else 0

    def body():
        if default == "SCMP_ACT_TRAP":
            signal.signal(signal.SIGSYS, lambda *_: None)  # a trapped call returns ENOSYS to a handler-less caller
        return {"newer": raw(last + 1), "far": raw(1000), "mkdir": errno_of(os.mkdir, tmp_path / "d"),
                "older": raw(_nr("chdir")) if _nr("chdir") < last else "n/a"}

    result = run_filtered(flt, body).result()
    assert result["newer"] == errno.ENOSYS and result["far"] == errno.ENOSYS and result["mkdir"] == errno.EROFS
    if default == "SCMP_ACT_ERRNO" and result["older"] != "n/a":
        assert result["older"] == errno.EPERM  # not newer: the profile's own default


@pytest.mark.root
@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions_end_the_process_with_sigsys(tmp_path, action):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": action}))
    child = run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d"))
    assert child.killed_by == signal.SIGSYS
    assert not (tmp_path / "d").exists()


@pytest.mark.root
def test_kill_process_ends_every_thread(tmp_path):
    """A filtered syscall in a second thread takes the whole process down, main thread included."""
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_KILL_PROCESS"}))

    def body():
        worker = threading.Thread(target=errno_of, args=(os.mkdir, tmp_path / "d"))
        worker.start()
        worker.join()
        return "main thread survived"

    assert run_filtered(flt, body).killed_by == signal.SIGSYS


@pytest.mark.root
def test_trap_sends_sigsys_to_the_caller(tmp_path):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_TRAP"}))

    def body():
        caught = []
        signal.signal(signal.SIGSYS, lambda signum, frame: caught.append(signum))
        errno_of(os.mkdir, tmp_path / "d")
        return caught

    assert run_filtered(flt, body).result() == [signal.SIGSYS]
    assert not (tmp_path / "d").exists()


@pytest.mark.root
def test_trace_without_a_tracer_fails_with_enosys(tmp_path):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_TRACE", "errnoRet": 1234}))
    assert "TRACE(1234)" in flt.export_pfc()          # errnoRet is the message for the tracer
    assert run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d")).result() == errno.ENOSYS
    assert not (tmp_path / "d").exists()


@pytest.mark.root
def test_log_allows_the_call_and_writes_an_audit_record(tmp_path, host_netns):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_LOG"}))
    with AuditLog(host_netns) as log:
        child = run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d"))
        assert child.result() == 0
        assert (tmp_path / "d").is_dir()
        record = log.wait_for(f"pid={child.pid} ", "code=0x7ffc0000")
    assert f"syscall={_nr('mkdir')} " in record


@pytest.mark.root
def test_log_flag_audits_the_errno_action(tmp_path, host_netns):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
                                       flags=["SECCOMP_FILTER_FLAG_LOG"]))
    assert flt.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    with AuditLog(host_netns) as log:
        child = run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d"))
        assert child.result() == errno.EROFS
        log.wait_for(f"pid={child.pid} ", "code=0x50000")     # the action, without its data


# --- argument conditions ------------------------------------------------------------------------

def _close_rule(*args: dict) -> dict:
    return allow_all_but({"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTUNIQ,
                          "args": list(args)})


PROBE_FDS = (199, 200, 201)     # never open in the child: an unfiltered close() gives EBADF


@pytest.mark.root
@pytest.mark.parametrize("op, value, value_two, filtered", [
    ("SCMP_CMP_NE", 200, 0, (True, False, True)),
    ("SCMP_CMP_LT", 200, 0, (True, False, False)),
    ("SCMP_CMP_LE", 200, 0, (True, True, False)),
    ("SCMP_CMP_EQ", 200, 0, (False, True, False)),
    ("SCMP_CMP_GE", 200, 0, (False, True, True)),
    ("SCMP_CMP_GT", 200, 0, (False, False, True)),
    ("SCMP_CMP_MASKED_EQ", 0x1, 0x1, (True, False, True)),      # odd fds: (fd & 1) == 1
])
def test_every_operator_compares_the_argument(op, value, value_two, filtered):
    flt = prepare_filter(_close_rule({"index": 0, "op": op, "value": value, "valueTwo": value_two}))
    got = run_filtered(flt, lambda: [errno_of(os.close, fd) for fd in PROBE_FDS]).result()
    assert got == [errno.ENOTUNIQ if hit else errno.EBADF for hit in filtered]


@pytest.mark.root
def test_two_conditions_on_one_argument_match_either_as_runc_does():
    flt = prepare_filter(_close_rule({"index": 0, "op": "SCMP_CMP_EQ", "value": 199},
                                     {"index": 0, "op": "SCMP_CMP_EQ", "value": 201}))
    got = run_filtered(flt, lambda: [errno_of(os.close, fd) for fd in PROBE_FDS]).result()
    assert got == [errno.ENOTUNIQ, errno.EBADF, errno.ENOTUNIQ]


@pytest.mark.root
def test_conditions_on_different_arguments_must_all_match():
    flt = prepare_filter(allow_all_but({
        "names": ["dup2", "dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTUNIQ,
        "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 199},
                 {"index": 1, "op": "SCMP_CMP_EQ", "value": 300}]}))
    got = run_filtered(flt, lambda: [errno_of(os.dup2, 199, 300), errno_of(os.dup2, 199, 301),
                                     errno_of(os.dup2, 198, 300)]).result()
    assert got == [errno.ENOTUNIQ, errno.EBADF, errno.EBADF]


@pytest.mark.root
def test_personality_query_denied_other_values_allowed():
    flt = prepare_filter(allow_all_but({"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": errno.EDOM,
                                        "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 0xFFFFFFFF}]}))

    def body():
        libc.personality.argtypes = [ctypes.c_ulong]
        results = []
        for persona in (0xFFFFFFFF, 0):          # query; set PER_LINUX (what it already is)
            ret = libc.personality(persona)
            results.append(ctypes.get_errno() if ret == -1 else "ok")
        return results

    assert run_filtered(flt, body).result() == [errno.EDOM, "ok"]


@pytest.mark.root
def test_clone_masked_eq_denies_new_namespaces_but_not_fork():
    flt = prepare_filter(allow_all_but({
        "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTUNIQ,
        "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER}]}))

    def body():
        pid = os.fork()                              # glibc: clone(SIGCHLD|CLONE_CHILD_*)
        if pid == 0:
            os._exit(7)
        fork_status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        nr = _nr("clone")
        ret = libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(CLONE_NEWUSER | signal.SIGCHLD),
                           ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        if ret == 0:                                 # the filter failed: this is the new process
            os._exit(0)
        if ret > 0:
            os.waitpid(ret, 0)
            return [fork_status, "clone with CLONE_NEWUSER succeeded"]
        return [fork_status, ctypes.get_errno()]

    assert run_filtered(flt, body).result() == [7, errno.ENOTUNIQ]


# --- notify -------------------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100       # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101       # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes
NOTIF = struct.Struct("=QIIiIQ6Q")          # id, pid, flags, data.nr, data.arch, data.ip, data.args
NOTIF_RESP = struct.Struct("=QqiI")         # id, val, error, flags
NATIVE_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(os.uname().machine)


@dataclass
class Agent:
    """A seccomp agent: takes the listener fd from the runtime, then answers one notification."""
    path: Path
    answer: int
    state: dict | None = None
    notification: dict | None = None
    error: BaseException | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self._server.listen(1)
        self._server.settimeout(CHILD_DEADLINE)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(CHILD_DEADLINE)
        self._server.close()
        if self.error:
            raise self.error

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                while chunk := conn.recv(1 << 16):
                    data += chunk
            self.state = json.loads(data)
            assert len(fds) == 1, fds
            try:
                self._answer_one(fds[0])
            finally:
                os.close(fds[0])
        except BaseException as err:  # noqa: BLE001 - reported by join()
            self.error = err

    def _answer_one(self, listener: int) -> None:
        ready, _, _ = select.select([listener], [], [], CHILD_DEADLINE)
        assert ready, "no seccomp notification arrived"
        buf = bytearray(NOTIF.size)
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        notif_id, pid, _, nr, arch, _, *args = NOTIF.unpack(buf)
        self.notification = {"pid": pid, "nr": nr, "arch": arch}
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(NOTIF_RESP.pack(notif_id, self.answer, 0, 0)),
                    True)


@pytest.mark.root
def test_notify_hands_a_listener_to_the_agent_which_answers(tmp_path):
    agent = Agent(tmp_path / "agent.sock", answer=4242)
    flt = prepare_filter(allow_all_but({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                                       listenerPath=str(agent.path), listenerMetadata="agent-args"))
    assert flt.notify_required
    agent.start()
    runtime_end, child_end = channel_pair()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            runtime_end.close()
            listener = flt.load()
            child_end.hand_over_listener(listener)     # the fd travels with the message; back once the agent has it
            os.write(w, f"{os.getppid()}\n".encode())   # answered by the agent
        except BaseException:  # noqa: BLE001
            os._exit(70)
        os._exit(0)
    os.close(w)
    child_end.close()
    try:
        msg = runtime_end.recv()
        assert msg["t"] == SECCOMP
        state = {"ociVersion": "1.0.2", "id": "ctr", "status": "creating", "pid": pid,
                 "bundle": str(tmp_path), "annotations": {}}
        flt.hand_over(pid, msg["fd"], state)          # the runtime's copy of the listener, closed once sent
        runtime_end.send(OK)
        child = _collect(pid, r)
    except BaseException:
        _reap(pid)
        raise
    finally:
        runtime_end.close()
    agent.join()
    assert child.status == 0
    assert child.output.split() == [b"4242"]   # getppid() answered by the agent
    assert agent.notification == {"pid": pid, "nr": _nr("getppid"), "arch": NATIVE_AUDIT_ARCH}
    assert agent.state == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": pid,
                           "metadata": "agent-args", "state": state}


def test_send_listener_names_the_path_when_no_agent_listens(tmp_path):
    path = tmp_path / "nobody.sock"
    flt = prepare_filter(allow_all_but({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                                       listenerPath=str(path)))
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(SeccompError, match="nobody.sock"):
            flt.send_listener(fd, {"ociVersion": "1.0.2", "id": "c", "status": "creating", "pid": 1})
    finally:
        os.close(fd)


@pytest.mark.root
def test_load_returns_none_without_notify():
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}))
    assert not flt.notify_required
    assert run_filtered(flt, lambda: "loaded").result() == "loaded"


# --- flags, attributes, names -------------------------------------------------------------------

@pytest.mark.root
def test_filter_leaves_no_new_privs_to_the_runtime():
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}))
    status = run_filtered(flt, lambda: Path("/proc/self/status").read_text()).result()
    assert "\nNoNewPrivs:\t0\n" in status
    assert "\nSeccomp:\t2\n" in status


@pytest.mark.root
def test_tsync_filters_threads_started_before_the_load(tmp_path):
    flt = prepare_filter(allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
                                       flags=["SECCOMP_FILTER_FLAG_TSYNC"]))

    def body():
        go, result = threading.Event(), []
        worker = threading.Thread(target=lambda: (go.wait(), result.append(errno_of(os.mkdir, tmp_path / "t"))))
        worker.start()
        flt.load()               # after the thread exists: only TSYNC reaches it
        go.set()
        worker.join()
        return result

    child = run_filtered(prepare_filter(None), body)
    assert child.result() == [errno.EROFS]


def test_flags_default_to_spec_allow_like_runc_and_empty_means_none():
    rule = {"names": MKDIR, "action": "SCMP_ACT_ERRNO"}
    assert prepare_filter(allow_all_but(rule)).flags == ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)
    assert prepare_filter(allow_all_but(rule, flags=[])).flags == ()


def test_wait_killable_recv_needs_libseccomp_2_6():
    from oci_runtime.seccomp.lib import library

    profile = allow_all_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"},
                            flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    if library().version >= (2, 6, 0):
        assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in prepare_filter(profile).flags
    else:
        with pytest.raises(SeccompError, match=r"flags\[0\]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
                                               r"needs libseccomp >= 2\.6\.0"):
            prepare_filter(profile)


@pytest.mark.root
def test_unknown_syscall_names_are_skipped(tmp_path):
    flt = prepare_filter(allow_all_but({"names": ["not_a_syscall_yet", *MKDIR], "action": "SCMP_ACT_ERRNO"}))
    assert flt.unknown_syscalls == ("not_a_syscall_yet",)
    assert run_filtered(flt, lambda: errno_of(os.mkdir, tmp_path / "d")).result() == errno.EPERM


def test_no_profile_means_no_filter():
    for seccomp in (None, {}, {"defaultAction": "", "syscalls": []}):
        flt = prepare_filter(seccomp)
        assert not flt.enabled
        assert flt.load() is None        # loads nothing, even in this test process


def test_features_lists_what_this_system_supports():
    found = features()
    assert found["enabled"]
    assert "SCMP_ACT_NOTIFY" in found["actions"] and "SCMP_CMP_MASKED_EQ" in found["operators"]
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(found["archs"])
    assert "SECCOMP_FILTER_FLAG_LOG" in found["supportedFlags"]


# --- refusals -----------------------------------------------------------------------------------

def _rule(**overrides) -> dict:
    return {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", **overrides}


@pytest.mark.parametrize("seccomp, message", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]},
     r"linux\.seccomp\.architectures\[1\]: unknown architecture 'SCMP_ARCH_VAX'"),
    ({"defaultAction": "SCMP_ACT_MAYBE"},
     r"linux\.seccomp\.defaultAction: unknown action 'SCMP_ACT_MAYBE'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(), _rule(action="SCMP_ACT_DENY")]},
     r"linux\.seccomp\.syscalls\[1\]\.action: unknown action 'SCMP_ACT_DENY'"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [_rule(args=[{"index": 0, "op": "SCMP_CMP_ABOUT", "value": 1}])]},
     r"linux\.seccomp\.syscalls\[0\]\.args\[0\]\.op: unknown operator 'SCMP_CMP_ABOUT'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     r"linux\.seccomp\.flags\[0\]: unknown seccomp flag 'SECCOMP_FILTER_FLAG_FAST'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(args=[{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}])]},
     r"syscalls\[0\]\.args\[0\]\.index: expected an argument index from 0 to 5, got 6"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(args=[{"index": 0, "op": "SCMP_CMP_EQ", "value": -1}])]},
     r"syscalls\[0\]\.args\[0\]\.value: expected an unsigned 64-bit integer, got -1"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [_rule(action="SCMP_ACT_ALLOW", errnoRet=1)]},
     r"syscalls\[0\]\.errnoRet: SCMP_ACT_ALLOW takes no errno"),
    ({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 38},
     r"linux\.seccomp\.defaultErrnoRet: SCMP_ACT_KILL takes no errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000},
     r"defaultErrnoRet: expected an integer from 0 to 65535, got 70000"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(names=[])]},
     r"syscalls\[0\]\.names: expected a non-empty array"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(action="SCMP_ACT_NOTIFY")]},
     r"linux\.seccomp\.listenerPath: must be set when a rule uses SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
      "syscalls": [_rule(names=["read", "write"], action="SCMP_ACT_NOTIFY")]},
     r"syscalls\[0\]: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
     r"defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
     r"listenerMetadata: must not be set without linux\.seccomp\.listenerPath"),
    ({"syscalls": [_rule()]},
     r"linux\.seccomp\.defaultAction: unknown action None"),
])
def test_bad_profiles_are_refused_naming_the_field(seccomp, message):
    with pytest.raises(SeccompError, match=message):
        prepare_filter(seccomp)


def test_architecture_this_libseccomp_lacks_is_refused():
    from oci_runtime.seccomp.lib import library

    lib = library()
    if lib.arch_token("loongarch64"):
        pytest.skip(f"libseccomp {lib.version_text} supports loongarch64")
    with pytest.raises(SeccompError, match=r"architectures\[0\]: SCMP_ARCH_LOONGARCH64 is not supported by "
                                           r"the installed libseccomp"):
        prepare_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_LOONGARCH64"]})


# --- a realistic profile ------------------------------------------------------------------------

@pytest.mark.root
def test_docker_like_profile_runs_a_normal_workload(tmp_path):
    if BUSYBOX is None:
        pytest.skip("busybox is not installed")
    flt = prepare_filter(docker_like_profile())
    assert flt.rule_count > 300
    pfc = flt.export_pfc()
    for arch in ("x86_64", "x86", "x32"):
        assert f"# filter for arch {arch} " in pfc
    script = (f"/bin/true && /bin/ls / >/dev/null && busybox ls -l /proc/self/ >/dev/null"
              f" && echo data > {tmp_path}/f && busybox cat {tmp_path}/f"
              f" && busybox grep '^Seccomp:' /proc/self/status"
              # unshare is not in the allow list: refused with EPERM
              f" && if busybox unshare -U true 2>/dev/null; then echo unshare-allowed; else echo unshare-denied; fi")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            flt.load()
            os.execv(BUSYBOX, ["sh", "-c", script])
        finally:
            os._exit(127)
    os.close(w)
    child = _collect(pid, r)
    assert child.status == 0, child.output
    assert child.output.decode().split() == ["data", "Seccomp:", "2", "unshare-denied"]


def docker_like_profile() -> dict:
    """Shaped like the engines' default: deny with EPERM, allow the usual ~330 calls, a few arg checks."""
    groups = {
        "process": "arch_prctl capget capset clone3 execve execveat exit exit_group fork getcpu getpgid getpgrp "
                   "getpid getppid getpriority getrandom getrusage getsid gettid get_robust_list "
                   "get_thread_area ioprio_get ioprio_set kill membarrier pause prctl prlimit64 "
                   "restart_syscall rseq sched_getaffinity sched_getattr sched_getparam "
                   "sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval "
                   "sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam "
                   "sched_setscheduler sched_yield seccomp set_robust_list setpgid setpriority setsid "
                   "set_thread_area set_tid_address tgkill tkill vfork wait4 waitid waitpid pidfd_open "
                   "pidfd_send_signal pidfd_getfd process_mrelease",
        "identity": "getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getresgid "
                    "getresgid32 getresuid getresuid32 getuid getuid32 setfsgid setfsgid32 setfsuid setfsuid32 "
                    "setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid "
                    "setresuid32 setreuid setreuid32 setuid setuid32",
        "memory": "brk madvise mincore mlock mlock2 mlockall mmap mmap2 mprotect mremap msync munlock munlockall "
                  "munmap pkey_alloc pkey_free pkey_mprotect remap_file_pages memfd_create map_shadow_stack",
        "files": "access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3 "
                 "faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2 fchown "
                 "fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fremovexattr fsetxattr "
                 "fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futimesat getcwd "
                 "getdents getdents64 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch "
                 "lchown lchown32 lgetxattr link linkat listxattr llistxattr _llseek lremovexattr lseek "
                 "lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat newfstatat open openat openat2 pipe pipe2 "
                 "pread64 preadv preadv2 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv "
                 "removexattr rename renameat renameat2 rmdir sendfile sendfile64 setxattr splice stat stat64 "
                 "statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs tee truncate truncate64 "
                 "umask unlink unlinkat utime utimensat utimensat_time64 utimes vmsplice write writev "
                 "name_to_handle_at fanotify_mark",
        "io_events": "epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait "
                     "epoll_wait_old eventfd eventfd2 io_cancel ioctl io_destroy io_getevents io_pgetevents "
                     "io_pgetevents_time64 io_setup io_submit io_uring_enter io_uring_register io_uring_setup "
                     "poll ppoll ppoll_time64 pselect6 pselect6_time64 select _newselect signalfd signalfd4 "
                     "timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64",
        "signals": "rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend "
                   "rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn "
                   "alarm getitimer setitimer",
        "time": "clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 "
                "clock_nanosleep clock_nanosleep_time64 gettimeofday nanosleep time times timer_create "
                "timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64",
        "sync_ipc": "futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue ipc mq_getsetattr "
                    "mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 "
                    "mq_unlink msgctl msgget msgrcv msgsnd semctl semget semop semtimedop semtimedop_time64 "
                    "shmat shmctl shmdt shmget",
        "network": "accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg "
                   "recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketcall "
                   "socketpair",
        "system": "getrlimit setrlimit ugetrlimit sysinfo uname landlock_add_rule landlock_create_ruleset "
                  "landlock_restrict_self",
    }
    names = sorted({name for group in groups.values() for name in group.split()})
    personas = [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": p}]} for p in personas),
            # plain fork/threads yes, new namespaces no
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0}]},
            # clone3 flags live in memory the filter cannot read: ENOSYS makes libc fall back to clone
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "op": "SCMP_CMP_NE", "value": socket.AF_VSOCK}]},
        ],
    }


# --- helpers ------------------------------------------------------------------------------------

def _nr(name: str) -> int:
    from oci_runtime.seccomp.lib import library
    return library().syscall_number(name)


class AuditLog:
    """seccomp's audit records, read from the audit netlink read-only multicast group.

    Unlike the kernel log (where records land via printk, rate-limited host-wide), the multicast
    group receives every record, and joining it does not displace an audit daemon.
    """
    NETLINK_AUDIT = 9
    AUDIT_NLGRP_READLOG = 1
    AUDIT_SECCOMP = 1326
    NLMSGHDR = struct.Struct("=IHHII")

    def __init__(self, host_netns: str):
        self.host_netns = host_netns

    def __enter__(self) -> AuditLog:
        self.sock = self._socket_in_host_netns()
        try:
            self.sock.bind((0, 1 << (self.AUDIT_NLGRP_READLOG - 1)))
        except OSError as err:
            self.sock.close()
            pytest.skip(f"cannot read audit records: {err}")
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _socket_in_host_netns(self) -> socket.socket:
        """The kernel multicasts audit records only to sockets of the initial network namespace, and the
        test session runs in one of its own: the socket is made in the host's, then we go back."""
        from oci_runtime import linux

        ours = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        host = os.open(self.host_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(host, linux.CLONE_NEWNET)
            try:
                return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, self.NETLINK_AUDIT)
            finally:
                linux.setns(ours, linux.CLONE_NEWNET)
        finally:
            os.close(ours)
            os.close(host)

    def wait_for(self, *needles: str) -> str:
        """The first seccomp record containing every needle; records arrive via kauditd, asynchronously."""
        deadline = time.monotonic() + CHILD_DEADLINE
        while select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + self.NLMSGHDR.size <= len(data):
                length, kind, _, _, _ = self.NLMSGHDR.unpack_from(data, offset)
                record = data[offset + self.NLMSGHDR.size:offset + length].decode(errors="replace")
                if kind == self.AUDIT_SECCOMP and all(needle in record for needle in needles):
                    return record
                offset += max(length + 3 & ~3, self.NLMSGHDR.size)      # NLMSG_ALIGN
        raise AssertionError(f"no seccomp audit record with {needles}")


def test_listener_fd_reaches_an_agent_that_reads_once_and_closes(tmp_path):
    """runc's own agent reads the state once and closes the connection at once: the runtime must not touch
    the connection after its one message, or it meets EPIPE whenever the agent is quicker than it."""
    from oci_runtime.seccomp.listener import send_listener_fd

    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    rounds = 300
    cpu = min(os.sched_getaffinity(0))
    pid = os.fork()
    if pid == 0:  # the agent, in its own process, sharing one CPU with the sender so that it can preempt it
        try:
            os.sched_setaffinity(0, {cpu})
            for _ in range(rounds):
                conn, _ = server.accept()
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                conn.close()
                for fd in fds:
                    os.close(fd)
        finally:
            os._exit(0)
    server.close()
    r, w = os.pipe()
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        for _ in range(rounds):
            send_listener_fd(path, r, {"ociVersion": "1.0.2", "id": "agent-race"}, os.getpid())
    finally:
        os.sched_setaffinity(0, saved)
        os.close(r)
        os.close(w)
        _reap(pid)
