#!/usr/bin/env bash
# The balancer, tested with the real thing (issue 16): Debian's HAProxy runs deploy/haproxy.cfg
# as written (only addresses, ports and the stats socket's path replaced, each replacement
# checked) in front of two certprovd, each with its own store, sharing one issuing CA (its files
# copied: the fleet CA registry of [directory] is not used here yet), one PIN key, one TLS
# ticket-key file, and one PostgreSQL that is both their fleet directory ([directory] store) and
# their pool store. The users are imported once, through appliance 1's certprovctl; appliance 2
# has them from the directory. Checks: (a) enrollments through the balancer reach both
# appliances, for users added through only one of them, and its plain HTTP frontend serves the
# chain but refuses anything with a PIN; (c) a TLS session made on one appliance resumes on the
# other; (d) wrong PINs judged on one appliance count on the other (3 on appliance 1, then only
# window_failures - 3 judged on appliance 2, whose lock holds on appliance 1), and, after a
# user unlock, a guessing burst through the balancer (wrong PINs for one user, in parallel,
# spread over both appliances) is locked within README's bound (window_failures plus what the other
# appliance judges within one propagation delay; at most N x window_failures), the lock reaches
# both appliances, and the right PIN then gets PinLocked on each: no certificate for that user;
# (b) under load (parallel curl clients, a new TLS connection per enrollment), one appliance is
# killed with kill -9: no request fails once HAProxy's health check marked it down, the ones that
# fail are counted and were on it (in flight at the kill or before the mark), and every
# certificate answered 200 is in one of the two LMDB stores (the killed one read after the test)
# and in PostgreSQL exactly once. PostgreSQL is stopped for a moment before the kill, so that the
# killed appliance dies with certificates in its outbox: they reach PostgreSQL only when it is
# started again on its store, and only once (the directory is stale meanwhile; enrollments go on
# from the replicas).
# The load is a loop of curl clients per user (a new TLS connection per enrollment), each request
# logged with its start and end time, so that failures are told apart by phase.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
CFG_SRC="$(dirname "$0")/../../deploy/haproxy.cfg"
HAPROXY=$(command -v haproxy) || { bad "haproxy is missing (deps/packages.txt)"; finish; exit 1; }
NAME=certprov.example.com # the fleet's name: devices connect to it, the balancer answers
PIDS=("" "" "")           # certprovd 1 and 2 (index 0 unused); never 0: kill 0 is the group
HA_PID=""
LOADERS=""
# BALANCER_KEEP=1 keeps the test's directory (logs, HAProxy's configuration) for a look.
trap 'kill -9 ${PIDS[*]} $HA_PID $LOADERS 2>/dev/null; pg_cleanup
    if [ -n "${BALANCER_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi' EXIT

P1=$(free_port) && TP1=$(free_port) && P2=$(free_port) && TP2=$(free_port) &&
    FE_TLS=$(free_port) && FE_HTTP=$(free_port) || exit 1
PORTS=(0 "$P1" "$P2")
WINDOW=5 # [pin] window_failures of both appliances
NUM_APPLIANCES=2
for i in 1 2; do
    tp=$TP1
    [ "$i" = 2 ] && tp=$TP2
    cat >"$T/a$i.ini" <<INI
[server]
name = certprov$i.example.com
alt_names = $NAME
listen = 127.0.0.1:${PORTS[$i]}
tls_listen = 127.0.0.1:$tp
workers = 1
proxy_protocol = on
proxy_from = 127.0.0.1/32
ticket_keys = $T/tickets.keys
[store]
path = store$i
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0   ; each user enrolls hundreds of times
[pool.pg]
store = $PG_URL
[pin]
window_failures = $WINDOW       ; the guessing burst (d) locks after a few
total_failures = 100000
[directory]
store = $PG_URL
INI
done

# ---- the fleet: one CA and PIN key, one ticket-key file, the same users ----
"$CTL" -c "$T/a1.ini" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
# The second appliance gets a copy of the first one's CA and PIN key (not its LMDB store, nor its
# TLS server certificate: certprovd issues one for its own [server] name at start).
mkdir -m 700 "$T/store2"
cp -a "$T/store1/ca" "$T/store1/chain.pem" "$T/store1/pin.key" "$T/store2/"
check "ticket-key file for the fleet" "$CTL" -c "$T/a1.ini" tls ticket-key rotate
CA=$T/store1/chain.pem
# The fleet directory, once (any appliance): its tables and the PIN key's id.
check "directory init (through appliance 1)" "$CTL" -c "$T/a1.ini" directory init

NUM_USERS=6
printf 'uri,phone,ext,pool,pin\n' >"$T/users.csv"
for k in $(seq 1 $NUM_USERS); do
    printf 'sip:u%d@example.com,,%d,pg,%d\n' "$k" $((2000 + k)) $((27180 + k)) >>"$T/users.csv"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/u$k.key" 2>/dev/null
    openssl req -new -key "$T/u$k.key" -subj "/CN=u$k@example.com" -outform DER 2>/dev/null |
        base64 -w 64 >"$T/u$k.b64"
done
# provision_users INI: gives the fleet its users: one `certprovctl user import` through the
# appliance of INI writes them to the directory (and that appliance's replica); the others'
# directory threads replicate them.
provision_users() { "$CTL" -c "$1" user import "$T/users.csv"; }

# pp2 PORT PATH: GET PATH on an appliance's plain listener, after the PROXY v2 LOCAL header that
# HAProxy's own checks send (proxy_protocol = on refuses a connection without one).
pp2() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
s.sendall(f"GET {sys.argv[2]} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode(errors="replace"))
PY
}
metric() { pp2 "${PORTS[$1]}" /metrics 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'; }
start_app() { # start_app I: certprovd I in the background, until /healthz answers
    "$D" -c "$T/a$1.ini" >>"$T/app$1.log" 2>&1 &
    PIDS[$1]=$!
    for _ in $(seq 1 200); do
        pp2 "${PORTS[$1]}" /healthz 2>/dev/null | grep -q '^HTTP/1.1 200' && return 0
        sleep 0.05
    done
    bad "certprovd $1 did not start: $(tail -5 "$T/app$1.log")"
    return 1
}
start_app 1 && start_app 2 || { finish; exit 1; }
# wait_for SECONDS CMD...: until CMD succeeds, every 0.1 s
wait_for() {
    local n=$(($1 * 10))
    shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# ---- the users: added once, through appliance 1 only ----
check "users imported through appliance 1" provision_users "$T/a1.ini"
same "the directory has them" "$(psql_q "SELECT count(*) FROM certprov_users WHERE NOT deleted")" \
    $NUM_USERS
# known I URI: appliance I's store (its replica of the directory) has the user.
known() { "$CTL" -c "$T/a$1.ini" user show "$2" >/dev/null 2>&1; }
check "appliance 2's replica has the last of them within 1 s" wait_for 1 known 2 \
    "sip:u$NUM_USERS@example.com"

# ---- HAProxy with deploy/haproxy.cfg as written ----
sed -e "s/^    bind :443\$/    bind 127.0.0.1:$FE_TLS/" \
    -e "s/^    bind :80\$/    bind 127.0.0.1:$FE_HTTP/" \
    -e "s/ 10\.0\.0\.11:8443\$/ 127.0.0.1:$TP1/" -e "s/ 10\.0\.0\.12:8443\$/ 127.0.0.1:$TP2/" \
    -e "s/ 10\.0\.0\.11:8080 / 127.0.0.1:$P1 /" -e "s/ 10\.0\.0\.12:8080 / 127.0.0.1:$P2 /" \
    -e "s| /run/haproxy/admin\.sock | $T/haproxy.sock |" "$CFG_SRC" >"$T/haproxy.cfg"
# Exactly the 7 lines with an address, a port or the socket's path changed, and each to its value.
same "haproxy.cfg: lines substituted" "$(diff "$CFG_SRC" "$T/haproxy.cfg" | grep -c '^>')" 7
for want in "bind 127.0.0.1:$FE_TLS" "bind 127.0.0.1:$FE_HTTP" "server certprov1 127.0.0.1:$TP1" \
    "server certprov2 127.0.0.1:$TP2" "server certprov1 127.0.0.1:$P1 send-proxy-v2" \
    "server certprov2 127.0.0.1:$P2 send-proxy-v2" "stats socket $T/haproxy.sock mode"; do
    has "haproxy.cfg has '$want'" "$T/haproxy.cfg" "^ *$want"
done
same "haproxy.cfg: no example address left" \
    "$(grep -v '^ *#' "$T/haproxy.cfg" | grep -cE '10\.0\.0\.1[12]|bind :|/run/haproxy')" 0
check "haproxy -c accepts it" "$HAPROXY" -c -f "$T/haproxy.cfg"
# Started under the default soft limit of a shell (1024 open files): HAProxy raises it itself to
# what its maxconn needs (2 per connection), as the file's comment says.
# Its messages (servers going DOWN and UP) are stamped with the time they arrive, by bash itself:
# on a loaded machine a poll of the admin socket can take seconds, a line costs nothing.
stamp() { while IFS= read -r l; do echo "$EPOCHREALTIME $l"; done; }
(ulimit -Sn 1024 && exec "$HAPROXY" -db -f "$T/haproxy.cfg") > >(stamp >>"$T/haproxy.log") 2>&1 &
HA_PID=$!
# ha CMD: one command on HAProxy's admin socket, its answer on stdout.
ha() {
    python3 - "$T/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode(errors="replace"))
PY
}
# state SERVER: its state and last check (show stat: status, check_status), e.g. "UP L7OK".
state() {
    ha "show stat" 2>/dev/null | awk -F, -v s="$1" '$1 == "tls_appliances" && $2 == s {print $18, $37}'
}
state_is() { [ "$(state "$1")" = "$2" ]; }
# went DOWN|UP SERVER: the time HAProxy said so (its first such line after the mark), else fails.
went() {
    awk -v p="Server tls_appliances/$2 is $1[,.]" -v from="${MARK:-0}" \
        '$1 >= from && $0 ~ p { print $1; found = 1; exit } END { exit !found }' "$T/haproxy.log"
}
check "certprov1's TLS /readyz check (with PROXY v2) passes" wait_for 20 state_is certprov1 "UP L7OK"
check "certprov2's too" wait_for 20 state_is certprov2 "UP L7OK"
nofile=$(awk '/^Max open files/ {print $4}' "/proc/$HA_PID/limits" 2>/dev/null)
if [ "${nofile:-0}" -ge 8000 ]; then ok; else bad "HAProxy did not raise its open-file limit from 1024: ${nofile:-?}"; fi
has "readyz checks reached appliance 1 over TLS" "$T/app1.log" 'request route=readyz status=200 client=127\.0\.0\.1:[0-9]+ tls=full'

# enroll K OUT: user K enrolls through the balancer over TLS (a new connection); prints the status.
# The devices connect from 127.0.0.2, the balancer from 127.0.0.1 (the only proxy_from): the
# appliances must log the devices' address, which only the PROXY header carries.
enroll() {
    curl -s -o "$2" -w '%{http_code}' --max-time 10 --cacert "$CA" --interface 127.0.0.2 \
        --resolve "$NAME:$FE_TLS:127.0.0.1" -u "$((2000 + $1)):$((27180 + $1))" \
        -H 'Content-Type: application/pkcs10' --data-binary @"$T/u$1.b64" \
        "https://$NAME:$FE_TLS/.well-known/est/simpleenroll"
}
mkdir "$T/ok"
# ---- (a) enrollments through the balancer reach both appliances ----
# (the users were added through appliance 1 only: those appliance 2 serves, it has from the
# directory)
codes=""
par=""
for k in 1 2 3 4 5 6; do
    enroll "$k" "$T/ok/a$k" >"$T/code$k" &
    par="$par $!"
done
wait $par
for k in 1 2 3 4 5 6; do codes="$codes$(cat "$T/code$k")"; done
for k in 1 2 3 4 5 6; do codes="$codes$(enroll "$k" "$T/ok/b$k")"; done
same "12 enrollments through the balancer" "$codes" 200200200200200200200200200200200200
n1=$(grep -c 'request route=est_simpleenroll code=OK' "$T/app1.log")
n2=$(grep -c 'request route=est_simpleenroll code=OK' "$T/app2.log")
same "every enrollment logged by one appliance" "$((n1 + n2))" 12
if [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ]; then ok; else bad "enrollments did not reach both: $n1 and $n2"; fi
echo "balancer: 12 enrollments of users added through appliance 1: $n1 on it, $n2 on appliance 2"
m1=$(metric 1 'certprov_requests_total{route="est_simpleenroll",code="OK"}')
m2=$(metric 2 'certprov_requests_total{route="est_simpleenroll",code="OK"}')
same "metrics of both count them" "${m1:-0}+${m2:-0}" "$n1+$n2"
for i in 1 2; do
    has "appliance $i logs the device's address (PROXY v2)" "$T/app$i.log" \
        'request route=est_simpleenroll code=OK .*client=127\.0\.0\.2:[0-9]+ tls=full'
done
if grep 'route=est_simpleenroll' "$T"/app*.log | grep -q 'client=127\.0\.0\.1:'; then
    bad "an appliance logged the balancer's address as the device's"
else
    ok
fi

# The plain HTTP frontend: the chain for devices that cannot verify TLS yet, never a PIN.
curl -s -o "$T/chain.pem" -w '%{http_code}' "http://127.0.0.1:$FE_HTTP/CertProv/chain.pem" >"$T/c"
same "chain.pem over the plain frontend" "$(cat "$T/c")" 200
check "it is the fleet's chain" cmp "$T/chain.pem" "$CA"
same "the CRL over the plain frontend" "$(curl -s -o "$T/crl" -w '%{http_code}' \
    "http://127.0.0.1:$FE_HTTP/CertProv/crl")" 200
check "it is a CRL of the fleet's CA" openssl crl -inform DER -in "$T/crl" -CAfile "$CA" -noout
same "a PIN over the plain frontend is refused by the balancer" "$(curl -s -o /dev/null -w '%{http_code}' \
    -u 2001:27181 --data-binary @"$T/u1.b64" "http://127.0.0.1:$FE_HTTP/.well-known/est/simpleenroll")" 403

# Keep-alive through the balancer: two requests, one connection (timeout tunnel keeps it).
same "keep-alive through the balancer" "$(curl -s -o /dev/null -o /dev/null -w '%{http_code}/%{num_connects} ' \
    --cacert "$CA" --resolve "$NAME:$FE_TLS:127.0.0.1" "https://$NAME:$FE_TLS/healthz" \
    "https://$NAME:$FE_TLS/healthz")" "200/1 200/0 "

# ---- (c) a session made on one appliance resumes on the other (shared ticket keys) ----
# The admin socket takes one appliance out at a time, so each handshake's appliance is known.
# Each connection asks for /healthz, so that the appliance's request log line says how the TLS
# session came (tls=full or tls=resumed); HAProxy's own checks ask for /readyz (and resume their
# sessions too, so the handshake counters of /metrics cannot tell ours apart).
sess() { # sess -sess_out|-sess_in FILE: one handshake through the balancer; prints New or Reused
    (printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n' "$NAME"; sleep 1) |
        openssl s_client -connect "127.0.0.1:$FE_TLS" -servername "$NAME" -CAfile "$CA" \
            "$1" "$2" 2>/dev/null | grep -E '^(New|Reused),' | cut -d, -f1
}
hz() { grep -c "request route=healthz status=200 client=127\.0\.0\.1:[0-9]* tls=$2" "$T/app$1.log"; }
full2=$(hz 2 full)
res1=$(hz 1 resumed)
ha "disable server tls_appliances/certprov1" >/dev/null
same "a full handshake on appliance 2" "$(sess -sess_out "$T/s.sess")" New
ha "enable server tls_appliances/certprov1" >/dev/null
ha "disable server tls_appliances/certprov2" >/dev/null
same "the session resumes on appliance 1" "$(sess -sess_in "$T/s.sess")" Reused
ha "enable server tls_appliances/certprov2" >/dev/null
same "appliance 2 made the session (its log)" "$(hz 2 full)" $((full2 + 1))
same "appliance 1 resumed it (its log)" "$(hz 1 resumed)" $((res1 + 1))
check "both UP again" wait_for 20 state_is certprov2 "UP L7OK"

# ---- (d) a guessing burst through the balancer, locked across the fleet ----
# A user added through appliance 2 this time (appliance 1 has it from the directory); wrong PINs
# from one device address (127.0.0.3, which the PROXY header carries, so each appliance's log
# tells the burst's requests apart), all at once, spread over both appliances by the balancer.
# README "The fleet directory": with N appliances a guesser gets at most window_failures wrong
# PINs judged plus what the others judge within one propagation delay; each appliance locks by
# itself after window_failures, so whatever the delay, at most N x window_failures.
G_URI=sip:guesser@example.com
G_EXT=2100
G_PIN=27199
BURST_N=${BALANCER_BURST:-40}
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/g.key" \
    -subj "/CN=guesser@example.com" -outform DER 2>/dev/null | base64 -w 64 >"$T/g.b64"
check "add the guesser's user through appliance 2" sh -c "printf '%s\n' $G_PIN |
    '$CTL' -c '$T/a2.ini' user add --uri $G_URI --pool pg --ext $G_EXT --pin-stdin"
check "appliance 1's replica has it within 1 s" wait_for 1 known 1 "$G_URI"
# guess_as PIN OUT: one sign-in of the guesser through the balancer; prints the status.
guess_as() {
    curl -s -o "$2" -w '%{http_code}' --max-time 20 --cacert "$CA" --interface 127.0.0.3 \
        --resolve "$NAME:$FE_TLS:127.0.0.1" -u "$G_EXT:$1" \
        -H 'Content-Type: application/pkcs10' --data-binary @"$T/g.b64" \
        "https://$NAME:$FE_TLS/.well-known/est/simpleenroll"
}
# seen I CODE: the guesser's sign-ins appliance I logged with CODE.
seen() { # (grep -c prints 0 when there are none)
    grep -cE "request route=est_simpleenroll code=$2 .* login=$G_EXT .*client=127\.0\.0\.3:" \
        "$T/app$1.log" || true
}
locked_on() { "$CTL" -c "$T/a$1.ini" user show "$G_URI" --json 2>/dev/null | grep -q '"state":"locked-temp"'; }
# only I: HAProxy sends new connections to appliance I alone (the other disabled); only 0: both.
# One call of the admin socket (commands separated by ';').
only() {
    local j cmds=""
    for j in 1 2; do
        if [ "$1" = 0 ] || [ "$1" = "$j" ]; then
            cmds="${cmds}enable server tls_appliances/certprov$j;"
        else
            cmds="${cmds}disable server tls_appliances/certprov$j;"
        fi
    done
    ha "$cmds" >/dev/null
}
# The failures of one appliance count on the other: 3 wrong PINs judged on appliance 1, then
# (once appliance 2's replica has them) only window_failures - 3 more are judged on appliance 2
# (each appliance alone would allow window_failures), and the lock that appliance 2 decided
# holds on appliance 1, which judged only 3.
window_on() { # window_on I N: appliance I's replica counts N failures in the guesser's window
    "$CTL" -c "$T/a$1.ini" user show "$G_URI" --json 2>/dev/null | grep -q "\"window_failures\":$2,"
}
seq_guesses() { # seq_guesses N: N wrong PINs one after the other; prints their statuses
    local i
    for i in $(seq 1 "$1"); do printf '%s ' "$(guess_as 99992 "$T/seq")"; done
}
only 1
same "3 wrong PINs on appliance 1: judged" "$(seq_guesses 3)" "401 401 401 "
check "appliance 2's replica has the 3 failures within 1 s" wait_for 1 window_on 2 3
only 2
want=""
for _ in $(seq 1 $((WINDOW - 3))); do want="${want}401 "; done
same "then on appliance 2: only window_failures - 3 judged, then locked" "$(seq_guesses $((WINDOW - 1)))" \
    "${want}403 403 "
check "appliance 1's replica holds the lock appliance 2 decided within 1 s" wait_for 1 locked_on 1
only 1
same "the right PIN on appliance 1 (3 failures of its own): PinLocked" \
    "$(guess_as "$G_PIN" "$T/right0")/$(grep -ac PinLocked "$T/right0")" 403/1
only 0
check "unlock the guesser through appliance 1" "$CTL" -c "$T/a1.ini" user unlock "$G_URI"
unlocked_on() { "$CTL" -c "$T/a$1.ini" user show "$G_URI" --json 2>/dev/null | grep -q '"state":"active"'; }
check "unlocked on appliance 2 within 1 s" wait_for 1 unlocked_on 2
check "and on appliance 1" unlocked_on 1
check "appliance 1's window starts again" window_on 1 0
check "appliance 2's window starts again" window_on 2 0
# The burst (the appliances' log lines counted from here).
b_j1=$(seen 1 AuthenticationFailed) && b_l1=$(seen 1 PinLocked)
b_j2=$(seen 2 AuthenticationFailed) && b_l2=$(seen 2 PinLocked)
mkdir "$T/burst"
par=""
for i in $(seq 1 "$BURST_N"); do
    guess_as 99991 "$T/burst/$i" >"$T/burst/$i.code" &
    par="$par $!"
done
wait $par
judged=0
locked=0
other=""
for i in $(seq 1 "$BURST_N"); do
    c=$(cat "$T/burst/$i.code")
    if [ "$c" = 401 ] && ! grep -aq PinLocked "$T/burst/$i"; then
        judged=$((judged + 1))
    elif [ "$c" = 403 ] && grep -aq PinLocked "$T/burst/$i"; then
        locked=$((locked + 1))
    else
        other="$other $c"
    fi
done
j1=$(($(seen 1 AuthenticationFailed) - b_j1)) && l1=$(($(seen 1 PinLocked) - b_l1))
j2=$(($(seen 2 AuthenticationFailed) - b_j2)) && l2=$(($(seen 2 PinLocked) - b_l2))
BOUND=$((NUM_APPLIANCES * WINDOW))
echo "balancer: guessing burst of $BURST_N wrong PINs through the balancer: $judged judged" \
    "before the lock (appliance 1: $j1, appliance 2: $j2), $locked PinLocked (appliance 1: $l1," \
    "appliance 2: $l2); window_failures $WINDOW, judged beyond it within the propagation delay:" \
    "$((judged > WINDOW ? judged - WINDOW : 0)); bound $BOUND"
same "every guess answered AuthenticationFailed or PinLocked" "${other:-none}" none
same "the appliances' logs count the same" "$((j1 + j2)):$((l1 + l2))" "$judged:$locked"
if [ $((j1 + l1)) -gt 0 ] && [ $((j2 + l2)) -gt 0 ]; then ok; else
    bad "the burst did not reach both appliances: $((j1 + l1)) and $((j2 + l2))"
fi
if [ "$judged" -ge "$WINDOW" ] && [ "$judged" -le "$BOUND" ]; then ok; else
    bad "$judged wrong PINs judged: want window_failures ($WINDOW) to N x window_failures ($BOUND)"
fi
if [ "$j1" -le "$WINDOW" ] && [ "$j2" -le "$WINDOW" ]; then ok; else
    bad "an appliance judged more than window_failures ($WINDOW): $j1 and $j2"
fi
# The lock reaches both replicas within 1 s (README: locks decided anywhere, everywhere in 1 s).
check "appliance 1's replica holds the lock within 1 s" wait_for 1 locked_on 1
check "appliance 2's replica holds the lock within 1 s" wait_for 1 locked_on 2
same "the directory holds it" "$(psql_q "SELECT locked_until > extract(epoch FROM now())
    FROM certprov_lockouts WHERE uri = '$G_URI'")" t
# The right PIN, once on each appliance (the other one taken out of the balancer): both
# PinLocked, and no certificate for the guesser anywhere.
for i in 1 2; do
    before=$(seen "$i" PinLocked)
    only "$i"
    same "the right PIN after the lock: PinLocked (appliance $i)" \
        "$(guess_as "$G_PIN" "$T/right$i")/$(grep -ac PinLocked "$T/right$i")" 403/1
    same "appliance $i judged it" "$(seen "$i" PinLocked)" $((before + 1))
    same "no certificate for the guesser on appliance $i" \
        "$("$CTL" -c "$T/a$i.ini" user show "$G_URI" --json | grep -o '"certificates":[0-9]*')" \
        '"certificates":0'
done
only 0
check "certprov1 UP again after (d)" wait_for 20 state_is certprov1 "UP L7OK"
check "certprov2 UP again after (d)" wait_for 20 state_is certprov2 "UP L7OK"

# ---- (b) kill -9 under load ----
# load K: user K enrolls in a loop until $T/stop exists; one line per request: start end status
# curl-exit file (times from bash's EPOCHREALTIME).
load() {
    local k=$1 n=0 t0 code rc
    while [ ! -e "$T/stop" ]; do
        n=$((n + 1))
        t0=$EPOCHREALTIME
        code=$(enroll "$k" "$T/ok/l$k.$n")
        rc=$?
        echo "$t0 $EPOCHREALTIME $code $rc l$k.$n" >>"$T/load.$k"
    done
}
for k in $(seq 1 $NUM_USERS); do
    load "$k" &
    LOADERS="$LOADERS $!"
done
# The phases wait for what they need rather than for a fixed time (a TSan or ASan build on a
# busy machine is many times slower than a release build).
served1() { grep -c 'request route=est_simpleenroll code=OK' "$T/app1.log"; }
served1_reaches() { [ "$(served1)" -ge "$1" ]; }
check "appliance 1 takes part of the load" wait_for 30 served1_reaches $((n1 + 3))
# The pool store goes away for a moment before the kill, so that the appliance dies with
# certificates in its outbox that PostgreSQL has not seen: they must arrive after its restart.
pg_stop
check "appliance 1 enrolls while the pool store is down" wait_for 30 served1_reaches $(($(served1) + 2))
T_KILL=$EPOCHREALTIME
MARK=$T_KILL
kill -9 "${PIDS[1]}"
wait "${PIDS[1]}" 2>/dev/null
PIDS[1]=""
check "HAProxy marks certprov1 DOWN" wait_for 15 went DOWN certprov1
T_DOWN=$(went DOWN certprov1)
has "it says why" "$T/haproxy.log" "Server tls_appliances/certprov1 is DOWN, reason: "
pg_start || bad "PostgreSQL started again"
sleep 4
# At least 12 requests sent after the mark (and answered), so that "none failed" says something.
sent_after() { [ "$(cat "$T"/load.* | awk -v d="$T_DOWN" '$1 >= d' | wc -l)" -ge 12 ]; }
check "the load goes on after the mark" wait_for 30 sent_after
touch "$T/stop"
wait $LOADERS
LOADERS=""
cat "$T"/load.* | sort -n >"$T/load.all"
# Failed requests: at the kill or after it, and before the mark; none after it, none before.
awk -v k="$T_KILL" -v d="$T_DOWN" '
    { total++; if ($1 >= d) after++ }
    $3 == "200" && $4 == "0" { okc++; next }
    { fail++; if ($1 >= d) late++; else if ($2 < k) early++; else inflight++ }
    END { printf "%d %d %d %d %d %d %d\n", total, okc, fail, inflight + 0, early + 0, late + 0, after + 0 }
' "$T/load.all" >"$T/phase"
read -r total okc fail inflight early late after <"$T/phase"
echo "load: $total requests, $okc answered 200, $fail failed (all at the kill or before the" \
    "health check marked certprov1 down: $inflight), $after sent after it; down" \
    "$(awk -v a="$T_KILL" -v b="$T_DOWN" 'BEGIN {printf "%.2f", b - a}') s after the kill"
awk '$3 != "200" || $4 != "0" {print "    failed: status " $3 " curl exit " $4}' "$T/load.all" |
    sort | uniq -c
same "no request failed after the health check marked it down" "$late" 0
same "no request failed before the kill" "$early" 0
if [ "$after" -ge 10 ]; then ok; else bad "only $after requests after the mark: the check says nothing"; fi
if [ "$okc" -ge 30 ]; then ok; else bad "only $okc enrollments under load"; fi
# Every 200's file holds its certificate; the failed ones' files are not looked at.
awk '$3 == "200" && $4 == "0" {print $5}' "$T/load.all" | while read -r f; do echo "$T/ok/$f"; done >"$T/ok.files"
ls "$T"/ok/[ab]* >>"$T/ok.files"
python3 - "$T/ok.files" >"$T/ok.serials" <<'PY'
import base64, sys
from cryptography.hazmat.primitives.serialization import pkcs7
for path in open(sys.argv[1]).read().split():
    der = base64.b64decode(open(path, "rb").read())
    for cert in pkcs7.load_der_pkcs7_certificates(der):
        print(format(cert.serial_number, "X"))
PY
sort "$T/ok.serials" >"$T/ok.sorted"
same "a certificate in every 200" "$(wc -l <"$T/ok.sorted")" "$(wc -l <"$T/ok.files")"
same "no serial answered twice" "$(sort -u "$T/ok.sorted" | wc -l)" "$(wc -l <"$T/ok.sorted")"

# The killed appliance's store, read as it was left (no daemon): its certificates, and the
# outbox of those PostgreSQL has not acknowledged. Appliance 2 drains its own backlog meanwhile.
store_serials() { # store_serials I: every certificate in appliance I's LMDB store, sorted
    "$CTL" -c "$T/a$1.ini" cert list --json --limit 1000000 |
        python3 -c 'import json, sys; [print(json.loads(l)["serial"]) for l in sys.stdin if l.strip()]' |
        sort
}
store_serials 1 >"$T/l1.killed" || bad "cert list on the killed appliance's store"
store_serials 2 >"$T/l2" || bad "cert list on appliance 2"
"$CTL" -c "$T/a1.ini" outbox list --pool pg | grep -o 'serial=[0-9A-F]*' | cut -d= -f2 | sort \
    >"$T/pending1"
echo "the killed appliance's outbox held $(wc -l <"$T/pending1") certificates"
if [ -s "$T/pending1" ]; then ok; else bad "the killed appliance's outbox was empty: nothing to drain"; fi
same "no serial in both stores" "$(comm -12 "$T/l1.killed" "$T/l2" | wc -l)" 0
sort -m "$T/l1.killed" "$T/l2" >"$T/stores"
same "every 200 is in a store" "$(comm -23 "$T/ok.sorted" "$T/stores" | wc -l)" 0
pg_serials() { psql_q "SELECT serial FROM user_certificates ORDER BY serial" 2>/dev/null | sort; }
pg_has() { pg_serials >"$T/pg" && [ -z "$(comm -23 "$1" "$T/pg")" ]; }
check "outbox retry on appliance 2" "$CTL" -c "$T/a2.ini" outbox retry --pool pg
check "appliance 2 published all of its certificates" wait_for 30 pg_has "$T/l2"
same "none of the killed appliance's waiting certificates reached PostgreSQL" \
    "$(comm -12 "$T/pending1" "$T/pg" | wc -l)" 0
same "every stored certificate is in PostgreSQL or waits in the killed appliance's outbox" \
    "$(sort -m "$T/pg" "$T/pending1")" "$(cat "$T/stores")"
# Restarted on its store, the killed appliance's publisher sends what waited, and only that.
MARK=$EPOCHREALTIME
start_app 1 || { finish; exit 1; }
store_serials 1 >"$T/l1" || bad "cert list"
check "the killed store is the same after the restart" cmp "$T/l1.killed" "$T/l1"
pg_is_stores() { pg_serials >"$T/pg" && cmp -s "$T/pg" "$T/stores"; }
check "PostgreSQL holds every stored certificate once, after the restart drained the outbox" \
    wait_for 30 pg_is_stores
same "no certificate for the guesser in PostgreSQL either" \
    "$(psql_q "SELECT count(*) FROM user_certificates WHERE sip_uri = '$G_URI'")" 0
same "rows of the 200s' serials = number of 200s" \
    "$(psql_q "SELECT count(*) FROM user_certificates WHERE serial IN ($(sed "s/.*/'&'/" "$T/ok.sorted" | paste -sd,))")" \
    "$(wc -l <"$T/ok.sorted")"
comm -13 "$T/ok.sorted" "$T/stores" >"$T/unanswered"
echo "stored and published without a 200 (committed on appliance 1, the answer lost in the kill):" \
    "$(wc -l <"$T/unanswered")"
same "those are all appliance 1's" "$(comm -23 "$T/unanswered" "$T/l1" | wc -l)" 0
if [ "$(wc -l <"$T/unanswered")" -le "$fail" ]; then ok; else
    bad "$(wc -l <"$T/unanswered") certificates without a 200, more than the $fail failed requests"
fi
check "HAProxy takes certprov1 back" wait_for 20 went UP certprov1
kill -TERM "${PIDS[1]}" "${PIDS[2]}" "$HA_PID"
wait "${PIDS[1]}" "${PIDS[2]}"
PIDS=("" "" "")
HA_PID=""
if grep -E 'ERROR: AddressSanitizer|runtime error' "$T"/app*.log; then bad "sanitizer report"; else ok; fi
finish
