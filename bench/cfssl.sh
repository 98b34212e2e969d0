#!/usr/bin/env bash
# cfssl.sh: issue 17's comparison with another signing service, in the same run on the same VM:
# `wrk -t2 -c64` against certprovd's EST simpleenroll (one fixed P-256 CSR, HTTP Basic with a
# user's PIN, keep-alive, every certificate durably stored before its answer) and against
# CFSSL's /api/v1/cfssl/sign (`cfssl serve` from Debian's golang-cfssl, a P-256 CA made by
# `cfssl gencert -initca`, the same CSR as PEM in its JSON; it stores nothing and logs only
# warnings here: its best case), alternating ROUNDS times each. Before the runs one request to
# each must return a certificate; a run with any non-2xx answer fails.
#
# usage: bench/cfssl.sh BIN_DIR [SECONDS [ROUNDS [CONNECTIONS]]]   (defaults: 8 2 64)
# Prints one line per run ("cfssl_compare est|cfssl <requests_per_s>"), then
# "cfssl_compare ratio <est median / cfssl median>" and "bar wrk -c64 est >= 3x cfssl sign: met"
# (or NOT MET). Exit 0 when every run answered; the bar does not change the exit status.
set -euo pipefail

usage() {
    echo "usage: bench/cfssl.sh BIN_DIR [SECONDS [ROUNDS [CONNECTIONS]]]" >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 4 ] || usage
BIN=$1
SECS=${2:-8}
ROUNDS=${3:-2}
CONNS=${4:-64}
for v in "$SECS" "$ROUNDS" "$CONNS"; do
    [[ $v =~ ^[1-9][0-9]{0,3}$ ]] || usage
done
for tool in wrk cfssl openssl curl python3; do
    command -v "$tool" >/dev/null || {
        echo "cfssl.sh: $tool is missing (make deps installs wrk and golang-cfssl)" >&2
        exit 1
    }
done
[ -x "$BIN/certprovd" ] && [ -x "$BIN/certprov-bench" ] || {
    echo "cfssl.sh: no certprovd or certprov-bench in $BIN" >&2
    exit 1
}

W=$(mktemp -d /var/tmp/certprov-cfssl-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL: up to 10 s
    for _ in $(seq 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "cfssl.sh: $1 does not answer" >&2
    exit 1
}

# certprovd: the store, CA, users and configuration that certprov-bench --spawn makes (kept).
"$BIN/certprov-bench" --spawn --keep --bin "$BIN" --workdir "$W" --cache-dir "$W" --users 8 \
    --scenario est --concurrency 1 --duration 1 --ceiling-ms 0 >"$W/setup.log" 2>&1 || {
    cat "$W/setup.log" >&2
    exit 1
}
D=$(sed -n 's/^certprov-bench: kept //p' "$W/setup.log")
[ -n "$D" ] && [ -f "$D/certprov.ini" ] || {
    echo "cfssl.sh: certprov-bench kept no directory" >&2
    exit 1
}
EST_ADDR=$(sed -n 's/^listen = //p' "$D/certprov.ini")
IFS=, read -r URI _ LOGIN _ PIN < <(sed -n 2p "$D/users.csv")
"$BIN/certprovd" -c "$D/certprov.ini" --log "$D/daemon.log" &
PIDS+=($!)
wait_http "http://$EST_ADDR/healthz"

# CFSSL: a P-256 CA of its own, client certificates like certprovd's.
cat >"$W/ca-csr.json" <<'EOF'
{"CN": "cfssl bench CA", "key": {"algo": "ecdsa", "size": 256}, "names": [{"O": "bench"}]}
EOF
cat >"$W/config.json" <<'EOF'
{"signing": {"default": {"expiry": "4320h", "usages": ["digital signature", "client auth"]}}}
EOF
cfssl gencert -initca "$W/ca-csr.json" 2>"$W/gencert.log" >"$W/ca.json"
python3 - "$W" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1] + "/ca.json"))
open(sys.argv[1] + "/ca.pem", "w").write(d["cert"])
open(sys.argv[1] + "/ca-key.pem", "w").write(d["key"])
EOF
CF_PORT=$(free_port)
cfssl serve -address 127.0.0.1 -port "$CF_PORT" -ca "$W/ca.pem" -ca-key "$W/ca-key.pem" \
    -config "$W/config.json" -loglevel 2 >"$W/cfssl.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$CF_PORT/api/v1/cfssl/scaninfo"

