#!/usr/bin/env bash
# The phone's path over TLS ([MS-OCAUTHWS] §3.1, §3.2; issue 18 §2, §3), driven by an independent
# client (webticket_client.py: lxml's exclusive c14n, hmac, xmlsec1): a Web ticket by PIN and by
# client certificate, GetAndPublishCert with the ticket and its proof; and every refusal: each a
# 401 with its X-Ms-diagnostics, and nothing stored.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PY=/usr/bin/python3 # python3-lxml and python3-cryptography are Debian's
WT="$PY $(dirname "$0")/webticket_client.py"
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
[pin]
window_failures = 3
[webticket]
lifetime_h = 8
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100
check "add bob" add 31415 --uri sip:bob@example.com --pool pool1 --phone +14255550101 --ext 5101
check "add carol" add 16180 --uri sip:carol@example.com --pool pool1 --phone +14255550102
check "add dave" add 14142 --uri sip:dave@example.com --pool pool1 --phone +14255550103
echo 27182 >"$T/alice.pin"
echo 31415 >"$T/bob.pin"
echo 16180 >"$T/carol.pin"
echo 14142 >"$T/dave.pin"
echo 99999 >"$T/wrong.pin"
CA=$T/store/chain.pem
awk '/BEGIN/{n++} n==1' "$CA" >"$T/issuing.pem"
awk '/BEGIN/{n++} n==2' "$CA" >"$T/root.pem"
"$D" "${C[@]}" >"$T/daemon.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done

H="https://localhost:$TPORT"
WTS="$H/WebTicket/WebTicketService.svc"
CP="$H/CertProv/CertProvisioningService.svc"
PROOF="$CP/WebTicket_Proof"
V=(--cafile "$CA" --signer-cert "$T/issuing.pem" --trusted-pem "$T/root.pem")
ncerts() { "$CTL" "${C[@]}" cert list --uri "$1" | wc -l; }
# refused DESC PATTERN COMMAND...: the command gets a 401 whose X-Ms-diagnostics matches PATTERN.
refused() {
    local d=$1 pat=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    if ! grep -q '^status=401' "$T/out"; then bad "$d: not 401: $(head -c 600 "$T/out") $(head -c 300 "$T/err")"; return; fi
    if ! grep -Eiq "^X-Ms-diagnostics: .*$pat" "$T/out"; then bad "$d: diagnostics lack /$pat/: $(head -c 600 "$T/out")"; return; fi
    ok
}

# ---- a ticket by PIN (the WebTicketServicePin port), as pidgin-sipe asks (WS-Trust 2005/02) ----
check "ticket by PIN" $WT ticket --url "$WTS/Auth" --state "$T/a" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" --claim sip:alice@example.com --context ctx-42 "${V[@]}"
has "xmlsec1 verifies the assertion with the appliance's certificate" "$T/out" "^xmlsec1: OK"
has "ticket names alice" "$T/out" "subject=sip:alice@example.com audience=$CP key_bits=256"

# ---- GetAndPublishCert with the ticket and its proof ----
before=$(ncerts sip:alice@example.com)
check "GetAndPublishCert with ticket + proof" $WT enroll --url "$PROOF" --state "$T/a" \
    --entity alice@example.com --out "$T/alice.pem" --cafile "$CA" --request-file "$T/a.req"
check "the certificate verifies (openssl, sslclient)" openssl verify -x509_strict -purpose sslclient \
    -CAfile "$T/root.pem" -untrusted "$T/issuing.pem" "$T/alice.pem"
openssl x509 -in "$T/alice.pem" -noout -ext subjectAltName >"$T/san" 2>&1
has "the certificate names alice" "$T/san" "URI:sip:alice@example.com"
same "the certificate is in the store" "$(ncerts sip:alice@example.com)" $((before + 1))
serial=$(openssl x509 -in "$T/alice.pem" -noout -serial | cut -d= -f2)
check "cert show finds it" "$CTL" "${C[@]}" cert show "$serial"

