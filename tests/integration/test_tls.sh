#!/usr/bin/env bash
# TLS on tls_listen against real clients: curl, openssl s_client, gnutls-cli (an independent TLS
# stack), sslscan (the accepted protocol and suite list), and tls_tool.py (Python's ssl: a
# handshake byte by byte, PROXY v2 before TLS, a ClientHello flood, bad records). Session
# resumption by ticket (TLS 1.2 and 1.3), across two certprovd that share a ticket-key file and
# across a rotation; renewal by client certificate over EST and SOAP, and every way it must fail.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
TOOL="python3 $(dirname "$0")/tls_tool.py"
PORT=$(free_port) || exit 1
TPORT=$(free_port) || exit 1
cat >"$T/certprov.ini" <<INI
[server]
name = localhost
listen = 127.0.0.1:$PORT
tls_listen = 127.0.0.1:$TPORT
workers = 2
handshake_timeout_s = 1
max_handshakes = 4
ticket_keys = tickets.keys
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100
check "add bob" add 31415 --uri sip:bob@example.com --pool pool1 --phone +14255550101
CA=$T/store/chain.pem
URL="https://localhost:$TPORT"

# A ticket-key file is required when configured: certprovd says how to make one.
expect_exit 1 "ticket-key file .* certprovctl tls ticket-key rotate" "no ticket-key file" \
    "$D" "${C[@]}" --check
check "ticket-key rotate" "$CTL" "${C[@]}" tls ticket-key rotate
same "ticket-key file mode" "$(stat -c %a "$T/tickets.keys")" 600

