#!/usr/bin/env bash
# certprov-probe (API.md §6) against a real certprovd on tls_listen and listen: a healthy
# appliance over TLS and over plain HTTP, a wrong PIN, a locked user, an untrusted chain, an
# expired server certificate, a stopped server, CSRs refused by policy, clientauth with a good
# certificate and with another CA's, chain naming the missing link; usage errors, --json,
# --repeat. Each failure case asserts the exit code and the step the probe blames.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
P="$BIN/certprov-probe"
PORT=$(free_port) || exit 1
TPORT=$(free_port) || exit 1
cat >"$T/certprov.ini" <<INI
[server]
name = localhost
listen = 127.0.0.1:$PORT
tls_listen = 127.0.0.1:$TPORT
workers = 1
[store]
path = store
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0
[pin]
window_failures = 3
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100 --ext 1001
check "add bob" add 31415 --uri sip:bob@example.com --pool pool1 --ext 1002
check "add carol" add 69314 --uri sip:carol@example.com --pool pool1 --ext 1003
CA=$T/store/chain.pem
URL="https://localhost:$TPORT"
PLAIN="http://127.0.0.1:$PORT"

start() {
    "$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        curl -sf "$PLAIN/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}
start || bad "certprovd started"
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

# probe PIN ARGS...: runs certprov-probe with PIN on stdin; stdout in $T/p.out, stderr in
# $T/p.err, exit code in $RC.
probe() {
    local pin=$1
    shift
    { printf '%s\n' "$pin" 2>/dev/null; } | "$P" "$@" >"$T/p.out" 2>"$T/p.err"
    RC=$?
}
field() { sed -n "s/^$1 *: //p" "$T/p.out" | head -1; }
# verdict DESCRIPTION CODE RESULT [STEP]: exit code, Result, and the step the Diagnosis blames.
verdict() {
    same "$1: exit code" "$RC" "$2"
    same "$1: Result" "$(field Result)" "$3"
    if [ -n "${4:-}" ]; then
        same "$1: the step blamed" "$(field Diagnosis | cut -d: -f1)" "$4"
    fi
}
# (The Diagnosis names the step in API.md's words: DNS, connect, TLS chain, authentication, CSR,
# signing, certificate, client certificate; --json's FailedStep has the step's name.)
# BOOT: --direct, the PIN on CertProv (the shortcut); PHONE: the phone's path (the default).
BOOT=(bootstrap --direct --target-uri "$URL" --phone-or-ext 1001 --pin-stdin)
PHONE=(bootstrap --target-uri "$URL" --phone-or-ext 1001 --pin-stdin)

# ---- healthy over TLS: the chain downloaded over plain HTTP, as a phone does ----
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --chain-url "$PLAIN"
verdict "healthy over TLS" 0 Success
has "the chain download is said" "$T/p.out" "no --trust: the root .*certprov Root CA.* downloaded over plain HTTP"
has "tls step passed" "$T/p.out" "^  tls +[0-9.]+ ms  ok +TLSv1\.[23]"
has "certificate checked" "$T/p.out" "^  certificate .* ok .*URI:sip:alice@example.com.*clientAuth"
has "mTLS renewal step" "$T/p.out" "^  clientauth .* ok +SOAP GetAndPublishCert without a PIN over mTLS"
has "says which renewal" "$T/p.out" "renewal over mTLS: SOAP GetAndPublishCert without a PIN"
serial=$(field Serial)
[ -n "$serial" ] && ok || bad "no Serial printed"
"$CTL" "${C[@]}" cert list --uri sip:alice@example.com >"$T/certs" 2>&1
has "the serial printed is in the store" "$T/certs" "$serial"
same "two certificates for alice (enrollment, renewal)" "$(grep -c . "$T/certs")" 2
same "the PIN is never printed" "$(grep -c 27182 "$T/p.out" "$T/p.err" | awk -F: '{s+=$2} END {print s}')" 0
has "Latency" "$T/p.out" "^Latency +: [0-9.]+ ms"
has "TargetFqdn" "$T/p.out" "^TargetFqdn : localhost$"
has "TargetUri with the default path" "$T/p.out" "^TargetUri  : https://localhost:$TPORT/CertProv/CertProvisioningService.svc$"

