#!/usr/bin/env bash
# certprovctl end to end: CA creation, users and PIN policy, offline issuance of CSRs made by the
# openssl CLI for every accepted key type, each certificate checked with `openssl verify
# -x509_strict -purpose sslclient` and GnuTLS `certtool --verify`, the store and the outbox.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"

cat >"$T/certprov.ini" <<INI
[server]
name = certprov1.example.com
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
[pool.pool2]
store = embedded
INI
C=(-c "$T/certprov.ini")
S="$T/store"

# --- usage and help ---
check "--help" "$CTL" --help
has "--help lists cert issue" "$T/out" "cert issue --uri URI --csr FILE"
check "user add --help" "$CTL" user add --help
has "user add --help" "$T/out" "pin-stdin"
expect_exit 2 "no command" "no command" "$CTL" "${C[@]}"
expect_exit 2 "unknown command 'frobnicate'" "unknown command" "$CTL" "${C[@]}" frobnicate
expect_exit 2 "unknown or incomplete option '--bogus'" "bad option" "$CTL" "${C[@]}" user add --bogus
expect_exit 1 "cannot open" "missing config" "$CTL" -c "$T/none.ini" user list
printf '[server]\nnmae = x\n[pool.p]\n' >"$T/bad.ini"
expect_exit 1 "bad.ini:2: unknown key 'nmae'" "config typo" "$CTL" -c "$T/bad.ini" user list

# --- CA ---
expect_exit 1 "no CA in .*ca init" "ca show before init" "$CTL" "${C[@]}" ca show
check "ca init" "$CTL" "${C[@]}" ca init
has "ca init shows root" "$T/out" "root CA:"
for f in ca/root.key ca/issuing.key tls/server.key pin.key; do
    same "$f is 0600" "$(stat -c %a "$S/$f")" 600
done
expect_exit 1 "already exists" "ca init twice" "$CTL" "${C[@]}" ca init --key-type p384
expect_exit 2 "key-type must be" "bad key type" "$CTL" "${C[@]}" ca init --key-type dsa
check "ca show" "$CTL" "${C[@]}" ca show
has "ca show names the TLS cert" "$T/out" "CN=certprov1.example.com"
check "server cert verifies" openssl verify -x509_strict -purpose sslserver -CAfile "$S/ca/root.crt" \
    -untrusted "$S/ca/issuing.crt" "$S/tls/server.crt"
same "chain.pem holds two certs" "$(grep -c 'BEGIN CERTIFICATE' "$S/chain.pem")" 2

# --- users ---
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100 --ext 1001
check "add bob on the same phone" add 31415 --uri sip:bob@example.com --pool pool2 --phone +14255550100 --ext 1002
expect_exit 1 "already exists" "duplicate uri" add 27183 --uri sip:alice@example.com --pool pool1 --ext 1009
expect_exit 1 "same phone number and extension" "phone+ext clash" add 27183 --uri sip:carol@example.com --pool pool1 --phone +14255550100 --ext 1001
expect_exit 1 "repeated or consecutive|run" "weak PIN 12345" add 12345 --uri sip:carol@example.com --pool pool1 --ext 1003
expect_exit 1 "extension|phone" "PIN = extension" add 10033 --uri sip:carol@example.com --pool pool1 --ext 10033
expect_exit 1 "too short" "short PIN" add 2718 --uri sip:carol@example.com --pool pool1 --ext 1003
# The length error states the minimum ([pin] min_length) and the maximum (hardening item 18).
expect_exit 1 "at least 5 digits" "short PIN names the minimum" add 2718 --uri sip:carol@example.com --pool pool1 --ext 1003
sed 's|^\[pool.pool1\]|[pin]\nmin_length = 7\n&|' "$T/certprov.ini" >"$T/pin7.ini"
expect_exit 1 "sip:carol@example.com: the PIN is too short: it must have at least 7 digits" "min_length = 7" \
    sh -c "printf '271828\n' | '$CTL' -c '$T/pin7.ini' user add --uri sip:carol@example.com --pool pool1 --ext 1003 --pin-stdin"
printf 'uri,phone,ext,pool,pin\nsip:u9@example.com,,2009,pool1,271828182845904523536028747135266\n' >"$T/long.csv"
expect_exit 1 "long.csv:2: sip:u9@example.com: the PIN is too long: it must have at most 32 digits" "import PIN of 33 digits" \
    "$CTL" "${C[@]}" user import "$T/long.csv"