start() { # start CONFIG LOG: a certprovd in the background, its PID in $PID
    "$D" -c "$1" >>"$2" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$(grep '^listen' "$1" | sed 's/.*://')/healthz" \
        >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
start "$T/certprov.ini" "$T/daemon.log" || bad "certprovd started"
PIDS=$PID
trap 'kill -9 $PIDS 2>/dev/null; rm -rf "$T"' EXIT
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# ---- the chain and the clients ----
check "curl verifies the chain against the root" curl -sf --cacert "$CA" "$URL/healthz"
check "plain listen still serves" curl -sf "http://127.0.0.1:$PORT/healthz"
curl -s --cacert "$CA" -o /dev/null -w '%{http_version}' "$URL/healthz" >"$T/v"
same "ALPN http/1.1" "$(cat "$T/v")" "1.1"
echo | openssl s_client -connect "127.0.0.1:$TPORT" -servername localhost -CAfile "$CA" \
    -verify_return_error >"$T/sc" 2>&1
has "openssl s_client verifies" "$T/sc" "Verify return code: 0 \(ok\)"
gnutls-cli --x509cafile "$CA" -p "$TPORT" localhost </dev/null >"$T/gc" 2>&1
has "gnutls-cli verifies the chain" "$T/gc" "The certificate is trusted"
has "gnutls-cli completes the handshake" "$T/gc" "Handshake was completed"
expect_exit 1 "" "TLS 1.1 refused" openssl s_client -connect "127.0.0.1:$TPORT" -tls1_1 \
    </dev/null
expect_exit 1 "" "TLS 1.0 refused" openssl s_client -connect "127.0.0.1:$TPORT" -tls1 </dev/null
for c in AES128-GCM-SHA256 AES128-SHA ECDHE-ECDSA-AES128-SHA ECDHE-RSA-AES128-SHA256; do
    expect_exit 1 "" "TLS 1.2 suite $c (RSA key exchange or CBC) refused" openssl s_client \
        -connect "127.0.0.1:$TPORT" -tls1_2 -cipher "$c" </dev/null
done
if command -v sslscan >/dev/null; then
    sslscan --no-colour --no-heartbleed --no-groups "127.0.0.1:$TPORT" >"$T/scan" 2>&1
    has "sslscan: TLS 1.2 on" "$T/scan" "^TLSv1.2 +enabled"
    has "sslscan: TLS 1.3 on" "$T/scan" "^TLSv1.3 +enabled"
    for v in SSLv2 SSLv3 TLSv1.0 TLSv1.1; do has "sslscan: $v off" "$T/scan" "^$v +disabled"; done
    has "sslscan: no renegotiation" "$T/scan" "renegotiation not supported"
    # Every accepted suite is TLS 1.3's or ECDHE with GCM or ChaCha20-Poly1305.
    grep -E "^(Preferred|Accepted)" "$T/scan" | awk '{print $2, $5}' >"$T/suites"
    same "sslscan: suites accepted" "$(grep -cvE '^TLSv1.3 TLS_|^TLSv1.2 ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$' "$T/suites")" 0
    same "sslscan: six suites" "$(wc -l <"$T/suites")" 6
else
    bad "sslscan is missing (deps/packages.txt)"
fi

# ---- resumption ----
resume() { # resume NAME PORT-OUT PORT-IN [-tls1_2]: New then Reused?
    (sleep 0.3) | openssl s_client -connect "127.0.0.1:$2" -CAfile "$CA" ${4:-} \
        -sess_out "$T/$1.sess" >/dev/null 2>&1
    (sleep 0.3) | openssl s_client -connect "127.0.0.1:$3" -CAfile "$CA" ${4:-} \
        -sess_in "$T/$1.sess" 2>/dev/null | grep -E '^(New|Reused)' | cut -d, -f1
}
full0=$(metric 'certprov_tls_handshakes_total{result="full"}')
res0=$(metric 'certprov_tls_handshakes_total{result="resumed"}')
same "TLS 1.3 session resumes" "$(resume t13 "$TPORT" "$TPORT")" Reused
same "TLS 1.2 ticket resumes" "$(resume t12 "$TPORT" "$TPORT" -tls1_2)" Reused
same "resumed handshakes counted" "$(metric 'certprov_tls_handshakes_total{result="resumed"}')" \
    $((res0 + 2))
same "full handshakes counted" "$(metric 'certprov_tls_handshakes_total{result="full"}')" \
    $((full0 + 2))

# A second appliance with its own store, sharing the ticket-key file: a session resumes there.
PORT2=$(free_port) || exit 1
TPORT2=$(free_port) || exit 1
sed -e "s/^listen = .*/listen = 127.0.0.1:$PORT2/" -e "s/^tls_listen = .*/tls_listen = 127.0.0.1:$TPORT2/" \
    -e "s/^path = store/path = store2/" -e "s|^ticket_keys = .*|ticket_keys = $T/tickets.keys|" \
    "$T/certprov.ini" >"$T/two.ini"
"$CTL" -c "$T/two.ini" ca init >/dev/null
start "$T/two.ini" "$T/two.log" || bad "second certprovd started"
PIDS="$PIDS $PID"
same "resumes on another appliance sharing the keys" "$(resume fleet "$TPORT" "$TPORT2")" Reused
# Rotation: the old key still opens tickets after one rotation (SIGHUP), not after two.
(sleep 0.3) | openssl s_client -connect "127.0.0.1:$TPORT" -CAfile "$CA" -sess_out "$T/old.sess" \
    >/dev/null 2>&1
check "rotate" "$CTL" "${C[@]}" tls ticket-key rotate
kill -HUP $PIDS
sleep 0.3
has "reload logged" "$T/daemon.log" "tls_ticket_keys_loaded"
(sleep 0.3) | openssl s_client -connect "127.0.0.1:$TPORT" -CAfile "$CA" -sess_in "$T/old.sess" \
    2>/dev/null | grep -E '^(New|Reused)' | cut -d, -f1 >"$T/r1"
same "previous key still accepted after a rotation" "$(cat "$T/r1")" Reused
check "rotate again" "$CTL" "${C[@]}" tls ticket-key rotate
kill -HUP $PIDS
sleep 0.3
(sleep 0.3) | openssl s_client -connect "127.0.0.1:$TPORT" -CAfile "$CA" -sess_in "$T/old.sess" \
    2>/dev/null | grep -E '^(New|Reused)' | cut -d, -f1 >"$T/r2"
same "a key two rotations old is refused" "$(cat "$T/r2")" New
printf 'not a key file\n' >"$T/bad.keys"
chmod 600 "$T/bad.keys"
sed "s|^ticket_keys = .*|ticket_keys = $T/bad.keys|" "$T/certprov.ini" >"$T/bad.ini"
expect_exit 1 "bad.keys is damaged" "damaged ticket-key file refused" "$D" -c "$T/bad.ini" --check

# ---- enrollment over TLS, and renewal by client certificate ----
csr() { # csr NAME CN: key NAME.key, base64 DER CSR NAME.b64
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$1.key" 2>/dev/null
    openssl req -new -key "$T/$1.key" -subj "/CN=$2" -outform DER 2>/dev/null | base64 -w 64 \
        >"$T/$1.b64"
}
est() { # est PATH OUT CURL-ARGS...: POST the CSR given by --data-binary; prints the status
    local p=$1 o=$2
    shift 2
    curl -s --cacert "$CA" -o "$o" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
        "$@" "$URL/.well-known/est/$p"
}
p7pem() { base64 -d "$1" | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509; }
csr a alice@example.com
same "enroll over TLS with the PIN" \
    "$(est simpleenroll "$T/a.p7" -u +14255550100:27182 --data-binary @"$T/a.b64")" 200
p7pem "$T/a.p7" >"$T/a.crt"
check "issued certificate verifies" openssl verify -CAfile "$CA" -purpose sslclient "$T/a.crt"
csr a2 alice@example.com
same "simplereenroll with the certificate" \
    "$(est simplereenroll "$T/a2.p7" --cert "$T/a.crt" --key "$T/a.key" --data-binary @"$T/a2.b64")" 200
p7pem "$T/a2.p7" >"$T/a2.crt"
openssl x509 -in "$T/a2.crt" -noout -ext subjectAltName >"$T/san"
has "renewed certificate is alice's" "$T/san" "URI:sip:alice@example.com"
[ "$(openssl x509 -in "$T/a.crt" -noout -serial)" != "$(openssl x509 -in "$T/a2.crt" -noout -serial)" ] \
    && ok || bad "renewal returned the old serial"
same "simplereenroll without a certificate: 401" \
    "$(est simplereenroll "$T/o" --data-binary @"$T/a2.b64")" 401
same "simplereenroll over plain HTTP: 401" "$(curl -s -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/a2.b64" \
    "http://127.0.0.1:$PORT/.well-known/est/simplereenroll")" 401