# ---- healthy over TLS with --trust, --json, --repeat ----
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA" --json \
    --repeat 2 --interval 0.1
same "--json --repeat 2: exit code" "$RC" 0
same "--json --repeat 2: two lines" "$(wc -l <"$T/p.out")" 2
python3 - "$T/p.out" >"$T/j" 2>&1 <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    steps = [s["Name"] for s in o["Steps"]]
    print(o["Result"], o["Repetition"], o["FailedStep"], ",".join(steps),
          all(isinstance(s["Latency"], float) for s in o["Steps"]), o["TargetFqdn"])
PY
same "--json objects" "$(cat "$T/j")" "Success 1 None dns,trust,connect,tls,csr,enroll,certificate,connect,tls,csr,clientauth True localhost
Success 2 None dns,trust,connect,tls,csr,enroll,certificate,connect,tls,csr,clientauth True localhost"

# ---- healthy over plain HTTP ----
probe 27182 bootstrap --direct --target-uri "$PLAIN" --phone-or-ext +14255550100 --pin-stdin \
    --user-sip-address alice@example.com
verdict "healthy over plain HTTP" 0 Success
has "says the PIN travelled in clear" "$T/p.out" "plain http://: the PIN travelled in clear"
has "says why mTLS was skipped" "$T/p.out" "client-certificate step .* was skipped: the target is plain http://"
has "no tls step over plain HTTP" "$T/p.out" "^  enroll .* ok +SOAP GetAndPublishCert with the PIN of \+14255550100"
# Without --user-sip-address: EST simpleenroll (no Entity to send), said so.
probe 27182 bootstrap --direct --target-uri "$PLAIN" --phone-or-ext 1001 --pin-stdin
verdict "plain HTTP without --user-sip-address" 0 Success
has "EST said" "$T/p.out" "enrolled over EST simpleenroll"

# ---- the phone's path (the default): metadata, Web ticket by PIN, GetAndPublishCert with it ----
probe 27182 "${PHONE[@]}" --chain-url "$PLAIN" --json
same "phone path over TLS: exit code" "$RC" 0
python3 - "$T/p.out" >"$T/j" 2>&1 <<'PY'
import json, sys
o = json.loads(open(sys.argv[1]).read())
print(o["Result"], o["FailedStep"], ",".join(s["Name"] for s in o["Steps"]))
for s in o["Steps"]:
    print(s["Name"], s["Detail"])
PY
same "phone path: the steps" "$(head -1 "$T/j")" \
    "Success None dns,chain-download,connect,tls,metadata,webticket,csr,certprov,certificate,connect,tls,csr,clientauth"
has "metadata: the Web ticket port and the PIN port read from the mex" "$T/j" \
    "^metadata GetAndPublishCert at https://localhost:$TPORT/CertProv/CertProvisioningService.svc/WebTicket_Proof; Web Ticket Service https://localhost:$TPORT/WebTicket/WebTicketService.svc, PIN port https://localhost:$TPORT/WebTicket/WebTicketService.svc/Auth$"
has "webticket: the ticket's user and proof key" "$T/j" "^webticket a ticket for sip:alice@example.com by the PIN of 1001, valid until .*, proof key of 256 bits"
has "certprov: GetAndPublishCert with the ticket to the Web ticket port" "$T/j" \
    "^certprov GetAndPublishCert with the ticket to https://localhost:$TPORT/CertProv/CertProvisioningService.svc/WebTicket_Proof .*: 200"
has "certificate: names the ticket's user" "$T/j" "^certificate .*URI:sip:alice@example.com.*clientAuth"
serial=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Serial"])' "$T/p.out")
"$CTL" "${C[@]}" cert list --uri sip:alice@example.com >"$T/certs" 2>&1
has "phone path: the serial is in the store" "$T/certs" "$serial"
same "phone path: the PIN is never printed" "$(grep -c 27182 "$T/p.out" "$T/p.err" | awk -F: '{s+=$2} END {print s}')" 0
# --user-sip-address asks the ticket for that user (the URI claim): another user's is refused there.
probe 27182 "${PHONE[@]}" --trust "$CA" --user-sip-address sip:alice@example.com
verdict "phone path with --trust and --user-sip-address" 0 Success
probe 27182 "${PHONE[@]}" --trust "$CA" --user-sip-address sip:bob@example.com --json
same "phone path, another user's URI: exit code" "$RC" 1
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["FailedStep"]); print(o["Error"])' \
    "$T/p.out" >"$T/j" 2>&1
