#!/usr/bin/env bash
# The PIN lockout against a real certprovd under concurrent attack ([pin] window_failures = 5):
# hundreds of wrong guesses from parallel curl processes (bounded) while pipelined connections
# each queue 11 wrong guesses and then the right PIN (with a good CSR, or with a broken one), so
# that every right PIN reaches the writer after the limit. No right PIN may get a certificate or
# any answer but PinLocked; exactly window_failures guesses are answered 401; every wrong guess is
# counted in the store.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
WINDOW=5
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$PORT
workers = 2
; the whole attack comes from 127.0.0.1: let it use every slot, so that every guess is judged
; (the per-client shares would answer part of it 503 before any PIN is looked at)
max_inflight_per_client = 256
inflight_reserve = 0
[store]
path = store
map_size = 64MiB
[pin]
window_failures = $WINDOW
total_failures = 100000
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --phone +14255550100 --ext 1001

"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
check "certprovd started" curl -sf "$URL/healthz"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/a.key" 2>/dev/null
openssl req -new -key "$T/a.key" -subj "/CN=alice@example.com" -outform DER -out "$T/a.der" 2>/dev/null
base64 -w 64 "$T/a.der" >"$T/good.b64"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$T/w.key" 2>/dev/null
openssl req -new -key "$T/w.key" -subj "/CN=alice@example.com" -outform DER -out "$T/w.der" 2>/dev/null
base64 -w 64 "$T/w.der" >"$T/weak.b64" # RSA-1024: BadCsr once signed in

# request LOGIN:PIN CSR-FILE [close]: one raw EST simpleenroll request.
request() {
    local body len
    body=$(cat "$2")
    len=$(printf '%s' "$body" | wc -c)
    printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %s\r\n' \
        "$(printf '%s' "$1" | base64 -w0)"
    printf 'Content-Type: application/pkcs10\r\nContent-Length: %d\r\n' "$len"
    [ -n "${3:-}" ] && printf 'Connection: close\r\n'
    printf '\r\n%s' "$body"
}
# A pipeline: 11 wrong guesses, then the right PIN, all in one write on one connection: the ring
# signs them in within one loop turn and queues them to the writer in this order.
{ for i in $(seq 1 11); do request "1001:9${i}4817" "$T/good.b64"; done
  request 1001:27182 "$T/good.b64" close; } >"$T/pipe-good"
{ for i in $(seq 1 11); do request "+14255550100:8${i}3517" "$T/good.b64"; done
  request 1001:27182 "$T/weak.b64" close; } >"$T/pipe-weak"
pipeline() { # pipeline FILE OUT
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    cat "$1" >&"$fd"
    timeout 30 cat <&"$fd" >"$2"
    exec {fd}<&-
}

# The attack: 300 wrong guesses from at most 16 curl processes at a time, and 24 pipelined
# connections (12 with a good CSR, 12 with a broken one) started among them.
mkdir -p "$T/burst"
wrong_curl() {
    curl -s -o /dev/null -w '%{http_code}\n' -u "1001:5$1" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/good.b64" "$URL/.well-known/est/simpleenroll"
}
export -f wrong_curl
export T URL
seq 10000 10299 | xargs -P 16 -I{} bash -c 'wrong_curl {}' >"$T/burst/curl.codes" &
curls=$!
pids=()
for i in $(seq 1 12); do
    pipeline "$T/pipe-good" "$T/burst/good-$i" & pids+=($!)
    pipeline "$T/pipe-weak" "$T/burst/weak-$i" & pids+=($!)
done
wait "${pids[@]}" "$curls"

# status FILE: the status codes of the pipelined answers in FILE, in order, one per line.
status() { grep -a '^HTTP/1.1 ' "$1" | cut -d' ' -f2; }
answers=0; n401=0; n403=0; other=""
count() { # count CODE...: tallies the wrong guesses' answers
    for c in "$@"; do
        answers=$((answers + 1))
        case $c in 401) n401=$((n401 + 1)) ;; 403) n403=$((n403 + 1)) ;; *) other="$other $c" ;; esac
    done
}
count $(cat "$T/burst/curl.codes")
right_bad=""
for f in "$T"/burst/good-* "$T"/burst/weak-*; do
    codes=($(status "$f"))
    if [ "${#codes[@]}" != 12 ]; then bad "$f: ${#codes[@]} answers, want 12"; continue; fi
    count "${codes[@]:0:11}"
    [ "${codes[11]}" = 403 ] || right_bad="$right_bad ${f##*/}:${codes[11]}"
    grep -aq 'PinLocked' <(tail -c 400 "$f") || right_bad="$right_bad ${f##*/}:not-PinLocked"
done
same "every right PIN after the limit is PinLocked (no certificate, no BadCsr)" "$right_bad" ""
same "wrong guesses answered 401: exactly window_failures" "$n401" "$WINDOW"
same "no other answer to a wrong guess" "$other" ""
same "all wrong guesses answered" "$answers" $((300 + 24 * 11))
check "user show" "$CTL" "${C[@]}" user show sip:alice@example.com
has "no certificate stored" "$T/out" "certificates: +0$"
has "locked" "$T/out" "state: +locked \(temporarily\)"
has "every wrong guess counted, the window ended with the lock" "$T/out" \
    "failures: +0 in the current window, $answers in total"
curl -s "$URL/metrics" >"$T/metrics"
has "one lock" "$T/metrics" '^certprov_pin_lockouts_total 1$'

kill -TERM "$PID"; wait "$PID"; same "SIGTERM exit status" $? 0
finish