expect_exit 1 "not a digit|digits" "letters in PIN" add 27a82 --uri sip:carol@example.com --pool pool1 --ext 1003
expect_exit 1 "not configured" "unknown pool" add 27182 --uri sip:carol@example.com --pool nopool --ext 1003
expect_exit 1 "sip:" "uri without sip:" add 27182 --uri carol@example.com --pool pool1 --ext 1003
expect_exit 1 "E.164" "bad phone" add 27182 --uri sip:carol@example.com --pool pool1 --phone 4255550100
expect_exit 2 "pin-stdin" "PIN on the command line" "$CTL" "${C[@]}" user add --uri sip:carol@example.com --pool pool1 --ext 1003 27182
check "user show" "$CTL" "${C[@]}" user show sip:alice@example.com
has "user show never prints the PIN" "$T/out" "pin: +set \(5 digits\)"
if grep -q 27182 "$T/out"; then bad "user show printed the PIN"; else ok; fi
if grep -qa 27182 "$S/data.mdb" 2>/dev/null; then bad "PIN in clear in LMDB"; else ok; fi

printf 'uri,phone,ext,pool,pin\nsip:u1@example.com,,2001,pool1,24680\nsip:u2@example.com,+4930123456,,pool2,97531\n' >"$T/ok.csv"
check "import" "$CTL" "${C[@]}" user import "$T/ok.csv"
printf 'uri,phone,ext,pool,pin\nsip:u3@example.com,,3001,pool1,24680\nsip:u4@example.com,,3002,pool1,11111\n' >"$T/bad.csv"
expect_exit 1 "bad.csv:3: sip:u4@example.com" "import names the bad line" "$CTL" "${C[@]}" user import "$T/bad.csv"
expect_exit 1 "no such user" "bad import is all or nothing" "$CTL" "${C[@]}" user show sip:u3@example.com
printf 'uri,pin\n' >"$T/hdr.csv"
expect_exit 1 "header" "import header" "$CTL" "${C[@]}" user import "$T/hdr.csv"
check "user list" "$CTL" "${C[@]}" user list
same "user list has 4 users" "$(wc -l <"$T/out")" 4

# --- identity clashes (hardening item 6): URIs compared ignoring case, unique extensions, no
# two users of one phone number with the same PIN; the error names the clash ---
expect_exit 1 "sip:ALICE@example.com: a user with this URI already exists: sip:alice@example.com \(URIs are compared ignoring case\)" \
    "URI differing in case" add 27183 --uri sip:ALICE@example.com --pool pool1 --ext 1010
expect_exit 1 "already exists: sip:alice@example.com" "scheme and host in upper case" \
    add 27183 --uri SIP:Alice@EXAMPLE.COM --pool pool1 --ext 1011
check "add dave with the host in upper case" add 27183 --uri sip:Dave@EXAMPLE.COM --pool pool1 --ext 1012
has "the scheme and host are stored in lower case" "$T/out" "added sip:Dave@example.com"
check "user show with the spelling of the add" "$CTL" "${C[@]}" user show SIP:Dave@Example.Com
has "user show finds the canonical URI" "$T/out" "uri: +sip:Dave@example.com"
expect_exit 1 "sip:erin@example.com: another user has the same extension 1001: sip:alice@example.com" \
    "extension clash without phone" add 27183 --uri sip:erin@example.com --pool pool1 --ext 1001
expect_exit 1 "another user has the same extension 1001: sip:alice@example.com" \
    "extension clash on another phone" add 27183 --uri sip:erin@example.com --pool pool1 --phone +14255550199 --ext 1001
expect_exit 1 "sip:erin@example.com: another user of the phone number \+14255550100 has the same PIN" \
    "phone and PIN clash" add 27182 --uri sip:erin@example.com --pool pool1 --phone +14255550100 --ext 1013
check "same phone, another PIN" add 27184 --uri sip:erin@example.com --pool pool1 --phone +14255550100 --ext 1013
check "same PIN, another phone" add 27182 --uri sip:frank@example.com --pool pool1 --phone +14255550111 --ext 1014
expect_exit 1 "user set-pin sip:erin@example.com: another user of the phone number \+14255550100 has the same PIN" \
    "set-pin to a PIN of the same phone" sh -c "printf '31415\n' | '$CTL' -c '$T/certprov.ini' user set-pin sip:erin@example.com --pin-stdin"