same "phone path, another user's URI: the webticket step fails" "$(head -1 "$T/j")" webticket
has "... with the server's 403 and entity_mismatch" "$T/j" "^RST to https://localhost:$TPORT/WebTicket/WebTicketService.svc/Auth: 403, SOAP fault [0-9]+: .*entity_mismatch"
# Over plain HTTP: the metadata names the https:// URLs of tls_listen, which the probe follows
# (trusting the chain it downloaded from the plain port).
probe 27182 bootstrap --target-uri "$PLAIN" --phone-or-ext +14255550100 --pin-stdin
verdict "phone path from the plain listen" 0 Success
has "... the Web ticket over TLS all the same" "$T/p.out" "^  certprov .* ok +GetAndPublishCert with the ticket to https://localhost:$TPORT/"
# A CSR refused by policy on the phone's path is still blamed on the CSR.
probe 27182 "${PHONE[@]}" --trust "$CA" --key-type rsa1024
verdict "phone path, an RSA-1024 CSR" 1 Failure CSR
has "... at the certprov step" "$T/p.out" "^  certprov .* FAILED .*400 BadCsr"

# (a) a wrong PIN: the webticket step, with the Web Ticket Service's answer (bob: alice's lockout
# window is left alone).
probe 31416 bootstrap --target-uri "$URL" --phone-or-ext 1002 --pin-stdin --trust "$CA"
verdict "phone path, wrong PIN" 1 Failure "Web ticket"
has "wrong PIN: status, SOAP fault and X-Ms-diagnostics" "$T/p.out" \
    "^Error +: RST to https://localhost:$TPORT/WebTicket/WebTicketService.svc/Auth: 401, SOAP fault 28903: .*X-Ms-diagnostics: 28903;source=\"localhost\".*pin_wrong_or_unknown"
has "wrong PIN: what to do" "$T/p.out" "^Diagnosis  : Web ticket: .* answered 401.*check the phone number or extension and the PIN"
has "wrong PIN: the webticket step failed" "$T/p.out" "^  webticket .* FAILED"
[ "$(grep -Ec '^  (csr|certprov)' "$T/p.out")" = 0 ] && ok || bad "steps ran after the refused ticket"
same "wrong PIN: not printed" "$(grep -c 31416 "$T/p.out")" 0

# (b) a metadata URL that 404s: the metadata step, with the status.
probe 27182 bootstrap --target-uri "https://localhost:$TPORT/Lync/CertProv.svc" --phone-or-ext 1001 \
    --pin-stdin --trust "$CA" --json
same "metadata 404: exit code" "$RC" 1
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["FailedStep"]); print(o["Error"]); print(o["Diagnosis"]); print(",".join(s["Name"] for s in o["Steps"]))' \
    "$T/p.out" >"$T/j" 2>&1
same "metadata 404: the metadata step fails" "$(sed -n 1p "$T/j")" metadata
same "metadata 404: the URL and the status" "$(sed -n 2p "$T/j")" "GET https://localhost:$TPORT/Lync/CertProv.svc/mex: 404"
has "metadata 404: what to do" "$T/j" "^metadata: .*--target-uri must be the CertProv service URL"
same "metadata 404: no PIN was sent" "$(sed -n 4p "$T/j")" "dns,trust,connect,tls,metadata"

# A target whose metadata is not CertProv's (the Web Ticket Service's own): what it lacks, named.
probe 27182 bootstrap --target-uri "https://localhost:$TPORT/WebTicket/WebTicketService.svc" \
    --phone-or-ext 1001 --pin-stdin --trust "$CA"
