#!/usr/bin/env bash
# Installs the Debian packages normlab builds with, if any is missing: apt-get when run as root,
# otherwise a message naming the packages to install. Usage: scripts/install_deps.sh [extra packages]
set -euo pipefail

packages=(cmake g++ make catch2 libstb-dev libboost-context-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "normlab: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "normlab: missing Debian packages: ${missing[*]}" >&2
  echo "         install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