check "set-pin to its own PIN again" sh -c "printf '27184\n' | '$CTL' -c '$T/certprov.ini' user set-pin sip:erin@example.com --pin-stdin"
printf 'uri,phone,ext,pool,pin\nsip:g1@example.com,,3101,pool1,24681\nsip:G1@Example.com,,3102,pool1,24682\n' >"$T/case.csv"
expect_exit 1 "case.csv:3: sip:G1@example.com: a user with this URI already exists: sip:g1@example.com.*nothing was imported" \
    "import: URIs differing in case within the file" "$CTL" "${C[@]}" user import "$T/case.csv"
printf 'uri,phone,ext,pool,pin\nsip:g1@example.com,,3101,pool1,24681\nsip:g2@example.com,,3101,pool1,24682\n' >"$T/ext.csv"
expect_exit 1 "ext.csv:3: sip:g2@example.com: another user has the same extension 3101: sip:g1@example.com" \
    "import: extension twice in the file" "$CTL" "${C[@]}" user import "$T/ext.csv"
printf 'uri,phone,ext,pool,pin\nsip:g1@example.com,+14255550122,3101,pool1,24681\nsip:g2@example.com,+14255550122,3102,pool1,24681\n' >"$T/pin.csv"
expect_exit 1 "pin.csv:3: sip:g2@example.com: another user of the phone number \+14255550122 has the same PIN" \
    "import: phone and PIN twice in the file" "$CTL" "${C[@]}" user import "$T/pin.csv"
printf 'uri,phone,ext,pool,pin\nsip:g1@example.com,+14255550100,3101,pool1,31415\n' >"$T/pin2.csv"
expect_exit 1 "pin2.csv:2: sip:g1@example.com: another user of the phone number \+14255550100 has the same PIN" \
    "import: phone and PIN of a stored user" "$CTL" "${C[@]}" user import "$T/pin2.csv"
expect_exit 1 "no such user" "refused imports stored nothing" "$CTL" "${C[@]}" user show sip:g1@example.com
check "user list after the clashes" "$CTL" "${C[@]}" user list
same "user list has 7 users" "$(wc -l <"$T/out")" 7
# A CSV saved by a spreadsheet starts with a UTF-8 byte order mark and ends lines in CRLF
# (hardening item 18: the BOM made the header "wrong").
printf '\xef\xbb\xbfuri,phone,ext,pool,pin\r\nsip:h1@example.com,,4001,pool1,24683\r\n' >"$T/bom.csv"
check "import a CSV with a UTF-8 BOM" "$CTL" "${C[@]}" user import "$T/bom.csv"
check "the BOM row is a user" "$CTL" "${C[@]}" user show sip:h1@example.com
has "its URI has no BOM" "$T/out" "^uri: +sip:h1@example.com$"
printf 'uri,phone,ext,pool,pin\n\xef\xbb\xbfsip:h2@example.com,,4002,pool1,24684\n' >"$T/bom2.csv"
expect_exit 1 "bom2.csv:2: .*the URI must start with sip:" "a BOM elsewhere is not skipped" "$CTL" "${C[@]}" user import "$T/bom2.csv"

# --- offline issuance for every accepted client key type ---
mkcsr() { # mkcsr NAME SUBJ OPENSSL-GENPKEY-ARGS...
    local n=$1 subj=$2; shift 2
    openssl genpkey "$@" -out "$T/$n.key" 2>/dev/null &&
        openssl req -new -key "$T/$n.key" -subj "$subj" -out "$T/$n.csr" 2>/dev/null
}
verify_cert() { # verify_cert NAME CA-DIR
    check "$1: openssl verify -x509_strict -purpose sslclient" openssl verify -x509_strict -purpose sslclient \
        -CAfile "$2/ca/root.crt" -untrusted "$2/ca/issuing.crt" "$T/$1.crt"
    cat "$T/$1.crt" "$2/ca/issuing.crt" >"$T/$1.chain"
    check "$1: certtool --verify" certtool --verify --verify-purpose=1.3.6.1.5.5.7.3.2 \
        --load-ca-certificate "$2/ca/root.crt" --infile "$T/$1.chain"
}
SUBJ=/CN=alice@example.com
mkcsr rsa2048 $SUBJ -algorithm RSA -pkeyopt rsa_keygen_bits:2048
mkcsr rsa3072 $SUBJ -algorithm RSA -pkeyopt rsa_keygen_bits:3072
mkcsr rsa4096 $SUBJ -algorithm RSA -pkeyopt rsa_keygen_bits:4096
mkcsr p256 $SUBJ -algorithm EC -pkeyopt ec_paramgen_curve:P-256
mkcsr p384 $SUBJ -algorithm EC -pkeyopt ec_paramgen_curve:P-384
mkcsr ed25519 $SUBJ -algorithm ED25519
for k in rsa2048 rsa3072 rsa4096 p256 p384 ed25519; do
    check "issue $k" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/$k.csr" --out "$T/$k.crt"
    verify_cert "$k" "$S"
    openssl x509 -in "$T/$k.crt" -noout -text >"$T/$k.txt"
    has "$k subject" "$T/$k.txt" "Subject: CN ?= ?alice@example.com"
    has "$k SAN" "$T/$k.txt" "URI:sip:alice@example.com"
    has "$k EKU" "$T/$k.txt" "TLS Web Client Authentication"
    has "$k KU critical" "$T/$k.txt" "Key Usage: critical"
    has "$k basicConstraints" "$T/$k.txt" "CA:FALSE"
    has "$k SKI" "$T/$k.txt" "Subject Key Identifier"
    has "$k AKI" "$T/$k.txt" "Authority Key Identifier"
    case $k in
    rsa*) has "$k keyEncipherment" "$T/$k.txt" "Digital Signature, Key Encipherment" ;;
    *) if grep -q "Key Encipherment" "$T/$k.txt"; then bad "$k has keyEncipherment"; else ok; fi ;;
    esac
