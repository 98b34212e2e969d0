#!/bin/sh
# install-ini.sh SRC STATEDIR: prints the configuration `make install` puts in
# /etc/certprov/certprov.ini: SRC (deploy/certprov.ini, the annotated defaults) with its header
# for an installed appliance and [store] path = STATEDIR (absolute: the unit's StateDirectory,
# /var/lib/certprov). Fails if SRC no longer has the lines it replaces.
set -eu
src=$1
state=$2
grep -q '^path = store  *;' "$src" || { echo "install-ini.sh: no '[store] path = store' line in $src" >&2; exit 1; }
head -n 3 "$src" | grep -q '^; certprov: the appliance' ||
    { echo "install-ini.sh: $src does not start with its usual 3-line header" >&2; exit 1; }
cat <<HEAD
; certprov: /etc/certprov/certprov.ini, the appliance's configuration (a conffile of the certprov
; package: your changes are kept on upgrade). README.md (Configuration) lists every key with its
; default and range; unknown sections and keys are errors that name the line. Relative paths are
; taken from this file's directory. Before the first start (README.md, Installing): set
; [server] name (and alt_names, listen, tls_listen: 127.0.0.1 serves this host only), then
;   sudo -u certprov certprovctl -c /etc/certprov/certprov.ini ca init --fqdn <[server] name>
;   systemctl enable --now certprovd
; certprovd runs as the user certprov (deploy/certprovd.service); the store below is its
; StateDirectory.
HEAD
tail -n +4 "$src" | sed "s|^path = store  *;.*\$|path = $state       ; the store: LMDB replica, CA material, PIN key|"
