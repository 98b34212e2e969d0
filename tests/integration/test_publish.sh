#!/usr/bin/env bash
# Publishing to home pool stores (issue 4) against a real, throwaway PostgreSQL server and the
# embedded store: enrollments reach user_certificates with every column right within a second;
# a server outage never fails an enrollment and every certificate arrives exactly once after it,
# with one "unavailable" and one "available" log line; one down pool does not delay another; a
# parked entry shows in `outbox list` and goes out after `outbox retry`; kill -9 while
# publishing loses and doubles nothing; certprovd --check names the unreachable pool.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
DEAD_PORT=$((PG_PORT + 1))
URL="http://127.0.0.1:$PORT"
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-pub.example.com
listen = 127.0.0.1:$PORT
[store]
path = store
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0   ; alice enrolls ~50 times (test_ratelimit.sh tests the limit)
[pool.pg1]
store = $PG_URL
[pool.pg2]
store = postgresql://certprov@127.0.0.1:$DEAD_PORT/certprov?connect_timeout=1
[pool.emb]
store = embedded
INI
C=(-c "$T/certprov.ini")
S="$T/store"
PID=""
trap 'kill -9 $PID 2>/dev/null; pg_cleanup; rm -rf "$T"' EXIT
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice (pg1)" add 27182 --uri sip:alice@example.com --pool pg1 --ext 1001
check "add bob (pg2, down)" add 31415 --uri sip:bob@example.com --pool pg2 --ext 1002
check "add carol (embedded)" add 16180 --uri sip:carol@example.com --pool emb --ext 1003
check "add dave (pg1)" add 24680 --uri sip:dave@example.com --pool pg1 --ext 1004