done
# Validity: default 4320 h, back-dated 5 minutes; --hours 1 is clamped to the 8 h minimum.
nb=$(date -d "$(openssl x509 -in "$T/p256.crt" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/p256.crt" -noout -enddate | cut -d= -f2)" +%s)
same "default validity 4320 h + 5 min" $((na - nb)) $((4320 * 3600 + 300))
now=$(date +%s)
if [ $((now - nb)) -ge 295 ] && [ $((now - nb)) -le 400 ]; then ok; else bad "notBefore not back-dated 5 min: $((now - nb))"; fi
# --hours outside [min_hours, max_hours] is an error naming the range, not a silent clamp
# (hardening item 17; it used to clamp --hours 1 to 8); the minimum itself is issued.
ncerts() { "$CTL" "${C[@]}" cert list --uri sip:alice@example.com | wc -l; }
before=$(ncerts)
for h in 1 7 8761 87600; do
    expect_exit 2 "--hours $h is outside the profile's range: from 8 to 8760 hours" "--hours $h refused" \
        "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --hours $h --out "$T/h$h.crt"
done
same "no certificate issued for a refused --hours" "$(ncerts)" "$before"
check "issue --hours 8" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --hours 8 --out "$T/short.crt"
nb=$(date -d "$(openssl x509 -in "$T/short.crt" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/short.crt" -noout -enddate | cut -d= -f2)" +%s)
same "--hours 8 is 8 h" $((na - nb)) $((8 * 3600 + 300))
expect_exit 2 "hours" "bad --hours" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --hours 0
# --out is checked before anything is issued (hardening item 17): a path that cannot be written
# used to store and publish the certificate and exit 1, and a retry issued a second one.
before=$(ncerts)
check "outbox before" "$CTL" "${C[@]}" outbox list
obefore=$(wc -l <"$T/out")
expect_exit 1 "--out $T/nodir/x.crt: .*No such file or directory.*nothing was issued" "--out in a missing directory" \
    "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --out "$T/nodir/x.crt"
expect_exit 1 "--out $T: .*Is a directory.*nothing was issued" "--out a directory" \
    "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --out "$T"
mkdir "$T/ro" && chmod 500 "$T/ro"
if [ "$(id -u)" != 0 ]; then
    expect_exit 1 "--out $T/ro/x.crt: .*Permission denied.*nothing was issued" "--out in a read-only directory" \
        "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --out "$T/ro/x.crt"
