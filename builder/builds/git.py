"""Git repositories as build sources: a context given as a repository URL (`pydock build URL#ref:subdir`)
and `ADD <repository> <dest>`. Debian's `git` does the fetching; we fetch one commit (shallow when the
remote allows it) into a new directory and check it out detached, without the .git directory unless
asked to keep it (ADD --keep-git-dir), as BuildKit does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError

# moby's urlutil: an http(s) or git URL whose path ends in ".git", or git@/git:// and github.com/ forms.
_GIT_PATH = re.compile(r"\.git(?:#.+)?$")
_HEX_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


@dataclass(frozen=True)
class GitSource:
    remote: str     # what git fetches from (a URL, scp-like address or local path)
    ref: str        # branch, tag or commit; "" for the remote's HEAD
    subdir: str     # a directory inside the checkout; "" for its root

    def display(self) -> str:
        tail = self.ref + (f":{self.subdir}" if self.subdir else "")
        return self.remote + (f"#{tail}" if tail else "")


def is_git_source(text: str, *, local: bool = True) -> bool:
    """Whether a context argument (local: a repository on this machine counts) or an ADD source (local
    False: a Dockerfile may not read the host's repositories) names a git repository."""
    if text.startswith(("git://", "git@", "github.com/")):
        return True
    if text.startswith(("http://", "https://", "ssh://")):
        return bool(_GIT_PATH.search(text))
    if not local:
        return False
    if text.startswith("file://"):
        return bool(_GIT_PATH.search(text)) or _is_git_dir(text[7:].split("#")[0])
    # A local repository (tests, or a mirror on disk): a path ending in .git that is a git directory.
    path = text.split("#", 1)[0]
    return path.endswith(".git") and _is_git_dir(path)


def _is_git_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))


def parse_git_source(text: str) -> GitSource:
    """URL#ref:subdir -> GitSource (a github.com/ shorthand becomes https)."""
    remote, _, fragment = text.partition("#")
    ref, _, subdir = fragment.partition(":")
    if remote.startswith("github.com/"):
        remote = "https://" + remote
    if not remote.startswith(("git://", "git@", "http://", "https://", "file://", "ssh://")):
        remote = os.path.abspath(remote)
    if ref.startswith("-"):
        raise BuildError(f"invalid git reference {ref!r} in {text}")
    subdir = subdir.strip("/")
    if any(part == ".." for part in subdir.split("/")):
        raise BuildError(f"invalid git subdirectory {subdir!r} in {text}: it leaves the repository")
    return GitSource(remote, ref, subdir)


def _git(args: list[str], cwd: Path, what: str, *, local: bool = True) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_ASKPASS="/bin/false",
               # the transports a source may use (never ext::, which runs commands; file only for contexts)
               GIT_ALLOW_PROTOCOL="git:http:https:ssh" + (":file" if local else ""))
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")  # never a prompt for a host key or password
    try:
        proc = subprocess.run(["git", "-c", "advice.detachedHead=false", "-c", "core.symlinks=true", *args],
                              cwd=cwd, env=env, capture_output=True, text=True, errors="replace", timeout=600)
    except FileNotFoundError:
        raise BuildError("git is not installed (needed for a git repository source)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: git timed out") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        raise BuildError(f"{what}: {lines[-1] if lines else f'git exited with {proc.returncode}'}")
    return proc.stdout.strip()


def checkout(source: GitSource, dest: Path, *, keep_git_dir: bool = False, local: bool = True) -> str:
    """Fetch `source`'s commit into the new directory `dest` and check it out; returns the commit id.
    With local False, only network transports may be used (an ADD in a Dockerfile)."""
    what = f"failed to fetch git repository {source.display()}"
    dest.mkdir(parents=True)
    _git(["init", "-q", "."], dest, what)
    ref = source.ref or "HEAD"
    target = "FETCH_HEAD"
    try:
        _git(["fetch", "-q", "--depth=1", "--no-tags", "--", source.remote, ref], dest, what, local=local)
    except BuildError:
        try:  # a remote that cannot fetch shallow (git's "dumb" http): the ref's whole history
            _git(["fetch", "-q", "--no-tags", "--", source.remote, ref], dest, what, local=local)
        except BuildError:
            if not _HEX_COMMIT.match(ref):
                raise
            # A commit id the remote will not serve by name: fetch its branches and tags, look it up there.
            _git(["fetch", "-q", "--", source.remote, "+refs/heads/*:refs/remotes/src/*",
                  "+refs/tags/*:refs/tags/*"], dest, what, local=local)
            target = ref
    _git(["checkout", "-q", "--detach", target + "^{commit}"], dest, f"{what}: no commit {ref!r}")
    commit = _git(["rev-parse", "HEAD"], dest, what)
    if not keep_git_dir:
        shutil.rmtree(dest / ".git")
    return commit


def subdir_of(tree: Path, source: GitSource) -> Path:
    """The directory of a checkout that `#ref:subdir` names (its symlinks may not lead out of the tree)."""
    if not source.subdir:
        return tree
    from builder.builds.context import resolve_in_context

    try:
        path = resolve_in_context(tree, source.subdir)
    except (FileNotFoundError, NotADirectoryError):
        raise BuildError(f"no directory {source.subdir!r} in git repository {source.display()}") from None
    except BuildError as e:
        raise BuildError(f"git repository {source.display()}: {e}") from None
    if not path.is_dir():
        raise BuildError(f"{source.subdir!r} in git repository {source.display()} is not a directory")
    return path
