#!/usr/bin/env bash
# The pkcs11 key backend on a real SoftHSM2 token (issue 13). A token in a private token
# directory (SOFTHSM2_CONF); for P-256, P-384, RSA-2048 and Ed25519 (CKM_EDDSA): `certprovctl ca init --pkcs11`
# generates the issuing key in the token (pkcs11-tool shows it sensitive and never extractable),
# `ca show` prints the URI without the PIN, `certprovd --check` signs and verifies a test
# message, certprovd enrolls over EST with curl and `openssl verify` accepts each certificate.
# Then the errors at --check and at start (wrong token PIN, missing module, missing key, a key
# that is not the certificate's), and the token directory moved away and back while enrolling
# under load: 503 SigningUnavailable with Retry-After and /readyz "key_backend":"down"
# meanwhile, 200 again afterwards without a restart, and no request longer than
# sign_timeout_ms plus a margin. Last, a token whose C_Sign hangs (tests/p11shim in front of
# SoftHSM2): 503 SigningUnavailable at sign_timeout_ms, not when the call returns, then ready
# again.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
MODULE=/usr/lib/softhsm/libsofthsm2.so
if [ ! -f "$MODULE" ] || ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null; then
    echo "SKIP: softhsm2 or opensc (pkcs11-tool) not installed"
    exit 0
fi
PID=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/tokens"
cat >"$T/softhsm2.conf" <<CONF
directories.tokendir = $T/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$T/softhsm2.conf"
# SoftHSM2 2.6 leaks a few bytes of the system OpenSSL's when it makes and uses Ed25519 keys; our
# programs never link that library (tests/check-symbols.sh), so these suppressions hide no leak
# of ours from an ASan build.
printf 'leak:libcrypto.so.3\nleak:libsofthsm2.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
TPIN=735194
softhsm2-util --init-token --free --label certprov --pin $TPIN --so-pin 86420975 >/dev/null ||
    { bad "init token"; finish; exit 1; }
printf '%s\n' $TPIN >"$T/pin"
chmod 600 "$T/pin"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/a.key" 2>/dev/null
openssl req -new -key "$T/a.key" -subj /CN=alice@example.com -outform DER 2>/dev/null |
    base64 >"$T/a.b64"

# conf NAME PORT URI [EXTRA]: a config for store $T/NAME with the key at URI.
conf() {
    cat >"$T/$1.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$2
workers = 2
[ca]
backend = pkcs11
module = ${MODULE_OVERRIDE:-$MODULE}
key = $3
sessions = 2
sign_timeout_ms = ${SIGN_TIMEOUT_MS:-1000}
[store]
path = $1
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0
[pool.pool1]
store = embedded
INI
}
start() { # start NAME PORT
    "$D" -c "$T/$1.ini" >>"$T/$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
}
stop() { # certprovd must exit 0 on SIGTERM (an ASan report would make it fail)
    kill "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    same "certprovd exits 0" "$?" 0
    PID=
}
# enroll PORT OUT: one EST enrollment of alice; prints the status.
enroll() {
    curl -s --max-time 20 -o "$2" -D "$2.h" -w '%{http_code}' -u 1001:27182 \
        -H 'Content-Type: application/pkcs10' --data-binary @"$T/a.b64" \
        "http://127.0.0.1:$1/.well-known/est/simpleenroll"
}

