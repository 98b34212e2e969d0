#!/usr/bin/env bash
# The fleet directory (issue 16) against a real, throwaway PostgreSQL server and two certprovd
# (A and B, each with its own store and CA, the same PIN key): directory init and its PIN key
# id (another key is refused by init and by certprovd's start, saying so); a user added through
# A's certprovctl enrolls on B within 1 s, a new PIN set through B is live on A within 1 s, a user
# deleted through A is refused on B within 1 s; user import of DIR_FILES x DIR_N users (default
# 1 x 20,000; DIR_FILES=5 DIR_N=200000 is the 1,000,000 of README) through COPY, replicated to B;
# a third appliance's first start loads everything (progress in the log); a user disabled through
# A is refused on B within 1 s; lockout across the two (alternating guesses lock after exactly
# window_failures, a parallel burst within 2 x window_failures, windows begun a second apart while
# PostgreSQL is down merged by maximum, not lost to the newer one, wrong PINs judged on A between
# a `user unlock` through A and the reset row's return to A stay counted); PostgreSQL down: B stays
# ready and serves, /readyz says directory "stale" with the lag, certprov_directory_lag_seconds
# shows it, certprovctl refuses writes (nothing half-done); PostgreSQL back: B catches up by itself.
# Revocations (issue 16): a certificate issued on A and revoked through B cannot renew on A within
# 1 s and is in A's CRL and OCSP; holds lifted across; the fleet's issuing CAs: a certificate of A
# renews on B; the fleet-wide serial index and a clash made by hand, logged and counted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
N=${DIR_N:-20000}
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; pg_cleanup; rm -rf "$T"' EXIT

# conf NAME PORT TLSPORT: the configuration of appliance NAME in $T/NAME.ini, its store in $T/NAME.
conf() {
    cat >"$T/$1.ini" <<INI
[server]
name = certprov-$1.example.com
alt_names = localhost
listen = 127.0.0.1:$2
tls_listen = 127.0.0.1:$3
[store]
path = $1
map_size = 4GiB                   ; sparse: room for DIR_FILES=5 DIR_N=200000
[profile]
max_certs_per_user_per_day = 0
[pool.pool1]
store = embedded
[pin]
window_failures = 5
total_failures = 100000
[revocation]
crl_min_interval_s = 1
ocsp_url = http://127.0.0.1:$2/CertProv/ocsp
[directory]
store = $PG_URL
poll_ms = 1000
INI
}
PA=$(free_port) && PB=$(free_port) && PD=$(free_port) && PC=$(free_port) || exit 1
TA=$(free_port) && TB=$(free_port) && TD=$(free_port) && TC=$(free_port) || exit 1
conf a "$PA" "$TA" && conf b "$PB" "$TB" && conf d "$PD" "$TD" && conf c "$PC" "$TC"
ctl() { local n=$1; shift; "$CTL" -c "$T/$n.ini" "$@"; }
for n in a b c d; do ctl $n ca init >/dev/null || { bad "ca init $n"; finish; exit 1; }; done
# B and D share A's PIN key (the fleet's); C keeps its own.
for n in b d; do cp "$T/a/pin.key" "$T/$n/pin.key" && chmod 600 "$T/$n/pin.key"; done

check "directory init (A)" ctl a directory init
has "init names the PIN key id" "$T/out" "directory ready \(PIN key id [0-9a-f]{16}\)"
KEYID=$(sed -n 's/.*key id \([0-9a-f]*\).*/\1/p' "$T/out")
check "directory init again (B, same key): idempotent" ctl b directory init
expect_exit 1 "PIN key \(id [0-9a-f]{16}\) is not the fleet's \(id $KEYID" \
    "directory init with another PIN key (C)" ctl c directory init
expect_exit 1 "\[directory\] this appliance's PIN key .* is not the fleet's" \
    "certprovd with another PIN key refuses to start" "$D" -c "$T/c.ini"
check "certprovd --check reaches the directory" "$D" -c "$T/b.ini" --check
has "--check: the directory and the key id" "$T/out" "^directory: reachable, PIN key id $KEYID$"
check "directory status" ctl a directory status
has "status: 0 users" "$T/out" "^users: 0$"
same "tables made" "$(psql_q "SELECT count(*) FROM pg_tables WHERE tablename IN ('certprov_users',
    'certprov_meta', 'certprov_lockouts', 'certprov_revocations', 'certprov_cas',
    'certprov_serials')")" 6

