"""pydock's containers, daemonless: a record per container under the image store (records.py), its
filesystem as an overlay over the image's unpacked layers (rootfs.py), its OCI bundle (bundle.py), and a
monitor process per running container (monitor.py) that owns its stdio, writes its logs (logs.py) and
records how it ended."""
