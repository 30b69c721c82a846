"""The build engine: runs a plan's stages step by step, with the cache, and commits the target image.

Filesystem steps (RUN, COPY, ADD, WORKDIR) each make one layer: the step runs on an overlayfs over the
parent's unpacked layers, and the upper dir is tarred into the store (and then kept as that layer's
unpacked form, so the next step needs no extraction). Their results are cached by a key chained from
the parent's key, the expanded instruction and its inputs; a hit touches no rootfs at all. Metadata
steps only change the config and history. A failed build leaves the store as it was: new cache entries,
blobs, unpacked layers and index entries are removed again.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from builder.dockerfile import gomatch
from builder.build.cache import BuildCache, CacheEntry, step_key
from builder.build.copy import CopyOptions, SourceTree, copy_sources, mkdir_in_root, resolve_in_root, walk_host_tree
from builder.errors import BuildError, DockerfileError
from builder.fetch import download, is_url
from builder.build.users import chown_ids, image_user
from builder.dockerfile.instructions import (METADATA, Expander, ImageState, base_config, dest_path, do_arg,
                                  env_from_config, normalize_workdir, run_history, scratch_config)
from builder.dockerfile.stages import PROXY_ARGS, SCRATCH, BuildPlan, Stage, make_plan
from builder.image.platform import host_platform
from oci_runtime.units import rfc3339


class StepFailed(BuildError):
    """A step failed with a message that needs no "<CMD> failed:" prefix (RUN's exit status)."""


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    network: str = "none"
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    outputs: list[dict[str, str]] = field(default_factory=list)


class Progress:
    """docker-classic style step lines on stdout (nothing in quiet mode); RUN output goes to the same fds."""

    def __init__(self, quiet: bool, out=None, err=None):
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._devnull = None

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def run_fds(self) -> tuple[int, int]:
        """The fds a RUN command writes to."""
        if self.quiet:
            if self._devnull is None:
                self._devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            return self._devnull, self._devnull
        self.out.flush()
        self.err.flush()
        return self.out.fileno(), self.err.fileno()

    def close(self) -> None:
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None


def _short(key: str) -> str:
    return key.split(":")[-1][:12]


def _oneline(text: str) -> str:
    return " ".join(text.split("\n")[0].split()) if "\n" in text else text


class Builder:
    def __init__(self, store, context, dockerfile, options: BuildOptions, progress: Progress | None = None):
        self.store = store
        self.context = context
        self.dockerfile = dockerfile
        self.opts = options
        self.progress = progress or Progress(options.quiet)
        self.cache = BuildCache(store.cache_dir)
        self.ex = Expander(dockerfile.escape)
        self.epoch = self._source_date_epoch()
        self.results: dict[int, ImageState] = {}
        self.step_no = 0
        self.total = 0
        self.plan: BuildPlan | None = None
        self._new_cache_keys: list[str] = []
        self._base_history_len: dict[int, int] = {}
        self._tmp: Path | None = None

    # -- helpers -----------------------------------------------------------------------------------

    def _source_date_epoch(self) -> int | None:
        value = self.opts.build_args.get("SOURCE_DATE_EPOCH", os.environ.get("SOURCE_DATE_EPOCH", ""))
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise BuildError(f"invalid SOURCE_DATE_EPOCH {value!r}: want seconds since 1970") from None

    def now(self) -> str:
        return rfc3339(self.epoch * 10**9 if self.epoch is not None else None)

    def _lowers(self, state: ImageState) -> list[Path]:
        return [self.store.unpacked_layer(diff_id, layer) for layer, diff_id in zip(state.layers, state.diff_ids)]

    def _tmpdir(self) -> Path:
        if self._tmp is None:
            self._tmp, self._tmp_fd = self.store.temp_dir("build-")
        return self._tmp

    def _fail(self, instr, err: BuildError) -> DockerfileError:
        if isinstance(err, DockerfileError):
            return err
        msg = str(err) if isinstance(err, StepFailed) else f"{instr.cmd} failed: {err}"
        return DockerfileError(self.dockerfile.filename, instr.lineno, msg)

    # -- the build ---------------------------------------------------------------------------------

    def build(self):
        """Build the target stage and commit it; returns the store Image."""
        try:
            with self.store.lease():  # a failed build takes its blobs, layers and images back out
                image = self._build()
        except BaseException:
            for key in self._new_cache_keys:
                self.cache.remove(key)
            raise
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                os.close(self._tmp_fd)
            self.progress.close()
        if self.context is not None:
            self.context.save_hash_cache()
        return image

    def _build(self):
        self.plan = plan = make_plan(self.dockerfile, self.opts.build_args, self.opts.target)
        unused = plan.unused_build_args(self.opts.build_args)
        if unused:
            self.progress.warn(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        self.total = plan.step_count()
        for stage in plan.needed:
            self._stage_result(stage)
        final = self.results[plan.target.index]
        image = self._commit(final)
        for out in self.opts.outputs:
            self._export(image, out)
        for tag in self.opts.tags:
            self.store.tag(image, tag)
        self.progress.line(f"Successfully built {_short(image.id)}")
        for tag in self.opts.tags:
            from builder.image.store import normalize_name

            self.progress.line(f"Successfully tagged {normalize_name(tag)}")
        return image

    def _stage_result(self, stage: Stage) -> ImageState:
        if stage.index not in self.results:
            self.results[stage.index] = self._build_stage(stage)
        return self.results[stage.index]

    def _build_stage(self, stage: Stage) -> ImageState:
        state, triggers = self._from(stage)
        for instr in triggers:
            self.progress.line(f" # Executing build trigger: {_oneline(instr.original)}")
            self._step(stage, state, instr, count=False)
        for instr in stage.instructions:
            self._step(stage, state, instr)
        return state

    # -- FROM ----------------------------------------------------------------------------------------

    def _from(self, stage: Stage) -> tuple[ImageState, list]:
        instr = stage.from_instruction
        self.step_no += 1
        self.progress.line(f"Step {self.step_no}/{self.total} : {_oneline(instr.original)}")
        try:
            state, onbuild = self._base_state(stage)
        except BuildError as e:
            raise self._fail(instr, e) from None
        triggers = []
        if onbuild:
            from builder.dockerfile.parser import parse

            for text in onbuild:
                try:
                    # The parser wants a stage around instructions: give it one, then drop it.
                    parsed = parse("FROM scratch\n" + text, self.dockerfile.filename).instructions[1:]
                except BuildError as e:
                    raise DockerfileError(self.dockerfile.filename, instr.lineno,
                                          f"invalid ONBUILD trigger {text!r}: {getattr(e, 'message', e)}") from None
                for t in parsed:
                    t.lineno = instr.lineno
                    if t.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
                        raise DockerfileError(self.dockerfile.filename, instr.lineno,
                                              f"{t.cmd} isn't allowed as an ONBUILD trigger")
                    triggers.append(t)
        self.progress.line(f" ---> {_short(state.key)}")
        return state, triggers

    def _base_state(self, stage: Stage) -> tuple[ImageState, list[str]]:
        if stage.base_stage is not None:
            base = self._stage_result(stage.base_stage)
            state = base.clone()
            self._base_history_len[id(state)] = self._base_history_len.get(id(base), 0)
            onbuild = list(state.cc.pop("OnBuild", None) or [])
            state.cmd_set = False
            return state, onbuild
        if stage.base_name.lower() == SCRATCH:
            config = scratch_config(host_platform())
            return ImageState(config, [], "scratch", env_from_config(config["config"])), []
        image = self.resolve_image(stage.base_name)
        onbuild = list((image.config.get("config") or {}).get("OnBuild") or [])
        config = base_config(image.config)
        if len(config["rootfs"]["diff_ids"]) != len(image.layers):
            raise BuildError(f"image {stage.base_name} is inconsistent: "
                             f"{len(config['rootfs']['diff_ids'])} diff_ids for {len(image.layers)} layers")
        state = ImageState(config, list(image.layers), "image:" + image.digest, env_from_config(config["config"]))
        self._base_history_len[id(state)] = len(config["history"])
        return state, onbuild

    def resolve_image(self, ref: str):
        """An image by store reference, or from an OCI layout directory ("oci:DIR[:TAG]")."""
        if ref.startswith("oci:"):
            from builder.image.layout import import_layout

            path, tag = ref[4:], None
            head, sep, tail = path.rpartition(":")
            if sep and head and "/" not in tail:
                path, tag = head, tail
            if not Path(path).is_dir():
                raise BuildError(f"OCI layout not found: {path}")
            return import_layout(self.store, Path(path), tag)
        return self.store.resolve(ref)

    # -- one step ------------------------------------------------------------------------------------

    def _step(self, stage: Stage, state: ImageState, instr, count: bool = True) -> None:
        if count:
            self.step_no += 1
            self.progress.line(f"Step {self.step_no}/{self.total} : {_oneline(instr.original)}")
        cmd = instr.cmd
        try:
            if cmd in METADATA:
                created_by = METADATA[cmd](state, instr, self.ex)
                if created_by is not None:
                    state.add_history(created_by, None, empty_layer=True)
                self._show_meta(state)
            elif cmd == "ARG":
                created_by = do_arg(state, instr, self.ex, build_args=self.opts.build_args,
                                    global_args=self.plan.global_args)
                state.add_history(created_by, None, empty_layer=True)
                self._show_meta(state)
            elif cmd == "WORKDIR":
                self._workdir(state, instr)
            elif cmd == "RUN":
                self._run(state, instr)
            elif cmd in ("COPY", "ADD"):
                self._copy(stage, state, instr)
            else:
                raise BuildError(f"unknown instruction: {cmd}")
        except BuildError as e:
            raise self._fail(instr, e) from None

    def _show_meta(self, state: ImageState) -> None:
        from builder.image.digest import canonical_json

        self.progress.line(f" ---> {hashlib.sha256(state.key.encode() + canonical_json(state.config)).hexdigest()[:12]}")

    def _fs_step(self, state: ImageState, payload: dict, created_by: str, perform) -> None:
        """Run (or take from the cache) a step that makes a layer."""
        from builder.image.digest import Descriptor

        key = step_key(state.key, payload)
        entry = None if self.opts.no_cache else self.cache.get(key, self.store.has_blob)
        if entry is not None:
            self.progress.line(" ---> Using cache")
        else:
            entry = self._make_layer(state, perform)
            self.cache.put(key, entry)
            self._new_cache_keys.append(key)
        state.layers.append(Descriptor.from_json(entry.layer))
        state.diff_ids.append(entry.diff_id)
        state.key = key
        state.add_history(created_by, entry.created, empty_layer=False)
        self.progress.line(f" ---> {_short(key)}")

    def _make_layer(self, state: ImageState, perform) -> CacheEntry:
        from builder.image.layers import write_layer_from_dir
        from builder.build.workspace import Workspace

        lowers = self._lowers(state)
        created = self.now()
        with Workspace(self.store, lowers) as ws:
            perform(ws)
            ws.unmount()
            desc, diff_id = write_layer_from_dir(ws.upper, self.store, compression="gzip",
                                                 source_date_epoch=self.epoch,
                                                 progress=False if self.opts.quiet else None)
            if self.store.keep_unpacked_layer(diff_id, ws.upper):
                ws.upper = None  # the next step's lower dir now: no extraction needed
        return CacheEntry(desc.to_json(), diff_id, created)

    # -- WORKDIR -------------------------------------------------------------------------------------

    def _workdir(self, state: ImageState, instr) -> None:
        raw = instr.args[0] if instr.args else ""
        wd = normalize_workdir(state.workdir, self.ex.word(raw, state.env))
        state.cc["WorkingDir"] = wd
        if wd == "/":
            state.add_history(f"WORKDIR {wd}", None, empty_layer=True)
            self._show_meta(state)
            return
        user = state.cc.get("User") or ""

        def perform(ws) -> None:
            owner = image_user(ws.merged, user) if user else None
            mkdir_in_root(ws.merged, wd, owner=(owner.uid, owner.gid) if owner else (0, 0))

        self._fs_step(state, {"op": "WORKDIR", "path": wd, "user": user}, f"WORKDIR {wd}", perform)

    # -- RUN -----------------------------------------------------------------------------------------

    def _run_args(self, state: ImageState, instr) -> tuple[list[str], dict[str, bytes]]:
        if instr.json_form:
            return [str(a) for a in instr.args], {}
        cmdline = instr.args[0] if instr.args else ""
        files: dict[str, bytes] = {}
        if instr.heredocs:
            from builder.dockerfile.parser import parse_heredoc_word

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

    def _run(self, state: ImageState, instr) -> None:
        from builder.build.run import RunSpec, failure_message, run_in_workspace

        network = instr.flag("network")
        if network in (None, "", "default"):
            network = self.opts.network
        if network not in ("none", "host"):
            raise BuildError(f"unsupported network mode {network!r} (use none or host)")
        args, files = self._run_args(state, instr)
        env = [f"{k}={v}" for k, v in state.env.items()]
        # Proxy settings reach the command but, as in BuildKit, not the cache key.
        proxies = [f"{k}={self.opts.build_args[k]}" for k in PROXY_ARGS
                   if k in self.opts.build_args and k not in state.env]
        user = state.cc.get("User") or ""
        cwd = state.workdir
        mounts = self._run_mounts(state, instr)
        payload = {"op": "RUN", "args": args, "env": env, "user": user, "cwd": cwd, "network": network,
                   "files": {p: hashlib.sha256(c).hexdigest() for p, c in files.items()},
                   "mounts": [m["key"] for m in mounts]}
        created_by = run_history(args, state) + " # buildkit"

        def perform(ws) -> None:
            import contextlib

            container_id = os.urandom(6).hex()
            self.progress.line(f" ---> Running in {container_id}")
            out, err = self.progress.run_fds()
            with contextlib.ExitStack() as stack:
                runtime_mounts = [self._prepare_mount(stack, ws, m) for m in mounts]
                status = run_in_workspace(ws, RunSpec(args, env + proxies, user, cwd, network, files,
                                                      "pydock-build-" + container_id, runtime_mounts),
                                          state_root=Path(ws.dir) / "state", stdout=out, stderr=err)
            if status != 0:
                raise StepFailed(failure_message(args, status))

        self._fs_step(state, payload, created_by, perform)

    def _run_mounts(self, state: ImageState, instr) -> list[dict]:
        """RUN --mount specs resolved to what the step needs (and what its cache key must cover)."""
        from builder.dockerfile.parser import parse_mount

        out = []
        for spec in instr.flags.get("mount") or []:
            m = parse_mount(spec, expand=lambda w: self.ex.word(w, state.env))
            target = m.target
            if m.type in ("secret", "ssh"):
                if m.required:
                    raise BuildError(f"{m.type} mounts are not supported by pydock (no --secret/--ssh)")
                continue
            if not target:
                raise BuildError(f"RUN --mount type={m.type} needs target=")
            target = posixpath.normpath(posixpath.join(state.workdir, target))
            item = {"type": m.type, "target": target, "readonly": m.readonly, "spec": m}
            if m.type == "cache":
                cache_id = m.id or target
                item["dir"] = self.store.cache_dir / "mounts" / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
                item["key"] = {"type": "cache", "target": target, "id": cache_id}
            elif m.type == "tmpfs":
                item["key"] = {"type": "tmpfs", "target": target, "size": m.size}
            elif m.type == "bind":
                source = m.source or "/"
                if m.from_:
                    src_stage = self.plan.find_stage(m.from_) if self.plan else None
                    if src_stage is not None:
                        src_state = self._stage_result(src_stage)
                    else:
                        image = self.resolve_image(m.from_)
                        src_state = ImageState(base_config(image.config), list(image.layers), "image:" + image.digest)
                    item["from_state"] = src_state
                    item["key"] = {"type": "bind", "target": target, "from": list(src_state.diff_ids),
                                   "source": source, "rw": not m.readonly}
                else:
                    [found] = self.context.sources(source) if self.context is not None else [None]
                    if found is None:
                        raise BuildError(f"RUN --mount source {source} not found in build context")
                    item["context_source"] = found
                    item["key"] = {"type": "bind", "target": target, "source": source, "rw": not m.readonly,
                                   "digest": self.context.source_digest(found)}
            else:
                raise BuildError(f"unsupported mount type {m.type!r}")
            out.append(item)
        return out

    def _prepare_mount(self, stack, ws, item: dict) -> dict:
        """The runtime mount entry for one RUN --mount (making cache dirs, source views, rw overlays)."""
        from builder.build.workspace import Workspace

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
            view = stack.enter_context(Workspace(self.store, self._lowers(item["from_state"]), name="mount"))
            source = resolve_in_root(view.merged, m.source or "/")
            if not source.exists():
                raise BuildError(f"RUN --mount source {m.source} not found in {m.from_}")
        else:
            source = self.context.abspath(item["context_source"].relpath)
        if not m.readonly and source.is_dir():
            # A writable bind mount sees its writes, but they go nowhere: an overlay with a scratch upper.
            rw = stack.enter_context(Workspace(self.store, [source], name="rwmount"))
            source = rw.merged
        return {"destination": target, "type": "bind", "source": str(source),
                "options": ["rbind", "ro" if m.readonly else "rw"]}

    # -- COPY / ADD ----------------------------------------------------------------------------------

    def _copy(self, stage: Stage, state: ImageState, instr) -> None:
        from builder.dockerfile.parser import copy_parts

        is_add = instr.cmd == "ADD"
        parts = copy_parts(instr)
        env = state.env
        srcs = [self.ex.word(s, env) for s in parts.sources]
        dest = dest_path(state.workdir, self.ex.word(parts.dest, env))
        chown = self.ex.word(instr.flag("chown"), env) if instr.flag("chown") else ""
        chmod_text = self.ex.word(instr.flag("chmod"), env) if instr.flag("chmod") else ""
        chmod = None
        if chmod_text:
            try:
                chmod = int(chmod_text, 8)
            except ValueError:
                chmod = -1
            if not 0 <= chmod <= 0o7777:
                raise BuildError(f"invalid chmod parameter: '{chmod_text}'. it should be octal string "
                                 "and between 0 and 07777")
        checksum = self.ex.word(instr.flag("checksum"), env) if is_add and instr.flag("checksum") else ""
        from_ref = instr.flag("from") if not is_add else None
        if instr.flag("parents") == "true":
            raise BuildError(f"{instr.cmd} --parents is not supported by pydock yet")
        excludes = [self.ex.word(p, env) for p in instr.flags.get("exclude") or []]
        if excludes and from_ref:
            raise BuildError(f"{instr.cmd} --exclude with --from is not supported by pydock yet")
        from builder.dockerfile.ignore import IgnoreMatcher

        excluded = IgnoreMatcher(excludes).matches if excludes else None
        if checksum and (len(srcs) != 1 or not is_url(srcs[0])):
            raise BuildError("checksum requires a single HTTP(S) source")
        if not is_add and any(is_url(s) for s in srcs):
            raise BuildError("source can't be a URL for COPY")

        history = [instr.cmd]
        history += [f"--exclude={p}" for p in excludes]
        if chown:
            history.append(f"--chown={chown}")
        if chmod_text:
            history.append(f"--chmod={chmod_text}")
        history += srcs + [f"<<{d.name}" for d in parts.heredocs] + [self.ex.word(parts.dest, env)]
        created_by = " ".join(history) + " # buildkit"

        inline = []
        for doc in parts.heredocs:
            text = doc.text
            if doc.expand:
                from builder.dockerfile.expand import expand_heredoc

                text = expand_heredoc(text, env)
            inline.append((doc.name, text.encode()))

        if from_ref:
            self._copy_from(stage, state, instr, from_ref, srcs, dest, chown, chmod, created_by)
            return

        items: list[tuple[str, object]] = []   # ("ctx", Source) | ("url", (path, name, mtime))
        key_sources: list = []
        for src in srcs:
            if is_add and is_url(src):
                fetched = download(src, self._tmpdir(), checksum)
                items.append(("url", (fetched.path, fetched.name, fetched.mtime)))
                key_sources.append(["url", src, fetched.name, fetched.digest])
                continue
            found = self.context.sources(src) if self.context is not None else []
            if not found and not gomatch.has_wildcards(src):
                raise BuildError(f"file not found in build context: {src}")
            if excluded is not None:  # --exclude: patterns match the names as they land under dest
                found = [s for s in found if s.is_dir or not excluded(s.name)]
            for s in found:
                items.append(("ctx", s))
            key_sources.append(["ctx", src, [[s.relpath, s.name, self.context.source_digest(s)] for s in found]])
        count = len(items) + len(inline)
        if (count > 1 or len(srcs) + len(inline) > 1) and not dest.endswith("/"):
            raise BuildError(f"When using {instr.cmd} with more than one source file, the destination "
                             "must be a directory and end with a /")
        payload = {"op": instr.cmd, "dest": dest, "chown": chown, "chmod": chmod_text, "sources": key_sources,
                   "inline": [[n, hashlib.sha256(c).hexdigest()] for n, c in inline], "exclude": excludes}

        def perform(ws) -> None:
            opts = self._copy_options(ws, chown, chmod, keep_owner=False)
            for kind, item in items:
                if kind == "ctx":
                    self._copy_context_source(ws, item, dest, opts, is_add, excluded)
                else:
                    path, name, mtime = item
                    st = os.lstat(path)
                    copy_sources(ws.merged, [SourceTree(path, st, name)], dest, opts)
            for name, content in inline:
                path = ws.dir / "inline" / name.replace("/", "_")
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(content)
                os.chmod(path, 0o644)
                if self.epoch is not None:
                    os.utime(path, (self.epoch, self.epoch))
                copy_sources(ws.merged, [SourceTree(path, os.lstat(path), name)], dest, opts)

        self._fs_step(state, payload, created_by, perform)

    def _copy_options(self, ws, chown: str, chmod: int | None, keep_owner: bool) -> CopyOptions:
        if chown:
            uid, gid = chown_ids(ws.merged, chown)
            return CopyOptions(uid=uid, gid=gid, mode=chmod, dir_owner=(uid, gid))
        return CopyOptions(keep_owner=keep_owner, mode=chmod)

    def _copy_context_source(self, ws, source, dest: str, opts: CopyOptions, is_add: bool, excluded=None) -> None:
        ctx = self.context
        path = ctx.abspath(source.relpath)
        if is_add and stat.S_ISREG(source.st.st_mode):
            from builder.image.tarsafe import extract_archive, is_archive

            if is_archive(path):
                target = mkdir_in_root(ws.merged, dest, opts.dir_owner)
                owner = (opts.uid, opts.gid) if opts.uid is not None else None
                extract_archive(path, target, chown=owner)
                return
        children = ()
        if source.is_dir:
            offset = len(source.relpath) + 1 if source.relpath else 0
            entries = ctx.entries
            # A generator: each record is decoded as it is copied, never the whole tree's at once.
            children = ((c[offset:], entries[c]) for c in ctx.children(source.relpath)
                        if excluded is None or not excluded(c[offset:]))
        copy_sources(ws.merged, [SourceTree(path, source.st, source.name, children)], dest, opts)

    def _copy_from(self, stage: Stage, state: ImageState, instr, ref: str, srcs: list[str], dest: str,
                   chown: str, chmod: int | None, created_by: str) -> None:
        from builder.build.workspace import Workspace

        src_stage = self.plan.find_stage(ref) if self.plan else None
        if src_stage is not None:
            if src_stage.index >= stage.index:
                raise BuildError(f"cannot copy from stage {ref!r}, it needs to be defined before "
                                 f"current stage {stage.display_name!r}")
            source = self._stage_result(src_stage)
            what = f"stage {src_stage.display_name}"
        else:
            image = self.resolve_image(ref)
            source = ImageState(base_config(image.config), list(image.layers), "image:" + image.digest)
            what = f"image {ref}"
        if len(srcs) > 1 and not dest.endswith("/"):
            raise BuildError(f"When using {instr.cmd} with more than one source file, the destination "
                             "must be a directory and end with a /")
        payload = {"op": "COPY", "from": list(source.diff_ids), "dest": dest, "chown": chown,
                   "chmod": "" if chmod is None else oct(chmod), "paths": srcs}

        def perform(ws) -> None:
            opts = self._copy_options(ws, chown, chmod, keep_owner=True)
            with Workspace(self.store, self._lowers(source), name="from") as src_ws:
                trees: list[SourceTree] = []
                for src in srcs:
                    found = rootfs_sources(src_ws.merged, src)
                    if not found and not gomatch.has_wildcards(src):
                        raise BuildError(f"file not found in {what}: {src}")
                    trees.extend(found)
                if len(trees) > 1 and not dest.endswith("/"):
                    raise BuildError(f"When using {instr.cmd} with more than one source file, the destination "
                                     "must be a directory and end with a /")
                for tree in trees:
                    copy_sources(ws.merged, [tree], dest, opts)

        self._fs_step(state, payload, created_by, perform)

    # -- the result ----------------------------------------------------------------------------------

    def _commit(self, final: ImageState):
        config = final.config
        cc = config.setdefault("config", {})
        if self.opts.labels:
            labels = cc.get("Labels") or {}
            labels.update(self.opts.labels)
            cc["Labels"] = labels
        for k in [k for k, v in cc.items() if v in (None, [], {}, "") and k != "WorkingDir"]:
            cc.pop(k)
        history = config.setdefault("history", [])
        fill_history_times(history, self._base_history_len.get(id(final), 0),
                           self.now() if self.epoch is not None else None)
        config["created"] = history[-1]["created"] if history and history[-1].get("created") else self.now()
        config["rootfs"] = {"type": "layers", "diff_ids": list(final.diff_ids)}
        return self.store.commit_image(config, list(final.layers))

    def _export(self, image, out: dict[str, str]) -> None:
        kind = out.get("type", "")
        dest = out.get("dest", "")
        if not dest:
            raise BuildError(f"output type={kind} needs dest=")
        if kind == "oci":
            from builder.image.layout import write_layout

            names = self._ref_names()
            for name in names or [None]:
                write_layout(self.store, image, Path(dest), name)
        elif kind in ("docker", "tar"):
            from builder.image.archive import save

            refs = [image.id]
            if self.opts.tags:
                for tag in self.opts.tags:
                    self.store.tag(image, tag)
                refs = list(self.opts.tags)
            save(self.store, refs, Path(dest), format="docker")
        else:
            raise BuildError(f"unsupported output type {kind!r} (use type=oci or type=docker)")

    def _ref_names(self) -> list[str]:
        """Names for the image in an OCI layout output: each -t as given, its "name:tag" form, and its bare
        tag (what `umoci unpack --image DIR[:TAG]` and `skopeo oci:DIR:REF` look up)."""
        from builder.image.store import normalize_name, split_ref

        names: list[str] = []
        for tag in self.opts.tags:
            full = normalize_name(tag)
            names += [tag, full, split_ref(full)[1] or "latest"]
        return list(dict.fromkeys(names))


def fill_history_times(history: list[dict], base_len: int, epoch: str | None) -> None:
    """Give every history entry a time as BuildKit's exporter does: an entry without one takes the time of
    the first new layer after it, or of the latest layer before it; with SOURCE_DATE_EPOCH, the entries
    this build added are clamped to it (the base image's keep theirs)."""
    created = None
    missing = False
    for h in history:
        if h.get("created"):
            created = h["created"]
            if missing:
                break
        else:
            missing = True
    missing = False
    for h in history:
        if h.get("created"):
            if missing:
                created = h["created"]
        else:
            missing = True
            if created:
                h["created"] = created
    if epoch is not None:
        for h in history[base_len:]:
            if not h.get("created") or h["created"] > epoch:
                h["created"] = epoch


def rootfs_sources(root: Path, src: str) -> list[SourceTree]:
    """COPY --from sources inside another image's rootfs (symlinks resolved inside that root)."""
    rel = posixpath.normpath("/" + src).lstrip("/")
    if not gomatch.has_wildcards(rel):
        path = resolve_in_root(root, gomatch.unescape(rel))
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        children = walk_host_tree(path) if stat.S_ISDIR(st.st_mode) else ()
        return [SourceTree(path, st, posixpath.basename(gomatch.unescape(rel)) or "/", children)]
    parts = rel.split("/")
    cut = next(i for i, p in enumerate(parts) if gomatch.has_wildcards(p))
    base = resolve_in_root(root, "/".join(gomatch.unescape(p) for p in parts[:cut]))
    pattern = "/".join(parts[cut:])
    if not base.is_dir():
        return []
    out: list[SourceTree] = []
    skip = None
    for child, st in walk_host_tree(base):
        if skip and child.startswith(skip):
            continue
        if gomatch.match(pattern, child):
            path = base / child
            if stat.S_ISLNK(st.st_mode):
                path = resolve_in_root(root, str(path.relative_to(root)))
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
            children = walk_host_tree(path) if stat.S_ISDIR(st.st_mode) else ()
            out.append(SourceTree(path, st, posixpath.basename(child), children))
            if stat.S_ISDIR(st.st_mode):
                skip = child + "/"
    return out