start() { # start NAME PORT
    "$D" -c "$T/$1.ini" >>"$T/$1.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd $1 did not start: $(tail -5 "$T/$1.log")"
    return 1
}
start a "$PA" && start b "$PB" || { finish; exit 1; }
# wait_for SECONDS CMD...: until CMD succeeds, polling every 0.05 s.
wait_for() {
    local n=$(($1 * 20)); shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.05; done
    return 1
}
readyz_has() { curl -s "http://127.0.0.1:$1/readyz" | grep -Eq -- "$2"; }
check "A: directory ok" wait_for 5 readyz_has "$PA" '"directory":"ok"'
check "B: directory ok" wait_for 5 readyz_has "$PB" '"directory":"ok","directory_lag_s":0'

csr() { # csr USER: $T/USER.b64
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
        -subj "/CN=$1@example.com" -outform DER 2>/dev/null | base64 -w 64 >"$T/$1.b64"
}
est() { # est PORT LOGIN:PIN USER: the status
    curl -s -o "$T/est.out" -w '%{http_code}' -u "$2" --data-binary @"$T/$3.b64" \
        "http://127.0.0.1:$1/.well-known/est/simpleenroll"
}
est_is() { [ "$(est "$1" "$2" "$3")" = "$4" ]; }
ms() { date +%s%3N; }
add() { printf '%s\n' "$1" | ctl "$2" user add "${@:3}" --pin-stdin >/dev/null; }

# --- a user added through A enrolls on B within 1 s ---
csr alice
same "alice unknown on B" "$(est "$PB" 1001:27182 alice)" 401
t0=$(ms)
check "add alice through A" add 27182 a --uri sip:alice@example.com --pool pool1 --ext 1001
check "alice enrolls on B within 1 s" wait_for 1 est_is "$PB" 1001:27182 alice 200
echo "directory: add on A -> enrolled on B in $(($(ms) - t0)) ms"
same "alice's row in the directory" "$(psql_q "SELECT uri || ' ' || extension || ' ' || pin_key_id
    FROM certprov_users WHERE NOT deleted")" "sip:alice@example.com 1001 $KEYID"
expect_exit 1 "already exists" "the same user through B (replica knows it)" \
    add 27182 b --uri sip:alice@example.com --pool pool1 --ext 1001

# --- a new PIN through B is live on A within 1 s ---
check "set-pin through B" sh -c "printf '31415\n' | '$CTL' -c '$T/b.ini' user set-pin sip:alice@example.com --pin-stdin"
check "new PIN works on A within 1 s" wait_for 1 est_is "$PA" 1001:31415 alice 200
same "old PIN refused on A" "$(est "$PA" 1001:27182 alice)" 401

# --- a user disabled through A can neither sign in nor enroll on B within 1 s; enabled through B ---
check "disable alice through A" ctl a user disable sip:alice@example.com
check "alice refused on B within 1 s" wait_for 1 est_is "$PB" 1001:31415 alice 401
same "alice disabled in the directory" "$(psql_q "SELECT disabled_at > 0 FROM certprov_users
    WHERE uri = 'sip:alice@example.com'")" t
check "enable alice through B" ctl b user enable sip:alice@example.com
check "alice enrolls on A within 1 s" wait_for 1 est_is "$PA" 1001:31415 alice 200

# --- a user deleted through A is refused on B within 1 s ---
csr bob
check "add bob through B" add 16180 b --uri sip:bob@example.com --pool pool1 --ext 1002
check "bob enrolls on A" wait_for 1 est_is "$PA" 1002:16180 bob 200
check "del bob through A" ctl a user del sip:bob@example.com
check "bob refused on B within 1 s" wait_for 1 est_is "$PB" 1002:16180 bob 401
check "bob can be added again (tombstone reused)" add 16180 a --uri sip:bob@example.com --pool pool1 --ext 1002
check "bob back on B" wait_for 1 est_is "$PB" 1002:16180 bob 200