verdict "the Web Ticket Service as the target" 1 Failure metadata
has "... names the policy it lacks" "$T/p.out" \
    "^Error +: GET https://localhost:$TPORT/WebTicket/WebTicketService.svc/mex: no wsp:Policy CertProvisioningServiceWebTicketProof_SHA1_policy in the metadata"

# (c) a CertProv that refuses the ticket: a balancer (HAProxy, TLS terminated with this
# appliance's server certificate) that sends the Web Ticket Service to this appliance and CertProv
# to another one that is not of its fleet (its own CA and pin.key): the ticket is signed by a key
# the other one does not trust. Its external_base_url names the balancer in the metadata.
HAPROXY=$(command -v haproxy) || bad "haproxy is missing (deps/packages.txt)"
if [ -n "${HAPROXY:-}" ]; then
    BPORT=$(free_port) && HPORT=$(free_port) || exit 1
    cat >"$T/b.ini" <<INI
[server]
name = localhost
listen = 127.0.0.1:$BPORT
external_base_url = https://localhost:$HPORT
workers = 1
[store]
path = storeb
map_size = 64MiB
[pool.pool1]
store = embedded
INI
    "$CTL" -c "$T/b.ini" ca init >/dev/null || bad "ca init of the other appliance"
    printf '27182\n' | "$CTL" -c "$T/b.ini" user add --uri sip:alice@example.com --pool pool1 \
        --ext 1001 --pin-stdin >/dev/null || bad "alice on the other appliance"
    "$D" -c "$T/b.ini" >>"$T/daemon-b.log" 2>&1 &
    BPID=$!
    # HAProxy wants one PEM file: the server certificate with its chain, then its key (DER here).
    { cat "$T/store/tls/server.crt"; openssl pkey -inform DER -in "$T/store/tls/server.key"; } \
        >"$T/ha.pem" 2>/dev/null
    cat >"$T/haproxy.cfg" <<CFG
global
    maxconn 64
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$HPORT ssl crt $T/ha.pem
    use_backend wt if { path_beg /WebTicket/ }
    default_backend cp
backend wt
    server a 127.0.0.1:$PORT
backend cp
    server b 127.0.0.1:$BPORT
CFG
    "$HAPROXY" -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
    HPID=$!
    trap 'kill -9 $PID $BPID $HPID 2>/dev/null; rm -rf "$T"' EXIT
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$BPORT/healthz" >/dev/null 2>&1 &&
            (exec 3<>"/dev/tcp/127.0.0.1/$HPORT") 2>/dev/null && break
        sleep 0.05
    done
    probe 27182 bootstrap --target-uri "https://localhost:$HPORT" --phone-or-ext 1001 --pin-stdin \
        --trust "$CA"
    verdict "a CertProv that refuses the ticket" 1 Failure CertProv
    has "refused ticket: the metadata named the balancer" "$T/p.out" "^  metadata .* ok +GetAndPublishCert at https://localhost:$HPORT/CertProv/"
    has "refused ticket: this appliance issued the ticket" "$T/p.out" "^  webticket .* ok +a ticket for sip:alice@example.com"
    has "refused ticket: the server's 401, X-Ms-diagnostics and the check" "$T/p.out" \
        "^Error +: GetAndPublishCert with the ticket to https://localhost:$HPORT/.*: 401 AuthenticationFailed: .*X-Ms-diagnostics: .*ticket_invalid"
    has "refused ticket: what to check" "$T/p.out" "^Diagnosis  : CertProv: .*do not share their CA and pin.key"
    has "refused ticket: the certprov step failed" "$T/p.out" "^  certprov .* FAILED"
    same "refused ticket: nothing stored by the other appliance" \
        "$("$CTL" -c "$T/b.ini" cert list --uri sip:alice@example.com | wc -l)" 0
    kill "$HPID" "$BPID" 2>/dev/null
    wait "$HPID" "$BPID" 2>/dev/null
    if grep -Eq "AddressSanitizer|runtime error" "$T/daemon-b.log"; then bad "sanitizer report (b)"; else ok; fi
fi

