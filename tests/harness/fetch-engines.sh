#!/usr/bin/env bash
# Fetch Debian unstable's docker.io and containerd with `apt-get download` and unpack them into the project's
# cache folder (never installed over the system's packages). Used by the `classic` and `containerd` engines.
set -euo pipefail
cache=${1:?usage: fetch-engines.sh CACHE_DIR}
root="$cache/engines/unstable"
if [ -x "$root/root/usr/sbin/dockerd" ] && [ -x "$root/root/usr/bin/containerd" ]; then
  exit 0
fi
apt_dir="$root/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$root/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main" \
  > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Get::List-Cleanup=0"
      -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
apt-get -q "${opts[@]}" update >/dev/null
rm -f "$root"/debs/*.deb
(cd "$root/debs" && apt-get -q "${opts[@]}" download docker.io containerd >/dev/null)
rm -rf "$root/root.tmp" && mkdir -p "$root/root.tmp"
for deb in "$root"/debs/*.deb; do dpkg-deb -x "$deb" "$root/root.tmp"; done
rm -rf "$root/root" && mv "$root/root.tmp" "$root/root"
echo "unpacked: $(ls "$root"/debs)"