for kt in p256 p384 rsa2048 ed25519; do
    PORT=$(free_port) || exit 1
    URI="pkcs11:token=certprov;object=ca-$kt?pin-source=file:$T/pin"
    conf "s-$kt" "$PORT" "$URI"
    C=(-c "$T/s-$kt.ini")
    check "$kt: ca init --pkcs11" "$CTL" "${C[@]}" ca init --key-type "$kt" --pkcs11 "$URI"
    has "$kt: ca init names the key's URI" "$T/out" "pkcs11:token=certprov;object=ca-$kt"
    expect_exit 1 "a CA already exists" "$kt: a second ca init --pkcs11 is refused" \
        "$CTL" "${C[@]}" ca init --key-type "$kt" --pkcs11 "pkcs11:token=certprov;object=again-$kt?pin-source=file:$T/pin"
    check "$kt: ca show" "$CTL" "${C[@]}" ca show
    has "$kt: ca show prints the URI" "$T/out" "signing key: pkcs11:token=certprov;object=ca-$kt.* \\($kt\\)"
    same "$kt: no ca/issuing.key in the store" "$(ls "$T/s-$kt/ca/issuing.key" 2>/dev/null)" ""
    pkcs11-tool --module "$MODULE" --token-label certprov --login --pin $TPIN --list-objects \
        --type privkey >"$T/objs" 2>/dev/null
    awk -v l="ca-$kt" '$0 ~ "label: *"l"$" {f=1} f && /Access:/ {print; exit}' "$T/objs" >"$T/access"
    has "$kt: the private key is sensitive" "$T/access" "(^|[ ,])sensitive"
    has "$kt: the private key was never extractable" "$T/access" "never extractable"
    if grep -q "label: *again-$kt\$" "$T/objs"; then bad "$kt: the refused ca init made a key"; else ok; fi
    check "$kt: --check signs and verifies" "$D" "${C[@]}" --check
    has "$kt: --check says so" "$T/out" "ca: pkcs11 key $kt ok .*signed and verified"
    printf '27182\n' | "$CTL" "${C[@]}" user add --uri sip:alice@example.com --pool pool1 \
        --ext 1001 --pin-stdin >/dev/null || bad "$kt: user add"
    start "s-$kt" "$PORT"
    curl -s "http://127.0.0.1:$PORT/readyz" >"$T/ready.json"
    has "$kt: readyz names the backend" "$T/ready.json" '"ready":true,"key_backend":"pkcs11","key":"'$kt'"'
    for i in 1 2 3; do
        same "$kt: enrollment $i" "$(enroll "$PORT" "$T/c-$kt-$i")" 200
        { printf -- '-----BEGIN PKCS7-----\n'; cat "$T/c-$kt-$i"; printf -- '-----END PKCS7-----\n'; } |
            openssl pkcs7 -print_certs -out "$T/c-$kt-$i.pem" 2>/dev/null
        check "$kt: openssl verify certificate $i" openssl verify -x509_strict -purpose sslclient \
            -CAfile "$T/s-$kt/ca/root.crt" -untrusted "$T/s-$kt/ca/issuing.crt" "$T/c-$kt-$i.pem"
    done
    stop
    no_pin "$kt: no token PIN in the log" "$T/s-$kt.log" "$TPIN"
done

# ---- the enterprise's CA with the issuing key in the token: ca request --pkcs11 ----
# The key pair is generated in the token, the request is signed there, the openssl CLI plays
# the enterprise's root and signs it as a CA; ca import checks it against the token's key.
PORT=$(free_port) || exit 1
URI="pkcs11:token=certprov;object=ent-issuing?pin-source=file:$T/pin"
conf ent "$PORT" "$URI"
C=(-c "$T/ent.ini")
check "ent: ca request --pkcs11" "$CTL" "${C[@]}" ca request --out "$T/ent.csr" --pkcs11 "$URI" \
    --subject "CN=Acme Issuing (HSM),O=Acme"
has "ent: ca request names the key in the token" "$T/out" "the issuing key is in the token: pkcs11:token=certprov;object=ent-issuing"
same "ent: the request alone is pending (no key file)" "$(ls "$T/ent/ca" | tr '\n' ' ')" "issuing.csr "
check "ent: the request's signature verifies" openssl req -in "$T/ent.csr" -verify -noout
pkcs11-tool --module "$MODULE" --token-label certprov --login --pin $TPIN --list-objects \
    --type privkey >"$T/objs" 2>/dev/null
awk '$0 ~ "label: *ent-issuing$" {f=1} f && /Access:/ {print; exit}' "$T/objs" >"$T/access"
has "ent: the request's private key is sensitive in the token" "$T/access" "(^|[ ,])sensitive"
expect_exit 1 "pending request .*ca import" "ent: certprovd names the pending request" "$D" "${C[@]}" --check
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/eroot.key" \
    -out "$T/eroot.pem" -subj "/O=Acme/CN=Acme Root CA" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >"$T/ent.ext"
openssl x509 -req -in "$T/ent.csr" -CA "$T/eroot.pem" -CAkey "$T/eroot.key" -CAcreateserial \
    -days 1825 -extfile "$T/ent.ext" -out "$T/ent-iss.pem" 2>/dev/null || bad "ent: the root signs"
# a soft configuration cannot import a request whose key is in a token
sed 's/^backend = pkcs11/backend = soft/' "$T/ent.ini" >"$T/ent-soft.ini"
expect_exit 1 "ca/issuing.key is missing \(a request made with 'ca request --pkcs11' is imported with \[ca\] backend = pkcs11" \
    "ent: import with the soft backend says how" "$CTL" -c "$T/ent-soft.ini" ca import --cert "$T/ent-iss.pem" --chain "$T/eroot.pem"
# a certificate for another key is refused against the token's key
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
    -out "$T/other.csr" -subj "/CN=Other" 2>/dev/null
