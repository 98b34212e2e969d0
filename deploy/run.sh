#!/bin/sh
# run.sh BINDIR: `make run`. Prepares var/ from deploy/certprov.ini on first use (CA, TLS
# certificate, PIN key, a demo user), then starts the appliance in the foreground when it is
# built. Idempotent: an existing var/ is used as it is. CERTPROV_VAR puts var/ elsewhere (the
# README test runs the "Enrolling" commands against a private one).
set -eu
bin=$1
top=$(cd "$(dirname "$0")/.." && pwd)
var=${CERTPROV_VAR:-$top/var}
cfg="$var/certprov.ini"
mkdir -p "$var"
[ -f "$cfg" ] || cp "$top/deploy/certprov.ini" "$cfg"
if [ ! -f "$var/store/ca/issuing.crt" ]; then
    "$bin/certprovctl" -c "$cfg" ca init
fi
if ! "$bin/certprovctl" -c "$cfg" user show sip:demo@example.com >/dev/null 2>&1; then
    printf '27182\n' | "$bin/certprovctl" -c "$cfg" user add --uri sip:demo@example.com \
        --pool pool1 --ext 1001 --phone +14255550100 --pin-stdin
    echo "demo user: sip:demo@example.com, extension 1001, PIN 27182"
fi
if [ -x "$bin/certprovd" ]; then
    exec "$bin/certprovd" -c "$cfg"
fi
cat <<MSG
The store in $var/store is ready (CA, TLS certificate, PIN key, demo user).
The network daemon certprovd is not part of this build yet; meanwhile issue a certificate offline:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /tmp/demo.key \\
      -subj /CN=demo@example.com -out /tmp/demo.csr
  $bin/certprovctl -c $cfg cert issue --uri sip:demo@example.com --csr /tmp/demo.csr
MSG