same "simplereenroll ignores a PIN (certificate only)" \
    "$(est simplereenroll "$T/o" -u +14255550100:27182 --data-binary @"$T/a2.b64")" 401
csr bob bob@example.com
same "alice's certificate cannot renew bob: 403" \
    "$(est simplereenroll "$T/o" --cert "$T/a.crt" --key "$T/a.key" --data-binary @"$T/bob.b64")" 403
has "IdentityMismatch" "$T/o" "IdentityMismatch"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/n.key" 2>/dev/null
openssl req -new -key "$T/n.key" -subj "/O=nobody" -outform DER 2>/dev/null | base64 >"$T/n.b64"
same "simplereenroll with a CSR without the subject: 403" \
    "$(est simplereenroll "$T/o" --cert "$T/a.crt" --key "$T/a.key" --data-binary @"$T/n.b64")" 403
# A certificate of another CA that names alice.
openssl req -x509 -new -key "$T/a.key" -subj "/CN=alice@example.com" -days 30 \
    -addext "subjectAltName=URI:sip:alice@example.com" -addext "extendedKeyUsage=clientAuth" \
    -out "$T/forged.crt" 2>/dev/null
same "a certificate from another CA: 401" \
    "$(est simplereenroll "$T/o" --cert "$T/forged.crt" --key "$T/a.key" --data-binary @"$T/a2.b64")" 401
has "says which" "$T/o" "not issued by this appliance"
# An expired certificate of the issuing CA (openssl ca with explicit dates and its key).
mkdir -p "$T/eca"
: >"$T/eca/index.txt"
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
subjectAltName = URI:sip:alice@example.com
extendedKeyUsage = clientAuth
keyUsage = critical, digitalSignature
CNF
echo 01 >"$T/eca/serial"
openssl pkey -inform DER -in "$T/store/ca/issuing.key" -out "$T/eca/issuing.pem" 2>/dev/null ||
    cp "$T/store/ca/issuing.key" "$T/eca/issuing.pem"
openssl req -new -key "$T/a.key" -subj "/CN=alice@example.com" -out "$T/eca/old.csr" 2>/dev/null
openssl ca -batch -config "$T/eca/ca.cnf" -cert "$T/store/ca/issuing.crt" \
    -keyfile "$T/eca/issuing.pem" -startdate 20200101000000Z -enddate 20200201000000Z \
    -in "$T/eca/old.csr" -out "$T/expired.crt" >/dev/null 2>&1 || bad "make an expired certificate"
same "an expired certificate: 401" \
    "$(est simplereenroll "$T/o" --cert "$T/expired.crt" --key "$T/a.key" --data-binary @"$T/a2.b64")" 401
