"""The build engine: runs a plan's stages step by step, with the cache, and commits the target image.

Filesystem steps (RUN, COPY, ADD, WORKDIR) each make one layer: the step runs on an overlayfs over the
parent's unpacked layers, and the upper dir is tarred into the store (and then kept as that layer's
unpacked form, so the next step needs no extraction). Their results are cached by a key chained from
the parent's key, the expanded instruction and its inputs; a hit touches no rootfs at all. Metadata
steps only change the config and history. A failed build leaves the store as it was: its new cache
entries are removed, and the store's lease takes back its blobs, unpacked layers and index entries.

One module per kind of step does the step's own work: run.py (RUN), copy.py (COPY, ADD); WORKDIR and the
metadata instructions (dockerfile/instructions.py) are small enough to stay here; result.py commits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from builder.builds.cache import BuildCache, CacheEntry, step_key
from builder.builds.copy import copy_step
from builder.builds.files import mkdir_in_root
from builder.builds.progress import Progress
from builder.builds.result import FILESYSTEM_OUTPUTS, commit, export, export_filesystem
from builder.builds.run import run_step
from builder.builds.users import image_user
from builder.dockerfile.instructions import (METADATA, Expander, ImageState, base_config, do_arg, env_from_config,
                                             normalize_workdir, scratch_config)
from builder.dockerfile.stages import SCRATCH, BuildPlan, Stage, make_plan
from builder.errors import BuildError, DockerfileError, StepFailed
from builder.builds import cache_transfer, platforms
from builder.image.platform import Platform, host_platform
from oci_runtime.units import rfc3339


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
    pull: bool = False  # pull every image named (FROM, COPY --from) again, even if it is in the store
    platform: Platform | None = None  # --platform: the target platform (None: this host's)
    cache_from: list = field(default_factory=list)  # CacheSpecs (cache_transfer.py) read before the build
    cache_to: list = field(default_factory=list)    # CacheSpecs written after it
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)  # --secret id -> content
    ssh: dict[str, list[str]] = field(default_factory=dict)  # --ssh id -> [agent socket] or key files
    add_hosts: list[tuple[str, str]] = field(default_factory=list)  # --add-host: RUN steps' /etc/hosts
    limits: object = None  # RUN steps' resource limits (limits.RunLimits from --ulimit, -m, ...), or None
    load: bool = False  # store the image even when the outputs are filesystem ones (buildx --load)
    no_cache_stages: list[str] = field(default_factory=list)  # --no-cache-filter: stages built without the cache
    allow_insecure: bool = False  # --allow security.insecure: RUN --security=insecure may run privileged


FS_STEPS = ("RUN", "COPY", "ADD", "WORKDIR")  # the instructions that make a layer


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
        self._stage: Stage | None = None  # the stage whose steps run now
        self._building: set[int] = set()  # stages begun (a stage that needs one begun and unfinished loops)
        self.step_no = 0
        self.total = 0
        self.plan: BuildPlan | None = None
        self._new_cache_keys: list[str] = []
        self.base_history_len: dict[int, int] = {}
        self._tmp: Path | None = None
        self._final_layer_instr = None  # the instruction whose layer no later step of this build mounts
        self.cache_sources: list = []   # --cache-from, opened when the build starts
        self.steps_done: dict[str, tuple[str, CacheEntry]] = {}  # key -> (parent key, result), for --cache-to
        from builder.builds.secrets import Agents

        self.agents = Agents(options.ssh)

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

    def lowers(self, state: ImageState) -> list[Path]:
        return [self.store.unpacked_layer(diff_id, layer) for layer, diff_id in zip(state.layers, state.diff_ids)]

    def tmpdir(self) -> Path:
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
        """Build the target stage and commit it; returns the store Image (None when the only outputs are
        filesystem ones: -o type=local|tar)."""
        try:
            with self.store.lease(), self.store.hold() as self._hold:
                # the lease: a failed build takes its blobs, layers and images back out; the hold: rmi and
                # gc leave the images it uses (and what it adds) alone until it is done
                image = self._build()
        except BaseException:
            self.progress.failed()
            for key in self._new_cache_keys:
                self.cache.remove(key)
            raise
        finally:
            self.agents.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                os.close(self._tmp_fd)
            self.progress.close()
        if self.context is not None:
            self.context.save_hash_cache()
        return image

    def _build(self):
        self.plan = plan = make_plan(self.dockerfile, self.opts.build_args, self.opts.target, self.opts.platform)
        unused = plan.unused_build_args(self.opts.build_args)
        if unused:
            self.progress.warn(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        for name in self.opts.no_cache_stages:
            if plan.find_stage(name) is None or name.isdigit():
                raise BuildError(f"--no-cache-filter: no stage named {name!r} in the Dockerfile")
        self.opts.no_cache_stages = [plan.find_stage(n).display_name for n in self.opts.no_cache_stages]
        self.total = plan.step_count()
        if self.opts.cache_from and not self.opts.no_cache:
            self.cache_sources = cache_transfer.open_sources(self, self.opts.cache_from)
        for stage in plan.needed:
            self.stage_result(stage)
        final = self.results[plan.target.index]
        fs_outputs = [o for o in self.opts.outputs if o["type"] in FILESYSTEM_OUTPUTS]
        for out in fs_outputs:
            export_filesystem(self, final, out)
        if fs_outputs and len(fs_outputs) == len(self.opts.outputs) and not self.opts.load:
            # As BuildKit: what a filesystem output gets is all there is; no image is stored or tagged.
            self.progress.line("Successfully exported " + ", ".join(o["dest"] for o in fs_outputs))
            return None
        image = commit(self, final)
        for spec in self.opts.cache_to:
            cache_transfer.export(self, spec, final.key)
        for out in self.opts.outputs:
            if out["type"] not in FILESYSTEM_OUTPUTS:
                export(self, image, out)
        for tag in self.opts.tags:
            self.store.tag(image, tag)
        self.progress.line(f"Successfully built {_short(image.id)}")
        for tag in self.opts.tags:
            from builder.image.store import normalize_name

            self.progress.line(f"Successfully tagged {normalize_name(tag)}")
        return image

    def stage_result(self, stage: Stage) -> ImageState:
        if stage.index not in self.results:
            if stage.index in self._building:  # make_plan refuses loops; this guard keeps a missed one finite
                raise BuildError(f"circular dependency detected on stage: {stage.display_name}")
            self._building.add(stage.index)
            self.results[stage.index] = self._build_stage(stage)
        return self.results[stage.index]

    def _build_stage(self, stage: Stage) -> ImageState:
        outer, self._stage = self._stage, stage  # a stage may build another one midway
        try:
            return self._build_stage_steps(stage)
        finally:
            self._stage = outer

    def _no_cache(self) -> bool:
        return self.opts.no_cache or (self._stage is not None and self._stage.display_name in self.opts.no_cache_stages)

    def _build_stage_steps(self, stage: Stage) -> ImageState:
        state, triggers = self._from(stage)
        for instr in triggers:
            self.progress.line(f" # Executing build trigger: {_oneline(instr.original)}")
            self._step(stage, state, instr, count=False)
        self._final_layer_instr = None
        if stage is self.plan.target:
            # The target's last filesystem step makes a layer no later step of this build mounts: its
            # files need not be written out (a later build unpacks the layer if it needs it).
            self._final_layer_instr = next((i for i in reversed(stage.instructions) if i.cmd in FS_STEPS), None)
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
            base = self.stage_result(stage.base_stage)
            state = base.clone()
            self.base_history_len[id(state)] = self.base_history_len.get(id(base), 0)
            onbuild = list(state.cc.pop("OnBuild", None) or [])
            state.cmd_set = False
            return state, onbuild
        want = Platform.parse(stage.platform) if stage.platform else self.opts.platform
        if stage.base_name.lower() == SCRATCH:
            config = scratch_config(want or host_platform())
            return ImageState(config, [], "scratch", env_from_config(config["config"])), []
        image = self.resolve_image(stage.base_name, want, default=host_platform())
        onbuild = list((image.config.get("config") or {}).get("OnBuild") or [])
        config = base_config(image.config)
        if len(config["rootfs"]["diff_ids"]) != len(image.layers):
            raise BuildError(f"image {stage.base_name} is inconsistent: "
                             f"{len(config['rootfs']['diff_ids'])} diff_ids for {len(image.layers)} layers")
        state = ImageState(config, list(image.layers), "image:" + image.digest, env_from_config(config["config"]))
        self.base_history_len[id(state)] = len(config["history"])
        return state, onbuild

    def image_state(self, ref: str) -> ImageState:
        """An image's filesystem as the source of COPY --from or RUN --mount from=."""
        image = self.resolve_image(ref, self.opts.platform)
        return ImageState(base_config(image.config), list(image.layers), "image:" + image.digest)

    def resolve_image(self, ref: str, platform: Platform | None = None, default: Platform | None = None):
        """An image by store reference, or from an OCI layout directory ("oci:DIR[:TAG]"); with a
        platform (FROM --platform, --platform), that platform's image. With only a default platform (this
        host's), a store image for another one is pulled again for it when the registry has it, and kept
        (with a warning) when it has not, as docker does."""
        if ref.startswith("oci:"):
            from builder.image.layout import import_layout

            path, tag = ref[4:], None
            head, sep, tail = path.rpartition(":")
            if sep and head and "/" not in tail:
                path, tag = head, tail
            if not Path(path).is_dir():
                raise BuildError(f"OCI layout not found: {path}")
            image = import_layout(self.store, Path(path), tag)
        else:
            image = self._resolve_or_pull(ref, platform)
            if platform is None and default is not None and not _is_for(image, default):
                image = self._default_platform(ref, image, default)
        if platform is not None and not _is_for(image, platform):
            raise BuildError(f"image {ref} is for {_platform_of(image)}, not the requested {platform.format()}")
        if getattr(self, "_hold", None) is not None:
            self._hold.add(image)
        return image

    def _resolve_or_pull(self, ref: str, platform: Platform | None = None):
        """The image FROM names: from the store, pulled when the store lacks it (or always with --pull, or
        when the store's is for another platform than FROM --platform asks for)."""
        if self.opts.pull and not ref.startswith("sha256:"):
            return self._pull(ref, platform)
        from builder.registry.local import resolve_local

        image = resolve_local(self.store, ref)
        if image is None:
            try:
                return self._pull(ref, platform)
            except BuildError as pull_error:
                raise BuildError(f"image not found: {ref}, and pulling it failed: {pull_error}") from None
        if platform is None or _is_for(image, platform) or ref.startswith("sha256:"):
            return image
        try:
            return self._pull(ref, platform)
        except BuildError as pull_error:
            raise BuildError(f"image {ref} in the store is for {_platform_of(image)}, "
                             f"and pulling it for {platform.format()} failed: {pull_error}") from None

    def _default_platform(self, ref: str, image, want: Platform):
        if not ref.startswith("sha256:"):
            try:
                pulled = self._pull(ref, want)
                if _is_for(pulled, want):
                    return pulled
            except BuildError:
                pass
        self.progress.warn(f"WARNING: The requested image's platform ({_platform_of(image)}) does not match "
                           f"the detected host platform ({want.format()}) and no specific platform was requested")
        return image

    def _pull(self, ref: str, platform: Platform | None = None):
        """FROM an image the store lacks (or any with --pull): pull it, once per build. As with docker, a
        pulled image stays even if the build fails: it goes in through a store object of its own, outside
        this build's lease."""
        from builder.image.store import ImageStore
        from builder.registry.pull import pull
        from builder.registry.reference import parse

        pulled = getattr(self, "_pulled", None)
        if pulled is None:
            pulled = self._pulled = {}
        key = (ref, platform)
        if key not in pulled:
            self.progress.line(f"pulling {ref}" + (f" for {platform.format()}" if platform else ""))
            pulled[key] = pull(ImageStore(self.store.root), parse(ref), platform=platform,
                               say=lambda line: None).image
        return pulled[key]

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
                run_step(self, state, instr)
            elif cmd in ("COPY", "ADD"):
                copy_step(self, stage, state, instr)
            else:
                raise BuildError(f"unknown instruction: {cmd}")
        except BuildError as e:
            raise self._fail(instr, e) from None

    def _show_meta(self, state: ImageState) -> None:
        from builder.image.digest import canonical_json

        self.progress.line(f" ---> {hashlib.sha256(state.key.encode() + canonical_json(state.config)).hexdigest()[:12]}")

    def fs_step(self, state: ImageState, payload: dict, created_by: str, perform, instr=None,
                content_payload=None) -> None:
        """Run (or take from the cache) a step that makes a layer. `instr`: the step's instruction, when
        it may leave its files out of the upper dir (Workspace.planted). `content_payload`: a callable
        giving a second description over the content the step takes, looked up when `payload` misses
        (cache.py); later steps then chain from its key."""
        from builder.image.digest import Descriptor

        key = step_key(state.key, payload)
        no_cache = self._no_cache()
        entry = None if no_cache else self.cache.get(key, self.store.has_blob)
        chain = entry.chain if entry is not None and entry.chain else key
        if entry is None and content_payload is not None and not no_cache:
            chain = step_key(state.key, content_payload())
            entry = self.cache.get(chain, self.store.has_blob)
            if entry is not None:
                self._cache_put(key, CacheEntry(entry.layer, entry.diff_id, entry.created, chain))
        if entry is None and self.cache_sources:
            for k in dict.fromkeys((key, chain)):
                entry = cache_transfer.lookup(self, k, history=state.config.get("history") or [],
                                              diff_ids=state.diff_ids, created_by=created_by, payload=payload)
                if entry is not None:
                    break
            if entry is not None:
                if chain != key:
                    entry = CacheEntry(entry.layer, entry.diff_id, entry.created, chain)
                self._cache_put(key, entry)
        if entry is not None:
            self.progress.line(" ---> Using cache")
        else:
            plant = instr is not None and instr is self._final_layer_instr
            entry = self._make_layer(state, perform, plant)
            if chain != key:
                self._cache_put(chain, entry)
                entry = CacheEntry(entry.layer, entry.diff_id, entry.created, chain)
            self._cache_put(key, entry)
        self.steps_done[key] = (state.key, entry)
        if chain != key:  # later steps name this one by its chain key (their parent)
            self.steps_done[chain] = (state.key, entry)
        state.layers.append(Descriptor.from_json(entry.layer))
        state.diff_ids.append(entry.diff_id)
        state.key = chain
        state.add_history(created_by, entry.created, empty_layer=False)
        self.progress.line(f" ---> {_short(chain)}")

    def _cache_put(self, key: str, entry: CacheEntry) -> None:
        self.cache.put(key, entry)
        self._new_cache_keys.append(key)  # taken back out if the build fails

    def _make_layer(self, state: ImageState, perform, plant: bool = False) -> CacheEntry:
        from builder.image.layers import write_layer_from_dir
        from builder.builds.workspace import Workspace

        lowers = self.lowers(state)
        created = self.now()
        with Workspace(self.store, lowers) as ws:
            if plant:
                ws.planted = {}
            perform(ws)
            ws.unmount()
            # A plain tar, as BuildKit leaves layers in docker's store: compressing cost most of a build.
            # A push compresses it, once (image/distribute.py).
            desc, diff_id = write_layer_from_dir(ws.upper, self.store, compression=None,
                                                 source_date_epoch=self.epoch,
                                                 progress=self.progress.layer_bars, planted=ws.planted)
            if not ws.planted and self.store.keep_unpacked_layer(diff_id, ws.upper):
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

        self.fs_step(state, {"op": "WORKDIR", "path": wd, "user": user}, f"WORKDIR {wd}", perform)


def _platform_of(image) -> str:
    return platforms.of_config(image.config).format()


def _is_for(image, platform: Platform) -> bool:
    """Whether an image is for a platform (a variant counts only when both name one)."""
    return platforms.same(platforms.of_config(image.config), platform)
