#!/usr/bin/env bash
# Install the Debian packages the demo and the tests need, without starting any system service:
# the host's own Docker daemon is never started or touched.
set -euo pipefail
# openssh-server: the SSH fleet test starts its own sshd (tests/harness/sshd.py); the service is never started
pkgs=(docker.io busybox-static docker-registry openssl rsync python3-venv ca-certificates shellcheck openssh-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-sysdeps: need root to install: ${missing[*]}" >&2
  exit 1
fi
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "install-sysdeps: installed ${missing[*]}"
