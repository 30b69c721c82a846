# Sourced by setup.sh and engines.sh: install_missing PACKAGE... installs what is not installed yet, and
# forbids the packages' maintainer scripts from starting their services (dockerd, containerd, a registry
# on :5000): tests start their own daemons on scratch roots, and a machine's services are not ours to start.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && added_policy=1
  fi
  local rc=0
  { apt-get update -q -o DPkg::Lock::Timeout=600 &&
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"; } || rc=$?
  ((added_policy)) && rm -f "$policy"
  return $rc
}
