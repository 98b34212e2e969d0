#!/usr/bin/env bash
# certprovd against the attacks of the hardening issue, over real sockets: HEAD answers carry no
# body (a keep-alive client stays in step), an Upgrade or CONNECT gets exactly one answer, folded
# lines and bad header names are refused with 400 (no smuggling past a front end that parses
# differently).
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
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
printf '27182\n' | "$CTL" "${C[@]}" user add --uri sip:alice@example.com --pool pool1 --ext 1001 \
    --pin-stdin >/dev/null || bad "user add"
PID=
start() {
    "$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    bad "certprovd did not start: $(tail -5 "$T/daemon.log")"
    return 1
}
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
start || { finish; exit 1; }

# raw REQUEST: one connection from 127.0.0.1, REQUEST as is, everything answered until close.
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf '%s' "$1" >&3
    timeout 5 cat <&3
    exec 3<&-
}
# answers FILE: the number of status lines in FILE.
answers() { grep -c '^HTTP/1.1 [0-9]' "$1"; }

# --- item 12: HEAD carries the headers of GET, and no body ---
chain_len=$(curl -s "$URL/CertProv/chain.pem" | wc -c)
raw $'HEAD /CertProv/chain.pem HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/head"
has "HEAD: 200" "$T/head" '^HTTP/1.1 200'
has "HEAD: Content-Length of the GET answer" "$T/head" "^Content-Length: $chain_len"$'\r'
if grep -q 'BEGIN CERTIFICATE' "$T/head"; then bad "HEAD answer carries the body"; else ok; fi
same "HEAD then GET on one connection: two answers" "$(answers "$T/head")" 2
same "the GET answer follows the HEAD headers at once" \
    "$(tr -d '\r' <"$T/head" | awk 'NR > 1 && prev == "" { print; exit } { prev = $0 }')" "HTTP/1.1 200 OK"
w='%{http_code} %{num_connects} '
same "curl --head, then GET on the same connection" "$(curl -s -o /dev/null -w "$w" --head \
    "$URL/CertProv/chain.pem" --next -s -o /dev/null -w "$w" "$URL/healthz")" "200 1 200 0 "

# --- item 13: Upgrade and CONNECT get exactly one answer, then the connection closes ---
raw $'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' >"$T/up"
same "Upgrade: one answer" "$(answers "$T/up")" 1
has "Upgrade: the handler's answer" "$T/up" '^HTTP/1.1 200'
has "Upgrade: Connection: close" "$T/up" $'^Connection: close\r'
raw $'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n' >"$T/connect"
same "CONNECT: one answer" "$(answers "$T/connect")" 1

# --- item 14: folded lines, empty names and spaces in names: 400, nothing handled ---
before=$(grep -c 'request route=healthz' "$T/daemon.log")
n=0
for req in $'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n' \
    $'GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n' \
    $'GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n' \
    $'GET /healthz HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n' \
    $'GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n' \
    $'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n'; do
    n=$((n + 1))
    raw "$req" >"$T/strict$n"
    has "strict header syntax $n: 400" "$T/strict$n" '^HTTP/1.1 400'
    same "strict header syntax $n: one answer" "$(answers "$T/strict$n")" 1
done
sleep 0.2
same "no refused request reached the handler" "$(grep -c 'request route=healthz' "$T/daemon.log")" "$before"

kill -TERM "$PID"
wait "$PID"
same "SIGTERM exit status" "$?" 0
finish