has "says expired" "$T/o" "expired"

# SOAP GetAndPublishCert without a PIN, with the certificate; and with another user's Entity.
soap() { # soap CSR-B64 ENTITY OUT CURL-ARGS...
    local b64=$1 entity=$2 out=$3
    shift 3
    cat >"$T/soap.xml" <<XML
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" DeviceId="{11111111-2222-3333-4444-555555555555}" Entity="$entity">
<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512">
<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>
<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>
<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ValueType="http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10" EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">$(tr -d '\n' <"$b64")</wsse:BinarySecurityToken>
</wst:RequestSecurityToken></GetAndPublishCert></s:Body></s:Envelope>
XML
    curl -s --cacert "$CA" -o "$out" -w '%{http_code}' -H 'Content-Type: text/xml' \
        -H 'SOAPAction: "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert"' \
        --data-binary @"$T/soap.xml" "$@" "$URL/CertProv/CertProvisioningService.svc"
}
csr s alice@example.com
same "SOAP renewal with the certificate, no PIN" \
    "$(soap "$T/s.b64" alice@example.com "$T/s.xml" --cert "$T/a.crt" --key "$T/a.key")" 200
has "SOAP answer holds a certificate" "$T/s.xml" "X509v3"
same "SOAP without PIN nor certificate: 401" "$(soap "$T/s.b64" alice@example.com "$T/o")" 401
same "SOAP renewal for another Entity: 403" \
    "$(soap "$T/s.b64" bob@example.com "$T/o" --cert "$T/a.crt" --key "$T/a.key")" 403
"$CTL" "${C[@]}" user del sip:bob@example.com >/dev/null 2>&1
csr b2 bob@example.com
printf '31415\n' | "$CTL" "${C[@]}" user add --uri sip:bob@example.com --pool pool1 \
    --phone +14255550101 --pin-stdin >/dev/null
same "bob enrolls" "$(est simpleenroll "$T/b.p7" -u +14255550101:31415 --data-binary @"$T/b2.b64")" 200
p7pem "$T/b.p7" >"$T/b.crt"
check "user del bob" "$CTL" "${C[@]}" user del sip:bob@example.com
same "a deleted user's certificate cannot renew: 401" \
    "$(est simplereenroll "$T/o" --cert "$T/b.crt" --key "$T/b2.key" --data-binary @"$T/b2.b64")" 401
has "says the user is gone" "$T/o" "no longer exists"
[ "$(metric certprov_tls_client_certificates_total)" -ge 5 ] && ok ||
    bad "client certificates counted: $(metric certprov_tls_client_certificates_total)"

# ---- bad input and bounds ----
fail0=$(metric 'certprov_tls_handshakes_total{result="failed"}')
quick() { # quick DESCRIPTION HEX: the server closes by itself, not at the handshake deadline
    local to
    to=$(metric certprov_connection_timeouts_total)
    same "$1: closed" "$($TOOL raw 127.0.0.1 "$TPORT" "$2")" closed
    same "$1: closed before the deadline" "$(metric certprov_connection_timeouts_total)" "$to"
}
quick "garbage (HTTP) instead of a ClientHello" 474554202f20485454502f312e310d0a0d0a
quick "an oversized record (65535 bytes announced)" 160301ffff0100
same "a truncated record: closed" "$($TOOL raw 127.0.0.1 "$TPORT" 1603010200010001fc0303 eof)" closed
to0=$(metric certprov_connection_timeouts_total)
t0=$(date +%s%N)
same "a stalled handshake: closed at the deadline" "$($TOOL raw 127.0.0.1 "$TPORT" "")" closed
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 800 ] && ok || bad "stalled handshake closed after $ms ms (deadline 1 s)"
same "the deadline counted" "$(metric certprov_connection_timeouts_total)" $((to0 + 1))
same "a handshake one byte per segment" "$($TOOL bytewise 127.0.0.1 "$TPORT" "$CA")" 200
sleep 0.2
fail1=$(metric 'certprov_tls_handshakes_total{result="failed"}')
same "bad handshakes counted" "$fail1" $((fail0 + 4))
# max_handshakes = 4 (2 per ring): a flood of connections that never finish their handshake
# gets refused connections, and the established one keeps being served.
same "ClientHello flood" "$($TOOL flood 127.0.0.1 "$TPORT" "$CA" 12)" "first=200 kept=200 new=refused"
[ "$(metric 'certprov_tls_handshakes_total{result="refused"}')" -gt 0 ] && ok ||
    bad "refused handshakes not counted"
