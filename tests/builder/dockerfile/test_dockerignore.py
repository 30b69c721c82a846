""".dockerignore matching, against behaviour read from moby/patternmatcher and tonistiigi/fsutil."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from builder.dockerfile.ignore import IgnoreMatcher, go_clean, read_patterns
from builder.errors import BuildError

GO_CLEAN_CASES = [
    ("", "."), (".", "."), ("a", "a"), ("a/", "a"), ("a//b", "a/b"), ("./a/./b/", "a/b"), ("a/../b", "b"),
    ("a/..", "."), ("../a", "../a"), ("a/../../b", "../b"), ("/", "/"), ("//a", "/a"), ("/../a", "/a"),
    ("/a/b/..", "/a"), ("**/", "**"), ("!a/../b", "b"),
]


@pytest.mark.parametrize(("path", "cleaned"), GO_CLEAN_CASES)
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


def test_read_patterns() -> None:
    text = (
        "\ufefftest1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n"
        "  # not a comment\n  spaced  \ndir/\n./dot/./x\r\n/\n"
    )
    assert read_patterns(text) == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!", "# not a comment", "spaced",
        "dir", "dot/x", "/",
    ]


# (pattern, path, excluded)
SINGLE_CASES = [
    # plain names, directories and cleaning
    ("foo", "foo", True), ("foo", "foo/bar", True), ("foo", "foo/bar/baz.txt", True), ("foo", "bar/foo", False),
    ("foo", "foobar", False), ("foo/", "foo/x", True), ("/foo", "foo/x", True), ("./foo", "foo", True),
    ("foo/bar", "foo/bar/x", True), ("foo/bar", "foo", False), ("a/../b", "b", True),
    # * and ?
    ("*", "abc", True), ("*", "dir/file", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "ab/c", True),
    ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("*.md", "README.md", True), ("*.md", "docs/README.md", False),
    ("*/*.md", "docs/README.md", True), ("*/*.md", "a/b/README.md", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False),
    ("a?b", "a☺b", True), ("a???b", "a☺b", False), ("a?b", "a/b", False), ("a*b", "a/b", False), ("*x", "xxx", True),
    (".*", ".git", True), (".*", "foo", False), (".*", ".git/config", True),
    # classes and escapes
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^e-g]", "abc", True), ("a[^a]b", "a☺b", True), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False),
    ("[\\]a]", "]", True), ("[\\-x]", "-", True), ("[x\\-]", "z", False), ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a\\\\", "a\\", True), ("\\#file", "#file", True), ("\\!keep", "!keep", True), ("a\\ b", "a b", True),
    # ** (any number of directories)
    ("**", "file", True), ("**", "dir/file", True), ("**/", "dir/file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir", False),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir", "a/b/dir/c", True), ("**/dir", "adir", False),
    ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/**", "dir/dir2/dir3/file", True), ("**file", "file", True),
    ("**file", "dir/dir/file", True), ("**file", "dir/myfile", True), ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False), ("**/*.txt", "a/b/c.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt**", "a/file.txt", True), ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True), ("a/**/b", "a/xb", False),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("**/foo/bar", "dir/dir2/foo/bar", True),
    # regex characters are literal
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True), ("dist/*.whl", "dist/pkg-1.0+g1-py3-none-any.whl", True),
    ("a^b", "a^b", True), ("a^b*", "a^bc", False),
    # the context root is never excluded
    ("*", ".", False), ("**", "", False), ("**", "/", False),
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE_CASES)
def test_single_pattern(pattern: str, path: str, excluded: bool) -> None:
    assert IgnoreMatcher.from_text(pattern + "\n").matches(path) is excluded


def test_constructor_takes_patterns_as_given() -> None:
    # Like docker's patternmatcher.New: only reading a .dockerignore drops a leading "/".
    assert not IgnoreMatcher(["/foo"]).matches("foo")
    assert IgnoreMatcher(["  foo/  "]).matches("foo/x")


# (patterns, path, excluded)
MULTI_CASES = [
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["docs", "!docs/README.md"], "docs", True),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web"], "util/docker/other", True),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/pkg-1.0-py3-none-any.whl", False),
    (["*", "!keep"], "keep/deep/file", False),
    (["*", "!keep", "keep/tmp"], "keep/tmp/x", True),
    (["*.log", "!important.log", "*.log"], "important.log", True),
    (["a", "!a/b"], "a/b/c", False),
    (["**/*.pyc", "!vendor/**"], "vendor/x/y.pyc", False),
    (["node_modules", "!node_modules/keep"], "node_modules/keep/index.js", False),
    (["node_modules", "!node_modules/keep"], "node_modules/drop/index.js", True),
    # Docker's walk remembers, per directory, only the patterns it actually evaluated: a
    # pattern skipped there (it could not change the answer) is later tried on the child
    # path alone.  So a later plain "a" does not catch "a/b" once "!a/b" re-included it.
    (["a", "!a/b", "a"], "a/b", False),
    (["a", "!a/b", "a"], "a/b/c", False),
    (["a", "!a/b", "a"], "a/c", True),
    (["a", "!a/b", "a/**"], "a/b", True),
    (["a/b", "!a"], "a/b/c", True),
    (["a/b", "!a"], "a/x", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), MULTI_CASES)
def test_several_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).matches(path) is excluded


def test_from_text() -> None:
    matcher = IgnoreMatcher.from_text("# build outputs\n/build\n*.o\n\n!keep.o\n.git\n")
    assert bool(matcher)
    assert matcher.has_exceptions
    assert [(p.text, p.exclusion) for p in matcher.patterns] == [
        ("build", False), ("*.o", False), ("keep.o", True), (".git", False),
    ]
    assert matcher.matches("build/out/bin")
    assert matcher.matches("x.o") and not matcher.matches("keep.o")
    assert matcher.matches(".git/HEAD")
    assert not matcher.matches("src/main.c")
    assert not matcher.matches("src/x.o")  # "*.o" is for the top level only


def test_empty_matcher_excludes_nothing() -> None:
    matcher = IgnoreMatcher.from_text("\n# nothing\n   \n")
    assert not matcher
    assert not matcher.matches("anything/at/all")
    assert matcher.may_match_inside("anything")


BAD_PATTERNS = [
    ["!"], ["["], ["[^"], ["[^bc"], ["a["], ["[]a]"], ["[-]"], ["[x-]"], ["[-x]"], ["[a-b-c]"], ["a\\"], ["ok", "bad["],
    ["\\q"],
]


@pytest.mark.parametrize("patterns", BAD_PATTERNS)
def test_bad_patterns_are_refused(patterns: list[str]) -> None:
    with pytest.raises(BuildError):
        IgnoreMatcher(patterns)


def test_bad_pattern_messages() -> None:
    with pytest.raises(BuildError, match='illegal exclusion pattern: "!"'):
        IgnoreMatcher.from_text("! \n")
    with pytest.raises(BuildError, match=r'invalid \.dockerignore pattern "a\[": syntax error in pattern'):
        IgnoreMatcher.from_text("a[\n")


# (patterns, directory, may anything under it be in the context)
PRUNE_CASES = [
    (["build"], "build", False),
    (["build"], "src", True),
    (["build"], "src/build", True),
    (["build/"], "build", False),
    (["*"], "anydir", False),
    (["**"], "a/b", False),
    (["build", "!build/keep"], "build", True),
    (["build", "!build/keep"], "build/keep", True),
    (["build", "!build/keep"], "build/other", False),
    (["build", "!build/keep/**"], "build", True),
    (["build", "!build/keep/*"], "build/keep", True),
    (["build", "!other"], "build", False),
    (["build", "!buildx"], "build", False),
    # an exception with wildcards could match anywhere: never prune
    (["build", "!**/*.keep"], "build", True),
    (["build", "!build/*.keep"], "build", True),
    (["build", "!b?ild/x"], "build", True),
    (["build", "!build/[ab]"], "build", True),
    (["*", "!src"], "src", True),
    (["*", "!src"], "docs", False),
    (["a", "!a/b", "a"], "a", True),
]


@pytest.mark.parametrize(("patterns", "directory", "expected"), PRUNE_CASES)
def test_may_match_inside(patterns: list[str], directory: str, expected: bool) -> None:
    assert IgnoreMatcher(patterns).may_match_inside(directory) is expected


def _make_tree(root: Path) -> list[str]:
    files = [
        "README.md", "main.go", "keep.o", "x.o", "build/out.bin", "build/keep/a.txt", "build/keep/sub/b.txt",
        "build/other/c.txt", "docs/README.md", "docs/guide/intro.md", "src/app/main.py", "src/app/main.pyc",
        "src/vendor/lib.pyc", "vendor/x/y.pyc", "node_modules/keep/index.js", "node_modules/drop/index.js",
        ".git/HEAD", ".git/objects/ab/cdef", "a/b/c", "a/c",
    ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return sorted(files)


def _walk_with_pruning(root: Path, matcher: IgnoreMatcher) -> list[str]:
    kept = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel + "/"
        dirnames[:] = [d for d in dirnames if matcher.may_match_inside(prefix + d)]
        kept.extend(prefix + f for f in filenames if not matcher.matches(prefix + f))
    return sorted(kept)


PATTERN_POOL = [
    "build", "!build/keep", "*.o", "!keep.o", "docs", "!docs/README.md", "**/*.pyc", "!vendor/**", "node_modules",
    "!node_modules/keep", ".git", "a", "!a/b", "*", "!src", "**/guide", "!**/intro.md", "src/*/main.*",
]


def test_pruning_never_loses_an_included_file(tmp_path: Path) -> None:
    files = _make_tree(tmp_path)
    checked = 0
    for size in (1, 2, 3):
        for patterns in itertools.islice(itertools.permutations(PATTERN_POOL, size), 0, None, 7):
            matcher = IgnoreMatcher(patterns)
            expected = [f for f in files if not matcher.matches(f)]
            assert _walk_with_pruning(tmp_path, matcher) == expected, patterns
            checked += 1
    assert checked > 500


def test_directory_results_are_reused() -> None:
    matcher = IgnoreMatcher(["a", "!a/b/keep"])
    assert matcher.matches("a/b/c/d")
    assert not matcher.matches("a/b/keep/x")
    assert matcher.matches("a/b/c/e")  # same answer through the cached parents