# --- a certificate issued on A and revoked through B cannot renew on A within 1 s; it is in A's
# CRL and OCSP (only A has it), in no CRL of B; a hold lifted through B renews again on A ---
p7pem() { base64 -d "$1" | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509; }
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | sed 's/^0*//'; }
enroll_a() { # enroll_a NAME LOGIN:PIN: NAME.crt/NAME.key issued by A (CN alice@example.com)
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
        -subj "/CN=alice@example.com" -outform DER 2>/dev/null | base64 -w 64 >"$T/$1.b64"
    same "$1 enrolls on A" "$(est "$PA" "$2" "$1")" 200
    p7pem "$T/est.out" >"$T/$1.crt"
}
renew_on() { # renew_on a|b TLSPORT NAME: the status of an mTLS renewal with NAME.crt/NAME.key
    curl -s --cacert "$T/$1/chain.pem" --resolve "certprov-$1.example.com:$2:127.0.0.1" \
        -o "$T/renew.out" -w '%{http_code}' -H 'Content-Type: application/pkcs10' \
        --cert "$T/$3.crt" --key "$T/$3.key" --data-binary @"$T/$3.b64" \
        "https://certprov-$1.example.com:$2/.well-known/est/simplereenroll"
}
renew_a() { renew_on a "$TA" "$1"; }
renew_is() { [ "$(renew_a "$1")" = "$2" ]; }
crl_of() { # crl_of PORT: the CRL's text in $T/crl.txt
    curl -s -o "$T/crl.der" "http://127.0.0.1:$1/CertProv/crl" &&
        openssl crl -inform DER -in "$T/crl.der" -noout -text >"$T/crl.txt" 2>/dev/null
}
crl_lists() { crl_of "$1" && grep -q "Serial Number: 0*$2\$" "$T/crl.txt"; }
ocsp_a() { # ocsp_a CERT: openssl ocsp against A, output in $T/ocsp.out
    openssl ocsp -issuer "$T/a/ca/issuing.crt" -CAfile "$T/a/chain.pem" -no_nonce \
        -url "http://127.0.0.1:$PA/CertProv/ocsp" -cert "$T/$1.crt" >"$T/ocsp.out" 2>&1
}
enroll_a ra1 1001:31415
enroll_a ra2 1001:31415
S1=$(serial "$T/ra1.crt")
S2=$(serial "$T/ra2.crt")
same "ra1 renews on A before the revocation" "$(renew_a ra1)" 200
t0=$(ms)
check "revoke ra1 through B (B does not hold it)" ctl b cert revoke "$S1" --reason keyCompromise
has "B says it is not its certificate" "$T/out" "revoked serial $S1 .*through the fleet directory; not a certificate of this appliance"
check "ra1 cannot renew on A within 1 s" wait_for 1 renew_is ra1 401
echo "directory: revoke through B -> renewal refused on A in $(($(ms) - t0)) ms"
has "A's answer: revoked" "$T/renew.out" "revoked"
same "ra2 still renews on A" "$(renew_a ra2)" 200
same "the revocation in the directory" "$(psql_q "SELECT reason || ' ' || lifted FROM
    certprov_revocations WHERE serial = '$S1'")" "keyCompromise false"
check "A's CRL lists ra1" wait_for 5 crl_lists "$PA" "$S1"
check "A's CRL verifies against A's CA" openssl crl -inform DER -in "$T/crl.der" -noout \
    -CAfile "$T/a/chain.pem"