# One P-256 CSR for both; for EST the identity comes from the PIN, and the CN must name the
# same user (its sign-in name: the URI without sip:).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" \
    -subj "/CN=${URI#sip:}" -out "$W/csr.pem" 2>/dev/null
openssl req -in "$W/csr.pem" -outform DER | base64 -w0 >"$W/csr.b64"
AUTH=$(printf '%s:%s' "$LOGIN" "$PIN" | base64 -w0)
python3 - "$W" "$AUTH" <<'EOF'
import json, sys
w, auth = sys.argv[1], sys.argv[2]
csr_b64 = open(w + "/csr.b64").read()
body = json.dumps({"certificate_request": open(w + "/csr.pem").read()})
open(w + "/cfssl-body.json", "w").write(body)  # the first request's, the same as the runs'
def script(name, ctype, body, extra=""):
    with open(f"{w}/{name}.lua", "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f'wrk.headers["Content-Type"] = "{ctype}"\n{extra}')
        f.write(f"wrk.body = {json.dumps(body)}\n")
script("est", "application/pkcs10", csr_b64, f'wrk.headers["Authorization"] = "Basic {auth}"\n')
script("cfssl", "application/json", body)
EOF
EST_URL="http://$EST_ADDR/.well-known/est/simpleenroll"
CF_URL="http://127.0.0.1:$CF_PORT/api/v1/cfssl/sign"

# Each answers with a certificate before anything is measured.
curl -sf -H "Authorization: Basic $AUTH" -H 'Content-Type: application/pkcs10' \
    --data-binary @"$W/csr.b64" "$EST_URL" | base64 -d >"$W/est.p7" 2>/dev/null || true
openssl pkcs7 -inform DER -in "$W/est.p7" -print_certs -noout >/dev/null 2>&1 || {
    echo "cfssl.sh: certprovd's simpleenroll gave no certificate" >&2
    exit 1
}
curl -sf -H 'Content-Type: application/json' --data-binary @"$W/cfssl-body.json" "$CF_URL" \
    >"$W/cfssl.json" || true
grep -q '"success":true' "$W/cfssl.json" && grep -q 'BEGIN CERTIFICATE' "$W/cfssl.json" || {
    echo "cfssl.sh: cfssl's sign gave no certificate: $(head -c 300 "$W/cfssl.json")" >&2
    exit 1
}

run() { # NAME URL: one wrk run; prints its requests/s
    wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$W/$1.lua" "$2" >"$W/wrk-$1.out" 2>&1 || {
        cat "$W/wrk-$1.out" >&2
        exit 1
    }
    if grep -q 'Non-2xx or 3xx responses' "$W/wrk-$1.out" ||
        grep -q 'Socket errors' "$W/wrk-$1.out"; then
        echo "cfssl.sh: $1: errors during the run" >&2
        cat "$W/wrk-$1.out" >&2
        exit 1
    fi
    local rps
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$W/wrk-$1.out")
    [ -n "$rps" ] || {
        cat "$W/wrk-$1.out" >&2
        exit 1
    }
    echo "cfssl_compare $1 $rps"
}

: >"$W/results"
for _ in $(seq "$ROUNDS"); do
    run est "$EST_URL" | tee -a "$W/results"
    run cfssl "$CF_URL" | tee -a "$W/results"
done
python3 - "$W/results" "$CONNS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
est = statistics.median(float(r[2]) for r in rows if r[1] == "est")
cf = statistics.median(float(r[2]) for r in rows if r[1] == "cfssl")
ratio = est / cf
print(f"cfssl_compare ratio {ratio:.2f}")
print(f"bar wrk -c{sys.argv[2]} est >= 3x cfssl sign: {'met' if ratio >= 3 else 'NOT MET'} "
      f"({est:.0f} against {cf:.0f} requests/s, medians)")
EOF