fi
same "no certificate stored for a bad --out" "$(ncerts)" "$before"
check "outbox after" "$CTL" "${C[@]}" outbox list
same "nothing queued for a bad --out" "$(wc -l <"$T/out")" "$obefore"
if ls "$T"/nodir* "$T"/ro/* "$T"/*.tmp.* >/dev/null 2>&1; then bad "a bad --out left files behind"; else ok; fi

# --- refused CSRs: each with its code and reason ---
mkcsr rsa1024 $SUBJ -algorithm RSA -pkeyopt rsa_keygen_bits:1024
expect_exit 1 "BadCsr: .*2048" "RSA-1024" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/rsa1024.csr"
openssl req -new -key "$T/p256.key" -subj $SUBJ -sha1 -out "$T/sha1.csr" 2>/dev/null
expect_exit 1 "BadCsr: .*SHA-1|BadCsr: .*MD5" "SHA-1 CSR" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/sha1.csr"
openssl req -new -key "$T/p256.key" -subj /CN=bob@example.com -out "$T/bob.csr" 2>/dev/null
expect_exit 1 "IdentityMismatch" "CSR for someone else" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/bob.csr"
openssl req -new -key "$T/p256.key" -subj $SUBJ -addext subjectAltName=URI:sip:bob@example.com -out "$T/bobsan.csr" 2>/dev/null
expect_exit 1 "IdentityMismatch" "SAN for someone else" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/bobsan.csr"
head -c 300 /dev/urandom >"$T/junk.csr"
expect_exit 1 "BadCsr" "garbage CSR" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/junk.csr"
expect_exit 1 "no user" "unknown user" "$CTL" "${C[@]}" cert issue --uri sip:nobody@example.com --csr "$T/p256.csr"
# base64 with line breaks anywhere (as phones send it) is accepted.
openssl req -in "$T/p256.csr" -outform DER | base64 -w 17 >"$T/b64.csr"
check "base64 CSR with line breaks" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/b64.csr" --out "$T/b64.crt"

# --- the store: show, list, outbox ---
serial=$(openssl x509 -in "$T/p256.crt" -noout -serial | cut -d= -f2 | sed "s/^0*//")
check "cert show" "$CTL" "${C[@]}" cert show "$serial"
has "cert show uri" "$T/out" "uri: +sip:alice@example.com"
has "cert show pool" "$T/out" "pool: +pool1"
lower=$(echo "$serial" | tr 'A-F' 'a-f' | sed 's/../&:/g; s/:$//')
check "cert show lower case with colons" "$CTL" "${C[@]}" cert show "00$lower"
printf '%s' "$serial" | grep -Eq '^[0-9A-F]+$' && ok || bad "serial not upper-case hex: $serial"
expect_exit 1 "no certificate" "unknown serial" "$CTL" "${C[@]}" cert show 0123456789ABCDEF
expect_exit 2 "not a serial" "bad serial" "$CTL" "${C[@]}" cert show xyz
check "cert list" "$CTL" "${C[@]}" cert list --uri sip:alice@example.com
same "alice has 8 certificates" "$(wc -l <"$T/out")" 8
check "outbox list" "$CTL" "${C[@]}" outbox list
same "8 entries waiting" "$(grep -c 'pool=pool1 serial=.* state=waiting' "$T/out")" 8
has "outbox lists the serial" "$T/out" "serial=$serial "
check "outbox list pool2 is empty" "$CTL" "${C[@]}" outbox list --pool pool2
same "pool2 prints nothing" "$(wc -c <"$T/out")" 0
expect_exit 1 "not configured" "outbox list unknown pool" "$CTL" "${C[@]}" outbox list --pool nopool
check "outbox retry" "$CTL" "${C[@]}" outbox retry --pool pool1
check "pool status" "$CTL" "${C[@]}" pool status
has "pool status depth" "$T/out" "pool=pool1 store=embedded outbox_depth=8"