sleep 1.2
crl_of "$PB"
check "B's CRL does not list it (not B's certificate)" sh -c "! grep -q 'Serial Number: 0*$S1\$' '$T/crl.txt'"
check "OCSP of A answers" ocsp_a ra1
has "OCSP of A: ra1 revoked (keyCompromise)" "$T/ocsp.out" "ra1.crt: revoked"
has "OCSP of A: the reason" "$T/ocsp.out" "Reason: keyCompromise"
check "revoke ra1 again through A: nothing changes" ctl a cert revoke "$S1" --reason superseded
has "already revoked" "$T/out" "serial $S1 was already revoked at .* \(reason keyCompromise\); nothing changed"
# certificateHold through A, lifted through B: renews on A again
check "hold ra2 through A" ctl a cert revoke "$S2" --reason certificateHold
has "A: queued for its pool store" "$T/out" "revoked serial $S2 .*reason certificateHold.*queued for its pool store"
check "ra2 refused on A at once" renew_is ra2 401
check "lift ra2's hold through B" ctl b cert unrevoke "$S2"
check "ra2 renews on A within 1 s of the lift" wait_for 1 renew_is ra2 200
same "lifted in the directory" "$(psql_q "SELECT lifted FROM certprov_revocations WHERE serial = '$S2'")" t
expect_exit 1 "is not revoked" "unrevoke through B again: not revoked" ctl b cert unrevoke "$S2"
expect_exit 1 "this revocation is final" "unrevoke of a final revocation through A" ctl a cert unrevoke "$S1"
# user revoke-certs through A: every certificate of alice that A holds, through the directory
enroll_a ra3 1001:31415
S3=$(serial "$T/ra3.crt")
check "user revoke-certs alice through A" ctl a user revoke-certs sip:alice@example.com --reason superseded
same "ra3 in the directory" "$(psql_q "SELECT reason FROM certprov_revocations WHERE serial = '$S3'")" superseded
same "ra3 refused on A" "$(renew_a ra3)" 401
curl -s "http://127.0.0.1:$PB/metrics" >"$T/metrics"
has "metric: revocations applied on B" "$T/metrics" "^certprov_directory_revocations_applied_total [1-9]"
# user revoke-certs through B reaches alice's certificates that A issued: the fleet's serial
# index names their user; A revokes them as it applies the rows
enroll_a ra7 1001:31415
S7=$(serial "$T/ra7.crt")
ra7_indexed() { [ "$(psql_q "SELECT uri FROM certprov_serials WHERE serial LIKE '%$S7'
    AND appliance = 'certprov-a.example.com'")" = sip:alice@example.com ]; }
check "ra7 in the fleet's serial index with its user" wait_for 3 ra7_indexed
t0=$(ms)
check "user revoke-certs alice through B" ctl b user revoke-certs sip:alice@example.com --reason affiliationChanged
has "B names what other appliances issued" "$T/out" "^revoked [1-9][0-9]* certificates? of sip:alice@example.com that other appliances issued, through the fleet directory$"
check "ra7 cannot renew on A within 1 s" wait_for 1 renew_is ra7 401
echo "directory: user revoke-certs through B -> renewal refused on A in $(($(ms) - t0)) ms"
same "ra7 in the directory" "$(psql_q "SELECT reason FROM certprov_revocations WHERE serial LIKE '%$S7'")" affiliationChanged
check "A's CRL lists ra7" wait_for 5 crl_lists "$PA" "$S7"
check "user revoke-certs through B again" ctl b user revoke-certs sip:alice@example.com --reason affiliationChanged
if grep -q "other appliances issued" "$T/out"; then bad "the second run revoked again: $(cat "$T/out")"; else ok; fi

# --- the fleet's issuing CAs: each appliance registers its own; a certificate A issued renews on
# B (mTLS against the fleet's CAs); one revoked through the directory does not; a CA outside the
# fleet does not ---
renew_b() { renew_on b "$TB" "$1"; }
renew_b_is() { [ "$(renew_b "$1")" = "$2" ]; }
same "two CAs registered (A's and B's)" "$(psql_q "SELECT count(*) FROM certprov_cas")" 2
same "A's CA by its SHA-256" "$(psql_q "SELECT issuer FROM certprov_cas WHERE appliance =
    'certprov-a.example.com'")" "$(openssl x509 -in "$T/a/ca/issuing.crt" -outform DER | sha256sum | cut -d' ' -f1)"
enroll_a ra5 1001:31415 # alice's earlier certificates were all revoked above
check "a certificate A issued renews on B" wait_for 2 renew_b_is ra5 200
p7pem "$T/renew.out" >"$T/ra5b.crt"
check "the renewed certificate is B's" openssl verify -partial_chain -CAfile "$T/b/ca/issuing.crt" "$T/ra5b.crt"
has "B loaded the fleet's CAs" "$T/b.log" "fleet_cas_loaded num=2"
curl -s "http://127.0.0.1:$PB/metrics" >"$T/metrics"
has "metric: two fleet CAs on B" "$T/metrics" "^certprov_directory_fleet_cas 2$"
# Web tickets across the fleet (issue 18): a ticket A's Web Ticket Service signs with A's CA key
# is accepted by B, whose CA is another one of the fleet's (the same pin.key seals the proof)
WT="/usr/bin/python3 $(dirname "$0")/webticket_client.py"
echo 31415 >"$T/alice.pin"
check "a Web ticket from A for B's CertProv" $WT ticket --url "https://localhost:$TA/WebTicket/WebTicketService.svc/Auth" \
    --state "$T/wta" --user 1001 --pin-file "$T/alice.pin" --cafile "$T/a/chain.pem" \
    --applies-to "https://localhost:$TB/CertProv/CertProvisioningService.svc"