# ---- a replayed (assertion, Timestamp) ----
refused "replayed request" "ticket_replayed" $WT resend --url "$PROOF" --request-file "$T/a.req" --cafile "$CA"
same "nothing stored for the replay" "$(ncerts sip:alice@example.com)" $((before + 1))

# ---- a ticket by client certificate (WebTicketServiceCert), WS-Trust 1.3 in SOAP 1.2 ----
check "ticket by certificate" $WT ticket --url "$WTS/Cert" --state "$T/c" --cert "$T/alice.pem" \
    --key "$T/alice.pem.key" --applies-to "$PROOF" --trust13 --soap12 "${V[@]}"
has "certificate ticket names alice" "$T/out" "subject=sip:alice@example.com"
check "GetAndPublishCert with the certificate's ticket" $WT enroll --url "$CP" --state "$T/c" \
    --entity sip:alice@example.com --out "$T/alice2.pem" --cafile "$CA" --timestamp now
refused "the certificate port without a certificate" "client_cert_required" $WT ticket \
    --url "$WTS/Cert" --state "$T/x" --applies-to "$CP" --cafile "$CA"

# ---- the plain service path takes the UsernameToken; extension + PIN ----
check "ticket on the service path by extension" $WT ticket --url "$WTS" --state "$T/b" --user 5101 \
    --pin-file "$T/bob.pin" --applies-to "$CP" "${V[@]}"
has "bob's ticket" "$T/out" "subject=sip:bob@example.com"

# ---- refusals at the Web Ticket Service ----
refused "anonymous" "credentials_missing" $WT ticket --url "$WTS/Auth" --state "$T/x" --applies-to "$CP" --cafile "$CA"
refused "an unknown port" "webticket_port_refused" $WT ticket --url "$WTS/WebTicketServiceAnon" \
    --state "$T/x" --user +14255550100 --pin-file "$T/alice.pin" --applies-to "$CP" --cafile "$CA"
$WT ticket --url "$WTS/Auth" --state "$T/x" --user +14255550100 --pin-file "$T/alice.pin" \
    --applies-to "$CP" --claim sip:bob@example.com --cafile "$CA" >"$T/out" 2>&1
has "a claim for another user: 403" "$T/out" "^status=403"
has "a claim for another user: entity_mismatch" "$T/out" "entity_mismatch"
curl -s -o "$T/body" -w '%{http_code}' --cacert "$CA" -H 'Content-Type: text/xml' \
    --data-binary '<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>' "$WTS/Auth" >"$T/code"
same "a DOCTYPE is refused" "$(cat "$T/code")" 400
has "a refusal is a SOAP fault with OCSDiagnosticsFault" "$T/body" "<af:ErrorId>[0-9]+</af:ErrorId>"

curl -s -o "$T/body" -D "$T/hdr" --cacert "$CA" -H 'Content-Type: application/soap+xml; charset=utf-8' \
    --data-binary '<x/>' "$WTS/Auth" >/dev/null
has "a SOAP 1.2 request gets a SOAP 1.2 fault" "$T/body" 'http://www.w3.org/2003/05/soap-envelope.*<s:Code><s:Value>s:Sender'
has "... as application/soap+xml" "$T/hdr" '^Content-Type: application/soap\+xml'
printf '<?xml version="1.0" encoding="ISO-2022-JP"?><x>\033$B\377\377</x>' >"$T/badenc.xml"
curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -H 'Content-Type: text/xml' \
    --data-binary @"$T/badenc.xml" "$WTS/Auth" >"$T/code"
same "bytes libxml2 cannot decode: 400" "$(cat "$T/code")" 400

# ---- a wrong PIN on the PIN port is a PIN sign-in: same answer as an unknown number, counted ----
refused "wrong PIN" "pin_wrong_or_unknown" $WT ticket --url "$WTS/Auth" --state "$T/x" \
    --user +14255550102 --pin-file "$T/wrong.pin" --applies-to "$CP" --cafile "$CA"