openssl x509 -req -in "$T/other.csr" -CA "$T/eroot.pem" -CAkey "$T/eroot.key" -CAcreateserial \
    -days 1825 -extfile "$T/ent.ext" -out "$T/other.pem" 2>/dev/null
expect_exit 1 "is not for the pending key pkcs11:token=certprov;object=ent-issuing" \
    "ent: a certificate for another key is refused" "$CTL" "${C[@]}" ca import --cert "$T/other.pem" --chain "$T/eroot.pem"
check "ent: ca import (the token's key)" "$CTL" "${C[@]}" ca import --cert "$T/ent-iss.pem" --chain "$T/eroot.pem"
has "ent: ca show after import: the token's key signs" "$T/out" "signing key: pkcs11:token=certprov;object=ent-issuing"
same "ent: no key file, no root key" "$(ls "$T/ent/ca" | tr '\n' ' ')" "issuing.crt "
check "ent: the TLS leaf (signed in the token) verifies against the enterprise root" openssl verify \
    -x509_strict -purpose sslserver -CAfile "$T/eroot.pem" -untrusted "$T/ent/tls/server.crt" "$T/ent/tls/server.crt"
check "ent: --check signs and verifies" "$D" "${C[@]}" --check
printf '27182\n' | "$CTL" "${C[@]}" user add --uri sip:alice@example.com --pool pool1 \
    --ext 1001 --pin-stdin >/dev/null || bad "ent: user add"
start ent "$PORT"
same "ent: enrollment" "$(enroll "$PORT" "$T/c-ent")" 200
{ printf -- '-----BEGIN PKCS7-----\n'; cat "$T/c-ent"; printf -- '-----END PKCS7-----\n'; } |
    openssl pkcs7 -print_certs -out "$T/c-ent.pem" 2>/dev/null
check "ent: the certificate verifies against the enterprise root" openssl verify -x509_strict \
    -purpose sslclient -CAfile "$T/eroot.pem" -untrusted "$T/ent/ca/issuing.crt" "$T/c-ent.pem"
stop

# ---- errors at --check and at start ----
PORT=$(free_port) || exit 1
err_case() { # err_case NAME PATTERN URI [module]
    MODULE_OVERRIDE=${4:-} conf s-p256 "$PORT" "$3"
    expect_exit 1 "$2" "$1 at --check" "$D" -c "$T/s-p256.ini" --check
    expect_exit 1 "$2" "$1 at start" "$D" -c "$T/s-p256.ini"
    if grep -q 999999 "$T/err"; then bad "$1: the wrong PIN is printed"; else ok; fi
}
err_case "wrong token PIN" "CKR_PIN_INCORRECT: wrong token PIN" \
    "pkcs11:token=certprov;object=ca-p256?pin-value=999999"
err_case "missing module" "module /nonexistent/libpkcs11.so cannot be loaded" \
    "pkcs11:token=certprov;object=ca-p256?pin-value=$TPIN" /nonexistent/libpkcs11.so
err_case "missing key" "no private key in the token matches the URI" \
    "pkcs11:token=certprov;object=no-such-key?pin-value=$TPIN"
err_case "missing token" "no token labelled 'nothere'" \
    "pkcs11:token=nothere;object=ca-p256?pin-value=$TPIN"
err_case "key of another certificate" "is not the key of .*/ca/issuing.crt" \
    "pkcs11:token=certprov;object=ca-p384?pin-value=$TPIN"
err_case "bad URI" "not a usable pkcs11: URI: an attribute is repeated" \
    "pkcs11:token=certprov;object=a;object=b?pin-value=$TPIN"

# ---- the token goes away and comes back while enrolling under load ----
PORT=$(free_port) || exit 1
SIGN_TIMEOUT_MS=1000 conf s-p256 "$PORT" "pkcs11:token=certprov;object=ca-p256?pin-source=file:$T/pin"
start s-p256 "$PORT"
same "before: enrollment" "$(enroll "$PORT" "$T/before")" 200
mkdir -p "$T/load"
STOP="$T/load/stop"
# load W: enroll in a loop until $STOP exists; one line per request: status, seconds, start time.
load() {
    local n=0
    while [ ! -e "$STOP" ] && [ $n -lt 2000 ]; do # bounded
        n=$((n + 1))
        curl -s --max-time 20 -o "$T/load/$1.body" -D "$T/load/$1.h" \
            -w "%{http_code} %{time_total}\n" -u 1001:27182 -H 'Content-Type: application/pkcs10' \
            --data-binary @"$T/a.b64" "http://127.0.0.1:$PORT/.well-known/est/simpleenroll" \
            >>"$T/load/$1.log"
        if grep -q SigningUnavailable "$T/load/$1.body" 2>/dev/null; then
            cp "$T/load/$1.body" "$T/load/unavail.body"
            cp "$T/load/$1.h" "$T/load/unavail.h"
        fi
    done
}
for w in 1 2 3 4; do load $w & done
sleep 1
mv "$T/tokens" "$T/tokens.away"
sleep 3
code=$(curl -s -o "$T/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")
same "away: readyz 503" "$code" 503
has "away: readyz says the key backend is down" "$T/ready.json" '"ready":false,"key_backend":"down"'
has "away: readyz gives the reason" "$T/ready.json" '"key_reason":"CKR_[A-Z_]+"'
mv "$T/tokens.away" "$T/tokens"
back=0
for _ in $(seq 1 150); do # the key's backoff is at most 5 s
    if curl -sf "http://127.0.0.1:$PORT/readyz" >"$T/ready.json" 2>/dev/null; then back=1; break; fi
    sleep 0.1
