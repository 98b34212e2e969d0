#!/usr/bin/env bash
# The enterprise's own CA end to end, with the openssl CLI playing the enterprise (a root and an
# intermediate, `openssl x509 -req` and `openssl ca`): certprovctl ca request -> the enterprise
# signs -> ca import (refusals of a non-CA, a certificate for another key, one without
# keyCertSign, an unchained one, each naming the certificate and the link) -> certprovd --check
# against [server] device_trust (refused when the chain does not reach it, naming the link) ->
# certprovd starts -> an EST enrollment over plain HTTP whose certificate `openssl verify
# -x509_strict -purpose sslclient` accepts against the enterprise root only, with the served chain
# as untrusted intermediates; the TLS leaf verifies as sslserver against the enterprise root;
# /CertProv/chain.pem, EST cacerts and certprov_ca_expiry_seconds; the TLS leaf is reissued when
# [server] alt_names change and when it expires within 30 days (and --check only reports it).
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
E="$T/ent" # the enterprise's CA
mkdir -p "$E"
ini() { # ini FILE ALT_NAMES [DEVICE_TRUST]
    cat >"$1" <<INI
[server]
name = certprov-ent.example.com
alt_names = $2
listen = 127.0.0.1:$PORT
device_trust = ${3:-}
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
INI
}
ini "$T/certprov.ini" "certprov.example.com, lb.example.com"
C=(-c "$T/certprov.ini")
S="$T/store"

# --- config: alt_names are DNS names, none twice ---
ini "$T/bad.ini" "ok.example.com bad_name.example.com"
expect_exit 1 "alt_names: 'bad_name.example.com' is not a DNS host name" "alt_names bad name" \
    "$D" -c "$T/bad.ini" --check
ini "$T/bad.ini" "a.example.com, A.example.com"
expect_exit 1 "alt_names: 'A.example.com' is given twice" "alt_names twice" "$D" -c "$T/bad.ini" --check

