#!/usr/bin/env bash
# Operator mistakes the appliance must catch (hardening issue, items 10 and 16): a second
# certprovd on the same store refuses to start and names the PID that holds it, while
# certprovctl keeps working beside the daemon and `ca init` refuses; a second certprovd on the
# same port refuses instead of sharing it through SO_REUSEPORT (devices would be split between
# two CAs); a damaged store names the file and what is wrong with it, and a relative [store]
# path names the absolute directory it resolved to.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
# A certprovd that should refuse but starts must not hang the test.
TD=(timeout -k 5 30 "$D")
P1=$(free_port) || exit 1
P2=$(free_port) || exit 1
while [ "$P2" = "$P1" ]; do P2=$(free_port) || exit 1; done
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# mkini FILE STORE-PATH PORT: a configuration with two rings on 127.0.0.1:PORT.
mkini() {
    cat >"$1" <<INI
[server]
name = certprov-op.example.com
listen = 127.0.0.1:$3
workers = 2
[store]
path = $2
map_size = 64MiB
[pool.pool1]
store = embedded
INI
}
# launch CONFIG LOG: starts certprovd in the background; its PID in LAST.
launch() {
    "$D" -c "$1" >>"$2" 2>&1 &
    LAST=$!
    PIDS+=("$LAST")
}
# up PORT: waits (10 s at most: sanitizer builds start slowly) until /healthz answers.
up() {
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
# refused DESCRIPTION PID LOG PATTERN: the certprovd PID must exit 1 within 10 s, its output
# matching the extended regex PATTERN; one that keeps running is killed and counts as a failure.
refused() {
    local d=$1 pid=$2 log=$3 pat=$4
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        bad "$d: the second certprovd started and ran: $(head -c 400 "$log")"
        return
    fi
    wait "$pid"; local rc=$?
    if [ "$rc" != 1 ]; then bad "$d: exit $rc, want 1: $(head -c 400 "$log")"; return; fi
    if ! grep -Eq -- "$pat" "$log"; then bad "$d: output lacks /$pat/: $(head -c 600 "$log")"; return; fi
    ok
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

S="$T/store"
mkini "$T/a.ini" "$S" "$P1"
mkini "$T/b.ini" "$S" "$P2"        # the same store on another port
mkini "$T/c.ini" "$T/store2" "$P1" # another store on the same port
"$CTL" -c "$T/a.ini" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
"$CTL" -c "$T/c.ini" ca init --fqdn other-ca.example.com >/dev/null || { bad "ca init 2"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" -c "$T/a.ini" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --ext 1001
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/bob.key" 2>/dev/null
openssl req -new -key "$T/bob.key" -subj /CN=bob@example.com -out "$T/bob.csr" 2>/dev/null
openssl req -in "$T/bob.csr" -outform DER | base64 -w 64 >"$T/bob.b64"

# --- help texts say the rules ---
check "certprovd --help" "$D" --help
has "certprovd --help: one daemon per store" "$T/out" "One store, one daemon: .*certprovd.lock"
has "certprovd --help: one daemon per port" "$T/out" "One port, one daemon"
check "ca init --help" "$CTL" ca init --help
has "ca init --help: refused beside a daemon" "$T/out" "certprovd holds the store"
check "certprovctl --help" "$CTL" --help
has "certprovctl --help: beside a daemon" "$T/out" "only 'ca init'"
check "ca show --help" "$CTL" ca show --help
has "ca show --help: names the file" "$T/out" "'ca init' is the advice only for a store without CA files"

# --- item 10a: one store, one daemon ---
launch "$T/a.ini" "$T/a.log"
A=$LAST
up "$P1" || { bad "certprovd A did not start: $(tail -5 "$T/a.log")"; finish; exit 1; }
same "the lock file holds the daemon's PID" "$(tr -d '\n' <"$S/certprovd.lock" 2>/dev/null)" "$A"
launch "$T/b.ini" "$T/b.log"
refused "second certprovd on the same store" "$LAST" "$T/b.log" "store $S is in use by certprovd PID $A"
if curl -sf "http://127.0.0.1:$P2/healthz" >/dev/null 2>&1; then bad "the refused daemon listens"; else ok; fi
check "certprovd --check beside the daemon succeeds" "$D" -c "$T/a.ini" --check
has "--check names the daemon that holds the store" "$T/out" "^daemon: certprovd PID $A holds the store"
# certprovctl cooperates: its writing commands work beside the daemon (LMDB serialises writers).
check "user add beside the daemon" add 31415 --uri sip:bob@example.com --pool pool1 --ext 1002
check "user set-pin beside the daemon" sh -c "printf '27183\n' | '$CTL' -c '$T/a.ini' user set-pin sip:alice@example.com --pin-stdin"
check "cert issue beside the daemon" "$CTL" -c "$T/a.ini" cert issue --uri sip:bob@example.com --csr "$T/bob.csr" --out "$T/bob.crt"
check "outbox retry beside the daemon" "$CTL" -c "$T/a.ini" outbox retry
check "user unlock beside the daemon" "$CTL" -c "$T/a.ini" user unlock sip:alice@example.com
same "the daemon enrolls a user added beside it" "$(curl -s -o /dev/null -w '%{http_code}' -u 1002:31415 --data-binary @"$T/bob.b64" "http://127.0.0.1:$P1/.well-known/est/simpleenroll")" 200
same "the daemon sees a PIN set beside it" "$(curl -s -o /dev/null -w '%{http_code}' -u 1001:27183 --data-binary @"$T/bob.b64" "http://127.0.0.1:$P1/.well-known/est/simpleenroll")" 403
expect_exit 1 "certprovd PID $A holds the store $S" "ca init beside the daemon is refused" "$CTL" -c "$T/a.ini" ca init
stop "$A"
check "certprovd --check without a daemon" "$D" -c "$T/a.ini" --check
has "--check says no daemon holds the store" "$T/out" "^daemon: none"
launch "$T/b.ini" "$T/b2.log"
B=$LAST
if up "$P2"; then ok; else bad "the store's next daemon did not start: $(tail -5 "$T/b2.log")"; fi
kill -9 "$B"; wait "$B" 2>/dev/null
launch "$T/a.ini" "$T/a2.log"
A=$LAST
if up "$P1"; then ok; else bad "a daemon after kill -9 of the last one did not start: $(tail -5 "$T/a2.log")"; fi

# --- item 10b: one port, one daemon; the rings of one daemon share it ---
launch "$T/c.ini" "$T/c.log"
C=$LAST
# Until it has refused, or (the defect) is ready on the shared port.
for _ in $(seq 1 200); do kill -0 "$C" 2>/dev/null && ! grep -q "certprovd: ready" "$T/c.log" || break; sleep 0.05; done
split=0
for _ in $(seq 1 20); do
    curl -s "http://127.0.0.1:$P1/CertProv/chain.pem" | cmp -s - "$S/chain.pem" || split=$((split + 1))
done
same "every device gets the one CA of the port (answers of another CA)" "$split" 0
refused "second certprovd (another store) on the same port" "$C" "$T/c.log" "127.0.0.1:$P1.*(in use|already)"
stop "$A"

# --- item 16: a damaged store names what is wrong ---
cp -a "$S" "$T/pristine"
rm -f "$T/pristine/certprovd.lock"
G="$T/dmg"
mkini "$T/dmg.ini" "$G" "$P2"
# damaged NAME MUTATION PATTERN [ctl]: a fresh copy of the store, MUTATION run in it; certprovd
# (and with "ctl" certprovctl ca show and cert issue) must exit 1 naming the problem, never
# advising `ca init`.
damaged() {
    local n=$1 m=$2 pat=$3
    rm -rf "$G"; cp -a "$T/pristine" "$G"
    (cd "$G" && eval "$m")
    expect_exit 1 "$pat" "$n: certprovd" "${TD[@]}" -c "$T/dmg.ini"
    if grep -q "ca init" "$T/err"; then bad "$n: certprovd advises ca init: $(cat "$T/err")"; else ok; fi
    [ "${4:-}" = ctl ] || return 0
    expect_exit 1 "$pat" "$n: ca show" "$CTL" -c "$T/dmg.ini" ca show
    if grep -q "ca init" "$T/err"; then bad "$n: ca show advises ca init: $(cat "$T/err")"; else ok; fi
    expect_exit 1 "$pat" "$n: cert issue" "$CTL" -c "$T/dmg.ini" cert issue --uri sip:bob@example.com --csr "$T/bob.csr" --out "$T/x.crt"
    if grep -q "ca init" "$T/err"; then bad "$n: cert issue advises ca init: $(cat "$T/err")"; else ok; fi
}
damaged "missing issuing key" "rm ca/issuing.key" "$G/ca/issuing.key.* missing" ctl
damaged "missing chain" "rm chain.pem" "$G/chain.pem.* missing" ctl
damaged "missing issuing certificate" "rm ca/issuing.crt" "$G/ca/issuing.crt.* missing" ctl
damaged "issuing key 0644" "chmod 644 ca/issuing.key" "run: chmod 600 $G/ca/issuing.key" ctl
damaged "damaged chain" "printf 'garbage\n' >chain.pem" "$G/chain.pem.* damaged" ctl
damaged "swapped key" "cp ca/root.key ca/issuing.key" "$G/ca/issuing.key.* not the key of .*issuing.crt" ctl
damaged "PIN key 0644" "chmod 644 pin.key" "run: chmod 600 $G/pin.key"
damaged "missing PIN key" "rm pin.key" "$G/pin.key.* missing"
expect_exit 1 "$G/pin.key is missing, but the store holds users" "user add does not make a new PIN key for a store with users" \
    sh -c "printf '24680\n' | '$CTL' -c '$T/dmg.ini' user add --uri sip:carol@example.com --pool pool1 --ext 1003 --pin-stdin"
if [ -e "$G/pin.key" ]; then bad "certprovctl made a new PIN key"; else ok; fi
rm -rf "$G"; cp -a "$T/pristine" "$G"; rm "$G/chain.pem"
expect_exit 1 "$G/chain.pem.* missing" "--check names the missing file" "${TD[@]}" -c "$T/dmg.ini" --check

# A relative [store] path is taken from the configuration file's directory: say where it led.
mkdir -p "$T/etc" "$T/etc/empty"
mkini "$T/etc/typo.ini" "stor" "$P2"
mkini "$T/etc/empty.ini" "empty" "$P2"
expect_exit 1 "store directory $T/etc/stor does not exist.*relative to .*$T/etc" \
    "missing store directory" "${TD[@]}" -c "$T/etc/typo.ini"
if [ -e "$T/etc/stor" ]; then bad "certprovd created the missing store directory"; else ok; fi
expect_exit 1 "store directory $T/etc/stor does not exist" "relative configuration path: absolute store path" \
    sh -c "cd '$T' && exec timeout -k 5 30 '$D' -c etc/typo.ini"
expect_exit 1 "no CA in $T/etc/stor .*relative to .*$T/etc.*ca init" "ca show, missing store directory" \
    "$CTL" -c "$T/etc/typo.ini" ca show
expect_exit 1 "no CA in $T/etc/empty .*relative to .*$T/etc.*ca init" "empty store directory" \
    "${TD[@]}" -c "$T/etc/empty.ini"
same "certprovd wrote nothing into the empty store directory" "$(ls -A "$T/etc/empty")" ""
finish
