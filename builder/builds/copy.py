"""COPY and ADD: sources from the build context, a URL (ADD), a heredoc, or another stage or image
(--from), copied into the step's workspace with files.py's rules for owners, modes and paths."""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from builder.builds.files import (CopyOptions, SourceTree, copy_sources, mkdir_in_root, resolve_in_root, tree_digest,
                                  walk_host_tree)
from builder.builds.users import chown_ids
from builder.dockerfile import gomatch
from builder.dockerfile.instructions import ImageState, dest_path
from builder.dockerfile.stages import Stage
from builder.errors import BuildError
from builder.builds.context import clean_source_path
from builder.builds.git import is_git_source
from builder.fetch import download, is_url
from builder.image.layers import tar_order

if TYPE_CHECKING:
    from builder.builds.engine import Builder


def copy_step(b: Builder, stage: Stage, state: ImageState, instr) -> None:
    from builder.dockerfile.syntax import copy_parts

    is_add = instr.cmd == "ADD"
    parts = copy_parts(instr)
    env = state.env
    srcs = [b.ex.word(s, env) for s in parts.sources]
    dest = dest_path(state.workdir, b.ex.word(parts.dest, env))
    chown = b.ex.word(instr.flag("chown"), env) if instr.flag("chown") else ""
    chmod_text = b.ex.word(instr.flag("chmod"), env) if instr.flag("chmod") else ""
    chmod = None
    if chmod_text:
        try:
            chmod = int(chmod_text, 8)
        except ValueError:
            chmod = -1
        if not 0 <= chmod <= 0o7777:
            raise BuildError(f"invalid chmod parameter: '{chmod_text}'. it should be octal string "
                             "and between 0 and 07777")
    checksum = b.ex.word(instr.flag("checksum"), env) if is_add and instr.flag("checksum") else ""
    from_ref = instr.flag("from") if not is_add else None
    parents = instr.flag("parents") == "true"
    if parents and (is_add or from_ref):
        raise BuildError(f"{instr.cmd} --parents is supported for COPY from the build context only")
    keep_git_dir = is_add and instr.flag("keep-git-dir") == "true"
    excludes = [b.ex.word(p, env) for p in instr.flags.get("exclude") or []]
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
    history += srcs + [f"<<{d.name}" for d in parts.heredocs] + [b.ex.word(parts.dest, env)]
    created_by = " ".join(history) + " # buildkit"

    inline = []
    for doc in parts.heredocs:
        text = doc.text
        if doc.expand:
            from builder.dockerfile.expand import expand_heredoc

            text = expand_heredoc(text, env)
        inline.append((doc.name, text.encode()))

    if from_ref:
        _copy_from(b, stage, state, instr, from_ref, srcs, dest, chown, chmod, created_by)
        return

    items: list[tuple[str, object, str]] = []   # (kind, item, dest): ("ctx", Source) | ("url", (path, name,
    key_sources: list = []                      # mtime)) | ("git", checkout dir)
    for src in srcs:
        if is_add and is_git_source(src, local=False):
            tree, commit = _git_checkout(b, src, keep_git_dir)
            items.append(("git", tree, dest if dest.endswith("/") else dest + "/"))
            key_sources.append(["git", src, commit, keep_git_dir])
            continue
        if is_add and is_url(src):
            fetched = download(src, b.tmpdir(), checksum)
            items.append(("url", (fetched.path, fetched.name, fetched.mtime), dest))
            key_sources.append(["url", src, fetched.name, fetched.digest])
            continue
        found = b.context.sources(src) if b.context is not None else []
        if not found:  # BuildKit refuses a wildcard that matches nothing, too
            what = " (the pattern matches nothing)" if gomatch.has_wildcards(src) else ""
            raise BuildError(f"file not found in build context: {src}{what}")
        if excluded is not None:  # --exclude: patterns match the names as they land under dest
            found = [s for s in found if s.is_dir or not excluded(s.name)]
        for s in found:
            items.append(("ctx", s, _parents_dest(src, s, dest) if parents else dest))
        key_sources.append(["ctx", src, [[s.relpath, s.name, b.context.source_digest(s)] for s in found]])
    count = len(items) + len(inline)
    if (count > 1 or len(srcs) + len(inline) > 1) and not dest.endswith("/") and not parents:
        raise BuildError(f"When using {instr.cmd} with more than one source file, the destination "
                         "must be a directory and end with a /")
    payload = {"op": instr.cmd, "dest": dest, "chown": chown, "chmod": chmod_text, "sources": key_sources,
               "inline": [[n, hashlib.sha256(c).hexdigest()] for n, c in inline], "exclude": excludes}
    if parents:
        payload["parents"] = True

    def perform(ws) -> None:
        opts = _copy_options(b, ws, chown, chmod, keep_owner=False)
        # one directory, into a directory the step makes, in a layer nothing unpacks: tarred from the context
        plant = ws.planted if len(items) == 1 and not inline else None
        for kind, item, item_dest in items:
            if kind == "ctx":
                _copy_context_source(b, ws, item, item_dest, opts, is_add, excluded, plant)
            elif kind == "git":
                st = os.lstat(item)
                copy_sources(ws.merged, [SourceTree(item, st, item.name, walk_host_tree(item))], item_dest, opts)
            else:
                path, name, mtime = item
                st = os.lstat(path)
                copy_sources(ws.merged, [SourceTree(path, st, name)], dest, opts)
        for name, content in inline:
            path = ws.dir / "inline" / name.replace("/", "_")
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(content)
            os.chmod(path, 0o644)
            if b.epoch is not None:
                os.utime(path, (b.epoch, b.epoch))
            copy_sources(ws.merged, [SourceTree(path, os.lstat(path), name)], dest, opts)

    b.fs_step(state, payload, created_by, perform, instr)


