"""RUN: the step's command line (shell or exec form, heredocs), its --mount specs, and the cache key,
then the command in a sandbox (sandbox.py) over the step's workspace."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING

from builder.dockerfile.instructions import ImageState, run_history
from builder.dockerfile.stages import PROXY_ARGS
from builder.builds.files import resolve_in_root
from builder.builds.secrets import prepare_secret_or_ssh, secret_and_ssh_env, secret_or_ssh_mount
from builder.errors import BuildError, StepFailed

if TYPE_CHECKING:
    from builder.builds.engine import Builder


def _run_args(b: Builder, state: ImageState, instr) -> tuple[list[str], dict[str, bytes]]:
    if instr.json_form:
        return [str(a) for a in instr.args], {}
    cmdline = instr.args[0] if instr.args else ""
    files: dict[str, bytes] = {}
    if instr.heredocs:
        from builder.dockerfile.syntax import parse_heredoc_word

        marker = None
        try:
            marker = parse_heredoc_word(cmdline.strip())
        except BuildError:
            marker = None
        if marker is not None and len(instr.heredocs) == 1:
            doc = instr.heredocs[0]
            data = doc.text
            if data.startswith("#!"):
                # A script with its own interpreter: mount it and run it (BuildKit's /dev/pipes).
                path = "/dev/pipes/" + doc.name
                files[path] = data.encode()
                cmdline = path
            else:
                cmdline = data
        else:
            cmdline = cmdline + "".join("\n" + d.content + d.name for d in instr.heredocs)
    return state.shell + [cmdline], files


def run_step(b: Builder, state: ImageState, instr) -> None:
    from builder.builds.sandbox import RunSpec, failure_message, run_in_workspace

    network = instr.flag("network")
    if network in (None, "", "default"):
        network = b.opts.network
    if network not in ("none", "host", "bridge"):
        raise BuildError(f"unsupported network mode {network!r} (use none, host or bridge)")
    insecure = instr.flag("security") == "insecure"
    if insecure and not b.opts.allow_insecure:
        raise BuildError("RUN --security=insecure needs the security.insecure entitlement: build with "
                         "--allow security.insecure")
    args, files = _run_args(b, state, instr)
    env = [f"{k}={v}" for k, v in state.env.items()]
    # Proxy settings reach the command but, as in BuildKit, not the cache key.
    proxies = [f"{k}={b.opts.build_args[k]}" for k in PROXY_ARGS
               if k in b.opts.build_args and k not in state.env]
    user = state.cc.get("User") or ""
    cwd = state.workdir
    mounts = _run_mounts(b, state, instr)
    payload = {"op": "RUN", "args": args, "env": env, "user": user, "cwd": cwd, "network": network,
               "files": {p: hashlib.sha256(c).hexdigest() for p, c in files.items()},
               "mounts": [m["key"] for m in mounts], **({"security": "insecure"} if insecure else {})}
    if b.opts.add_hosts:
        payload["hosts"] = [list(h) for h in b.opts.add_hosts]  # as in BuildKit, a step's hosts are in its key
    created_by = run_history(args, state) + " # buildkit"
    secret_env = secret_and_ssh_env(b, state, mounts)

    def perform(ws) -> None:
        import contextlib

        from builder.builds.platforms import ensure_runnable

        ensure_runnable(state.config)  # only when it would run: a cached result needs no emulator
        container_id = os.urandom(6).hex()
        b.progress.line(f" ---> Running in {container_id}")
        out, err = b.progress.run_fds()
        with contextlib.ExitStack() as stack:
            runtime_mounts = [r for r in (_prepare_mount(b, stack, ws, m) for m in mounts) if r is not None]
            status = run_in_workspace(ws, RunSpec(args, env + proxies + secret_env, user, cwd, network, files,
                                                  "pydock-build-" + container_id, runtime_mounts, b.opts.add_hosts,
                                                  b.opts.limits, Path(b.store.root), insecure),
                                      state_root=Path(ws.dir) / "state", stdout=out, stderr=err)
        if status != 0:
            raise StepFailed(failure_message(args, status))

    b.fs_step(state, payload, created_by, perform)


def _run_mounts(b: Builder, state: ImageState, instr) -> list[dict]:
    """RUN --mount specs resolved to what the step needs (and what its cache key must cover)."""
    from builder.dockerfile.runmount import parse_mount

    out = []
    for spec in instr.flags.get("mount") or []:
        m = parse_mount(spec, expand=lambda w: b.ex.word(w, state.env))
        target = m.target
        if m.type in ("secret", "ssh"):
            item = secret_or_ssh_mount(b, state, m, ssh_count=sum(1 for i in out if i["type"] == "ssh"))
            if item is not None:
                out.append(item)
            continue
        if not target:
            raise BuildError(f"RUN --mount type={m.type} needs target=")
        target = posixpath.normpath(posixpath.join(state.workdir, target))
        item = {"type": m.type, "target": target, "readonly": m.readonly, "spec": m}
        if m.type == "cache":
            cache_id = m.id or target
            item["dir"] = b.store.cache_dir / "mounts" / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
            item["key"] = {"type": "cache", "target": target, "id": cache_id}
        elif m.type == "tmpfs":
            item["key"] = {"type": "tmpfs", "target": target, "size": m.size}
        elif m.type == "bind":
            source = m.source or "/"
            if m.from_:
                src_stage = b.plan.find_stage(m.from_) if b.plan else None
                src_state = b.stage_result(src_stage) if src_stage is not None else b.image_state(m.from_)
                item["from_state"] = src_state
                item["key"] = {"type": "bind", "target": target, "from": list(src_state.diff_ids),
                               "source": source, "rw": not m.readonly}
            else:
                [found] = b.context.sources(source) if b.context is not None else [None]
                if found is None:
                    raise BuildError(f"RUN --mount source {source} not found in build context")
                item["context_source"] = found
                item["key"] = {"type": "bind", "target": target, "source": source, "rw": not m.readonly,
                               "digest": b.context.source_digest(found)}
        else:
            raise BuildError(f"unsupported mount type {m.type!r}")
        out.append(item)
    return out


def _prepare_mount(b: Builder, stack, ws, item: dict) -> dict | None:
    """The runtime mount entry for one RUN --mount (making cache dirs, source views, rw overlays)."""
    from builder.builds.workspace import Workspace

    if item["type"] in ("secret", "ssh"):
        return prepare_secret_or_ssh(b, stack, ws, item)
    m = item["spec"]
    target = item["target"]
    if item["type"] == "cache":
        d: Path = item["dir"]
        if not d.exists():
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, m.uid or 0, m.gid or 0)
            os.chmod(d, 0o755 if m.mode is None else m.mode)
        opts = ["rbind", "ro" if m.readonly else "rw"]
        return {"destination": target, "type": "bind", "source": str(d), "options": opts}
    if item["type"] == "tmpfs":
        opts = ["nosuid", "nodev"] + ([f"size={m.size}"] if m.size else [])
        return {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}
    if "from_state" in item:
        view = stack.enter_context(Workspace(b.store, b.lowers(item["from_state"]), name="mount"))
        source = resolve_in_root(view.merged, m.source or "/")
        if not source.exists():
            raise BuildError(f"RUN --mount source {m.source} not found in {m.from_}")
    else:
        source = b.context.abspath(item["context_source"].relpath)
    if not m.readonly and source.is_dir():
        # A writable bind mount sees its writes, but they go nowhere: an overlay with a scratch upper.
        rw = stack.enter_context(Workspace(b.store, [source], name="rwmount"))
        source = rw.merged
    return {"destination": target, "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if m.readonly else "rw"]}
