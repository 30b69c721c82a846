#!/usr/bin/env bash
# The main job, end to end and offline: a busybox base image made with `pydock import`, an example
# Dockerfile built on it, the image turned into a runtime bundle, and that bundle run by pyrunc.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
work=$(mktemp -d /tmp/pydock-demo.XXXXXX)
export PYDOCK_ROOT=${PYDOCK_ROOT:-$work/store}
trap 'rm -rf "$work"' EXIT

echo "== base image from Debian's busybox-static"
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
tar -C "$work/rootfs" -czf "$work/busybox.tar.gz" .
"$bin/pydock" import "$work/busybox.tar.gz" busybox:latest

echo "== build examples/hello"
"$bin/pydock" build -t hello:latest examples/hello

echo "== bundle and run with pyrunc"
"$bin/pydock" bundle hello:latest "$work/bundle"
"$bin/pyrunc" --root "$work/state" run --bundle "$work/bundle" "demo-$$"
