"""Where a build context comes from when it is not a directory: a tar on stdin, a URL, a git repository.

As docker decides: stdin (`-`) and a URL are sniffed, a tar archive (plain, gzip, bzip2, xz or zstd) is
the context and anything else is the Dockerfile itself with no context; a git URL (`...git#ref:subdir`,
`git@...`, or a local repository) is checked out and its subdirectory is the context. Archives are
unpacked with tarsafe's archive rules (no entry lands outside the context, no device nodes); everything
goes into a work directory the caller owns and removes after the build.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.builds.context import MAX_CONTROL_FILE
from builder.builds.git import checkout, is_git_source, parse_git_source, subdir_of
from builder.errors import BuildError
from builder.fetch import download, is_url


@dataclass
class ContextSource:
    dir: Path | None          # the context directory (inside the work dir for remote ones), None for none
    dockerfile: str | None    # the Dockerfile's text when the argument itself was the Dockerfile


def is_remote(arg: str) -> bool:
    """Whether the context argument is one prepare() makes. As docker's CLI decides: stdin, then a local
    directory (a "github.com/org/repo" directory stays one), then a git repository, then a URL."""
    if arg == "-":
        return True
    if os.path.isdir(arg) and not (arg.endswith(".git") and is_git_source(arg)):
        return False
    return is_git_source(arg) or is_url(arg)


def prepare(arg: str, workdir: Path, stdin: BinaryIO) -> ContextSource:
    """The context the argument `arg` names (which is_remote() said is not a plain directory)."""
    if arg == "-":
        spool = workdir / "stdin"
        with open(spool, "wb") as f:
            shutil.copyfileobj(stdin, f, 1 << 20)
        return _archive_or_dockerfile(spool, workdir, "stdin")
    if is_git_source(arg):
        source = parse_git_source(arg)
        tree = workdir / "git"
        checkout(source, tree)
        try:
            return ContextSource(subdir_of(tree, source), None)
        except BuildError as e:
            raise BuildError(f"unable to prepare context: {e}") from None
    fetched = download(arg, workdir)
    return _archive_or_dockerfile(fetched.path, workdir, arg)


def _archive_or_dockerfile(path: Path, workdir: Path, what: str) -> ContextSource:
    from builder.image.tarsafe import extract_archive, is_archive

    if is_archive(path):
        root = workdir / "context"
        try:
            extract_archive(path, root, devices=False)
        except BuildError as e:
            raise BuildError(f"unable to prepare context from {what}: {e}") from None
        path.unlink()
        return ContextSource(root, None)
    if os.path.getsize(path) > MAX_CONTROL_FILE:
        raise BuildError(f"unable to prepare context from {what}: neither a tar archive nor a Dockerfile "
                         f"(larger than {MAX_CONTROL_FILE // (1024 * 1024)} MiB)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"unable to prepare context from {what}: neither a tar archive nor a UTF-8 "
                         "Dockerfile") from None
    path.unlink()
    return ContextSource(None, text)
