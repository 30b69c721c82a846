"""The words of remote build sources and cache flags, parsed at the door: git source forms (which are git,
which are not, ref and subdirectory), --platform lists, and --cache-from / --cache-to specs."""

from __future__ import annotations

import pytest

from builder.builds.cache_transfer import CacheSpec, parse_cache_from, parse_cache_to
from builder.builds.git import GitSource, is_git_source, parse_git_source
from builder.builds.platforms import parse_target
from builder.errors import BuildError
from builder.image.platform import Platform


@pytest.mark.parametrize("text,expected", [
    ("https://example.com/org/repo.git", True),
    ("https://example.com/org/repo.git#main:sub/dir", True),
    ("git://example.com/repo", True),
    ("git@github.com:org/repo", True),
    ("github.com/org/repo", True),
    ("ssh://git@example.com/repo.git", True),
    ("https://example.com/context.tar.gz", False),
    ("https://example.com/Dockerfile", False),
    ("ext::sh -c touch% /tmp/x", False),
    ("./some/dir", False),
])
def test_which_sources_are_git(text, expected):
    assert is_git_source(text) is expected
    assert is_git_source(text, local=False) is expected


def test_local_repositories_count_only_for_contexts(tmp_path):
    bare = tmp_path / "r.git"
    (bare / "objects").mkdir(parents=True)
    (bare / "HEAD").write_text("ref: refs/heads/main\n")
    for text in (str(bare), f"{bare}#main:sub", f"file://{bare}"):
        assert is_git_source(text)
        assert not is_git_source(text, local=False)
    assert not is_git_source(str(tmp_path))  # a plain directory stays a directory context


def test_git_ref_and_subdir():
    assert parse_git_source("https://h/r.git#v1.2:a/b/") == GitSource("https://h/r.git", "v1.2", "a/b")
    assert parse_git_source("https://h/r.git") == GitSource("https://h/r.git", "", "")
    assert parse_git_source("github.com/o/r#:docs") == GitSource("https://github.com/o/r", "", "docs")
    with pytest.raises(BuildError, match="leaves the repository"):
        parse_git_source("https://h/r.git#main:a/../../etc")
    with pytest.raises(BuildError, match="invalid git reference"):
        parse_git_source("https://h/r.git#--upload-pack=touch")


def test_platform_flag():
    assert parse_target(None) is None
    assert parse_target("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    with pytest.raises(BuildError, match="multiple platforms"):
        parse_target("linux/amd64,linux/arm64")
    with pytest.raises(BuildError, match="invalid platform"):
        parse_target("linux/notanarch")


def test_cache_specs():
    assert parse_cache_from("type=local,src=/c") == CacheSpec("local", "/c")
    assert parse_cache_from("type=registry,ref=h:5000/r:t") == CacheSpec("registry", "h:5000/r:t")
    assert parse_cache_from("h:5000/app:1") == CacheSpec("image", "h:5000/app:1")
    assert parse_cache_to("type=local,dest=/c,mode=max") == CacheSpec("local", "/c", "max")
    assert parse_cache_to("type=registry,ref=h/r:c") == CacheSpec("registry", "h/r:c", "min")
    for bad, message in [("type=local,dest=/c,mode=all", "mode"), ("type=inline", "unsupported --cache-to type"),
                         ("type=local,dest=/c,compression=zstd", "unsupported --cache-to option"),
                         ("type=local,src=/c", "option .src."), ("type=local", "needs dest"), ("type=registry", "needs ref")]:
        with pytest.raises(BuildError, match=message):
            parse_cache_to(bad)
    for bad in ("type=local", "type=gha,url=x", "type=registry", ""):
        with pytest.raises(BuildError):
            parse_cache_from(bad)


def test_a_local_directory_wins_over_a_git_shorthand(tmp_path, monkeypatch):
    from builder.builds.context_source import is_remote

    monkeypatch.chdir(tmp_path)
    assert is_remote("github.com/org/repo") and is_remote("-")
    (tmp_path / "github.com/org/repo").mkdir(parents=True)
    assert not is_remote("github.com/org/repo")  # docker's CLI checks for a directory first
    bare = tmp_path / "r.git"
    (bare / "objects").mkdir(parents=True)
    (bare / "HEAD").write_text("ref: refs/heads/main\n")
    assert is_remote(str(bare))
