#!/usr/bin/env bash
# The main job, end to end and offline: a busybox base image made with `pydock import`, an example
# Dockerfile built on it and run with `pydock run` (a container with its own monitor, through pyrunc),
# a detached one listed, logged, exec'd into and removed, a web server on a published port reached from
# the host and by name from another container, and the same image run by pyrunc from a bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
# pydock's containers default to bridge networking: the demo runs in a network namespace of its own, so
# the bridge, veths and nftables rules it makes never touch the host's network
if [ -z "${PYDOCK_DEMO_NETNS:-}" ]; then
  exec env PYDOCK_DEMO_NETNS=1 unshare --net bash "$0" "$@"
fi
ip link set lo up
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

echo "== pydock run"
"$bin/pydock" run --rm hello:latest

echo "== a detached container: ps, logs, exec, stop, rm"
"$bin/pydock" run -d --name demo-$$ busybox:latest sh -c 'echo up; while :; do sleep 1; done'
"$bin/pydock" ps
sleep 1
"$bin/pydock" logs demo-$$
"$bin/pydock" exec demo-$$ sh -c 'echo "inside: $(hostname), pid 1 is $(cat /proc/1/comm)"'
"$bin/pydock" stop -t 1 demo-$$ >/dev/null
"$bin/pydock" rm demo-$$ >/dev/null

echo "== a web server on a published port, and a second container reaching it by name"
"$bin/pydock" network create demo-net-$$ >/dev/null
"$bin/pydock" run -d --name web-$$ --network demo-net-$$ -p 8080:80 busybox:latest \
  sh -c 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
"$bin/pydock" port web-$$
for _ in $(seq 50); do /bin/busybox wget -qO- http://127.0.0.1:8080/ 2>/dev/null && break; sleep 0.1; done
"$bin/pydock" run --rm --network demo-net-$$ busybox:latest ping -c 1 web-$$ | head -2
"$bin/pydock" rm -f web-$$ >/dev/null
"$bin/pydock" network rm demo-net-$$ >/dev/null

echo "== the image as a runtime bundle, run by pyrunc directly"
"$bin/pydock" bundle hello:latest "$work/bundle"
"$bin/pyrunc" --root "$work/state" run --bundle "$work/bundle" "demo-$$"