# --- the enterprise: root (CA:TRUE) and intermediate (pathlen 1) ---
ext() { printf 'basicConstraints=critical,CA:%s\nkeyUsage=critical,%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$1" "$2"; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$E/root.key" \
    -out "$E/root.pem" -subj "/O=Acme/CN=Acme Root CA" -days 7300 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$E/int.key" \
    -out "$E/int.csr" -subj "/O=Acme/CN=Acme Intermediate CA" 2>/dev/null
ext "TRUE,pathlen:1" keyCertSign,cRLSign >"$E/int.ext"
openssl x509 -req -in "$E/int.csr" -CA "$E/root.pem" -CAkey "$E/root.key" -CAcreateserial \
    -days 3650 -extfile "$E/int.ext" -out "$E/int.pem" 2>/dev/null
cat "$E/int.pem" "$E/root.pem" >"$E/chain.pem"
# sign CSR OUT BASIC KEYUSAGE: the intermediate signs a CSR
sign() {
    ext "$3" "$4" >"$E/x.ext"
    openssl x509 -req -in "$1" -CA "$E/int.pem" -CAkey "$E/int.key" -CAcreateserial -days 1825 \
        -extfile "$E/x.ext" -out "$2" 2>/dev/null
}

# --- ca request ---
expect_exit 2 "--out FILE is required" "ca request without --out" "$CTL" "${C[@]}" ca request
expect_exit 1 "--pkcs11 needs \[ca\] module" \
    "ca request --pkcs11 without a module is refused" "$CTL" "${C[@]}" ca request --out "$T/x.csr" --pkcs11 pkcs11:token=x
expect_exit 2 "--subject must be" "ca request bad subject" "$CTL" "${C[@]}" ca request --out "$T/x.csr" --subject "OU=x"
check "ca request" "$CTL" "${C[@]}" ca request --out "$T/first.csr"
check "ca request again replaces the pending one" "$CTL" "${C[@]}" ca request --out "$T/iss.csr" \
    --key-type p384 --subject "CN=Acme certprov Issuing CA,O=Acme"
has "ca request says what to do" "$T/out" "ca import --cert"
same "issuing key is 0600" "$(stat -c %a "$S/ca/issuing.key")" 600
check "the CSR verifies" openssl req -in "$T/iss.csr" -noout -verify
has "CSR subject" <(openssl req -in "$T/iss.csr" -noout -subject) "O ?= ?Acme, CN ?= ?Acme certprov Issuing CA"
has "CSR key is P-384" <(openssl req -in "$T/iss.csr" -noout -text) "384 bit"
check "ca/issuing.csr is --out" cmp "$T/iss.csr" "$S/ca/issuing.csr"
if cmp -s "$T/first.csr" "$T/iss.csr"; then bad "second request is the first"; else ok; fi
expect_exit 1 "already exists" "ca init refused while a request is pending" "$CTL" "${C[@]}" ca init
expect_exit 1 "pending request .*ca import" "ca show names the pending request" "$CTL" "${C[@]}" ca show
expect_exit 1 "pending request .*ca import" "certprovd names the pending request" "$D" "${C[@]}" --check

# --- ca import refusals, each naming the certificate and the link ---
sign "$T/iss.csr" "$E/notca.pem" FALSE digitalSignature
expect_exit 1 "'CN=Acme certprov Issuing CA,O=Acme' is not a CA" "import a non-CA" \
    "$CTL" "${C[@]}" ca import --cert "$E/notca.pem" --chain "$E/chain.pem"
sign "$T/iss.csr" "$E/noku.pem" TRUE digitalSignature,cRLSign
expect_exit 1 "'CN=Acme certprov Issuing CA,O=Acme' lacks keyUsage keyCertSign" "import without keyCertSign" \
    "$CTL" "${C[@]}" ca import --cert "$E/noku.pem" --chain "$E/chain.pem"
sign "$T/first.csr" "$E/other.pem" "TRUE,pathlen:0" keyCertSign,cRLSign
expect_exit 1 "is not for the pending key" "import a certificate for another key" \
    "$CTL" "${C[@]}" ca import --cert "$E/other.pem" --chain "$E/chain.pem"
sign "$T/iss.csr" "$E/iss.pem" "TRUE,pathlen:0" keyCertSign,cRLSign
expect_exit 1 "the issuer 'CN=Acme Intermediate CA,O=Acme' of 'CN=Acme certprov Issuing CA,O=Acme' is found neither" \
    "import without the intermediate" "$CTL" "${C[@]}" ca import --cert "$E/iss.pem" --chain "$E/root.pem"
expect_exit 1 "no self-signed root" "import without the root" \
    "$CTL" "${C[@]}" ca import --cert "$E/iss.pem" --chain "$E/int.pem"
expect_exit 1 "no PEM certificate" "import of a file that is no certificate" \
    "$CTL" "${C[@]}" ca import --cert "$T/iss.csr" --chain "$E/chain.pem"
same "nothing installed by the refusals" "$(ls "$S/ca" | tr '\n' ' ')" "issuing.csr issuing.key "

# --- the good import ---
check "ca import" "$CTL" "${C[@]}" ca import --cert "$E/iss.pem" --chain "$E/chain.pem"
has "ca show: intermediate" "$T/out" "^intermediate CA:"
has "ca show: root" "$T/out" "^root CA:"
has "ca show: SANs" "$T/out" "san: +DNS:certprov-ent.example.com, DNS:certprov.example.com, DNS:lb.example.com"
has "ca show: fingerprint" "$T/out" "sha256: +[0-9A-F]{64}"
check "ca show --json" "$CTL" "${C[@]}" ca show --json
python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["ca"], " ".join(c["role"] for c in d["chain"]), d["tls"]["role"], d["chain"][0]["serial"] == d["chain"][0]["serial"].upper())' "$T/out" >"$T/j"
same "ca show --json: the enterprise's chain, roles, the TLS leaf, serials in upper case" "$(cat "$T/j")" "enterprise issuing intermediate root tls True"
same "no root key in this mode" "$(ls "$S/ca" | tr '\n' ' ')" "issuing.crt issuing.key "
same "chain.pem: issuing, intermediate, root" "$(grep -c 'BEGIN CERTIFICATE' "$S/chain.pem")" 3
same "tls/server.crt: leaf, issuing, intermediate (no root)" "$(grep -c 'BEGIN CERTIFICATE' "$S/tls/server.crt")" 3
same "tls/server.key is 0600" "$(stat -c %a "$S/tls/server.key")" 600
check "TLS leaf verifies (sslserver) against the enterprise root" openssl verify -x509_strict \
    -purpose sslserver -CAfile "$E/root.pem" -untrusted "$S/tls/server.crt" "$S/tls/server.crt"
expect_exit 1 "a CA is already installed" "import twice" \
    "$CTL" "${C[@]}" ca import --cert "$E/iss.pem" --chain "$E/chain.pem"

# --- device_trust ---
check "--check (own root)" "$D" "${C[@]}" --check
has "--check: TLS chain" "$T/out" "trust: the TLS chain leads to"
ini "$T/trust.ini" "certprov.example.com, lb.example.com" "$E/root.pem"
check "--check (device_trust = the enterprise root)" "$D" -c "$T/trust.ini" --check
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$E/other-root.key" \
    -out "$E/other-root.pem" -subj "/CN=Other Root" -days 365 2>/dev/null
