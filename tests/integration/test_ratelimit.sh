#!/usr/bin/env bash
# The per-user issuance limit (hardening item 11) against a real certprovd with the default
# [profile] max_certs_per_user_per_day (20): a user's 21st enrollment within 24 h is 429
# RateLimited with Retry-After (about a day: the first of the 20 was just issued), on EST and
# SOAP; `certprovctl user show` prints the count of the last 24 hours; offline issuance by the
# operator is not limited; a burst of concurrent enrollments of one user gets exactly 20
# certificates (the writer decides, in queue order); another user is not affected.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
LIMIT=20 # the default
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$PORT
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --ext 1001
check "add bob" add 31415 --uri sip:bob@example.com --pool pool1 --ext 1002
check "add carol" add 16180 --uri sip:carol@example.com --pool pool1 --ext 1003
"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
check "certprovd started" curl -sf "$URL/healthz"
for u in alice bob carol; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$u.key" 2>/dev/null
    openssl req -new -key "$T/$u.key" -subj "/CN=$u@example.com" -outform DER -out "$T/$u.der" 2>/dev/null
    base64 -w 64 "$T/$u.der" >"$T/$u.b64"
done
# est LOGIN:PIN USER OUT: one EST enrollment with USER's CSR; prints the status.
est() {
    curl -s -o "$3" -D "$3.h" -w '%{http_code}' -u "$1" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/$2.b64" "$URL/.well-known/est/simpleenroll"
}

codes=""
for i in $(seq 1 "$LIMIT"); do codes="$codes$(est 1001:27182 alice "$T/a$i") "; done
same "alice's first $LIMIT enrollments" "$codes" "$(for _ in $(seq 1 "$LIMIT"); do printf '200 '; done)"
same "alice's next one is refused" "$(est 1001:27182 alice "$T/over")" 429
has "RateLimited" "$T/over" '^RateLimited: '
has "X-Ms-diagnostics 28911" "$T/over.h" '^X-Ms-diagnostics: 28911;source="certprov-test.example.com";reason="'
ra=$(grep -i '^Retry-After:' "$T/over.h" | tr -dc '0-9')
if [ -n "$ra" ] && [ "$ra" -gt 86000 ] && [ "$ra" -le 86400 ]; then ok; else
    bad "Retry-After '${ra}': want the time until the oldest of the $LIMIT is 24 h old (about 86400 s)"; fi
# SOAP: the same refusal in the SOAP error body.
cat >"$T/soap.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" Entity="alice@example.com">
<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512/">
<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>
<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ValueType="http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10">
$(cat "$T/alice.b64")
</wsse:BinarySecurityToken>
</wst:RequestSecurityToken></GetAndPublishCert></s:Body></s:Envelope>
XML
same "SOAP is refused too" "$(curl -s -o "$T/s" -D "$T/s.h" -w '%{http_code}' -u 1001:27182 \
    -H 'Content-Type: text/xml' --data-binary @"$T/soap.xml" \
    "$URL/CertProv/CertProvisioningService.svc")" 429
has "SOAP Code RateLimited" "$T/s" '<Code>RateLimited</Code>'
has "SOAP Retry-After" "$T/s.h" '^Retry-After: [0-9]+'
same "another user is not affected" "$(est 1002:31415 bob "$T/b1")" 200

check "user show" "$CTL" "${C[@]}" user show sip:alice@example.com
has "user show: certificates" "$T/out" "^certificates: +$LIMIT$"
has "user show: the last 24 hours" "$T/out" "^last_24h: +$LIMIT \\(limit $LIMIT a day\\)$"
# Offline issuance by the operator is not limited (and counts).
openssl req -new -key "$T/alice.key" -subj "/CN=alice@example.com" -out "$T/alice.csr" 2>/dev/null
check "offline issuance past the limit" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com \
    --csr "$T/alice.csr" --out "$T/offline.pem"
check "user show after it" "$CTL" "${C[@]}" user show sip:alice@example.com
has "user show counts it" "$T/out" "^last_24h: +$((LIMIT + 1)) \\(limit $LIMIT a day\\)$"
same "alice is still refused online" "$(est 1001:27182 alice "$T/over2")" 429

# A burst: 30 concurrent enrollments of carol; exactly LIMIT get a certificate.
mkdir -p "$T/burst"
pids=()
for i in $(seq 1 30); do (est 1003:16180 carol "$T/burst/$i"; echo) >"$T/burst/$i.code" & pids+=($!); done
wait "${pids[@]}"
same "a burst of 30: $LIMIT certificates, the rest RateLimited" \
    "$(cat "$T"/burst/*.code | sort | uniq -c | tr -s ' ' | tr '\n' ';')" " $LIMIT 200; $((30 - LIMIT)) 429;"
"$CTL" "${C[@]}" cert list --uri sip:carol@example.com >"$T/carol.list"
same "carol's stored certificates" "$(wc -l <"$T/carol.list")" "$LIMIT"
curl -s "$URL/metrics" >"$T/metrics"
has "metrics count RateLimited" "$T/metrics" \
    "^certprov_requests_total\\{route=\"est_simpleenroll\",code=\"RateLimited\"\\} $((1 + 1 + 30 - LIMIT))$"
kill -TERM "$PID"; wait "$PID"; same "SIGTERM exit status" $? 0
finish