sleep 1.5 # the stalled ones reach their deadline
check "handshakes served again after the flood" curl -sf --cacert "$CA" "$URL/healthz"

# ---- the server's own certificate renews without a restart ----
# A leaf of 100 days with 20 left (under the 30-day margin) put in place of the server's: SIGHUP
# (as the hourly check would) reissues it and new connections get the new one.
cat >"$T/eca/srv.cnf" <<CNF
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
unique_subject = no
[p]
commonName = supplied
[x]
subjectAltName = DNS:localhost
extendedKeyUsage = serverAuth
keyUsage = critical, digitalSignature
basicConstraints = critical, CA:FALSE
CNF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/eca/srv.key" 2>/dev/null
openssl req -new -key "$T/eca/srv.key" -subj "/CN=localhost" -out "$T/eca/srv.csr" 2>/dev/null
openssl ca -batch -config "$T/eca/srv.cnf" -cert "$T/store/ca/issuing.crt" \
    -keyfile "$T/eca/issuing.pem" -startdate "$(date -u -d '-80 days' +%Y%m%d%H%M%SZ)" \
    -enddate "$(date -u -d '+20 days' +%Y%m%d%H%M%SZ)" -in "$T/eca/srv.csr" -out "$T/eca/srv.crt" \
    >/dev/null 2>&1 || bad "make a 20-day server certificate"
{ openssl x509 -in "$T/eca/srv.crt"; cat "$T/store/ca/issuing.crt"; } >"$T/store/tls/server.crt"
openssl pkcs8 -topk8 -nocrypt -in "$T/eca/srv.key" -outform DER -out "$T/store/tls/server.key"
chmod 600 "$T/store/tls/server.key"
served() { echo | openssl s_client -connect "127.0.0.1:$TPORT" 2>/dev/null | openssl x509 -noout -serial; }
kill -HUP ${PIDS%% *}
sleep 0.5
has "the short-lived leaf was reissued on SIGHUP" "$T/daemon.log" "tls_reissued reason=.*expires in less than 30 days"
has "and loaded for new connections" "$T/daemon.log" "tls_certificate_loaded"
[ "$(served)" != "$(openssl x509 -in "$T/eca/srv.crt" -noout -serial)" ] && ok ||
    bad "the 20-day leaf is still served"
echo | openssl s_client -connect "127.0.0.1:$TPORT" 2>/dev/null | openssl x509 -noout -checkend \
    $((300 * 86400)) >/dev/null && ok || bad "the new leaf does not have a year"
check "the new leaf verifies" curl -sf --cacert "$CA" "$URL/healthz"

# ---- PROXY v2 in front of TLS ----
PPORT=$(free_port) || exit 1
PTPORT=$(free_port) || exit 1
sed -e "s/^listen = .*/listen = 127.0.0.1:$PPORT\nproxy_protocol = on/" \
    -e "s/^tls_listen = .*/tls_listen = 127.0.0.1:$PTPORT/" -e "s/^path = store2/path = store/" \
    "$T/two.ini" >"$T/proxy.ini"
sed -i "s/^path = store$/path = store3/" "$T/proxy.ini"
"$CTL" -c "$T/proxy.ini" ca init >/dev/null
printf '27182\n' | "$CTL" -c "$T/proxy.ini" user add --uri sip:alice@example.com --pool pool1 \
    --phone +14255550100 --pin-stdin >/dev/null
"$D" -c "$T/proxy.ini" >>"$T/proxy.log" 2>&1 &
PIDS="$PIDS $!"
sleep 0.5
csr p alice@example.com
{
    printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %s\r\n' \
        "$(printf '+14255550100:27182' | base64 -w0)"
    printf 'Content-Type: application/pkcs10\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' \
        "$(wc -c <"$T/p.b64")"
    cat "$T/p.b64"
} >"$T/p.req"
same "PROXY v2 then TLS" "$($TOOL proxy 127.0.0.1 "$PTPORT" "$T/store3/chain.pem" 203.0.113.7 \
    "$T/p.req")" "HTTP/1.1 200 OK"
sleep 0.2
has "the client is the PROXY header's" "$T/proxy.log" "client=203.0.113.7:4242"

kill -TERM $PIDS
wait 2>/dev/null
finish
