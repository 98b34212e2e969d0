#!/bin/sh
# install.sh: installs the Debian packages of deps/packages.txt that are missing. Idempotent,
# quiet and fast (one dpkg-query) when everything is there. Needs root only when installing.
set -eu
here=$(dirname "$0")
want=$(grep -v '^#' "$here/packages.txt" | grep -v '^$')
missing=""
for p in $want; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing; run 'make deps' as root" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# postgresql's package starts a cluster of its own; our tests run throwaway servers instead.
apt-get install -y -qq --no-install-recommends $missing >/dev/null
