#!/bin/sh
# fetch-boringssl.sh DIR: unpacks Debian's android-platform-external-boringssl source package
# into DIR/src (idempotent). The deb-src entry is derived from the machine's own Debian sources
# (deb822 or one-line format), so no mirror's host name is ever written into this repository.
set -eu
dir=$1
pkg=android-platform-external-boringssl
[ -f "$dir/src/debian/sources.mk" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "fetch-boringssl: $dir/src is missing and fetching it needs root: run 'make deps' as root" >&2
    exit 1
fi
if ! apt-cache showsrc "$pkg" >/dev/null 2>&1 || [ -z "$(apt-cache showsrc "$pkg" 2>/dev/null)" ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types:.*$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/certprov-deb-src.sources
    elif [ -f /etc/apt/sources.list ]; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
            > /etc/apt/sources.list.d/certprov-deb-src.list
    else
        echo "fetch-boringssl: no Debian sources list found to derive a deb-src entry from" >&2
        exit 1
    fi
    apt-get update -qq
fi
command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev xz-utils
rm -rf "$dir/fetch" && mkdir -p "$dir/fetch"
(cd "$dir/fetch" && apt-get source -qq "$pkg" 2>&1 | grep -v 'unsandboxed' || true)
src=$(find "$dir/fetch" -mindepth 1 -maxdepth 1 -type d -name "$pkg-*" | head -n 1)
if [ -z "$src" ] || [ ! -f "$src/debian/sources.mk" ]; then
    echo "fetch-boringssl: apt-get source $pkg did not produce debian/sources.mk" >&2
    exit 1
fi
rm -rf "$dir/src" && mv "$src" "$dir/src" && rm -rf "$dir/fetch"