check "B accepts A's ticket (A's CA is one of the fleet's)" $WT enroll --cafile "$T/b/chain.pem" \
    --url "https://localhost:$TB/CertProv/CertProvisioningService.svc/WebTicket_Proof" \
    --state "$T/wta" --entity alice@example.com --out "$T/alice-wt.pem"
check "... and issues from B's CA" openssl verify -partial_chain -CAfile "$T/b/ca/issuing.crt" "$T/alice-wt.pem"
# A's dedicated ticket signer is issued by A's CA, not B's: B accepts its tickets through the
# fleet's CAs (the directory's registry), not through its own CA key.
check "A: a dedicated Web ticket signer" ctl a ca webticket-signer --days 30
kill -TERM "$PID_a" 2>/dev/null
wait "$PID_a" 2>/dev/null
start a "$PA" || { finish; exit 1; }
check "A: directory ok after the restart" wait_for 5 readyz_has "$PA" '"directory":"ok"'
has "A signs tickets with its dedicated signer" "$T/a.log" "webticket_signer key=dedicated"
check "a Web ticket from A's dedicated signer" $WT ticket --url "https://localhost:$TA/WebTicket/WebTicketService.svc/Auth" \
    --state "$T/wtd" --user 1001 --pin-file "$T/alice.pin" --cafile "$T/a/chain.pem" \
    --applies-to "https://localhost:$TB/CertProv/CertProvisioningService.svc"
grep -o '<ds:X509Certificate>[^<]*' "$T/wtd/ticket.json" | sed 's/<ds:X509Certificate>//' | base64 -d \
    | openssl x509 -inform DER -noout -subject >"$T/wtd.subject" 2>&1
has "the ticket carries A's signer, not A's CA" "$T/wtd.subject" "certprov Web ticket signer"
check "B accepts it (the signer's CA is one of the fleet's)" $WT enroll --cafile "$T/b/chain.pem" \
    --url "https://localhost:$TB/CertProv/CertProvisioningService.svc/WebTicket_Proof" \
    --state "$T/wtd" --entity alice@example.com --out "$T/alice-wtd.pem"
check "... from B's CA" openssl verify -partial_chain -CAfile "$T/b/ca/issuing.crt" "$T/alice-wtd.pem"
same "ra1 (revoked through the directory) is refused on B" "$(renew_b ra1)" 401
openssl req -x509 -new -key "$T/ra5.key" -subj "/CN=alice@example.com" -days 1 \
    -addext "subjectAltName=URI:sip:alice@example.com" -addext "extendedKeyUsage=clientAuth" \
    -out "$T/forged.crt" 2>/dev/null
cp "$T/ra5.key" "$T/forged.key"
cp "$T/ra5.b64" "$T/forged.b64"
same "a certificate of a CA outside the fleet is refused on B" "$(renew_b forged)" 401

# --- the fleet-wide serial index: every certificate issued is in certprov_serials (shipped
# asynchronously); a serial another appliance holds is a clash, logged and counted ---
S5=$(serial "$T/ra5.crt")
same_serial() { [ "$(psql_q "SELECT appliance FROM certprov_serials WHERE serial = '$1'")" = "$2" ]; }
check "A's serial in the index" wait_for 2 same_serial "$S5" certprov-a.example.com
check "B's renewed serial in the index" wait_for 2 same_serial "$(serial "$T/ra5b.crt")" certprov-b.example.com
# A clash, made by hand: the index is held locked while A issues; the serial A issued is then
# written as another appliance's before A's own write goes through.
coproc PSQL { psql "${PG_PSQL[@]}" -q 2>&1; }
psql_pid=$PSQL_PID # bash unsets PSQL_PID once the coprocess has ended (set -u: fatal)
echo "BEGIN; LOCK TABLE certprov_serials IN SHARE ROW EXCLUSIVE MODE; SELECT 'locked';" >&"${PSQL[1]}"
read -r -t 5 line <&"${PSQL[0]}"
same "index locked" "$line" locked
enroll_a ra6 1001:31415
S6=$(serial "$T/ra6.crt")
echo "INSERT INTO certprov_serials VALUES ('$S6', 'certprov-z.example.com', 0); COMMIT; SELECT 'done';" >&"${PSQL[1]}"
read -r -t 5 line <&"${PSQL[0]}"
echo '\q' >&"${PSQL[1]}"
wait "$psql_pid" 2>/dev/null
clash_logged() { grep -q "directory: serial_clash serial=$S6 other_appliance=\"certprov-z.example.com\"" "$T/a.log"; }
check "the clash is logged on A" wait_for 5 clash_logged
curl -s "http://127.0.0.1:$PA/metrics" >"$T/metrics"
has "metric: the clash counted" "$T/metrics" "^certprov_directory_serial_clashes_total 1$"
has "metric: serials shipped" "$T/metrics" "^certprov_directory_serials_shipped_total [1-9]"