ini "$T/other.ini" "certprov.example.com, lb.example.com" "$E/other-root.pem"
expect_exit 1 "issuing chain does not lead to a root of \[server\] device_trust \($E/other-root.pem\): the chain ends at the root 'CN=Acme Root CA,O=Acme', which is not a trusted root" \
    "--check refuses a device_trust the chain does not reach" "$D" -c "$T/other.ini" --check
expect_exit 1 "device_trust" "certprovd refuses to start with it" "$D" -c "$T/other.ini"
ini "$T/int.ini" "certprov.example.com, lb.example.com" "$E/int.pem"
check "--check: device_trust = the intermediate (a trust anchor is a name and a key)" "$D" -c "$T/int.ini" --check
printf 'not a certificate\n' >"$E/junk.pem"
ini "$T/junk.ini" "certprov.example.com, lb.example.com" "$E/junk.pem"
expect_exit 1 "device_trust .*junk.pem cannot be read as PEM certificates" "junk device_trust" "$D" -c "$T/junk.ini" --check

chmod 644 "$S/tls/server.key"
expect_exit 1 "tls/server.key is readable or writable by group or others; run: chmod 600" \
    "a TLS key others may read is refused" "$D" "${C[@]}" --check
chmod 600 "$S/tls/server.key"

# --- certprovd with device_trust = the enterprise root: a phone enrolls ---
printf '%s\n' 27182 | "$CTL" -c "$T/trust.ini" user add --uri sip:alice@example.com --pool pool1 --ext 1001 --pin-stdin >/dev/null \
    || bad "user add"
start() { # start INI
    "$D" -c "$1" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd did not start: $(tail -5 "$T/daemon.log")"
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID"; }
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
start "$T/trust.ini" || { finish; exit 1; }
if grep -q tls_reissued "$T/daemon.log"; then bad "a good TLS leaf was reissued"; else ok; fi
curl -s "$URL/CertProv/chain.pem" >"$T/served.pem"
check "/CertProv/chain.pem is chain.pem" cmp "$T/served.pem" "$S/chain.pem"
curl -s "$URL/.well-known/est/cacerts" | base64 -d | openssl pkcs7 -inform DER -print_certs 2>/dev/null >"$T/cacerts.pem"
same "EST cacerts: issuing, intermediate, root" "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" 3
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/phone.key" 2>/dev/null
openssl req -new -key "$T/phone.key" -subj "/CN=alice@example.com" -outform DER -out "$T/phone.der" 2>/dev/null
base64 -w 64 "$T/phone.der" >"$T/phone.b64"
same "EST enrollment" "$(curl -s -o "$T/est" -w '%{http_code}' -u 1001:27182 -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/phone.b64" "$URL/.well-known/est/simpleenroll")" 200
base64 -d "$T/est" | openssl pkcs7 -inform DER -print_certs 2>/dev/null >"$T/phone.pem"
check "the phone's certificate verifies against the enterprise root only" openssl verify -x509_strict \
    -purpose sslclient -CAfile "$E/root.pem" -untrusted "$T/served.pem" "$T/phone.pem"
if openssl verify -purpose sslclient -CAfile "$E/other-root.pem" -untrusted "$T/served.pem" "$T/phone.pem" >/dev/null 2>&1; then
    bad "the phone's certificate verifies against another root"
else ok; fi
curl -s "$URL/metrics" >"$T/metrics"
has "metrics: HELP" "$T/metrics" "^# HELP certprov_ca_expiry_seconds "
has "metrics: TYPE" "$T/metrics" "^# TYPE certprov_ca_expiry_seconds gauge"
for r in 'tls",subject="CN=certprov-ent.example.com' 'issuing",subject="CN=Acme certprov Issuing CA,O=Acme' \
    'intermediate",subject="CN=Acme Intermediate CA,O=Acme' 'root",subject="CN=Acme Root CA,O=Acme'; do
    has "metrics: $r" "$T/metrics" "^certprov_ca_expiry_seconds\\{role=\"$r\"\\} [1-9][0-9]+$"
done
stop