grep -i '^X-Ms-diagnostics' "$T/out" | sed 's/^[^:]*: *//' >"$T/diag_wrong"
refused "unknown number" "pin_wrong_or_unknown" $WT ticket --url "$WTS/Auth" --state "$T/x" \
    --user +19999999999 --pin-file "$T/wrong.pin" --applies-to "$CP" --cafile "$CA"
grep -i '^X-Ms-diagnostics' "$T/out" | sed 's/^[^:]*: *//' >"$T/diag_unknown"
same "an unknown number and a wrong PIN answer alike" "$(cat "$T/diag_unknown")" "$(cat "$T/diag_wrong")"
"$CTL" "${C[@]}" user show sip:carol@example.com --json >"$T/carol.json"
has "the wrong PIN counted toward carol's lockout" "$T/carol.json" '"window_failures":1'
for _ in 1 2; do
    $WT ticket --url "$WTS/Auth" --state "$T/x" --user +14255550102 --pin-file "$T/wrong.pin" \
        --applies-to "$CP" --cafile "$CA" >/dev/null 2>&1
done
$WT ticket --url "$WTS/Auth" --state "$T/x" --user +14255550102 --pin-file "$T/carol.pin" \
    --applies-to "$CP" --cafile "$CA" >"$T/out" 2>&1
has "after window_failures wrong PINs the right one is locked out" "$T/out" "^status=403"
has "PinLocked on the PIN port" "$T/out" "pin_locked"
check "unlock carol" "$CTL" "${C[@]}" user unlock sip:carol@example.com

# ---- refusals at CertProv, each with nothing stored ----
before=$(ncerts sip:alice@example.com)
check "fresh ticket" $WT ticket --url "$WTS/Auth" --state "$T/f" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" --cafile "$CA"
refused "tampered assertion" "altered.*ticket_invalid" $WT enroll --url "$PROOF" --state "$T/f" \
    --entity alice@example.com --out "$T/x.pem" --cafile "$CA" --tamper assertion
has "a 401 names the Web Ticket Service" "$T/out" "^X-MS-WebTicketURL: https://localhost:$TPORT/WebTicket/WebTicketService.svc"
refused "wrong proof signature" "proof key.*ticket_invalid" $WT enroll --url "$PROOF" --state "$T/f" \
    --entity alice@example.com --out "$T/x.pem" --cafile "$CA" --tamper proof --timestamp now
refused "unknown key identifier" "KeyIdentifier.*ticket_invalid" $WT enroll --url "$PROOF" \
    --state "$T/f" --entity alice@example.com --out "$T/x.pem" --cafile "$CA" --tamper keyid
check "ticket for another audience" $WT ticket --url "$WTS/Auth" --state "$T/o" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "https://other.example/CertProv/CertProvisioningService.svc" --cafile "$CA"
refused "another audience" "another audience.*ticket_invalid" $WT enroll --url "$PROOF" --state "$T/o" \
    --entity alice@example.com --out "$T/x.pem" --cafile "$CA"
check "a ticket that expires in 2 s" $WT ticket --url "$WTS/Auth" --state "$T/e" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" --expires-in 2 --cafile "$CA"
sleep 3
refused "expired ticket" "expired.*ticket_invalid" $WT enroll --url "$PROOF" --state "$T/e" \
    --entity alice@example.com --out "$T/x.pem" --cafile "$CA" --timestamp now
same "nothing stored for alice's refusals" "$(ncerts sip:alice@example.com)" "$before"

check "carol's ticket" $WT ticket --url "$WTS/Auth" --state "$T/k" --user +14255550102 \
    --pin-file "$T/carol.pin" --applies-to "$CP" --cafile "$CA"
check "disable carol" "$CTL" "${C[@]}" user disable sip:carol@example.com
refused "a user disabled since the ticket" "user_disabled" $WT enroll --url "$PROOF" --state "$T/k" \
    --entity carol@example.com --out "$T/x.pem" --cafile "$CA"
same "nothing stored for carol" "$(ncerts sip:carol@example.com)" 0
check "dave's ticket" $WT ticket --url "$WTS/Auth" --state "$T/d" --user +14255550103 \
    --pin-file "$T/dave.pin" --applies-to "$CP" --cafile "$CA"