# --- user import of N users through COPY (DIR_FILES files of DIR_N, default 1 x 20,000; at most
# 200,000 a file), replicated to B ---
FILES=${DIR_FILES:-1}
TOTAL=$((N * FILES))
t0=$(ms)
for f in $(seq 1 "$FILES"); do
    {
        echo "uri,phone,ext,pool,pin"
        seq $(((f - 1) * N + 1)) $((f * N)) |
            awk '{ printf "sip:u%d@example.com,,%d,pool1,27182\n", $1, 100000 + $1 }'
    } >"$T/users.csv"
    check "import $N users through A (file $f of $FILES)" ctl a user import "$T/users.csv"
done
t1=$(ms)
echo "directory: user import of $TOTAL users: $((t1 - t0)) ms"
csr "u$TOTAL"
check "the last imported user enrolls on B" wait_for 120 est_is "$PB" "$((100000 + TOTAL)):27182" "u$TOTAL" 200
echo "directory: import -> last user enrolled on B: $(($(ms) - t1)) ms after the import"
same "directory: users" "$(psql_q "SELECT count(*) FROM certprov_users WHERE NOT deleted")" $((TOTAL + 2))

# --- a new appliance's first start loads everything, with progress in the log ---
t0=$(ms)
start d "$PD" || { finish; exit 1; }
check "D: loaded" wait_for 120 readyz_has "$PD" '"directory":"ok"'
echo "directory: full load of $((TOTAL + 2)) users on D: $(($(ms) - t0)) ms"
has "D: loading progress" "$T/d.log" "directory: loading rows=[0-9]+ seq="
has "D: loaded line" "$T/d.log" "directory: loaded rows=$((TOTAL + 2)) "
csr u7
check "u7 enrolls on D" est_is "$PD" 100007:27182 u7 200

# --- lockout across the fleet: failures judged on A count on B and the other way round ---
WINDOW=5
csr eve
check "add eve through A" add 27182 a --uri sip:eve@example.com --pool pool1 --ext 1005
check "eve known on B" wait_for 1 est_is "$PB" 1005:27182 eve 200
# guess PORT: one wrong PIN for eve; prints failed (AuthenticationFailed) or locked (PinLocked)
guess() {
    local code
    code=$(est "$1" 1005:99991 eve)
    if [ "$code" = 403 ] && grep -aq PinLocked "$T/est.out"; then echo locked
    elif [ "$code" = 401 ]; then echo failed
    else echo "other:$code"; fi
}
failed=0; locked=0; other=0
for i in $(seq 1 16); do # alternating, each a little later than one propagation delay
    if [ $((i % 2)) = 1 ]; then r=$(guess "$PA"); else r=$(guess "$PB"); fi
    case $r in failed) failed=$((failed + 1)) ;; locked) locked=$((locked + 1)) ;; *) other=$((other + 1)) ;; esac
    sleep 0.05
done
echo "directory: alternating guesses: $failed judged as failures before the lock, $locked PinLocked"
same "alternating A/B: exactly window_failures guesses judged before the lock" "$failed" "$WINDOW"
same "alternating A/B: the rest PinLocked" "$locked:$other" "$((16 - WINDOW)):0"
check "the right PIN on A is PinLocked" est_is "$PA" 1005:27182 eve 403
has "A: PinLocked" "$T/est.out" PinLocked
check "the right PIN on B is PinLocked" est_is "$PB" 1005:27182 eve 403
same "eve's lock in the directory" "$(psql_q "SELECT locked_until > extract(epoch FROM now())
    FROM certprov_lockouts WHERE uri = 'sip:eve@example.com'")" t