# --- the TLS leaf follows alt_names (restart) ---
ini "$T/trust.ini" "certprov.example.com, lb.example.com, new.example.com" "$E/root.pem"
check "--check with new alt_names" "$D" -c "$T/trust.ini" --check
has "--check reports the reissue" "$T/out" "tls: tls/server.crt will be reissued at start: its names are not"
cp "$S/tls/server.crt" "$T/before.crt"
start "$T/trust.ini" || { finish; exit 1; }
stop
has "reissued once, saying why" "$T/daemon.log" 'tls_reissued reason="its names are not \[server\] name and alt_names"'
has "new SAN" <(openssl x509 -in "$S/tls/server.crt" -noout -ext subjectAltName) "DNS:new.example.com"
check "the new leaf verifies against the enterprise root" openssl verify -x509_strict \
    -purpose sslserver -CAfile "$E/root.pem" -untrusted "$S/tls/server.crt" "$S/tls/server.crt"
if cmp -s "$T/before.crt" "$S/tls/server.crt"; then bad "tls/server.crt unchanged"; else ok; fi

# --- the TLS leaf is reissued when it expires within 30 days (`openssl ca` with the issuing key
# makes one that started long ago and ends in 20 days) ---
O="$T/oca"
mkdir -p "$O/new"
: >"$O/index.txt"
echo 1000 >"$O/serial"
cat >"$O/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $O/index.txt
new_certs_dir = $O/new
serial = $O/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[x]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:certprov-ent.example.com,DNS:certprov.example.com,DNS:lb.example.com,DNS:new.example.com
CNF
openssl pkey -inform DER -in "$S/ca/issuing.key" -out "$O/iss.key" 2>/dev/null
openssl req -new -key "$S/tls/server.key" -subj "/CN=certprov-ent.example.com" -out "$O/leaf.csr" 2>/dev/null
openssl ca -batch -config "$O/ca.cnf" -cert "$E/iss.pem" -keyfile "$O/iss.key" -in "$O/leaf.csr" \
    -startdate 20250101000000Z -enddate "$(date -u -d '+20 days' +%Y%m%d%H%M%SZ)" -extensions x \
    -notext -out "$O/leaf.pem" 2>"$O/err" || bad "openssl ca: $(cat "$O/err")"
cat "$O/leaf.pem" "$E/iss.pem" "$E/int.pem" >"$S/tls/server.crt"
cp "$S/tls/server.crt" "$T/short.crt"
check "--check with a leaf that expires in 20 days" "$D" -c "$T/trust.ini" --check
has "--check reports it" "$T/out" "will be reissued at start: expired, not yet valid, or expires in less than 30 days"
check "--check wrote nothing" cmp "$T/short.crt" "$S/tls/server.crt"
: >"$T/daemon.log"
start "$T/trust.ini" || { finish; exit 1; }
stop
has "reissued for its date" "$T/daemon.log" 'tls_reissued reason="expired, not yet valid, or expires in less than 30 days'
end=$(date -u -d "$(openssl x509 -in "$S/tls/server.crt" -noout -enddate | cut -d= -f2)" +%s)
if [ "$end" -gt $(($(date +%s) + 300 * 86400)) ]; then ok; else bad "new leaf ends $end"; fi
: >"$T/daemon.log"
start "$T/trust.ini" || { finish; exit 1; }
stop
if grep -q tls_reissued "$T/daemon.log"; then bad "reissued again without a reason"; else ok; fi

# --- a chain certificate that expires within 30 days is logged (a second store whose issuing CA
# the enterprise signed for 20 days; the TLS leaf then ends with it) ---
cat >"$T/short.ini" <<INI
[server]
name = certprov-short.example.com
listen = 127.0.0.1:$PORT
device_trust = $E/root.pem
[store]
path = short
map_size = 64MiB
[pool.pool1]
store = embedded
INI
check "ca request (short)" "$CTL" -c "$T/short.ini" ca request --out "$T/short.csr"
ext "TRUE,pathlen:0" keyCertSign,cRLSign >"$E/x.ext"
openssl x509 -req -in "$T/short.csr" -CA "$E/int.pem" -CAkey "$E/int.key" -CAcreateserial -days 20 \
    -extfile "$E/x.ext" -out "$E/short.pem" 2>/dev/null
check "ca import (short)" "$CTL" -c "$T/short.ini" ca import --cert "$E/short.pem" --chain "$E/chain.pem"
check "--check passes with an issuing CA of 20 days" "$D" -c "$T/short.ini" --check
has "--check warns" "$T/err" 'ca_chain_expires_soon chain=issuing subject="CN=certprov Issuing CA,O=certprov-short.example.com" not_after=20'
has "--check warns for the TLS chain" "$T/err" 'ca_chain_expires_soon chain=TLS'
if grep -q "will be reissued" "$T/out"; then bad "a leaf that ends with its CA is reissued every start"; else ok; fi
finish