# ---- a wrong PIN ----
probe 27183 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA"
verdict "wrong PIN" 1 Failure authentication
has "wrong PIN: the Code and the server's reason" "$T/p.out" "^Diagnosis  : authentication: the appliance answered 401 AuthenticationFailed: The phone number"
has "wrong PIN: X-Ms-diagnostics in Error" "$T/p.out" "^Error .*X-Ms-diagnostics: 28903;source=\"localhost\""
has "wrong PIN: the enroll step failed" "$T/p.out" "^  enroll .* FAILED"
same "wrong PIN: not printed" "$(grep -c 27183 "$T/p.out")" 0

# ---- a locked user ([pin] window_failures = 3) ----
for pin in 10001 10002 10003; do
    probe "$pin" bootstrap --direct --target-uri "$URL" --phone-or-ext 1003 --pin-stdin --trust "$CA" \
        --user-sip-address sip:carol@example.com
done
probe 69314 bootstrap --direct --target-uri "$URL" --phone-or-ext 1003 --pin-stdin --trust "$CA" \
    --user-sip-address sip:carol@example.com
verdict "locked user, right PIN" 1 Failure authentication
has "locked: PinLocked and how to unlock" "$T/p.out" "403 PinLocked: .*; unlock with certprovctl user unlock sip:carol@example.com"
check "unlock as the probe says" "$CTL" "${C[@]}" user unlock sip:carol@example.com
probe 69314 bootstrap --direct --target-uri "$URL" --phone-or-ext 1003 --pin-stdin --trust "$CA" \
    --user-sip-address sip:carol@example.com
verdict "after the unlock" 0 Success

# ---- CSRs refused by policy ----
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA" --key-type rsa1024
verdict "an RSA-1024 CSR" 1 Failure CSR
has "RSA-1024: BadCsr with the server's reason" "$T/p.out" "400 BadCsr: The RSA key is too small"
probe 27182 "${BOOT[@]}" --user-sip-address sip:bob@example.com --trust "$CA"
verdict "another user's --user-sip-address" 1 Failure CSR
has "IdentityMismatch and what to do" "$T/p.out" "403 IdentityMismatch: .*--user-sip-address"
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA" --key-type ed25519
# An Ed25519 certificate renews over mTLS too (the handshake once failed: no Ed25519 in the
# server's verify algorithms).
verdict "an Ed25519 CSR is accepted, and its certificate renews over mTLS" 0 Success

# ---- an untrusted chain: --trust of another CA (of the same name: another appliance) ----
sed 's/^path = store$/path = other/' "$T/certprov.ini" >"$T/other.ini"
"$CTL" -c "$T/other.ini" ca init >/dev/null
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$T/other/chain.pem"
verdict "another CA's root" 1 Failure "TLS chain"
has "untrusted: names the missing issuer" "$T/p.out" "^Diagnosis  : TLS chain: the issuer \"CN=certprov Root CA,O=localhost\" of the issuing CA .* is missing"
has "untrusted: same name, another key" "$T/p.out" "holds a certificate of that name .* with another key"
has "untrusted: nothing was enrolled" "$T/p.out" "^  tls .* FAILED"
[ "$(grep -c '^  enroll' "$T/p.out")" = 0 ] && ok || bad "the PIN was sent over an untrusted chain"
# --trust and --chain-url together: the chain served over plain HTTP must end in a --trust root.
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA" --chain-url "$PLAIN"
verdict "--trust with --chain-url: the served chain ends in a trusted root" 0 Success
has "chain-download step checked against --trust" "$T/p.out" "^  chain-download .* ok .*is in --trust"
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$T/other/chain.pem" \
    --chain-url "$PLAIN"
verdict "--trust with --chain-url: the served chain ends in another root" 1 Failure
has "names the served root and --trust" "$T/p.out" "^Error +: the chain at .* ends in the root .*certprov Root CA.*, which is not in --trust"

