#!/usr/bin/env bash
# Revocation (issue 15) against real clients and a throwaway PostgreSQL: certprovctl cert revoke /
# unrevoke, user revoke-certs / disable / enable / del; a revoked certificate cannot renew (curl
# --cert over tls_listen) and a disabled user can neither sign in nor renew; the revocation
# reaches the pool's user_certificates row (revoked_at, revocation_reason) exactly once, also
# across a pool outage and a kill -9 of certprovd between the revocation and its publication; a
# lifted certificateHold clears the row again; a table of the earlier layout is migrated.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
TPORT=$(free_port) || exit 1
cat >"$T/certprov.ini" <<INI
[server]
name = localhost
listen = 127.0.0.1:$PORT
tls_listen = 127.0.0.1:$TPORT
workers = 2
[store]
path = store
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0
[pool.pg1]
store = $PG_URL
[revocation]
crl_min_interval_s = 1
crl_validity_h = 2
ocsp_url = http://localhost:$PORT/CertProv/ocsp
INI
C=(-c "$T/certprov.ini")
PID=""
trap 'kill -9 $PID 2>/dev/null; pg_cleanup; rm -rf "$T"' EXIT
# The table as an earlier version created it: the publisher adds the revocation columns.
psql_q "CREATE TABLE user_certificates (serial text PRIMARY KEY, sip_uri text NOT NULL,
    device_id text, not_before timestamptz NOT NULL, not_after timestamptz NOT NULL,
    der bytea NOT NULL, issued_by text NOT NULL, issued_at timestamptz NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now())"
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pg1 --phone +14255550100
check "add bob" add 31415 --uri sip:bob@example.com --pool pg1 --phone +14255550101
check "add carol" add 16180 --uri sip:carol@example.com --pool pg1 --phone +14255550102
CA=$T/store/chain.pem
URL="https://localhost:$TPORT"
start() {
    "$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd did not start: $(tail -5 "$T/daemon.log")"
    return 1
}
start || { finish; exit 1; }
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds, polling every 0.1 s
    local n=$(($1 * 10)); shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
