"""Media types and annotation keys of the OCI image spec (and the Docker ones we meet when loading)."""

from __future__ import annotations

OCI_LAYOUT_VERSION = "1.0.0"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
# containerd and docker >= 25 read the full image name from this one when loading an OCI archive.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

_LAYER_COMPRESSION = {
    OCI_LAYER_TAR: None, OCI_LAYER_NONDIST_TAR: None, DOCKER_LAYER_TAR: None,
    OCI_LAYER_GZIP: "gzip", OCI_LAYER_NONDIST_GZIP: "gzip", DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd", OCI_LAYER_NONDIST_ZSTD: "zstd", DOCKER_LAYER_ZSTD: "zstd",
}

_OCI_LAYER_FOR = {None: OCI_LAYER_TAR, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def is_layer(media_type: str) -> bool:
    return media_type in _LAYER_COMPRESSION


def layer_compression(media_type: str) -> str | None:
    """"gzip", "zstd" or None (plain tar) for a layer media type; ValueError for anything else."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise ValueError(f"not a layer media type: {media_type}") from None


def oci_layer_type(compression: str | None) -> str:
    """The OCI layer media type for a compression name ("gzip", "zstd" or None)."""
    try:
        return _OCI_LAYER_FOR[compression]
    except KeyError:
        raise ValueError(f"unknown layer compression {compression!r} (use gzip, zstd or none)") from None


def to_oci_layer_type(media_type: str) -> str:
    """The OCI equivalent of a (possibly Docker) layer media type, keeping non-distributable ones."""
    if media_type.startswith("application/vnd.oci.image.layer."):
        return media_type
    return oci_layer_type(layer_compression(media_type))