check "delete dave" "$CTL" "${C[@]}" user del sip:dave@example.com
refused "a user deleted since the ticket" "no longer exists.*ticket_invalid" $WT enroll --url "$PROOF" \
    --state "$T/d" --entity dave@example.com --out "$T/x.pem" --cafile "$CA"
same "nothing stored for dave" "$(ncerts sip:dave@example.com)" 0
check "a ticket for bob" $WT ticket --url "$WTS/Auth" --state "$T/b2" --user +14255550101 \
    --pin-file "$T/bob.pin" --applies-to "$CP" --cafile "$CA"
$WT enroll --url "$PROOF" --state "$T/b2" --entity alice@example.com --out "$T/x.pem" --cafile "$CA" >"$T/out" 2>&1
has "Entity must be the ticket's user" "$T/out" "entity_mismatch"

# ---- the dedicated Web ticket signer (certprovctl ca webticket-signer) ----
check "a ticket signed by the CA key" $WT ticket --url "$WTS/Auth" --state "$T/old" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" --cafile "$CA"
check "ca webticket-signer" "$CTL" "${C[@]}" ca webticket-signer --days 30
same "its key is 0600" "$(stat -c %a "$T/store/ca/webticket.key")" 600
openssl x509 -in "$T/store/ca/webticket.crt" -noout -subject -ext keyUsage,extendedKeyUsage >"$T/wtcrt" 2>&1
has "the signer's certificate: digitalSignature" "$T/wtcrt" "Digital Signature"
check "the signer's certificate chains to the root" openssl verify -CAfile "$T/root.pem" \
    -untrusted "$T/issuing.pem" "$T/store/ca/webticket.crt"
kill $PID 2>/dev/null
wait $PID 2>/dev/null
"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
has "certprovd uses the dedicated signer" "$T/daemon.log" "webticket_signer key=dedicated"
check "a ticket by the dedicated signer" $WT ticket --url "$WTS/Auth" --state "$T/w" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" "${V[@]}"
has "xmlsec1 verifies it through the issuing CA to the root" "$T/out" "^xmlsec1: OK"
grep -o '<ds:X509Certificate>[^<]*' "$T/w/assertion.xml" | sed 's/<ds:X509Certificate>//' | base64 -d \
    | openssl x509 -inform DER -noout -subject >"$T/kicert" 2>&1
has "KeyInfo carries the signer's certificate" "$T/kicert" "certprov Web ticket signer"
check "GetAndPublishCert with it" $WT enroll --url "$PROOF" --state "$T/w" --entity alice@example.com \
    --out "$T/alice3.pem" --cafile "$CA"
refused "a ticket of the previous signing key" "not signed by a ticket-signing certificate.*ticket_invalid" \
    $WT enroll --url "$PROOF" --state "$T/old" --entity alice@example.com --out "$T/x.pem" --cafile "$CA" --timestamp now

# ---- a fleet that shares its issuing CA: B accepts a ticket of A's dedicated signer ----
# B has A's issuing CA (ca/, chain.pem) and pin.key (which seals the proof key) and a dedicated
# signer of its own; C has a CA of its own: its signer's tickets are refused by B.
fleet_conf() { # fleet_conf NAME PORT TPORT
    sed -e "s#^listen = .*#listen = 127.0.0.1:$2#" -e "s#^tls_listen = .*#tls_listen = 127.0.0.1:$3#" \
        -e "s#^path = store#path = $1#" "$T/certprov.ini" >"$T/$1.ini"
}
BPORT=$(free_port) || exit 1
BTPORT=$(free_port) || exit 1
fleet_conf storeb "$BPORT" "$BTPORT"
mkdir -p "$T/storeb/ca" && chmod 700 "$T/storeb" "$T/storeb/ca"
for f in ca/root.key ca/root.crt ca/issuing.key ca/issuing.crt chain.pem pin.key; do
    [ -f "$T/store/$f" ] && cp -p "$T/store/$f" "$T/storeb/$f"
