"""OCI hooks: run with the container state on stdin, each with its own timeout."""

from __future__ import annotations

import os

from oci_runtime.errors import RuntimeFailure
from oci_runtime.jsonio import dumps

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookFailed(RuntimeFailure):
    pass


def run_hooks(hooks: list[dict] | None, phase: str, state: dict, cwd: str | None = None) -> None:
    """Run each hook of one phase in order; the first failure raises HookFailed naming hook and cause.
    Hooks run in the bundle directory (runc's working directory), or in cwd when given (createContainer
    hooks run in the container's rootfs, startContainer ones in its /)."""
    if not hooks:
        return
    import subprocess  # only paid for by containers that have hooks

    payload = dumps(state).encode()
    for hook in hooks:
        path = hook.get("path", "")
        args = hook.get("args") or [path]
        env = {}
        for item in hook.get("env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        timeout = hook.get("timeout")
        try:
            proc = subprocess.Popen(args, executable=path, env=env, stdin=subprocess.PIPE, close_fds=True,
                                    bufsize=0, cwd=cwd or state.get("bundle") or None)
        except OSError as e:
            raise HookFailed(f"{phase} hook {path}: {e.strerror or e}") from None
        try:
            try:
                proc.stdin.write(payload)
            except BrokenPipeError:
                pass  # a hook need not read its stdin
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code = proc.wait(timeout=timeout if timeout and timeout > 0 else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise HookFailed(f"{phase} hook {path}: timed out after {timeout} s") from None
        if code != 0:
            # runc's words first ("error running hook"), which engines and runc's own tests match
            raise HookFailed(f"error running hook: {phase} hook {path}: {_how_it_ended(code)}")


def _how_it_ended(code: int) -> str:
    """Go's words, which runc prints and scripts match ("exit status 2", "signal: bad system call")."""
    if code > 0:
        return f"exit status {code}"
    import _signal

    name = _signal.strsignal(-code) or f"signal {-code}"
    return f"signal: {name[0].lower()}{name[1:]}"


def check_paths(hooks: dict | None) -> None:
    """Refuse hooks that cannot run, before anything is created (runtime-namespace hooks only)."""
    for phase in ("prestart", "createRuntime", "poststart", "poststop"):
        for hook in (hooks or {}).get(phase) or []:
            path = hook.get("path", "")
            if not os.path.isabs(path):
                raise RuntimeFailure(f"hooks.{phase}: path {path!r} must be absolute")