done
same "back: readyz 200 without a restart" "$back" 1
sleep 1
touch "$STOP"
wait $(jobs -p | grep -v "^$PID\$") 2>/dev/null
cat "$T"/load/[0-9].log >"$T/load/all"
n503=$(awk '$1 == 503' "$T/load/all" | wc -l)
n200=$(awk '$1 == 200' "$T/load/all" | wc -l)
nother=$(awk '$1 != 200 && $1 != 503' "$T/load/all" | wc -l)
echo "load: $n200 x 200, $n503 x 503"
[ "$n503" -gt 0 ] && ok || bad "no 503 while the token was away ($n200 x 200)"
[ "$n200" -gt 0 ] && ok || bad "no 200 under load"
same "load: only 200 and 503 answers" "$nother" 0
has "away: the 503 is SigningUnavailable" "$T/load/unavail.body" "SigningUnavailable"
has "away: the 503 has Retry-After" "$T/load/unavail.h" "^Retry-After: [0-9]+"
slow=$(awk '$2 > 4.0' "$T/load/all" | wc -l) # sign_timeout_ms 1 s + the batch's own 1 s + margin
same "load: no request took longer than 4 s" "$slow" 0
same "after: enrollment" "$(enroll "$PORT" "$T/after")" 200
kill -0 "$PID" 2>/dev/null && ok || bad "certprovd died"
stop
has "the key went down in the log" "$T/s-p256.log" "hsm: key_down"
has "and came back up" "$T/s-p256.log" "hsm: key_up"
# ---- a slow token (tests/p11shim: SoftHSM2 behind a module whose C_Sign sleeps) ----
SHIM="$BIN/../tests/libp11shim.so"
if [ -f "$SHIM" ]; then
    PORT=$(free_port) || exit 1
    export P11SHIM_CTL="$T/shim.ctl" P11SHIM_MODULE="$MODULE"
    MODULE_OVERRIDE="$SHIM" SIGN_TIMEOUT_MS=500 conf s-p256 "$PORT" \
        "pkcs11:token=certprov;object=ca-p256?pin-source=file:$T/pin"
    start s-p256 "$PORT"
    same "slow: enrollment before" "$(enroll "$PORT" "$T/slow0")" 200
    echo "slow 3000" >"$P11SHIM_CTL"
    t0=$(date +%s%N)
    same "slow: 503 while C_Sign hangs" "$(enroll "$PORT" "$T/slow1")" 503
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -lt 1500 ] && ok || bad "slow: the answer took $ms ms (sign_timeout_ms 500, C_Sign 3000)"
    has "slow: SigningUnavailable" "$T/slow1" "SigningUnavailable"
    # (/readyz may already be up again: the other session reconnects at once; the log says it)
    has "slow: the key went down for sign_timeout" "$T/s-p256.log" "hsm: key_down .*reason=sign_timeout"
    rm -f "$P11SHIM_CTL"
    back=0
    for _ in $(seq 1 100); do
        if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then back=1; break; fi
        sleep 0.1
    done
    same "slow: ready again" "$back" 1
    same "slow: enrollment after" "$(enroll "$PORT" "$T/slow2")" 200
    sleep 2.5 # the hung call returns (3 s), so that the stop below frees everything
    stop
    unset P11SHIM_CTL P11SHIM_MODULE
else
    echo "note: $SHIM not built (make tests): the slow-token case was not run"
fi
for f in "$T"/*.log; do no_pin "no token PIN in $(basename "$f")" "$f" "$TPIN"; done
if grep -Eq "Sanitizer|runtime error" "$T"/*.log; then bad "a sanitizer report in a log"; else ok; fi
[ -n "${KEEP:-}" ] && cp -r "$T" /tmp/p11keep
finish
