"""Build context: source resolution (paths, wildcards, symlinks), content hashes, Go-style matching."""

from __future__ import annotations

import os

import pytest

from builder.dockerfile import gomatch
from builder.builds.cache import BuildCache, CacheEntry, step_key
from builder.builds.context import BuildContext, clean_source_path, hash_cache_file_for
from builder.errors import BuildError


@pytest.mark.parametrize("pattern,name,ok", [
    ("*.txt", "a.txt", True),
    ("*.txt", "dir/a.txt", False),
    ("*/a.txt", "dir/a.txt", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("[^a-c]x", "/x", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("file[0-9].md", "file7.md", True),
])
def test_go_match(pattern, name, ok):
    assert gomatch.match(pattern, name) is ok


def test_go_match_bad_pattern():
    with pytest.raises(BuildError):
        gomatch.match("[a-", "a")
    assert gomatch.has_wildcards("a/*.c") and not gomatch.has_wildcards("a/\\*.c")


def test_clean_source_path_refuses_escape():
    assert clean_source_path("./a/../b") == "b"
    assert clean_source_path("/abs/x") == "abs/x"
    assert clean_source_path(".") == ""
    with pytest.raises(BuildError, match="outside the build context"):
        clean_source_path("../etc/passwd")


@pytest.fixture
def ctx_dir(tmp_path):
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a")
    (root / "src" / "pkg" / "b.py").write_text("b")
    (root / "README.md").write_text("readme")
    (root / "notes.txt").write_text("n")
    os.symlink("src", root / "srclink")
    os.symlink("../../etc/passwd", root / "evil")
    os.symlink("/etc/passwd", root / "abs")
    return root


def test_sources_plain_dir_and_symlink(ctx_dir):
    ctx = BuildContext(ctx_dir)
    [s] = ctx.sources("src")
    assert s.relpath == "src" and s.is_dir
    [s] = ctx.sources("srclink/pkg/b.py")
    assert s.relpath == "src/pkg/b.py"
    [s] = ctx.sources("srclink")
    assert s.relpath == "src"
    assert ctx.children("src") == ["src/a.py", "src/pkg", "src/pkg/b.py"]


def test_sources_refuses_symlinks_leaving_context(ctx_dir):
    ctx = BuildContext(ctx_dir)
    for bad in ("evil", "abs"):
        with pytest.raises(BuildError, match="outside the build context"):
            ctx.sources(bad)


def test_sources_missing_and_wildcards(ctx_dir):
    ctx = BuildContext(ctx_dir)
    with pytest.raises(BuildError, match="file not found in build context: nope"):
        ctx.sources("nope")
    assert [s.relpath for s in ctx.sources("*.md")] == ["README.md"]
    assert [s.relpath for s in ctx.sources("src/*")] == ["src/a.py", "src/pkg"]
    assert [s.relpath for s in ctx.sources("*/pkg")] == ["src/pkg"]
    assert ctx.sources("*.none") == []


def test_no_context_refuses_sources():
    with pytest.raises(BuildError, match="file not found in build context"):
        BuildContext(None).sources("x")


def test_source_digest_ignores_mtime_but_sees_content_and_mode(ctx_dir, tmp_path):
    cache_file = hash_cache_file_for(tmp_path / "store", ctx_dir)

    def digest():
        ctx = BuildContext(ctx_dir, hash_cache_file=cache_file)
        d = ctx.source_digest(ctx.sources("src")[0])
        ctx.save_hash_cache()
        return d

    first = digest()
    assert cache_file.exists()
    os.utime(ctx_dir / "src" / "a.py", (1, 1))
    assert digest() == first
    (ctx_dir / "src" / "a.py").write_text("A")
    changed = digest()
    assert changed != first
    os.chmod(ctx_dir / "src" / "a.py", 0o755)
    assert digest() != changed


def test_source_digest_sees_hardlinks(ctx_dir):
    d1 = BuildContext(ctx_dir).source_digest(BuildContext(ctx_dir).sources("src")[0])
    (ctx_dir / "src" / "c.py").write_text("a")
    ctx = BuildContext(ctx_dir)
    d2 = ctx.source_digest(ctx.sources("src")[0])
    (ctx_dir / "src" / "c.py").unlink()
    os.link(ctx_dir / "src" / "a.py", ctx_dir / "src" / "c.py")
    ctx = BuildContext(ctx_dir)
    d3 = ctx.source_digest(ctx.sources("src")[0])
    assert len({d1, d2, d3}) == 3


def test_cache_roundtrip(tmp_path):
    cache = BuildCache(tmp_path)
    key = step_key("parent", {"cmd": "RUN true"})
    assert key != step_key("parent", {"cmd": "RUN false"})
    assert cache.get(key) is None
    entry = CacheEntry({"mediaType": "x", "digest": "sha256:" + "0" * 64, "size": 1}, "sha256:" + "1" * 64,
                       "2024-01-01T00:00:00Z")
    cache.put(key, entry)
    assert cache.get(key) == entry
    assert cache.get(key, blob_exists=lambda d: False) is None
    assert not [p for p in (tmp_path / "cache" / "steps").rglob(".tmp-*")]