check "unlock eve through B" ctl b user unlock sip:eve@example.com
check "eve enrolls on A within 1 s of the unlock" wait_for 1 est_is "$PA" 1005:27182 eve 200
# A burst in parallel on both: the bound is window_failures plus what the other appliance judges
# within one propagation delay; never a certificate for a right PIN after the lock.
csr frank
check "add frank through B" add 27182 b --uri sip:frank@example.com --pool pool1 --ext 1006
check "frank known on A" wait_for 1 est_is "$PA" 1006:27182 frank 200
BURST=()
for i in $(seq 1 40); do
    p=$PA; [ $((i % 2)) = 0 ] && p=$PB
    curl -s -o "$T/burst.$i" -w '%{http_code}\n' -u 1006:99991 --data-binary @"$T/frank.b64" \
        "http://127.0.0.1:$p/.well-known/est/simpleenroll" >"$T/burst.$i.code" &
    BURST+=($!)
done
wait "${BURST[@]}"
bfailed=0
for i in $(seq 1 40); do
    if [ "$(cat "$T/burst.$i.code")" = 401 ] && ! grep -aq PinLocked "$T/burst.$i"; then
        bfailed=$((bfailed + 1))
    fi
done
echo "directory: parallel burst of 40 on A and B: $bfailed judged as failures before the lock"
check "parallel burst: at most 2 x window_failures judged (each appliance locks by itself)" \
    test "$bfailed" -le $((2 * WINDOW))
sleep 0.3
check "after the burst the right PIN on A is PinLocked" est_is "$PA" 1006:27182 frank 403
check "after the burst the right PIN on B is PinLocked" est_is "$PB" 1006:27182 frank 403
curl -s "http://127.0.0.1:$PA/metrics" >"$T/metrics"
has "metric: lockout notes shipped" "$T/metrics" "^certprov_directory_lockouts_shipped_total [1-9]"

# Windows begun apart (grace): while PostgreSQL is down, 3 wrong PINs on A, then (a second later)
# 1 on B. Once it is back the two windows overlap (begun within window_s): the merge keeps the
# larger count and the later start, on both replicas and in the directory, so that A, which judged
# 3, judges only window_failures - 3 more (each appliance locks by itself after window_failures).
csr grace
check "add grace through A" add 27182 a --uri sip:grace@example.com --pool pool1 --ext 1007
check "grace known on B" wait_for 1 est_is "$PB" 1007:27182 grace 200
lfield() { # lfield APPLIANCE USER FIELD: USER's lockout FIELD in APPLIANCE's replica (user show)
    ctl "$1" user show "sip:$2@example.com" --json | grep -o "\"$3\":[^,]*" | cut -d: -f2-
}
wrong_pins() { # wrong_pins PORT EXT USER N: N wrong PINs for USER (extension EXT); their statuses
    local i
    for i in $(seq 1 "$4"); do printf '%s ' "$(est "$1" "$2:99991" "$3")"; done
}
windows_met() { [ "$(lfield a grace window_start)" = "$(lfield b grace window_start)" ]; }

# --- PostgreSQL down: B serves from its replica, stale with the lag; writes refused ---
pg_stop
check "B: directory stale" wait_for 5 readyz_has "$PB" '"ready":true.*"directory":"stale"'
sleep 2.2
curl -s "http://127.0.0.1:$PB/readyz" >"$T/readyz"
has "B: lag of 2 s or more" "$T/readyz" '"directory_lag_s":([2-9]|[1-9][0-9]+)'
same "B: readyz still 200" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB/readyz")" 200
curl -s "http://127.0.0.1:$PB/metrics" >"$T/metrics"
has "metric: directory down" "$T/metrics" "^certprov_directory_up 0$"
has "metric: lag" "$T/metrics" "^certprov_directory_lag_seconds ([2-9]|[1-9][0-9]+)$"
check "alice enrolls on B meanwhile" est_is "$PB" 1001:31415 alice 200
same "grace: 3 wrong PINs on A meanwhile" "$(wrong_pins "$PA" 1007 grace 3)" "401 401 401 "
sleep 1.1
same "grace: then 1 on B" "$(wrong_pins "$PB" 1007 grace 1)" "401 "
check "grace: B's window begun after A's" \
    test "$(lfield b grace window_start)" \> "$(lfield a grace window_start)"
csr carol
expect_exit 1 "cannot reach the directory" "user add refused while PostgreSQL is down" \
    add 24680 a --uri sip:carol@example.com --pool pool1 --ext 1003