# --- inspecting what was issued (issue 14): cert show decodes, cert list filters, --json ---
check "cert show decodes" "$CTL" "${C[@]}" cert show "$serial"
has "cert show subject" "$T/out" '^subject: +CN=alice@example.com$'
has "cert show SAN" "$T/out" '^san: +URI:sip:alice@example.com$'
has "cert show key" "$T/out" '^key: +EC P-256$'
has "cert show issuer" "$T/out" '^issuer: +CN='
fp=$(openssl x509 -in "$T/p256.crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)
has "cert show fingerprint is openssl's" "$T/out" "^sha256: +$fp\$"
has "cert show: pending in the outbox" "$T/out" '^publication: pending in the outbox of pool1 \(attempts=0 '
has "cert show PEM" "$T/out" "BEGIN CERTIFICATE"
jsonok() { if jq -e . "$T/out" >/dev/null 2>&1; then ok; else bad "$1: not JSON: $(head -c 300 "$T/out")"; fi; }
check "cert show --json" "$CTL" "${C[@]}" cert show "$serial" --json
jsonok "cert show --json"
same "cert show --json fields" "$(jq -r '[.serial,.subject,.key,.publication,.pool] | join(" ")' "$T/out")" "$serial CN=alice@example.com EC P-256 pending pool1"
same "cert show --json PEM is the certificate" "$(jq -r .pem "$T/out" | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)" "$fp"
check "cert list, every user" "$CTL" "${C[@]}" cert list
nall=$(wc -l <"$T/out")
has "cert list without --uri names the user" "$T/out" "^$serial uri=sip:alice@example.com pool=pool1 "
check "cert list --limit 2" "$CTL" "${C[@]}" cert list --limit 2
same "--limit 2 prints 2" "$(wc -l <"$T/out")" 2
has "--limit says there are more" "$T/err" "more than 2 certificates match"
check "cert list --since the future" "$CTL" "${C[@]}" cert list --since 2999-01-01T00:00:00Z
same "--since the future lists none" "$(wc -c <"$T/out")" 0
check "cert list --since 1h" "$CTL" "${C[@]}" cert list --since 1h
same "--since 1h lists all" "$(wc -l <"$T/out")" "$nall"
check "cert list --expiring-within 1d" "$CTL" "${C[@]}" cert list --expiring-within 1d
same "--expiring-within 1d: the 8-hour certificate" "$(wc -l <"$T/out")" 1
check "cert list --pool pool2" "$CTL" "${C[@]}" cert list --pool pool2
if grep -q 'pool=pool1' "$T/out"; then bad "--pool pool2 listed pool1"; else ok; fi
check "cert list --json" "$CTL" "${C[@]}" cert list --json --limit 3
jsonok "cert list --json"
same "cert list --json: one object a line" "$(jq -c . "$T/out" | wc -l)" 3
expect_exit 2 "limit takes" "cert list --limit 0" "$CTL" "${C[@]}" cert list --limit 0
expect_exit 2 "expiring-within takes" "bad --expiring-within" "$CTL" "${C[@]}" cert list --expiring-within soon
expect_exit 1 "not configured" "cert list unknown pool" "$CTL" "${C[@]}" cert list --pool nopool
check "user list --json" "$CTL" "${C[@]}" user list --json
jsonok "user list --json"
has "user list --json line" "$T/out" '^\{"uri":"sip:alice@example.com","pool":"pool1","phone":"\+14255550100","extension":"1001","state":"active"\}$'
check "outbox list --json" "$CTL" "${C[@]}" outbox list --json
jsonok "outbox list --json"
same "outbox list --json: 8 objects" "$(jq -c 'select(.state == "waiting")' "$T/out" | wc -l)" 8
check "pool status --json" "$CTL" "${C[@]}" pool status --json
jsonok "pool status --json"
same "pool status --json depth" "$(jq -r 'select(.pool == "pool1") | .outbox_depth' "$T/out")" 8

# --- user maintenance ---
check "set-pin" sh -c "printf '86420\n' | '$CTL' -c '$T/certprov.ini' user set-pin sip:alice@example.com --pin-stdin"
expect_exit 1 "repeated or consecutive|run" "set-pin weak" sh -c "printf '99999\n' | '$CTL' -c '$T/certprov.ini' user set-pin sip:alice@example.com --pin-stdin"
check "unlock" "$CTL" "${C[@]}" user unlock sip:alice@example.com
expect_exit 1 "no such user" "unlock unknown" "$CTL" "${C[@]}" user unlock sip:nobody@example.com
check "del" "$CTL" "${C[@]}" user del sip:bob@example.com
expect_exit 1 "no such user" "deleted" "$CTL" "${C[@]}" user show sip:bob@example.com
check "certificates outlive their user" "$CTL" "${C[@]}" cert show "$serial"

# --- every CA key type signs certificates that verify ---
for ca in p384 rsa2048 rsa3072 ed25519; do
    sed "s|path = store|path = store-$ca|" "$T/certprov.ini" >"$T/$ca.ini"
    check "ca init $ca" "$CTL" -c "$T/$ca.ini" ca init --key-type "$ca" --fqdn "ca-$ca.example.com"
    check "add alice ($ca)" sh -c "printf '27182\n' | '$CTL' -c '$T/$ca.ini' user add --uri sip:alice@example.com --pool pool1 --ext 1001 --pin-stdin"
    check "issue under $ca" "$CTL" -c "$T/$ca.ini" cert issue --uri sip:alice@example.com --csr "$T/p256.csr" --out "$T/ca-$ca.crt"
    verify_cert "ca-$ca" "$T/store-$ca"
done
finish
