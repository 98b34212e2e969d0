#!/usr/bin/env bash
# certprovd behind a load balancer that speaks PROXY protocol v2 (proxy_protocol = on): the
# client address of the header is the one in the request log lines and in the lockout decision's
# log line; a connection without a valid header gets no HTTP answer at all (and is counted in
# /metrics, not logged: a flood of them must not flood the log).
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$PORT
proxy_protocol = on
[store]
path = store
map_size = 64MiB
[pin]
window_failures = 3
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
printf '27182\n' | "$CTL" "${C[@]}" user add --uri sip:alice@example.com --pool pool1 --ext 1001 \
    --pin-stdin >/dev/null || bad "user add"
"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

# proxy_req SRC_IP_HEX SRC_PORT_HEX REQUEST: one connection, a PROXY v2 header (TCP over IPv4,
# source as given, destination 127.0.0.1:8080), then REQUEST; prints the answer.
proxy_req() {
    local sig='\r\n\r\n\x00\r\nQUIT\n'
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf "$sig"'\x21\x11\x00\x0c'"$1"'\x7f\x00\x00\x01'"$2"'\x1f\x90' >&3
    printf '%s' "$3" >&3
    timeout 5 cat <&3
    exec 3<&-
}
up=0
for _ in $(seq 1 100); do
    if proxy_req '\xcb\x00\x71\x07' '\x9c\x40' $'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
        2>/dev/null | grep -q '200 OK'; then
        up=1
        break
    fi
    sleep 0.05
done
[ "$up" = 1 ] || { bad "certprovd did not start: $(tail -5 "$T/daemon.log")"; finish; exit 1; }

proxy_req '\xcb\x00\x71\x07' '\x9c\x40' $'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/h"
has "healthz through PROXY v2" "$T/h" "^HTTP/1.1 200"
has "health log line has the header's client" "$T/daemon.log" \
    'request route=healthz status=200 client=203\.0\.113\.7:40000'

# Wrong PINs from 198.51.100.9:5000: each log line names that client, and so does the lockout.
auth=$(printf '1001:99999' | base64)
body='MIIBAAAA'
req=$'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nAuthorization: Basic '"$auth"$'\r\nContent-Type: application/pkcs10\r\nContent-Length: '"${#body}"$'\r\nConnection: close\r\n\r\n'"$body"
for i in 1 2 3; do
    proxy_req '\xc6\x33\x64\x09' '\x13\x88' "$req" >"$T/fail$i"
done
has "wrong PIN answered 401" "$T/fail1" "^HTTP/1.1 401"
has "failure log line has the header's client" "$T/daemon.log" \
    'request route=est_simpleenroll code=AuthenticationFailed .*client=198\.51\.100\.9:5000'
has "lockout decision logged with the header's client" "$T/daemon.log" \
    'pin_locked uri=sip:alice@example.com .*client=198\.51\.100\.9:5000'
if grep -q 'client=127\.0\.0\.1' "$T/daemon.log"; then
    bad "the balancer's own address was logged as a client"
else
    ok
fi

# No header (a client that bypasses the balancer), or a bad one: closed without an HTTP answer.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
same "no PROXY header: no HTTP answer" "$code" "000"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GARBAGEGARBAGEGARBAGE\r\n\r\n' >&3
timeout 5 cat <&3 >"$T/garbage"
exec 3<&-
same "bad PROXY header: closed, nothing sent" "$(wc -c <"$T/garbage")" 0
proxy_req '\xcb\x00\x71\x07' '\x9c\x40' $'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/m"
n=$(grep -o '^certprov_connections_refused_total[{}]* [0-9]*' "$T/m" | awk '{print $2}')
if [ "${n:-0}" -ge 2 ]; then ok; else bad "refused connections not counted: ${n:-none}"; fi

kill -TERM "$PID"
wait "$PID"
same "SIGTERM exit status" "$?" 0
finish
