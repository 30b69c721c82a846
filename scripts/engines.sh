#!/usr/bin/env bash
# Container engines (docker, podman, containerd) with pyrunc as their runtime, on scratch roots.
#
#   engines.sh install            apt-get the engines and what they need (only what is missing)
#   engines.sh start DIR [ENGINE...]
#                                 start the daemons under DIR (docker: dockerd + its own containerd;
#                                 containerd: a standalone containerd; podman: config files only, it has no
#                                 daemon) and print KEY=VALUE lines a client needs (see `env`)
#   engines.sh env DIR            print those lines again
#   engines.sh stop DIR           remove what the engines still hold, stop the daemons by pid, unmount
#                                 and delete DIR
#
# ENGINE is docker, containerd or podman (default: all three). Nothing is reachable from the network: dockerd
# runs with --iptables=false --bridge=none, podman's containers get no network namespace setup, and the
# containerd CRI plugin (which wants CNI) is off. DOCKER_NETWORKING=bridge gives dockerd its own networking
# (docker0, iptables rules, docker-proxy): only for a caller already inside a network namespace it made
# (bench/network_bench.py). pytest's engine fixtures (tests/engines_fixtures.py) call
# `start` once per session and `stop` at its end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYRUNC=${PYRUNC:-$repo/.venv/bin/pyrunc}
NAMESPACE=${CONTAINERD_NAMESPACE:-pyrunc-tests}
# Debian's docker.io client: /usr/local/bin may hold a newer docker CLI that shadows it on PATH.
DOCKER_CLI=/usr/bin/docker

die() { echo "engines.sh: $*" >&2; exit 1; }

cmd_install() {
  . "$repo/scripts/apt-install.sh"
  install_missing docker.io containerd podman conmon catatonit iptables busybox-static runc crun
}

# ---------------------------------------------------------------------------------------------- start

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

start_docker() {
  local d=$1/docker
  mkdir -p "$d/data" "$d/exec" "$d/cli"
  echo '{}' > "$d/daemon.json"  # never read the machine's /etc/docker/daemon.json
  echo '{}' > "$d/cli/config.json"  # podman reads DOCKER_CONFIG too, and fails on a missing file
  local driver=overlay2 net_flags=(--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false
                                   --bridge=none --userland-proxy=false)
  if [ "${DOCKER_NETWORKING:-}" = bridge ]; then
    # never the machine's own firewall: only in a network namespace other than init's
    [ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
      die "DOCKER_NETWORKING=bridge outside a network namespace made for it"
    net_flags=(--ip6tables=false)
  fi
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || driver=vfs
  # setsid: the daemon outlives this script, in its own session, and is stopped by `stop` through its pid file.
  setsid /usr/sbin/dockerd \
    --config-file "$d/daemon.json" \
    --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    -H "unix://$d/docker.sock" \
    --add-runtime "pyrunc=$PYRUNC" \
    --storage-driver "$driver" \
    "${net_flags[@]}" --no-new-privileges=false \
    </dev/null >"$d/dockerd.log" 2>&1 &
  if ! wait_for 60 dockerd env DOCKER_CONFIG="$d/cli" "$DOCKER_CLI" -H "unix://$d/docker.sock" version; then
    tail -20 "$d/dockerd.log" >&2
    die "dockerd did not start (log: $d/dockerd.log)"
  fi
}

start_containerd() {
  local d=$1/containerd
  mkdir -p "$d/root" "$d/state"
  cat > "$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  setsid /usr/bin/containerd --config "$d/config.toml" </dev/null >"$d/containerd.log" 2>&1 &
  echo $! > "$d/containerd.pid"
  if ! wait_for 30 containerd /usr/bin/ctr --address "$d/containerd.sock" version; then
    tail -20 "$d/containerd.log" >&2
    die "containerd did not start (log: $d/containerd.log)"
  fi
}

setup_podman() {
  local d=$1/podman
  mkdir -p "$d/storage" "$d/run" "$d/tmp" "$d/net" "$d/volumes"
  # Podman asks for NOFILE and NPROC 1048576 by default; raising a hard limit needs CAP_SYS_RESOURCE, which
  # this machine may lack, so the containers get the caller's own hard limits. Podman itself lowers its
  # NPROC hard limit to 32768 when it cannot raise it, and conmon and the runtime inherit that.
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  if [ "$nproc" = unlimited ] || ((nproc > 32768)); then nproc=32768; fi
  cat > "$d/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/storage"
runroot = "$d/run"
EOF
  cat > "$d/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/events.log"
tmp_dir = "$d/tmp"
volume_path = "$d/volumes"
conmon_path = ["/usr/bin/conmon"]
# conmon passes --log-format json --log FILE only to runtimes named here; their errors then reach the user.
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "pyrunc"]

[engine.runtimes]
pyrunc = ["$PYRUNC"]
runc = ["/usr/sbin/runc", "/usr/bin/runc"]
crun = ["/usr/bin/crun"]

[network]
network_config_dir = "$d/net"
EOF
}