# ---- chain ----
probe "" chain --target-uri "$URL" --trust "$CA"
verdict "chain: healthy" 0 Success
probe "" chain --target-uri "$URL" --trust "$T/store/ca/issuing.crt"
verdict "chain: only the issuing CA trusted" 1 Failure "TLS chain"
has "chain: names the absent root" "$T/p.out" "the issuer \"CN=certprov Root CA,O=localhost\" of the issuing CA \"CN=certprov Issuing CA,O=localhost\" is missing: the server did not send it and --trust .*issuing.crt does not hold it"
probe "" chain --target-uri "https://127.0.0.1:$TPORT" --trust "$CA"
verdict "chain: another host name" 1 Failure "TLS chain"
has "chain: the names the certificate carries" "$T/p.out" "names DNS:localhost, not 127.0.0.1"
probe "" chain --target-uri "https://localhost:$PORT" --trust "$CA"
verdict "chain: the plain port" 1 Failure "TLS chain"
has "chain: not a TLS port" "$T/p.out" "tls_listen \(not its plain listen\)"

# ---- clientauth ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/b.key" 2>/dev/null
openssl req -new -key "$T/b.key" -subj "/CN=bob@example.com" -outform DER 2>/dev/null | base64 \
    >"$T/b.b64"
curl -s --cacert "$CA" -u 1002:31415 --data-binary @"$T/b.b64" \
    "$URL/.well-known/est/simpleenroll" | base64 -d |
    openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509 >"$T/b.crt"
probe "" clientauth --target-uri "$URL" --cert "$T/b.crt" --key "$T/b.key" --trust "$CA"
verdict "clientauth with bob's certificate" 0 Success
has "clientauth: renewed for bob" "$T/p.out" "^  clientauth .* ok .*URI:sip:bob@example.com"
openssl req -x509 -new -key "$T/b.key" -subj "/CN=bob@example.com" -days 30 \
    -addext "subjectAltName=URI:sip:bob@example.com" -addext "extendedKeyUsage=clientAuth" \
    -out "$T/forged.crt" 2>/dev/null
probe "" clientauth --target-uri "$URL" --cert "$T/forged.crt" --key "$T/b.key" --trust "$CA"
verdict "clientauth with another CA's certificate" 1 Failure "client certificate"
has "clientauth: the server's reason" "$T/p.out" "401 AuthenticationFailed: .*not issued by this appliance"
probe "" clientauth --target-uri "$URL" --cert "$T/b.crt" --key "$T/other/ca/issuing.key" --trust "$CA"
verdict "clientauth with a key of another certificate" 1 Failure credentials

# ---- usage ----
probe 27182
same "no command: exit 2" "$RC" 2
probe 27182 bootstrap --target-uri "$URL" --phone-or-ext 1001
same "bootstrap without --pin-stdin: exit 2" "$RC" 2
probe 12ab5 "${BOOT[@]}"
same "a PIN that is not digits: exit 2" "$RC" 2
same "a bad PIN is not echoed" "$(grep -c 12ab5 "$T/p.err")" 0
has "a bad PIN: says what is wrong" "$T/p.err" "first line of stdin must be a PIN"
probe 27182 bootstrap --target-uri "ftp://x" --phone-or-ext 1001 --pin-stdin
same "ftp:// target: exit 2" "$RC" 2
probe "" chain --target-uri "$URL"
same "chain without --trust: exit 2" "$RC" 2
probe "" clientauth --target-uri "$URL" --cert "$T/b.crt"
same "clientauth without --key: exit 2" "$RC" 2
probe "" bootstrap --help
same "--help: exit 0" "$RC" 0
for o in --target-uri --phone-or-ext --pin-stdin --user-sip-address --trust --chain-url --cert \
    --key --key-type --direct --json --repeat --interval --timeout "Exit status" metadata \
    webticket certprov; do
    has "--help names $o" "$T/p.out" "$o"
done

# ---- an expired server certificate, signed by the issuing CA (openssl ca with dates) ----
mkdir -p "$T/eca"
: >"$T/eca/index.txt"
echo 01 >"$T/eca/serial"
cat >"$T/eca/ca.cnf" <<CNF
[ca]
default_ca = e
[e]
database = $T/eca/index.txt
new_certs_dir = $T/eca
serial = $T/eca/serial
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = x
[p]
commonName = supplied
[x]
subjectAltName = DNS:localhost
extendedKeyUsage = serverAuth
keyUsage = critical, digitalSignature
basicConstraints = critical, CA:FALSE
CNF
openssl pkey -in "$T/store/ca/issuing.key" -out "$T/eca/issuing.pem" 2>/dev/null ||
    openssl pkey -inform DER -in "$T/store/ca/issuing.key" -out "$T/eca/issuing.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/eca/server.key" 2>/dev/null
