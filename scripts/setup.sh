#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root): system packages, then the project in ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  busybox-static        # base images and test rootfs
  tini                  # run --init: its static tini (/usr/bin/tini-static) becomes PID 1
  libseccomp2           # seccomp filters (loaded through ctypes)
  python3 python3-venv  # Debian's python: measurably faster to start than a shared-library build
  iproute2 util-linux tar zstd
  nftables              # pydock's bridge networks: masquerade and isolation rules (nft's JSON interface)
  runc                  # benchmarks compare against it
  skopeo umoci oci-image-tool   # interoperability checks of our OCI layouts
  docker-registry apache2-utils # pull/push tests run a registry on loopback (htpasswd for its auth)
  openssl                       # the registry tests' token server signs with a generated certificate
  git                           # pydock build of a git repository context, ADD of a git repository
  openssh-client                # build --ssh: an agent for key files (ssh-agent, ssh-add), and the tests
  gcc libc6-dev                 # the seccomp tests build a static syscall probe
  uidmap                        # newuidmap/newgidmap: rootless pyrunc maps more than its user's own ids
)
. scripts/apt-install.sh
install_missing "${packages[@]}"

python=${PYTHON:-/usr/bin/python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# A regular (not editable) install: pyrunc starts measurably faster without the editable-import hook.
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q '.[test]'
