#!/usr/bin/env bash
# Downloads the official CIFAR-10 binary version and unpacks it into DEST (default
# ./data/cifar-10-batches-bin, the place cifar10_norms looks after --data and $CIFAR10_DIR).
# The archive is checked against its published md5 before anything is unpacked.
# For users who are online; CI and the tests never run it.
#
# Usage: scripts/download_cifar10.sh [DEST]
set -euo pipefail

url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
md5="c32a1d4ab5d03f1284b67883e8d87530"
dest="${1:-./data/cifar-10-batches-bin}"

if [[ -f "$dest/test_batch.bin" ]]; then
  echo "CIFAR-10 already present in $dest"
  exit 0
fi

parent="$(dirname "$dest")"
mkdir -p "$parent"
work="$(mktemp -d "$parent/.cifar10-download.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "Downloading $url"
if command -v curl > /dev/null; then
  curl --fail --location --output "$work/cifar-10-binary.tar.gz" "$url"
elif command -v wget > /dev/null; then
  wget --output-document "$work/cifar-10-binary.tar.gz" "$url"
else
  echo "error: need curl or wget to download $url" >&2
  exit 1
fi

echo "$md5  $work/cifar-10-binary.tar.gz" | md5sum --check --status || {
  echo "error: md5 of the download is $(md5sum "$work/cifar-10-binary.tar.gz" | cut -d' ' -f1)," \
       "expected $md5 (corrupted or changed archive)" >&2
  exit 1
}

tar -xzf "$work/cifar-10-binary.tar.gz" -C "$work"
# The archive unpacks to cifar-10-batches-bin/.
mv "$work/cifar-10-batches-bin" "$dest"
echo "CIFAR-10 ready in $dest"