openssl req -new -key "$T/eca/server.key" -subj "/CN=localhost" -out "$T/eca/server.csr" 2>/dev/null
if openssl ca -batch -config "$T/eca/ca.cnf" -cert "$T/store/ca/issuing.crt" \
    -keyfile "$T/eca/issuing.pem" -startdate 20200101000000Z -enddate 20200201000000Z \
    -in "$T/eca/server.csr" -out "$T/eca/server.crt" >/dev/null 2>&1; then
    # certprovd never serves it: it reissues its leaf at start (the log says why) ...
    kill -TERM $PID
    wait $PID 2>/dev/null
    openssl x509 -in "$T/eca/server.crt" >"$T/store/tls/server.crt"
    cat "$T/store/ca/issuing.crt" >>"$T/store/tls/server.crt"
    cp "$T/eca/server.key" "$T/store/tls/server.key"
    start || bad "certprovd restarted over the expired certificate"
    has "certprovd reissued the expired leaf" "$T/daemon.log" "tls_reissued"
    probe "" chain --target-uri "$URL" --trust "$CA"
    verdict "chain after the reissue" 0 Success
    # ... so a server that does serve it is openssl s_server with the expired leaf.
    EPORT=$(free_port) || exit 1
    openssl s_server -accept "$EPORT" -cert "$T/eca/server.crt" -key "$T/eca/server.key" \
        -cert_chain "$T/store/ca/issuing.crt" -www -quiet >/dev/null 2>&1 &
    SPID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$EPORT") 2>/dev/null && break; sleep 0.05; done
    probe 27182 bootstrap --target-uri "https://localhost:$EPORT/CertProv/CertProvisioningService.svc" \
        --phone-or-ext +14255550100 --pin-stdin --user-sip-address sip:alice@example.com \
        --trust "$CA"
    verdict "expired server certificate" 1 Failure "TLS chain"
    has "expired: which certificate and when" "$T/p.out" "^Diagnosis  : TLS chain: the server's certificate \"CN=localhost\" expired at 2020-02-01T00:00:00Z; replace the TLS server certificate"
    probe "" chain --target-uri "https://localhost:$EPORT/" --trust "$CA"
    verdict "chain: expired server certificate" 1 Failure "TLS chain"
    kill $SPID 2>/dev/null
    wait $SPID 2>/dev/null
else
    bad "make an expired server certificate"
fi

# ---- a server that accepts and never answers: the probe gives up at --timeout ----
SPORT=$(free_port) || exit 1
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(20)' "$SPORT" &
SILENT=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break
    sleep 0.05
done
t0=$(date +%s%N)
probe 27182 bootstrap --target-uri "https://localhost:$SPORT" --phone-or-ext 1001 --pin-stdin \
    --trust "$CA" --timeout 0.5
ms=$((($(date +%s%N) - t0) / 1000000))
verdict "a silent server" 1 Failure "TLS chain"
has "silent: says it timed out" "$T/p.out" "no answer within the timeout"
[ "$ms" -lt 3000 ] && ok || bad "a silent server held the probe for $ms ms (--timeout 0.5)"
kill $SILENT 2>/dev/null
wait $SILENT 2>/dev/null

# ---- a stopped server ----
kill -TERM $PID
wait $PID 2>/dev/null
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --trust "$CA"
verdict "stopped server" 1 Failure connect
has "stopped: what to check" "$T/p.out" "nothing listens there: is certprovd running"
probe 27182 "${BOOT[@]}" --user-sip-address sip:alice@example.com --chain-url "$PLAIN" --json
same "stopped server, no --trust: exit code" "$RC" 1
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["Result"], o["FailedStep"])' \
    "$T/p.out" >"$T/j" 2>&1
same "stopped server, no --trust: the chain download fails first" "$(cat "$T/j")" \
    "Failure chain-download"

finish