done
check "B: a dedicated signer of its own" "$CTL" -c "$T/storeb.ini" ca webticket-signer --days 30
printf '27182\n' | "$CTL" -c "$T/storeb.ini" user add --uri sip:alice@example.com --pool pool1 \
    --phone +14255550100 --pin-stdin >/dev/null || bad "B: add alice"
"$D" -c "$T/storeb.ini" >"$T/daemonb.log" 2>&1 &
PIDB=$!
trap 'kill -9 $PID $PIDB 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$BPORT/healthz" >/dev/null && break; sleep 0.05; done
has "B uses its own dedicated signer" "$T/daemonb.log" "webticket_signer key=dedicated"
if cmp -s "$T/store/ca/webticket.crt" "$T/storeb/ca/webticket.crt"; then bad "B's signer is A's"; else ok; fi
PROOFB="https://localhost:$BTPORT/CertProv/CertProvisioningService.svc/WebTicket_Proof"
check "a ticket from A" $WT ticket --url "$WTS/Auth" --state "$T/fa" --user +14255550100 \
    --pin-file "$T/alice.pin" --applies-to "$CP" --cafile "$CA"
check "B accepts A's ticket (signer of the same CA)" $WT enroll --url "$PROOFB" --state "$T/fa" \
    --entity alice@example.com --out "$T/alice-b.pem" --cafile "$CA"
check "B's certificate verifies" openssl verify -CAfile "$T/root.pem" -untrusted "$T/issuing.pem" "$T/alice-b.pem"
same "stored on B" "$("$CTL" -c "$T/storeb.ini" cert list --uri sip:alice@example.com | wc -l)" 1
CPORT=$(free_port) || exit 1
CTPORT=$(free_port) || exit 1
fleet_conf storec "$CPORT" "$CTPORT"
"$CTL" -c "$T/storec.ini" ca init >/dev/null || bad "C: ca init"
cp -p "$T/store/pin.key" "$T/storec/pin.key"
check "C: a dedicated signer of its CA" "$CTL" -c "$T/storec.ini" ca webticket-signer --days 30
printf '27182\n' | "$CTL" -c "$T/storec.ini" user add --uri sip:alice@example.com --pool pool1 \
    --phone +14255550100 --pin-stdin >/dev/null || bad "C: add alice"
"$D" -c "$T/storec.ini" >"$T/daemonc.log" 2>&1 &
PIDC=$!
trap 'kill -9 $PID $PIDB $PIDC 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$CPORT/healthz" >/dev/null && break; sleep 0.05; done
check "a ticket from C" $WT ticket --url "https://localhost:$CTPORT/WebTicket/WebTicketService.svc/Auth" \
    --state "$T/fc" --user +14255550100 --pin-file "$T/alice.pin" --applies-to "$CP" \
    --cafile "$T/storec/chain.pem"
refused "B refuses the ticket of another CA's signer" "not signed by a ticket-signing certificate.*ticket_invalid" \
    $WT enroll --url "$PROOFB" --state "$T/fc" --entity alice@example.com --out "$T/x.pem" --cafile "$CA"
same "nothing more stored on B" "$("$CTL" -c "$T/storeb.ini" cert list --uri sip:alice@example.com | wc -l)" 1
kill $PIDB $PIDC 2>/dev/null
wait $PIDB $PIDC 2>/dev/null
if grep -Eq "AddressSanitizer|runtime error|ThreadSanitizer" "$T/daemonb.log" "$T/daemonc.log"; then bad "sanitizer report in B or C"; else ok; fi

# ---- metrics count the route ----
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics"
has "webticket route counted" "$T/metrics" 'route="webticket"'
kill $PID 2>/dev/null
wait $PID 2>/dev/null
if grep -Eq "AddressSanitizer|runtime error" "$T/daemon.log"; then bad "sanitizer report: $(grep -m3 -E 'AddressSanitizer|runtime error' "$T/daemon.log")"; else ok; fi
no_pin "no PIN in the log" "$T/daemon.log" 27182 31415 16180
if grep -qi "encoding error\|parser error" "$T/daemon.log"; then bad "libxml2 wrote to the log"; else ok; fi
finish
