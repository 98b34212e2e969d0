#!/usr/bin/env bash
# certprovd end to end over real sockets with curl and openssl: EST and CertProv SOAP enrollment
# for every client key type (by extension and by shared phone number; Basic and UsernameToken),
# each certificate verified with openssl; the error rows of README, Errors with status, Code and
# X-Ms-diagnostics; lockout and unlock; an XML entity bomb; SIGTERM drain; and kill -9 during a
# burst: every serial a client received is in the store after a restart.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$PORT
max_request_bytes = 32768
header_timeout_s = 2
[store]
path = store
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0   ; carol enrolls ~200 times (test_ratelimit.sh tests the limit)
[pin]
window_failures = 3
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
S="$T/store"
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100 --ext 1001
check "add bob (same phone)" add 31415 --uri sip:bob@example.com --pool pool1 --phone +14255550100 --ext 1002
check "add carol" add 16180 --uri sip:carol@example.com --pool pool1 --ext 1003

# --- --check refuses a listen address the engine cannot bind (hardening item 18) ---
check "--check passes" "$D" "${C[@]}" --check
expect_exit 2 "--log-format must be text or json" "--log-format xml" "$D" "${C[@]}" --check --log-format xml
for l in 8080 localhost:8080; do
    sed "s|^listen = .*|listen = $l|" "$T/certprov.ini" >"$T/listen.ini"
    expect_exit 1 "listen.ini:3: \[server\] listen must be IPv4:PORT or \[IPv6\]:PORT.*not '$l'" \
        "--check listen = $l" "$D" -c "$T/listen.ini" --check
done