start() {
    "$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd did not start: $(tail -5 "$T/daemon.log")"
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID"; }
for u in alice bob carol dave; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$u.key" 2>/dev/null
    openssl req -new -key "$T/$u.key" -subj "/CN=$u@example.com" -outform DER -out "$T/$u.der" 2>/dev/null
    base64 -w 64 "$T/$u.der" >"$T/$u.b64"
done
# est USER:PIN NAME OUT: EST enrollment, prints the status.
est() {
    curl -s -o "$3" -w '%{http_code}' -u "$1" --data-binary @"$T/$2.b64" \
        "$URL/.well-known/est/simpleenroll"
}
est_pem() { base64 -d "$1" | openssl pkcs7 -inform DER -print_certs 2>/dev/null; }
serial_of() { est_pem "$1" | openssl x509 -noout -serial | cut -d= -f2 | sed 's/^0*//'; }
rows() { psql_q "SELECT count(*) FROM user_certificates WHERE sip_uri = '$1'" 2>/dev/null || echo -1; }
# wait_for SECONDS CMD...: until CMD succeeds, polling every 0.1 s.
wait_for() {
    local n=$(($1 * 10)); shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
rows_are() { [ "$(rows "$1")" = "$2" ]; }

check "--check with one pool unreachable" "$D" "${C[@]}" --check
has "--check: pg1 reachable" "$T/out" "pool pg1: postgresql reachable"
has "--check: pg2 unreachable with a reason" "$T/out" "pool pg2: unreachable: .+"
start || { finish; exit 1; }

# --- enrollments reach user_certificates with all columns right, within a second ---
same "alice enrolls" "$(est 1001:27182 alice "$T/a1")" 200
check "alice's row within 1 s" wait_for 1 rows_are sip:alice@example.com 1
serial=$(serial_of "$T/a1")
est_pem "$T/a1" | openssl x509 -outform DER -out "$T/a1.der"
nb=$(date -u -d "$(est_pem "$T/a1" | openssl x509 -noout -startdate | cut -d= -f2)" +%s)
na=$(date -u -d "$(est_pem "$T/a1" | openssl x509 -noout -enddate | cut -d= -f2)" +%s)
row=$(psql_q "SELECT serial, sip_uri, coalesce(device_id, 'NULL'), extract(epoch FROM not_before)::bigint,
    extract(epoch FROM not_after)::bigint, encode(der, 'hex'), issued_by,
    abs(extract(epoch FROM issued_at) - extract(epoch FROM now())) < 120,
    published_at >= issued_at FROM user_certificates")
same "the row's columns" "$row" "$serial|sip:alice@example.com|NULL|$nb|$na|$(xxd -p "$T/a1.der" | tr -d '\n')|certprov-pub.example.com|t|t"

# --- two pools, one down: the other keeps publishing with normal lag ---
same "bob enrolls while his pool is down" "$(est 1002:31415 bob "$T/b1")" 200
same "alice enrolls" "$(est 1001:27182 alice "$T/a2")" 200
check "alice's second row within 1 s despite pg2" wait_for 1 rows_are sip:alice@example.com 2
check "outbox list pg2" "$CTL" "${C[@]}" outbox list --pool pg2
has "bob waits in pg2's outbox" "$T/out" "pool=pg2 serial=$(serial_of "$T/b1") attempts=[0-9]+ .*state=waiting"
curl -s "$URL/readyz" >"$T/ready.json"
has "readyz still ready" "$T/ready.json" '"ready":true'
has "readyz pg1 up" "$T/ready.json" '"pg1":\{"state":"up","outbox_depth":0'
has "readyz pg2 down with depth" "$T/ready.json" '"pg2":\{"state":"down","outbox_depth":1'
curl -s "$URL/metrics" >"$T/metrics"
has "metrics pg2 down" "$T/metrics" 'certprov_pool_up\{pool="pg2"\} 0'
has "metrics lag histogram" "$T/metrics" 'certprov_publication_lag_seconds_count\{pool="pg1"\} [1-9]'
has "metrics failures" "$T/metrics" 'certprov_publish_failures_total\{pool="pg2"\} [1-9]'

# --- the embedded store ---
same "carol enrolls (embedded)" "$(est 1003:16180 carol "$T/c1")" 200
emb_count() { mdb_stat -s user_certificates "$S/pools/emb" 2>/dev/null | awk '/Entries/ {print $2}'; }
emb_is() { [ "$(emb_count)" = "$1" ]; }
check "carol's row in the embedded store within 1 s" wait_for 1 emb_is 1
check "embedded outbox empty" "$CTL" "${C[@]}" outbox list --pool emb
same "embedded outbox list prints nothing" "$(cat "$T/out")" ""
check "cert show: carol's certificate published" "$CTL" "${C[@]}" cert show "$(serial_of "$T/c1")"
has "cert show says published, and when" "$T/out" '^publication: published to emb at [0-9T:-]+Z '

# --- outage: every enrollment succeeds, every certificate arrives exactly once ---
pg_stop
codes=""
for i in 1 2 3 4 5; do codes="$codes$(est 1001:27182 alice "$T/o$i")"; sleep 0.3; done
same "5 enrollments during the outage" "$codes" 200200200200200
curl -s "$URL/readyz" >"$T/ready.json"
has "readyz: pg1 down, appliance ready" "$T/ready.json" '"ready":true.*"pg1":\{"state":"down","outbox_depth":5'
pg_start
check "all 7 of alice's certificates after the outage (backoff <= 16 s)" wait_for 30 rows_are sip:alice@example.com 7
same "no serial doubled" "$(psql_q "SELECT count(DISTINCT serial) FROM user_certificates")" "$(psql_q "SELECT count(*) FROM user_certificates")"
sleep 1.2
same "one unavailable line for pg1" "$(grep -c 'data store unavailable pool=pg1 cause=' "$T/daemon.log")" 1
same "one available line for pg1" "$(grep -c 'data store available pool=pg1 outage_s=[0-9.]* drained=5' "$T/daemon.log")" 1
check "pool status" "$CTL" "${C[@]}" pool status
has "pool status pg1 up" "$T/out" "pool=pg1 store=postgresql outbox_depth=0 .*state=up .*last_success=20"
has "pool status pg2 down with error" "$T/out" 'pool=pg2 .*state=down .*last_error="[^"]+'

# --- a permanent error parks the entry; outbox retry sends it ---
psql_q "ALTER TABLE user_certificates ADD CONSTRAINT no_dave CHECK (sip_uri <> 'sip:dave@example.com')"
same "dave enrolls" "$(est 1004:24680 dave "$T/d1")" 200
parked() { "$CTL" "${C[@]}" outbox list --pool pg1 | grep -q "state=parked.*no_dave"; }
check "dave's entry parked with its error" wait_for 2 parked
check "cert show: dave's certificate" "$CTL" "${C[@]}" cert show "$(serial_of "$T/d1")"
has "cert show says parked, with the error" "$T/out" '^publication: parked in the outbox of pg1 \(attempts=[1-9][0-9]* .*no_dave'
same "alice still publishes behind the parked entry" "$(est 1001:27182 alice "$T/a8")" 200
check "alice's 8th row" wait_for 1 rows_are sip:alice@example.com 8
psql_q "ALTER TABLE user_certificates DROP CONSTRAINT no_dave"
check "outbox retry" "$CTL" "${C[@]}" outbox retry --pool pg1
check "dave's row after retry (within ~1 s)" wait_for 3 rows_are sip:dave@example.com 1

# --- kill -9 while publishing: nothing missing, nothing doubled ---
mkdir -p "$T/burst"
for i in $(seq 1 40); do
    (curl -s -o "$T/burst/$i" -w '%{http_code}' -u 1001:27182 --data-binary @"$T/alice.b64" \
        "$URL/.well-known/est/simpleenroll" >"$T/burst/$i.code" 2>/dev/null) &
    [ "$i" = 25 ] && { sleep 0.05; kill -9 "$PID"; }
done
wait 2>/dev/null
start || { finish; exit 1; }
"$CTL" "${C[@]}" cert list --uri sip:alice@example.com | awk '{print $1}' | sort >"$T/stored"
total=$(wc -l <"$T/stored")
check "every stored certificate of alice published after kill -9 ($total)" wait_for 10 rows_are sip:alice@example.com "$total"
psql_q "SELECT serial FROM user_certificates WHERE sip_uri = 'sip:alice@example.com' ORDER BY 1" | sort >"$T/published"
check "published serials = stored serials" cmp "$T/stored" "$T/published"
missing=0
for f in "$T"/burst/*.code; do
    [ "$(cat "$f")" = 200 ] || continue
    grep -qx "$(serial_of "${f%.code}")" "$T/published" || missing=$((missing + 1))
done
same "every served serial published" "$missing" 0
stop
same "SIGTERM exit" $? 0
finish