print_env() {
  local dir=$1
  echo "PYRUNC=$PYRUNC"
  if [ -e "$dir/docker/docker.sock" ]; then
    echo "DOCKER_CLI=$DOCKER_CLI"
    echo "DOCKER_HOST=unix://$dir/docker/docker.sock"
    echo "DOCKER_CONFIG=$dir/docker/cli"
    echo "DOCKERD_LOG=$dir/docker/dockerd.log"
  fi
  if [ -e "$dir/containerd/containerd.sock" ]; then
    echo "CONTAINERD_ADDRESS=$dir/containerd/containerd.sock"
    echo "CONTAINERD_NAMESPACE=$NAMESPACE"
    echo "CONTAINERD_LOG=$dir/containerd/containerd.log"
  fi
  if [ -e "$dir/podman/containers.conf" ]; then
    echo "CONTAINERS_CONF=$dir/podman/containers.conf"
    echo "CONTAINERS_STORAGE_CONF=$dir/podman/storage.conf"
  fi
}

cmd_start() {
  local dir=${1:?usage: engines.sh start DIR [docker|containerd|podman...]}
  shift
  local engines=("$@")
  ((${#engines[@]})) || engines=(docker containerd podman)
  [ -x "$PYRUNC" ] || die "no pyrunc at $PYRUNC (run scripts/setup.sh)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local e
  for e in "${engines[@]}"; do
    case $e in
      docker) command -v /usr/sbin/dockerd >/dev/null || die "docker.io is not installed"; start_docker "$dir" ;;
      containerd) command -v /usr/bin/containerd >/dev/null || die "containerd is not installed"
                  start_containerd "$dir" ;;
      podman) command -v /usr/bin/podman >/dev/null || die "podman is not installed"; setup_podman "$dir" ;;
      *) die "unknown engine: $e" ;;
    esac
  done
  print_env "$dir"
}

# ----------------------------------------------------------------------------------------------- stop

stop_pid() {  # stop_pid PIDFILE: SIGTERM, wait up to 20 s, then SIGKILL
  local pidfile=$1 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Processes whose command line names DIR (shims and conmons of our daemons that outlived a failed cleanup).
pids_naming() {
  local dir=$1 p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir/" && echo "${p#/proc/}"
  done
  return 0
}

bundles_under() {  # stdin: `pyrunc list --format json`; prints the ids of containers whose bundle is under $1
  python3 -c '
import json, sys
prefix = sys.argv[1].rstrip("/") + "/"
for c in json.load(sys.stdin) or []:
    if c.get("bundle", "").startswith(prefix):
        print(c["id"])
' "$1" 2>/dev/null || true
}

cmd_stop() {
  local dir=${1:?usage: engines.sh stop DIR}
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  local d=$dir/docker c=$dir/containerd p=$dir/podman
  if [ -e "$d/docker.sock" ]; then
    local docker=(env DOCKER_CONFIG="$d/cli" timeout 60 "$DOCKER_CLI" -H "unix://$d/docker.sock") ids
    ids=$("${docker[@]}" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "${docker[@]}" rm -f $ids >/dev/null 2>&1 || true
  fi
  stop_pid "$d/dockerd.pid"
  if [ -e "$c/containerd.sock" ]; then
    local ctr=(timeout 30 /usr/bin/ctr --address "$c/containerd.sock" --namespace "$NAMESPACE") t
    for t in $("${ctr[@]}" tasks ls -q 2>/dev/null || true); do
      "${ctr[@]}" tasks kill -a -s 9 "$t" >/dev/null 2>&1 || true
      "${ctr[@]}" tasks rm -f "$t" >/dev/null 2>&1 || true
    done
    for t in $("${ctr[@]}" containers ls -q 2>/dev/null || true); do
      "${ctr[@]}" containers rm "$t" >/dev/null 2>&1 || true
    done
  fi
  stop_pid "$c/containerd.pid"
  if [ -e "$p/containers.conf" ]; then
    CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf \
      timeout 60 /usr/bin/podman rm -af -t 0 >/dev/null 2>&1 || true
    CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf \
      timeout 60 /usr/bin/podman system reset -f >/dev/null 2>&1 || true
  fi
  # Containers the engines could not remove (say the runtime failed half-way): pyrunc's state roots that
  # these engines use, for containers whose bundle lies under DIR.
  local root id
  for root in /run/pyrunc "/run/containerd/runc/$NAMESPACE" "$d/exec/runtime-runc/moby"; do
    [ -d "$root" ] || continue
    for id in $("$PYRUNC" --root "$root" list --format json 2>/dev/null | bundles_under "$dir"); do
      "$PYRUNC" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  # Whatever still runs from under DIR (a shim or conmon whose container could not be removed) was started
  # by these daemons: end it by pid.
  local pid
  for pid in $(pids_naming "$dir"); do
    [ "$pid" = $$ ] || kill -KILL "$pid" 2>/dev/null || true
  done
  # Unmount anything left under DIR, deepest first, then remove DIR without crossing into a mount.
  local m
  for m in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$dir"
  rmdir "/run/containerd/runc/$NAMESPACE" 2>/dev/null || true
  # The engines' parent cgroups (podman's holds one for conmons), if now empty: rmdir fails harmlessly on a
  # busy one, such as another engine's on this machine.
  local ctl
  for ctl in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
    for m in docker libpod_parent/conmon libpod_parent "$NAMESPACE"; do
      [ -d "$ctl$m" ] && rmdir "$ctl$m" 2>/dev/null || true
    done
  done
  return 0
}

case ${1:-} in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  env) [ -n "${2:-}" ] || die "usage: engines.sh env DIR"; print_env "$(cd "$2" && pwd)" ;;
  stop) shift; cmd_stop "$@" ;;
  *) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