start() {
    "$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd did not start: $(tail -5 "$T/daemon.log")"
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID"; }
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
start || { finish; exit 1; }

# --- threads are named (top -H, perf) ---
same "thread names" "$(cat /proc/"$PID"/task/*/comm | grep '^cp-' | sort | tr '\n' ' ')" \
    "$(printf '%s ' cp-crl cp-pub-pool1 $(for i in $(seq 0 $(($(nproc) - 1))); do echo cp-ring$i; done | sort) cp-writer)"

# --- trust, health, metrics ---
check "healthz" curl -sf "$URL/healthz"
curl -s "$URL/readyz" >"$T/ready.json"
has "readyz ready" "$T/ready.json" '"ready":true'
has "readyz key backend" "$T/ready.json" '"key_backend":"soft"'
has "readyz store" "$T/ready.json" '"store":"ok"'
has "readyz pool entry" "$T/ready.json" '"pool1":\{"state":"[a-z]+","outbox_depth":[0-9]+'
curl -s "$URL/CertProv/chain.pem" >"$T/chain.pem"
check "chain.pem is the CA chain" cmp "$T/chain.pem" "$S/chain.pem"
curl -s -D "$T/h" "$URL/.well-known/est/cacerts" | base64 -d >"$T/cacerts.p7"
has "cacerts content type" "$T/h" "Content-Type: application/pkcs7-mime"
openssl pkcs7 -inform DER -in "$T/cacerts.p7" -print_certs >"$T/cacerts.pem" 2>/dev/null
same "cacerts holds issuing CA and root" "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" 2
same "unknown path is 404" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")" 404
same "GET on enroll is 405" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/.well-known/est/simpleenroll")" 405

# --- CSRs ---
mkcsr() { # mkcsr NAME CN OPENSSL-GENPKEY-ARGS...
    local n=$1 cn=$2; shift 2
    openssl genpkey "$@" -out "$T/$n.key" 2>/dev/null
    openssl req -new -key "$T/$n.key" -subj "/CN=$cn" -outform DER -out "$T/$n.der" 2>/dev/null
    base64 -w 64 "$T/$n.der" >"$T/$n.b64"
}
mkcsr p256 alice@example.com -algorithm EC -pkeyopt ec_paramgen_curve:P-256
mkcsr p384 alice@example.com -algorithm EC -pkeyopt ec_paramgen_curve:P-384
mkcsr rsa2048 alice@example.com -algorithm RSA -pkeyopt rsa_keygen_bits:2048
mkcsr ed25519 alice@example.com -algorithm ED25519
mkcsr bob bob@example.com -algorithm EC -pkeyopt ec_paramgen_curve:P-256
mkcsr carol carol@example.com -algorithm EC -pkeyopt ec_paramgen_curve:P-256
mkcsr rsa1024 alice@example.com -algorithm RSA -pkeyopt rsa_keygen_bits:1024
# the RSA-2048 key, signed with SHA-1: the same Code as RSA-1024 (BadCsr), another reason
openssl req -new -key "$T/rsa2048.key" -subj "/CN=alice@example.com" -sha1 -outform DER \
    -out "$T/sha1.der" 2>/dev/null
base64 -w 64 "$T/sha1.der" >"$T/sha1.b64"

# est USER:PIN CSR-NAME OUT: POST simpleenroll; body to OUT, headers to OUT.h, prints the status.
est() {
    curl -s -o "$3" -D "$3.h" -w '%{http_code}' -u "$1" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/$2.b64" "$URL/.well-known/est/simpleenroll"
}
# est_cert OUT: the certificate of an EST answer, as PEM.
est_cert() { base64 -d "$1" | openssl pkcs7 -inform DER -print_certs 2>/dev/null; }
verify_pem() {
    check "$1 verifies (sslclient, x509_strict)" openssl verify -x509_strict -purpose sslclient \
        -CAfile "$S/ca/root.crt" -untrusted "$S/ca/issuing.crt" "$2"
}
for k in p256 p384 rsa2048 ed25519; do
    same "EST $k by extension" "$(est 1001:27182 $k "$T/est-$k")" 200
    est_cert "$T/est-$k" >"$T/est-$k.pem"
    verify_pem "EST $k" "$T/est-$k.pem"
    has "EST $k subject" <(openssl x509 -in "$T/est-$k.pem" -noout -subject) "CN ?= ?alice@example.com"
done

# SOAP: soap_body ENTITY CSR-NAME [USER PIN] [REQUESTID]
soap_body() {
    local token="" rid=""
    [ -n "${5:-}" ] && rid="<RequestID xmlns=\"http://schemas.microsoft.com/windows/pki/2009/01/enrollment\">$5</RequestID>"
    if [ -n "${3:-}" ]; then
        token="<o:Security xmlns:o=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><o:UsernameToken><o:Username>$3</o:Username><o:Password>$4</o:Password></o:UsernameToken></o:Security>"
    fi
    cat <<XML
<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>$token</s:Header><s:Body>
<GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" DeviceId="{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1}" Entity="$1">
<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512/">
<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>
<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>
<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ValueType="http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10" EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary">
$(cat "$T/$2.b64")
</wsse:BinarySecurityToken>
$rid
</wst:RequestSecurityToken></GetAndPublishCert></s:Body></s:Envelope>
XML
}
# soap FILE OUT [CURL-ARGS...]: POST the body in FILE, prints the status.
soap() {
    local f=$1 o=$2; shift 2
    curl -s -o "$o" -D "$o.h" -w '%{http_code}' -H 'Content-Type: text/xml' \
        -H 'SOAPAction: "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert"' \
        "$@" --data-binary @"$f" "$URL/CertProv/CertProvisioningService.svc"
}
soap_cert() { grep -o '#X509v3"[^>]*>[^<]*' "$1" | sed 's/.*>//' | base64 -d | openssl x509 -inform DER 2>/dev/null; }

soap_body alice@example.com p256 +14255550100 27182 req-42 >"$T/s1.xml"
same "SOAP UsernameToken, shared phone picks alice" "$(soap "$T/s1.xml" "$T/s1")" 200
has "SOAP success content type" "$T/s1.h" "Content-Type: text/xml; charset=utf-8"
has "SOAP X509v3 token" "$T/s1" "#X509v3"
has "SOAP RequestID echoed" "$T/s1" "req-42"
soap_cert "$T/s1" >"$T/s1.pem"
verify_pem "SOAP alice" "$T/s1.pem"
for k in p384 rsa2048 ed25519; do
    soap_body alice@example.com $k 1001 27182 >"$T/sk.xml"
    same "SOAP $k by extension" "$(soap "$T/sk.xml" "$T/sk-$k")" 200
    soap_cert "$T/sk-$k" >"$T/sk-$k.pem"
    verify_pem "SOAP $k" "$T/sk-$k.pem"
done
soap_body bob@example.com bob >"$T/s2.xml"
same "SOAP Basic, shared phone picks bob" "$(soap "$T/s2.xml" "$T/s2" -u +14255550100:31415)" 200
soap_cert "$T/s2" | openssl x509 -noout -ext subjectAltName >"$T/s2.san"
has "bob's certificate names bob" "$T/s2.san" "URI:sip:bob@example.com"
soap_body sip:carol@example.com carol >"$T/s3.xml"
same "SOAP at WebTicket_Proof, sip: Entity" "$(curl -s -o "$T/s3" -w '%{http_code}' -u 1003:16180 -H 'Content-Type: text/xml' --data-binary @"$T/s3.xml" "$URL/CertProv/CertProvisioningService.svc/WebTicket_Proof")" 200

# --- the error table ---
# err NAME STATUS CODE COMMAND...: the command prints the status; OUT file is $T/e
err() {
    local n=$1 st=$2 code=$3; shift 3
    same "$n: status" "$("$@")" "$st"
    has "$n: Code $code" "$T/e" "$code"
    has "$n: X-Ms-diagnostics" "$T/e.h" '^X-Ms-diagnostics: [0-9]+;source="certprov-test.example.com";reason="'
}
# tok NAME TOKEN: the last answer's X-Ms-diagnostics ends in the reason token (README, Reasons)
tok() { has "$1: token $2" "$T/e.h" ";token=\"$2\""$'\r'"?\$"; }
printf '<not xml' >"$T/bad.xml"
err "malformed SOAP" 400 "<Code>BadRequest</Code>" soap "$T/bad.xml" "$T/e" -u 1001:27182
tok "malformed SOAP" request_malformed
soap_body alice@example.com rsa1024 >"$T/weak.xml"
err "RSA-1024 CSR" 400 "<Code>BadCsr</Code>" soap "$T/weak.xml" "$T/e" -u 1001:27182
tok "RSA-1024 CSR" csr_rsa_key_too_small
err "SHA-1 CSR (EST)" 400 "^BadCsr: " est "1001:27182" sha1 "$T/e"
tok "SHA-1 CSR (EST)" csr_weak_hash
cp tests/data/csr/bad-signature.der "$T/badsig.der" 2>/dev/null || cp "$(dirname "$0")/../data/csr/bad-signature.der" "$T/badsig.der"
base64 "$T/badsig.der" >"$T/badsig.b64"
BADCN=$(openssl req -inform DER -in "$T/badsig.der" -noout -subject 2>/dev/null | sed 's/.*CN *= *//')
err "bad CSR signature (EST)" 400 "CsrSignatureInvalid" est "1001:27182" badsig "$T/e"
tok "bad CSR signature (EST)" csr_signature
soap_body alice@example.com p256 >"$T/a.xml"
err "wrong PIN" 401 "<Code>AuthenticationFailed</Code>" soap "$T/a.xml" "$T/e" -u 1001:99999
tok "wrong PIN" pin_wrong_or_unknown
has "401 asks for Basic" "$T/e.h" 'WWW-Authenticate: Basic realm="certprov"'
err "unknown extension" 401 "<Code>AuthenticationFailed</Code>" soap "$T/a.xml" "$T/e" -u 4242:27182
tok "unknown extension" pin_wrong_or_unknown
err "no credentials" 401 "<Code>AuthenticationFailed</Code>" soap "$T/a.xml" "$T/e"
tok "no credentials" credentials_missing
soap_body bob@example.com p256 >"$T/m.xml"
err "Entity names someone else" 403 "<Code>IdentityMismatch</Code>" soap "$T/m.xml" "$T/e" -u 1001:27182
tok "Entity names someone else" entity_mismatch
err "CSR names someone else" 403 "IdentityMismatch" est 1001:27182 bob "$T/e"
tok "CSR names someone else" subject_mismatch
head -c 40000 /dev/zero | tr '\0' 'a' >"$T/big"
err "SOAP over max_request_bytes" 413 "<Code>TooLarge</Code>" curl -s -o "$T/e" -D "$T/e.h" -w '%{http_code}' -u 1001:27182 -H 'Content-Type: text/xml' --data-binary @"$T/big" "$URL/CertProv/CertProvisioningService.svc"
tok "SOAP over max_request_bytes" too_large
err "EST over max_request_bytes" 413 "^TooLarge: " curl -s -o "$T/e" -D "$T/e.h" -w '%{http_code}' -u 1001:27182 --data-binary @"$T/big" "$URL/.well-known/est/simpleenroll"
cat >"$T/bomb.xml" <<'XML'
<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;"><!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;"><!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<lolz>&lol9;</lolz>
XML
err "XML entity bomb" 400 "<Code>BadRequest</Code>" soap "$T/bomb.xml" "$T/e" -u 1001:27182

# --- lockout ([pin] window_failures = 3) and unlock ---
for _ in 1 2 3; do soap "$T/a.xml" "$T/e" -u 1001:99999 >/dev/null; done
err "locked after 3 failures" 403 "<Code>PinLocked</Code>" soap "$T/a.xml" "$T/e" -u 1001:27182
tok "locked after 3 failures" pin_locked
check "user show after a right PIN while locked" "$CTL" "${C[@]}" user show sip:alice@example.com
has "a right PIN while locked is not recorded: the wrong one that locked is the last refusal" "$T/out" '^last_refusal: +[0-9T:-]+Z code=AuthenticationFailed reason=pin_wrong_or_unknown client=127\.0\.0\.1:[0-9]+$'
err "a wrong PIN while locked" 403 "<Code>PinLocked</Code>" soap "$T/a.xml" "$T/e" -u 1001:99999
check "user show says locked" "$CTL" "${C[@]}" user show sip:alice@example.com
has "user show locked" "$T/out" "state: +locked"
has "user show: last refusal" "$T/out" '^last_refusal: +[0-9T:-]+Z code=PinLocked reason=pin_locked client=127\.0\.0\.1:[0-9]+$'
has "user show: last success" "$T/out" '^last_success: +[0-9T:-]+Z serial=[0-9A-F]+ device_id=\{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1\}$'
check "user show --json" "$CTL" "${C[@]}" user show sip:alice@example.com --json
has "user show --json: one object" "$T/out" '^\{"uri":"sip:alice@example.com",.*"state":"locked-temp".*"last_success":\{"serial":"[0-9A-F]+","device_id":"\{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1\}","time":"[0-9T:-]+Z"\},"last_refusal":\{"code":"PinLocked","reason":"pin_locked","client":"127\.0\.0\.1:[0-9]+","time":"[^"]+"\}\}$'
check "unlock" "$CTL" "${C[@]}" user unlock sip:alice@example.com
same "enrolls again after unlock" "$(soap "$T/a.xml" "$T/e" -u 1001:27182)" 200
check "user show after unlock" "$CTL" "${C[@]}" user show sip:alice@example.com
has "unlock keeps the last refusal" "$T/out" '^last_refusal: .* reason=pin_locked '
# Bob shares alice's phone: his sign-ins were not counted against alice and vice versa.
same "bob unaffected" "$(soap "$T/s2.xml" "$T/e" -u 1002:31415)" 200

# --- metrics ---
# Enrollments in parallel, so that commit groups and sign batches hold more than one.
par=()
for i in $(seq 1 24); do (est 1003:16180 carol "$T/par-$i"; echo) >"$T/par-$i.code" & par+=($!); done
wait "${par[@]}"
same "24 parallel enrollments" "$(cat "$T"/par-*.code | sort | uniq -c | tr -s ' ')" " 24 200"
curl -s "$URL/metrics" >"$T/metrics"
check "metrics histograms consistent" histograms_ok "$T/metrics"
has "metrics requests" "$T/metrics" 'certprov_requests_total\{route="soap",code="OK"\} [0-9]+'
has "metrics issuance histogram" "$T/metrics" 'certprov_issuance_seconds_bucket\{le="\+Inf"\} [0-9]+'
has "metrics commit latency" "$T/metrics" 'certprov_lmdb_commit_seconds_count'
has "metrics stage" "$T/metrics" 'certprov_stage_seconds_count\{stage="sign"\}'
has "metrics pin failures" "$T/metrics" 'certprov_pin_failures_total [1-9]'
has "metrics lockouts" "$T/metrics" 'certprov_pin_lockouts_total [1-9]'
has "metrics outbox" "$T/metrics" 'certprov_outbox_depth\{pool="pool1"\} [0-9]+'
if grep -E '_sum\{[^}]*\} [0-9.]+e' "$T/metrics"; then bad "a histogram sum in exponent form"; else ok; fi
has "metrics pool up" "$T/metrics" 'certprov_pool_up\{pool="pool1"\} 1'
has "metrics publication lag" "$T/metrics" 'certprov_publication_lag_seconds_count\{pool="pool1"\} [1-9]'
if grep -vE '^(#|certprov_|process_)' "$T/metrics" | grep -q .; then bad "a metric is not named certprov_* or process_*"; else ok; fi
# The ecosystem's rules (issue 14): promtool check metrics when installed, the same rules built in.
M="$(dirname "$0")/check-metrics.sh"
check "metrics pass promtool's rules$(command -v promtool >/dev/null && echo ' (and promtool)')" "$M" "$T/metrics"
printf '# TYPE x_responses_503 counter\nx_responses_503 1\ny_gauge 2\n' >"$T/badmetrics"
if CHECK_METRICS_BUILTIN_ONLY=1 "$M" "$T/badmetrics" >"$T/out" 2>&1; then bad "the built-in check passed bad metrics"; else ok; fi
has "built-in check: counter without _total" "$T/out" 'counter x_responses_503 does not end in _total'
has "built-in check: status in the name" "$T/out" 'an HTTP status in the name x_responses_503'
has "built-in check: no HELP" "$T/out" 'no HELP before x_responses_503'
has "built-in check: no TYPE" "$T/out" 'no TYPE before y_gauge'
has "metrics build info" "$T/metrics" '^certprov_build_info\{version="[^"]+",boringssl="API [0-9]+[^"]*"\} 1$'
has "metrics engine answers by code" "$T/metrics" '^certprov_engine_responses_total\{code="503"\} [0-9]+$'
has "metrics process CPU" "$T/metrics" '^process_cpu_seconds_total [0-9.]+$'
has "metrics process RSS" "$T/metrics" '^process_resident_memory_bytes [1-9][0-9]+$'
has "metrics process fds" "$T/metrics" '^process_open_fds [1-9][0-9]*$'
start=$(awk '/^process_start_time_seconds / {print $2}' "$T/metrics")
now=$(date +%s)
if [ -n "$start" ] && [ "$start" -le "$now" ] && [ $((now - start)) -lt 600 ]; then ok; else bad "process_start_time_seconds '$start' is not the daemon's start (now $now)"; fi
no_pin "no PIN in the log" "$T/daemon.log" 27182 16180 31415
has "health checks are logged too" "$T/daemon.log" 'request route=healthz status=200 client=127.0.0.1:[0-9]+'
has "one log line per request" "$T/daemon.log" 'request route=soap code=OK reason=- user=sip:alice@example.com login=[+0-9]+ device_id=\{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1\} serial=[0-9A-F]+ latency_us=[0-9]+ client=127.0.0.1:[0-9]+ tls=none'
has "log: RSA-1024 and SHA-1 differ" "$T/daemon.log" 'request route=soap code=BadCsr reason=csr_rsa_key_too_small user=sip:alice@example.com login=1001 '
has "log: SHA-1 reason" "$T/daemon.log" 'request route=est_simpleenroll code=BadCsr reason=csr_weak_hash '
has "log: a wrong PIN names the login, no user" "$T/daemon.log" 'code=AuthenticationFailed reason=pin_wrong_or_unknown user=- login=4242 '

# --- keep-alive, pipelining, slow clients ---
exec 5<>/dev/tcp/127.0.0.1/$PORT
printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /CertProv/chain.pem HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >&5
timeout 5 cat <&5 >"$T/pipe"
exec 5<&-
same "three pipelined responses" "$(grep -c '^HTTP/1.1 200' "$T/pipe")" 3
if grep -n '^HTTP/1.1\|BEGIN CERT' "$T/pipe" | head -3 | tr '\n' ' ' | grep -Eq '^1:HTTP.*:HTTP.*:-----BEGIN'; then ok; else bad "pipelined responses out of order"; fi
exec 6<>/dev/tcp/127.0.0.1/$PORT
t0=$(date +%s%N)
( for ch in G E T ' ' /; do printf %s "$ch"; sleep 1; done ) >&6 2>/dev/null &
slow=$!
same "others are served while a slow client dribbles" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" 200
timeout 8 cat <&6 >/dev/null
t1=$(date +%s%N)
exec 6<&-
kill "$slow" 2>/dev/null; wait "$slow" 2>/dev/null
el=$(( (t1 - t0) / 1000000 ))
if [ "$el" -ge 1500 ] && [ "$el" -lt 4500 ]; then ok; else bad "slow client closed after ${el} ms, want the 2 s header deadline"; fi

# --- SIGTERM drains and exits 0 ---
kill -TERM "$PID"; wait "$PID"; same "SIGTERM exit status" $? 0

# --- kill -9 during a burst: every serial a client received is stored ---
start || { finish; exit 1; }
mkdir -p "$T/burst"
# The kill comes once a first answer is in (at most 10 s: sanitizer builds start slowly), while
# the other requests of the burst are in flight.
served() { grep -lqs '^200$' "$T"/burst/*.code; }
for i in $(seq 1 160); do
    (curl -s -o "$T/burst/$i" -w '%{http_code}' -u 1003:16180 --data-binary @"$T/carol.b64" \
        "$URL/.well-known/est/simpleenroll" >"$T/burst/$i.code" 2>/dev/null) &
    if [ "$i" = 80 ]; then
        for _ in $(seq 1 200); do served && break; sleep 0.05; done
        kill -9 "$PID"; wait "$PID" 2>/dev/null
    fi
done
wait 2>/dev/null
start || { finish; exit 1; }
got=0; missing=0
for f in "$T"/burst/*.code; do
    [ "$(cat "$f")" = 200 ] || continue
    got=$((got + 1))
    serial=$(est_cert "${f%.code}" | openssl x509 -noout -serial | cut -d= -f2)
    "$CTL" "${C[@]}" cert show "$serial" >/dev/null 2>&1 || missing=$((missing + 1))
done
if [ "$got" -gt 0 ]; then ok; else bad "no enrollment succeeded before kill -9"; fi
same "every served serial is in the store after kill -9 ($got served)" "$missing" 0
stop
[ -n "${KEEP:-}" ] && cp -r "$T" /tmp/keep-it; finish