expect_exit 1 "no such user" "and nothing was stored locally" ctl a user show sip:carol@example.com
enroll_a ra4 1001:31415
expect_exit 1 "cannot reach the directory" "cert revoke refused while PostgreSQL is down" \
    ctl a cert revoke "$(serial "$T/ra4.crt")"
same "and nothing was revoked locally: ra4 renews on A" "$(renew_a ra4)" 200
pg_start
check "B: directory ok again by itself" wait_for 40 readyz_has "$PB" '"directory":"ok"'
check "A: directory ok again by itself" wait_for 40 readyz_has "$PA" '"directory":"ok"'
check "grace: A and B merged their windows" wait_for 5 windows_met
same "grace: the directory keeps the larger count of the overlapping windows" \
    "$(psql_q "SELECT window_failures FROM certprov_lockouts WHERE uri = 'sip:grace@example.com'")" 3
same "grace: so does A's replica" "$(lfield a grace window_failures)" 3
same "grace: A judges window_failures - 3 more, then PinLocked" \
    "$(wrong_pins "$PA" 1007 grace 3)" "401 401 403 "
check "add carol through A once it is back" add 24680 a --uri sip:carol@example.com --pool pool1 --ext 1003
check "carol enrolls on B within 1 s" wait_for 1 est_is "$PB" 1003:24680 carol 200
has "B: down logged" "$T/b.log" "directory: down error="
has "B: up logged" "$T/b.log" "directory: up seq="

# An unlock echoed back late (henry): `user unlock` through A clears A's replica and writes a reset
# row, which A's directory thread applies later, with the other rows. Wrong PINs that A judged in
# between must stay counted (they were judged after the unlock). A's thread is held across the
# unlock and 3 wrong PINs (certprov_serials locked while it ships a serial), then let go while
# writes to certprov_lockouts are held: it applies the directory's rows, the reset among them, and
# then waits to ship henry's state, so that nothing it ships can mend what the echo cleared.
csr henry
check "add henry through A" add 27182 a --uri sip:henry@example.com --pool pool1 --ext 1008
check "henry known on B" wait_for 1 est_is "$PB" 1008:27182 henry 200
hold() { # hold NAME SQL: a session that holds SQL's lock (in the background) until `release NAME`
    psql "${PG_PSQL[@]}" -c "BEGIN; $2; SELECT pg_sleep(120) /* held:$1 */; COMMIT;" >/dev/null 2>&1 &
}
others() { # others PATTERN: the other sessions whose query is LIKE PATTERN (and $2: more SQL)
    psql_q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '$1' AND pid <> pg_backend_pid()$2"
}
held() { [ "$(others "%held:$1%" " AND wait_event = 'PgSleep'")" = 1 ]; }
waiting_on() { [ "$(others "$1%" " AND wait_event_type = 'Lock'")" -ge 1 ]; }
release() {
    psql_q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%held:$1%'
        AND pid <> pg_backend_pid()" >/dev/null
}
hold serials "LOCK TABLE certprov_serials IN ACCESS EXCLUSIVE MODE"
check "henry: a session holds certprov_serials" wait_for 5 held serials
same "henry: alice enrolls on A (A's thread ships the serial)" "$(est "$PA" 1001:31415 alice)" 200
check "henry: A's thread waits for certprov_serials" wait_for 5 waiting_on "INSERT INTO certprov_serials"
check "unlock henry through A" ctl a user unlock sip:henry@example.com
same "henry: 3 wrong PINs on A after the unlock" "$(wrong_pins "$PA" 1008 henry 3)" "401 401 401 "
same "henry: A counts them" "$(lfield a henry window_failures)" 3
hold lockouts "LOCK TABLE certprov_lockouts IN EXCLUSIVE MODE"
check "henry: a session holds writes to certprov_lockouts" wait_for 5 held lockouts
release serials
check "henry: A's thread applied the rows and waits to ship henry's state" \
    wait_for 5 waiting_on "INSERT INTO certprov_lockouts"
same "henry: the unlock's echo left the failures judged after it" \
    "$(lfield a henry window_failures)" 3
same "henry: A judges window_failures - 3 more, then PinLocked" \
    "$(wrong_pins "$PA" 1008 henry 3)" "401 401 403 "
release lockouts
check "henry: A's directory ok" wait_for 10 readyz_has "$PA" '"directory":"ok"'

for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p"; done
PIDS=()
finish