csr() { # csr NAME CN: key NAME.key, base64 DER CSR NAME.b64
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$1.key" 2>/dev/null
    openssl req -new -key "$T/$1.key" -subj "/CN=$2" -outform DER 2>/dev/null | base64 -w 64 \
        >"$T/$1.b64"
}
est() { # est PATH OUT CURL-ARGS...: prints the status
    local p=$1 o=$2
    shift 2
    curl -s --cacert "$CA" -o "$o" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
        "$@" "$URL/.well-known/est/$p"
}
p7pem() { base64 -d "$1" | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509; }
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | sed 's/^0*//'; }
enroll() { # enroll NAME PHONE:PIN CN: NAME.crt
    csr "$1" "$3"
    same "$1 enrolls" "$(est simpleenroll "$T/$1.p7" -u "$2" --data-binary @"$T/$1.b64")" 200
    p7pem "$T/$1.p7" >"$T/$1.crt"
}
renew() { # renew CERT: prints the status of a renewal with NAME.crt/NAME.key (headers: rNAME.h)
    csr "r$1" "$2"
    est simplereenroll "$T/r$1.p7" --cert "$T/$1.crt" --key "$T/$1.key" --data-binary @"$T/r$1.b64" \
        -D "$T/r$1.h"
}
row() { psql_q "SELECT coalesce(extract(epoch FROM revoked_at)::bigint::text, 'NULL') || '|' ||
    coalesce(revocation_reason, 'NULL') FROM user_certificates WHERE serial = '$1'"; }
row_is() { [ "$(row "$1")" = "$2" ]; }
reason_is() { local r; r=$(row "$1"); [ "${r#*|}" = "$2" ] && [ "${r%%|*}" != NULL ]; }

enroll a1 +14255550100:27182 alice@example.com
enroll a2 +14255550100:27182 alice@example.com
enroll b1 +14255550101:31415 bob@example.com
S1=$(serial "$T/a1.crt")
S2=$(serial "$T/a2.crt")
SB=$(serial "$T/b1.crt")
check "rows published, the table migrated" wait_for 3 row_is "$S1" "NULL|NULL"
same "the migration added both columns" "$(psql_q "SELECT count(*) FROM information_schema.columns
    WHERE table_name = 'user_certificates' AND column_name IN ('revoked_at', 'revocation_reason')")" 2
same "a1 renews before the revocation" "$(renew a1 alice@example.com)" 200

# ---- cert revoke: durable, refused for renewal, published once ----
expect_exit 2 "--reason must be one of keyCompromise" "bad reason" \
    "$CTL" "${C[@]}" cert revoke "$S1" --reason lost
expect_exit 2 "not a serial" "bad serial" "$CTL" "${C[@]}" cert revoke xyz
expect_exit 1 "no such certificate" "unknown serial" "$CTL" "${C[@]}" cert revoke 1234ABCD
expect_exit 2 "needs a serial" "no serial" "$CTL" "${C[@]}" cert revoke
check "cert revoke a1 keyCompromise" "$CTL" "${C[@]}" cert revoke "$(echo "$S1" | tr A-F a-f)" \
    --reason keyCompromise
has "revoke says what it did" "$T/out" "revoked serial $S1 at .* \(reason keyCompromise\)"
check "cert show a1" "$CTL" "${C[@]}" cert show "$S1"
has "cert show says revoked, when and why" "$T/out" "^revocation: +revoked at .* \(reason keyCompromise\)"
check "cert show a1 --json" "$CTL" "${C[@]}" cert show "$S1" --json
has "cert show --json: revoked" "$T/out" '"revocation":"revoked","revoked_at":"[0-9T:Z-]+","revocation_reason":"keyCompromise"'
t1=$(date +%s)
same "a revoked certificate cannot renew: 401" "$(renew a1 alice@example.com)" 401
has "the refusal says revoked" "$T/ra1.p7" "revoked"
has "the reason token is cert_revoked" "$T/ra1.h" 'X-Ms-diagnostics: .*;token="cert_revoked"' 
same "alice's other certificate still renews" "$(renew a2 alice@example.com)" 200
check "the revocation reaches PostgreSQL" wait_for 3 reason_is "$S1" keyCompromise
at=$(row "$S1" | cut -d'|' -f1)
[ "$at" -ge $((t1 - 5)) ] && [ "$at" -le "$t1" ] && ok || bad "revoked_at $at not around $t1"
check "revoking again changes nothing" "$CTL" "${C[@]}" cert revoke "$S1" --reason superseded
has "already revoked" "$T/out" "already revoked .* \(reason keyCompromise\)"
same "the row keeps the first reason" "$(row "$S1")" "$at|keyCompromise"
expect_exit 1 "only a certificateHold can be lifted" "unrevoke a final revocation" \
    "$CTL" "${C[@]}" cert unrevoke "$S1"
same "one row for the serial" "$(psql_q "SELECT count(*) FROM user_certificates WHERE serial = '$S1'")" 1

# ---- the CRL: signed by the issuing CA, lists the revocation with its reason ----
crl() { # crl OUT: GET /CertProv/crl (DER) into OUT.der and OUT.pem; prints the content type
    curl -s -o "$T/$1.der" -w '%{content_type}' "http://127.0.0.1:$PORT/CertProv/crl"
    openssl crl -inform DER -in "$T/$1.der" -out "$T/$1.pem" 2>/dev/null
}
crl_lists() { crl c >/dev/null; openssl crl -in "$T/c.pem" -noout -text | grep -q "Serial Number: 0*$1\$"; }
crl_lacks() { crl c >/dev/null; ! openssl crl -in "$T/c.pem" -noout -text | grep -q "Serial Number: 0*$1\$"; }
check "the CRL lists a1 within crl_min_interval_s" wait_for 5 crl_lists "$S1"
same "CRL content type" "$(crl c1)" "application/pkix-crl"
check "openssl crl -verify against the issuing CA" openssl crl -in "$T/c1.pem" -noout \
    -CAfile "$T/store/ca/issuing.crt"
has "signature verified" "$T/err" "verify OK"
openssl crl -in "$T/c1.pem" -noout -text >"$T/c1.txt"
has "CRL v2" "$T/c1.txt" "Version 2"
has "CRL reason keyCompromise" "$T/c1.txt" "Key Compromise"
has "CRL number" "$T/c1.txt" "X509v3 CRL Number"
has "CRL authority key identifier" "$T/c1.txt" "X509v3 Authority Key Identifier"
lu=$(date -u -d "$(openssl crl -in "$T/c1.pem" -noout -lastupdate | cut -d= -f2)" +%s)
nu=$(date -u -d "$(openssl crl -in "$T/c1.pem" -noout -nextupdate | cut -d= -f2)" +%s)
same "nextUpdate = thisUpdate + crl_validity_h" "$((nu - lu))" 7200
cat "$T/store/chain.pem" >"$T/chain+crl.pem"
expect_exit 2 "certificate revoked" "openssl verify -crl_check: a1 revoked" \
    openssl verify -crl_check -CRLfile "$T/c1.pem" -CAfile "$T/store/chain.pem" "$T/a1.crt"
check "openssl verify -crl_check: a2 good" \
    openssl verify -crl_check -CRLfile "$T/c1.pem" -CAfile "$T/store/chain.pem" "$T/a2.crt"
openssl x509 -in "$T/a2.crt" -noout -ext crlDistributionPoints,authorityInfoAccess >"$T/ext"
has "issued certificates carry the CRL URL" "$T/ext" "URI:http://localhost/CertProv/crl"
has "issued certificates carry the OCSP URL" "$T/ext" "OCSP - URI:http://localhost:$PORT/CertProv/ocsp"
n1=$(openssl crl -in "$T/c1.pem" -noout -crlnumber | cut -d= -f2)

# ---- OCSP: openssl ocsp, CA-signed responses, nonces, the cache, bad requests ----
OCSP_URL="http://127.0.0.1:$PORT/CertProv/ocsp"
ocsp() { # ocsp ARGS...: openssl ocsp against certprovd; output in $T/o.out, exit status returned
    openssl ocsp -issuer "$T/store/ca/issuing.crt" -CAfile "$T/store/chain.pem" -url "$OCSP_URL" \
        "$@" >"$T/o.out" 2>&1
}
check "ocsp a1 (nonce)" ocsp -cert "$T/a1.crt"
has "a1: revoked" "$T/o.out" "a1.crt: revoked"
has "a1: reason keyCompromise" "$T/o.out" "Reason: keyCompromise"
has "the response verifies against the CA" "$T/o.out" "Response verify OK"
check "ocsp a1 without a nonce" ocsp -cert "$T/a1.crt" -no_nonce
has "a1: revoked (no nonce)" "$T/o.out" "a1.crt: revoked"
check "ocsp a2 good" ocsp -cert "$T/a2.crt"
has "a2: good" "$T/o.out" "a2.crt: good"
has "a2: verified" "$T/o.out" "Response verify OK"
check "ocsp a2 good, from the cache" ocsp -cert "$T/a2.crt" -no_nonce
check "ocsp a2 good, from the cache again" ocsp -cert "$T/a2.crt" -no_nonce
has "a2: good (cached)" "$T/o.out" "a2.crt: good"
check "ocsp never-issued serial" ocsp -serial 0x1234ABCD
has "unknown" "$T/o.out" "0x1234ABCD: unknown"
check "ocsp two certificates in one request" ocsp -cert "$T/a1.crt" -cert "$T/a2.crt"
has "both answered: a1" "$T/o.out" "a1.crt: revoked"
has "both answered: a2" "$T/o.out" "a2.crt: good"
check "ocsp with -sha256 CertIDs" ocsp -sha256 -cert "$T/a2.crt"
has "a2 good (SHA-256 CertID)" "$T/o.out" "a2.crt: good"
# GET /CertProv/ocsp/{url-encoded base64} (RFC 6960 A.1)
openssl ocsp -issuer "$T/store/ca/issuing.crt" -cert "$T/a1.crt" -no_nonce -reqout "$T/req.der" >/dev/null 2>&1
b64=$(base64 -w0 "$T/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
same "GET ocsp" "$(curl -s -o "$T/get.der" -w '%{http_code} %{content_type}' "$OCSP_URL/$b64")" \
    "200 application/ocsp-response"
check "GET response parses and verifies" openssl ocsp -respin "$T/get.der" -issuer "$T/store/ca/issuing.crt" \
    -CAfile "$T/store/chain.pem" -reqin "$T/req.der" -resp_text
has "GET: revoked" "$T/out" "Cert Status: revoked"
# Bad requests: the right OCSP status inside an HTTP 200, never a crash.
ocsp_status() { # ocsp_status BODY-FILE [GET-TAIL]: the responseStatus byte of the answer, as hex
    if [ $# = 2 ]; then curl -s -o "$T/bad.der" "$OCSP_URL/$2"
    else curl -s -o "$T/bad.der" -H 'Content-Type: application/ocsp-request' --data-binary @"$1" "$OCSP_URL"; fi
    xxd -p "$T/bad.der"
}
head -c 300 /dev/urandom >"$T/garbage"
same "garbage: malformedRequest" "$(ocsp_status "$T/garbage")" 30030a0101
head -c 5000 /dev/zero >"$T/big"
same "oversized: malformedRequest" "$(ocsp_status "$T/big")" 30030a0101
head -c "$(($(stat -c %s "$T/req.der") - 3))" "$T/req.der" >"$T/trunc"
same "truncated: malformedRequest" "$(ocsp_status "$T/trunc")" 30030a0101
same "GET not base64: malformedRequest" "$(ocsp_status - '%ZZ!!')" 30030a0101
args=()
for i in $(seq 1 17); do args+=(-serial "0x$i"); done
ocsp "${args[@]}"
has "17 serials: malformedRequest" "$T/o.out" "Responder Error: malformedrequest \(1\)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
    -subj "/CN=Other CA" -days 1 -out "$T/other.crt" 2>/dev/null
openssl ocsp -issuer "$T/other.crt" -serial 0x01 -url "$OCSP_URL" >"$T/o.out" 2>&1
has "another CA: unauthorized" "$T/o.out" "Responder Error: unauthorized \(6\)"
check "certprovd still serves" curl -sf "http://127.0.0.1:$PORT/healthz"

# ---- certificateHold, lifted ----
check "hold a2" "$CTL" "${C[@]}" cert revoke "$S2" --reason certificateHold
same "a held certificate cannot renew" "$(renew a2 alice@example.com)" 401
check "the hold is in the CRL" wait_for 5 crl_lists "$S2"
check "ocsp: the hold at once, not the cached good" ocsp -cert "$T/a2.crt" -no_nonce
has "a2 on hold" "$T/o.out" "Reason: certificateHold"
has "with its reason" <(openssl crl -in "$T/c.pem" -noout -text) "Certificate Hold"
check "the hold reaches PostgreSQL" wait_for 3 reason_is "$S2" certificateHold
check "cert unrevoke a2" "$CTL" "${C[@]}" cert unrevoke "$S2"
same "a lifted hold renews again" "$(renew a2 alice@example.com)" 200
check "the lifted hold clears the row" wait_for 3 row_is "$S2" "NULL|NULL"
check "the lifted hold leaves the CRL" wait_for 5 crl_lacks "$S2"
check "ocsp: the lifted hold is good again at once (cache flushed)" ocsp -cert "$T/a2.crt" -no_nonce
has "a2 good again" "$T/o.out" "a2.crt: good"
check "a1 stays in the CRL" crl_lists "$S1"
n2=$(openssl crl -in "$T/c.pem" -noout -crlnumber | cut -d= -f2)
[ $((n2)) -gt $((n1)) ] && ok || bad "CRL number did not grow: $n1 -> $n2"
expect_exit 1 "is not revoked" "unrevoke a good certificate" "$CTL" "${C[@]}" cert unrevoke "$S2"

# ---- user disable / enable ----
check "disable bob" "$CTL" "${C[@]}" user disable sip:bob@example.com
csr bx bob@example.com
same "a disabled user's PIN does not sign in" \
    "$(est simpleenroll "$T/bx.p7" -u +14255550101:31415 --data-binary @"$T/bx.b64")" 401
same "a disabled user cannot renew: 403 UserDisabled" "$(renew b1 bob@example.com)" 403
has "the reason token is user_disabled" "$T/rb1.h" 'X-Ms-diagnostics: .*;token="user_disabled"'
# [MS-OCAUTHWS] §3.2.4.1: 28000 "User is not SIP enabled", 403, fault wsse:FailedAuthentication
has "the spec's 28000 for a disabled user" "$T/rb1.h" \
    '^X-Ms-diagnostics: 28000;source="[^"]*";reason="User is not SIP enabled[^"]*";fault="wsse:FailedAuthentication";token="user_disabled"' 
has "the renewal refusal says disabled" "$T/rb1.p7" "disabled"
check "enable bob" "$CTL" "${C[@]}" user enable sip:bob@example.com
same "bob signs in again" \
    "$(est simpleenroll "$T/bx.p7" -u +14255550101:31415 --data-binary @"$T/bx.b64")" 200
same "bob renews again" "$(renew b1 bob@example.com)" 200
check "disable --revoke bob" "$CTL" "${C[@]}" user disable sip:bob@example.com --revoke \
    --reason affiliationChanged
has "disable --revoke counts" "$T/out" "revoked [0-9]+ certificates of sip:bob@example.com \(reason affiliationChanged\)"
bob_revoked() { [ "$(psql_q "SELECT count(*) FROM user_certificates WHERE sip_uri = 'sip:bob@example.com'
    AND revocation_reason = 'affiliationChanged'")" = "$(psql_q "SELECT count(*) FROM user_certificates
    WHERE sip_uri = 'sip:bob@example.com'")" ]; }
check "all of bob's rows revoked in PostgreSQL" wait_for 3 bob_revoked
expect_exit 1 "no such user" "disable an unknown user" "$CTL" "${C[@]}" user disable sip:x@example.com

# ---- user revoke-certs, user del ----
enroll c1 +14255550102:16180 carol@example.com
enroll c2 +14255550102:16180 carol@example.com
check "user revoke-certs carol" "$CTL" "${C[@]}" user revoke-certs sip:carol@example.com --reason superseded
has "two of carol's" "$T/out" "revoked 2 certificates of sip:carol@example.com \(reason superseded\)"
check "again: none left" "$CTL" "${C[@]}" user revoke-certs sip:carol@example.com
has "none left" "$T/out" "revoked 0 certificates"
enroll c3 +14255550102:16180 carol@example.com
check "user del carol --keep-certs" "$CTL" "${C[@]}" user del sip:carol@example.com --keep-certs
has "kept" "$T/out" "its certificates stay valid"
S3=$(serial "$T/c3.crt")
check "c3 published, not revoked" wait_for 3 row_is "$S3" "NULL|NULL"
check "re-add carol" add 16180 --uri sip:carol@example.com --pool pg1 --phone +14255550102
enroll c4 +14255550102:16180 carol@example.com
check "user del carol revokes" "$CTL" "${C[@]}" user del sip:carol@example.com
has "user del revokes both" "$T/out" "revoked 2 certificates of sip:carol@example.com \(reason cessationOfOperation\)"
check "c4 revoked in PostgreSQL" wait_for 3 reason_is "$(serial "$T/c4.crt")" cessationOfOperation

# ---- exactly once across a pool outage and a kill -9 before publication ----
enroll a3 +14255550100:27182 alice@example.com
S4=$(serial "$T/a3.crt")
check "a3 published" wait_for 3 row_is "$S4" "NULL|NULL"
pg_stop
check "revoke while the pool is down" "$CTL" "${C[@]}" cert revoke "$S4" --reason keyCompromise
same "refused for renewal at once, pool or not" "$(renew a3 alice@example.com)" 401
check "outbox holds the revocation" "$CTL" "${C[@]}" outbox list --pool pg1
has "one entry for a3" "$T/out" "serial=$S4"
kill -9 "$PID"
wait "$PID" 2>/dev/null
pg_start
start || { finish; exit 1; }
check "the revocation published after the outage and the kill (backoff)" wait_for 20 reason_is "$S4" keyCompromise
same "exactly one row for a3" "$(psql_q "SELECT count(*) FROM user_certificates WHERE serial = '$S4'")" 1
same "no serial doubled" "$(psql_q "SELECT count(DISTINCT serial) FROM user_certificates")" \
    "$(psql_q "SELECT count(*) FROM user_certificates")"
empty_outbox() { "$CTL" "${C[@]}" outbox list --pool pg1 | grep -q . && return 1; return 0; }
check "the outbox drains" wait_for 5 empty_outbox

# ---- a CRL larger than a response slot (max_response_bytes, 64 KiB): sent from a shared body ----
check "add dave" add 27183 --uri sip:dave@example.com --pool pg1 --phone +14255550103
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/d.key" \
    -subj /CN=dave@example.com -outform DER 2>/dev/null | base64 -w0 >"$T/d.b64"
for _ in $(seq 1 2100); do
    printf 'url = "http://127.0.0.1:%s/.well-known/est/simpleenroll"\noutput = "/dev/null"\n' "$PORT"
done >"$T/urls.cfg"
curl -s -u +14255550103:27183 --data-binary @"$T/d.b64" -K "$T/urls.cfg" -w '%{http_code}\n' |
    sort | uniq -c | awk '{print $2 "x" $1}' >"$T/codes"
same "2,100 enrollments of dave on keep-alive connections" "$(cat "$T/codes")" "200x2100"
check "revoke dave's certificates" "$CTL" "${C[@]}" user revoke-certs sip:dave@example.com
big_crl() {
    curl -s --cacert "$CA" -o "$T/big.crl" "$URL/CertProv/crl" &&
        [ "$(openssl crl -inform DER -in "$T/big.crl" -noout -text | grep -c 'Serial Number')" -ge 2100 ]
}
check "the CRL with 2,100 more entries is rebuilt and served over TLS" wait_for 10 big_crl
[ "$(stat -c %s "$T/big.crl")" -gt 65536 ] && ok || bad "the CRL is not beyond 64 KiB: $(stat -c %s "$T/big.crl")"
check "the large CRL verifies" openssl crl -inform DER -in "$T/big.crl" -CAfile "$CA" -noout
curl -s -o "$T/big-plain.crl" "http://127.0.0.1:$PORT/CertProv/crl"
check "the same bytes over plain HTTP" cmp "$T/big.crl" "$T/big-plain.crl"

# ---- a delegated OCSP signer: certprovctl ca ocsp-signer, used from the next start ----
expect_exit 2 "--days must be" "ocsp-signer --days 0" "$CTL" "${C[@]}" ca ocsp-signer --days 0
check "ca ocsp-signer" "$CTL" "${C[@]}" ca ocsp-signer --days 7
has "says where and until when" "$T/out" "ca/ocsp.crt .*valid until 20"
same "the signer key is 0600" "$(stat -c %a "$T/store/ca/ocsp.key")" 600
openssl x509 -in "$T/store/ca/ocsp.crt" -noout -text >"$T/signer.txt"
has "signer: OCSP Signing" "$T/signer.txt" "OCSP Signing"
has "signer: ocsp-nocheck" "$T/signer.txt" "OCSP No Check"
check "signer: issued by the issuing CA" openssl verify -CAfile "$T/store/chain.pem" "$T/store/ca/ocsp.crt"
kill -TERM "$PID"
wait "$PID"
start || { finish; exit 1; }
has "certprovd loaded the delegated signer" "$T/daemon.log" "ocsp_signer loaded=delegated"
check "ocsp a1 via the delegated signer" ocsp -cert "$T/a1.crt" -resp_text
has "delegated: revoked" "$T/o.out" "a1.crt: revoked"
has "delegated: verifies (signer checked against the CA)" "$T/o.out" "Response verify OK"
has "delegated: the signer's certificate is in the response" "$T/o.out" "Subject: CN ?= ?certprov OCSP signer"
check "ocsp a2 via the delegated signer, no nonce" ocsp -cert "$T/a2.crt" -no_nonce
has "delegated: a2 good" "$T/o.out" "a2.crt: good"
has "delegated: a2 verifies" "$T/o.out" "Response verify OK"
kill -TERM "$PID"
wait "$PID"
same "SIGTERM exit" $? 0
same "no sanitizer report in the daemon's log" \
    "$(grep -cE 'runtime error|AddressSanitizer|LeakSanitizer' "$T/daemon.log")" 0
finish