def _git_checkout(b: Builder, src: str, keep_git_dir: bool) -> tuple[Path, str]:
    """ADD <git repository>: its commit checked out in the build's temp dir; (tree or subdir, commit id)."""
    import tempfile

    from builder.builds.git import checkout, parse_git_source, subdir_of

    source = parse_git_source(src)
    tree = Path(tempfile.mkdtemp(dir=b.tmpdir())) / "git"
    commit = checkout(source, tree, keep_git_dir=keep_git_dir, local=False)
    return subdir_of(tree, source), commit


def _parents_dest(src: str, source, dest: str) -> str:
    """COPY --parents: where one matched source lands, its parent path kept below dest. A "/./" in the
    source marks where the kept part starts (BuildKit's pivot); without one the whole path is kept."""
    raw = src[2:] if src.startswith("./") else src
    pivot = ""
    if "/./" in raw:
        pivot = clean_source_path(raw.split("/./", 1)[0])
    path = source.written or source.relpath
    parent = path if source.is_dir else posixpath.dirname(path)  # a directory's contents go under its name
    if pivot:
        if parent != pivot and not parent.startswith(pivot + "/"):
            return dest if dest.endswith("/") else dest + "/"
        parent = parent[len(pivot) + 1:]
    base = dest if dest.endswith("/") else dest + "/"
    return base + parent + "/" if parent else base


def _copy_options(b: Builder, ws, chown: str, chmod: int | None, keep_owner: bool) -> CopyOptions:
    if chown:
        uid, gid = chown_ids(ws.merged, chown)
        return CopyOptions(uid=uid, gid=gid, mode=chmod, dir_owner=(uid, gid))
    return CopyOptions(keep_owner=keep_owner, mode=chmod)


def _copy_context_source(b: Builder, ws, source, dest: str, opts: CopyOptions, is_add: bool, excluded=None,
                         plant: dict | None = None) -> None:
    ctx = b.context
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
        names = (c for c in ctx.children(source.relpath) if excluded is None or not excluded(c[offset:]))
        if plant is not None:  # a tar lists them in its own order
            names = sorted(names, key=lambda c: tar_order(c[offset:]))
        # A generator: each record is decoded as it is copied, never the whole tree's at once.
        children = ((c[offset:], entries[c]) for c in names)
    copy_sources(ws.merged, [SourceTree(path, source.st, source.name, children)], dest, opts, upper=ws.upper,
                 plant=plant)


def _copy_from(b: Builder, stage: Stage, state: ImageState, instr, ref: str, srcs: list[str], dest: str,
               chown: str, chmod: int | None, created_by: str) -> None:
    from builder.builds.workspace import Workspace

    src_stage = b.plan.find_stage(ref) if b.plan else None
    if src_stage is not None:
        source = b.stage_result(src_stage)
        what = f"stage {src_stage.display_name}"
    else:
        source = b.image_state(ref)
        what = f"image {ref}"
    if len(srcs) > 1 and not dest.endswith("/"):
        raise BuildError(f"When using {instr.cmd} with more than one source file, the destination "
                         "must be a directory and end with a /")
    payload = {"op": "COPY", "from": list(source.diff_ids), "dest": dest, "chown": chown,
               "chmod": "" if chmod is None else oct(chmod), "paths": srcs}

    def perform(ws) -> None:
        opts = _copy_options(b, ws, chown, chmod, keep_owner=True)
        with Workspace(b.store, b.lowers(source), name="from") as src_ws:
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

    def content_payload() -> dict:
        """The step over what it copies rather than over the stage's layers (cache.py)."""
        with Workspace(b.store, b.lowers(source), name="from") as src_ws:
            found = [[src, [[t.name, tree_digest(t)] for t in rootfs_sources(src_ws.merged, src)]] for src in srcs]
        return {**{k: v for k, v in payload.items() if k != "from"}, "from-content": found}

    b.fs_step(state, payload, created_by, perform, content_payload=content_payload)


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
