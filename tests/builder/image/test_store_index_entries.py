"""A malformed entry in the store's own index.json: every command names the file and the entry once,
works on the other images, and keeps the entry as it is (for its owner to repair)."""

from __future__ import annotations

import json
import tarfile

import pytest

from builder_support import Pydock

MALFORMED = [
    "just a string",
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:nothex", "size": 3},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64, "size": -1},
    {"digest": "sha256:" + "b" * 64, "size": 3},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 3,
     "annotations": {"org.opencontainers.image.ref.name": 7}},
    None,
]


@pytest.mark.parametrize("bad", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_entry_is_named_and_the_others_work(tmp_path, bad):
    (tmp_path / "root").mkdir()
    (tmp_path / "root/f").write_text("hello\n")
    with tarfile.open(tmp_path / "rootfs.tar", "w") as tar:
        tar.add(tmp_path / "root/f", arcname="f")
    pydock = Pydock(tmp_path / "store")
    pydock("import", tmp_path / "rootfs.tar", "one:1", check=True)
    pydock("import", "-c", "ENV TWO=2", tmp_path / "rootfs.tar", "two:1", check=True)
    index_path = tmp_path / "store/index.json"
    index = json.loads(index_path.read_text())
    index["manifests"].insert(1, bad)
    index_path.write_text(json.dumps(index))

    proc = pydock("images", check=True)
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == ["one", "two"]
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[0]]
    warning = proc.stderr.strip()
    assert warning.startswith(f"pydock: warning: {index_path}: manifests[1] is malformed")
    assert "Traceback" not in warning
    pydock("tag", "one:1", "three:1", check=True)
    assert pydock("rmi", "two:1", check=True).stdout.startswith("Untagged: two:1")
    inspected = json.loads(pydock("inspect", "three:1", check=True).stdout)[0]
    assert inspected["RepoTags"] == ["one:1", "three:1"]
    names = [line.split()[0] for line in pydock("images", check=True).stdout.splitlines()[1:]]
    assert names == ["one", "three"]
    assert bad in json.loads(index_path.read_text())["manifests"]  # kept for its owner to repair
