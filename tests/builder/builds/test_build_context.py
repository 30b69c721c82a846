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


# A tree and .dockerignore checked against docker 20.10's BuildKit (`docker build -o type=local`): directories
# the file excludes are not sent, even with exceptions in it (a wildcard one makes the walk look inside them
# all), except as parents of re-included paths.
IGNORE_TREE = ["docs/sub/f", "docs/sub/readme.md", "src/tmp/t", "src/keep/k", "a/node_modules/x/n",
               "b/c/node_modules/m", "keepdir/inner/z", "top"]
IGNORE_FILE = "docs\nsrc/tmp\n**/node_modules\nkeepdir\n!docs/sub/readme.md\n!keepdir/inner\n!**/*.md\n"
BUILDKIT_SENDS = [".dockerignore", "a", "b", "b/c", "docs", "docs/sub", "docs/sub/readme.md", "keepdir",
                  "keepdir/inner", "keepdir/inner/z", "src", "src/keep", "src/keep/k", "top"]


def _ignore_context(root, files, ignore_text):
    from builder.dockerfile.ignore import IgnoreMatcher

    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / ".dockerignore").write_text(ignore_text)
    return BuildContext(root, IgnoreMatcher.from_text(ignore_text))


def test_dockerignore_exceptions_send_no_empty_excluded_dirs(tmp_path):
    ctx = _ignore_context(tmp_path, IGNORE_TREE, IGNORE_FILE)
    assert sorted(ctx.entries)[1:] == BUILDKIT_SENDS


def test_dockerignore_entries_are_the_included_paths_and_their_parents(tmp_path):
    from builder.dockerfile.ignore import IgnoreMatcher

    files = ["build/keep/x", "build/out.o", "docs/README.md", "docs/guide/intro.md", "node_modules/keep/k",
             "node_modules/pkg/i.js", "src/main.c", "src/sub/main.o", "a/b/c", "a/d", "e/f/g.pyc", "vendor/v.pyc"]
    pools = [["build", "!build/keep"], ["docs", "!docs/README.md"], ["**/guide", "!**/intro.md"],
             ["*", "!src"], ["node_modules", "!node_modules/keep"], ["a", "!a/b"], ["**/*.pyc", "!vendor/**"],
             ["docs", "!docs/nothing-here"], ["*", "!a/b/c"]]
    for i, patterns in enumerate(pools):
        root = tmp_path / str(i)
        root.mkdir()
        ctx = _ignore_context(root, files, "\n".join(patterns) + "\n")
        matcher = IgnoreMatcher.from_text("\n".join(patterns) + "\n")
        paths = set()
        for f in files + [".dockerignore"]:
            parts = f.split("/")
            paths.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        included = {p for p in paths if not matcher.matches(p)}
        expected = included | {"/".join(p.split("/")[:n]) for p in included for n in range(1, p.count("/") + 1)}
        assert set(ctx.entries) - {""} == expected, patterns
