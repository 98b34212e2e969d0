#!/usr/bin/env bash
# certprov-bench smoke run (a few hundred requests), so that the harness cannot rot: --spawn
# against this MODE's certprovd, est and soap closed loop, est with the pool store down, a
# scenario that cannot run (printed as skipped), est open loop after a preload, the TLS scenarios (a second
# each: full and resumed handshakes, client-certificate renewal, the bars) and the JSON keys the
# benchmark issues promise. `make bench` is the real run.
. "$(dirname "$0")/lib.sh"
B="$BIN/certprov-bench"
COMMON=(--spawn --bin "$BIN" --users 40 --cache-dir "$T" --workdir "$T" --ceiling-ms 200)

check "help" "$B" --help
has "help names the scenarios" "$T/out" "est-pool-down"
expect_exit 2 "exactly one of --spawn and --target" "no mode is a usage error" "$B"
expect_exit 2 "bad or incomplete option '--nope'" "unknown option is a usage error" "$B" --spawn --nope
expect_exit 2 "bad value 'nope' for --scenario" "unknown scenario is a usage error" "$B" --spawn \
    --scenario nope
for v in -1 x 10000001 ''; do
    expect_exit 2 "bad value '$v' for --preload" "--preload '$v' is a usage error" \
        "$B" --spawn --preload "$v"
done

check "closed loop est, soap" "$B" "${COMMON[@]}" --scenario est,soap \
    --concurrency 8 --duration 3 --json "$T/closed.json"
cp "$T/out" "$T/closed.out"
has "table header" "$T/closed.out" "^scenario +loop +conc"
has "ceiling line" "$T/closed.out" "^crypto ceiling .*enrollments/s"
same "one JSON object per run" "$(wc -l <"$T/closed.json")" 2
for s in est soap; do
    grep "\"scenario\":\"$s\"" "$T/closed.json" >"$T/$s.json"
    n=$(grep -o '"enrollments":[0-9]*' "$T/$s.json" | cut -d: -f2)
    if [ "${n:-0}" -gt 0 ]; then ok; else bad "$s: no enrollments: $(cat "$T/$s.json")"; fi
    has "$s: zero errors" "$T/$s.json" '"errors_total":0,'
    for k in scenario concurrency enrollments_per_s latency_us p50 p90 p99 p99_9 max errors \
        server_cpu_us_per_enrollment server_peak_rss_kib server_rss_anon_kib batch_size_avg commit_seconds_avg \
        ceiling cpu_ratio_to_ceiling; do
        has "$s: JSON key $k" "$T/$s.json" "\"$k\":"
    done
    has "$s: server CPU measured" "$T/$s.json" '"server_cpu_us_per_enrollment":[0-9]'
    has "$s: batches seen in /metrics" "$T/$s.json" '"batch_size_avg":[1-9]'
    # the rings woke and the writer committed: both roles' wake-ups per enrollment are > 0
    has "$s: ring wake-ups per enrollment" "$T/$s.json" '"ring":\{"wakeups":(0\.0*[1-9]|[1-9])'
    has "$s: writer wake-ups per enrollment" "$T/$s.json" '"writer":\{"wakeups":(0\.0*[1-9]|[1-9])'
    has "$s: run-queue wait per enrollment" "$T/$s.json" '"publisher":\{"wakeups":[0-9.]+,"preemptions":[0-9.]+,"runq_wait_us":[0-9.]+\}'
done
has "threads line in the table" "$T/closed.out" "^    threads per enrollment \(wake-ups, preemptions, run-queue wait us\): ring [0-9.]+ [0-9.]+ [0-9.]+ writer"

# TLS (issue 12): every TLS scenario for a second at 4 connections, against the spawned
# certprovd's tls_listen, the chain verified against its chain.pem.
TLS_SCEN=est,est-tls,soap-tls,phone,renew-mtls,tls-full,tls-resumed,tls12-full,tls12-resumed,http-conn
check "TLS scenarios" "$B" "${COMMON[@]}" --scenario "$TLS_SCEN" --concurrency 4 --duration 1 \
    --json "$T/tls.json"
cp "$T/out" "$T/tls.out"
has "ceiling line with the handshake" "$T/tls.out" \
    "^TLS handshake server crypto .*full .* us CPU, resumed .* us; soap-tls ceiling"
has "JSON ceiling with the handshake" "$T/tls.json" '"tls_handshake":\{[^}]*"full_cpu_us":[0-9]'
has "ceiling line of the phone scenario" "$T/tls.out" \
    "^Web ticket server crypto: the assertion's ECDSA P-256 sign and verify [0-9.]+ us CPU; phone ceiling [0-9.]+ us"
for s in ${TLS_SCEN//,/ }; do
    grep "\"scenario\":\"$s\"" "$T/tls.json" >"$T/$s.json"
    has "$s: answers" "$T/$s.json" '"enrollments":[1-9]'
    has "$s: zero errors" "$T/$s.json" '"errors_total":0,'
    has "$s: server CPU measured" "$T/$s.json" '"server_cpu_us_per_enrollment":[0-9]'
done
for s in est-tls soap-tls renew-mtls tls-full tls-resumed tls12-full tls12-resumed; do
    has "$s: X25519" "$T/$s.json" '"group":"X25519"'
done
# A new connection per enrollment and no resumption: every handshake full, client and server.
has "soap-tls: full handshakes only" "$T/soap-tls.json" \
    '"handshakes_resumed":0,"server_handshakes_full":[1-9][0-9]*,"server_handshakes_resumed":0,'
n=$(grep -o '"enrollments":[0-9]*' "$T/soap-tls.json" | cut -d: -f2)
h=$(grep -o '"handshakes_full":[0-9]*' "$T/soap-tls.json" | cut -d: -f2)
# (a connection whose handshake ends as the run stops sends nothing: at most one per slot more)
if [ "${h:-0}" -ge "${n:-1}" ] && [ "${h:-0}" -le $((${n:-0} + 4)) ]; then ok; else
    bad "soap-tls: ${h:-?} handshakes for ${n:-?} enrollments"; fi
has "soap-tls: its ceiling adds the handshake" "$T/soap-tls.json" '"cpu_ratio_to_ceiling":[0-9]'
# Keep-alive: one full handshake per connection.
has "est-tls: one handshake per connection" "$T/est-tls.json" '"handshakes_full":4,'
# phone: a ticket then GetAndPublishCert per enrollment, on keep-alive connections; its ceiling is
# the enrollment's crypto plus the ticket's P-256 sign (Web Ticket Service) and verify (CertProv).
has "phone: one handshake per connection" "$T/phone.json" '"handshakes_full":4,'
has "phone: the ticket's crypto in the JSON ceiling" "$T/phone.json" '"web_ticket":\{[^}]*"cpu_us":[0-9]'
/usr/bin/python3 - "$T/phone.json" >"$T/phone.ceil" 2>&1 <<'PY'
import json, sys
o = json.loads(open(sys.argv[1]).read())
c = o["ceiling"]
want = c["cpu_us_per_enrollment"] + 1e6 / c["sign_per_s_per_core"] + 1e6 / c["verify_per_s_per_core"]
print("ok" if abs(o["scenario_ceiling_cpu_us"] - want) < 0.05 * want and o["cpu_ratio_to_ceiling"] > 0
      else "scenario ceiling %s, want %.2f" % (o["scenario_ceiling_cpu_us"], want))
PY
same "phone: the ceiling adds the ticket's sign and verify" "$(cat "$T/phone.ceil")" ok
# Resumption: each slot's first handshake is full, every later one resumes, as the server saw.
for s in renew-mtls tls-resumed tls12-resumed; do
    has "$s: resumed on the server" "$T/$s.json" \
        '"handshakes_full":4,"handshakes_resumed":[1-9][0-9]*,"server_handshakes_full":4,"server_handshakes_resumed":[1-9]'
done
has "renew-mtls: client certificates" "$T/renew-mtls.json" '"client_certificate":true'
has "renew-mtls: setup line" "$T/tls.out" "^renew-mtls +setup: 4 users enrolled over HTTP"
has "tls-full: no resumption" "$T/tls-full.json" '"handshakes_resumed":0,"server_handshakes_full":[1-9]'
for b in "soap-tls >= 70 % of its ceiling" "est-tls within 10 % of est" \
    "resumed handshake < 25 % of a full one" "resumed handshake < 25 % of a full one, TLS 1.2"; do
    has "bar printed: $b" "$T/tls.out" "^bar $b +c=4 .*: (met|NOT MET)$"
    has "bar in JSON: $b" "$T/tls.json" "\"bar\":\"$b\".*\"met\":(true|false)\\}"
done
# Open loop with a new connection per request: each opened when its request falls due.
check "soap-tls open loop" "$B" "${COMMON[@]}" --ceiling-ms 0 --scenario soap-tls --rate 40 \
    --concurrency 4 --duration 1 --json "$T/tlsopen.json"
has "soap-tls open loop: enrollments" "$T/tlsopen.json" '"loop":"open".*"enrollments":[1-9]'
has "soap-tls open loop: zero errors" "$T/tlsopen.json" '"errors_total":0,'
# The client verifies the server: a name the certificate does not carry fails every handshake.
check "TLS with a wrong name" "$B" "${COMMON[@]}" --ceiling-ms 0 --scenario tls-full \
    --tls-name wrong.example.com --concurrency 2 --duration 1 --json "$T/wrong.json"
has "wrong name: no answers" "$T/wrong.json" '"enrollments":0,'
has "wrong name: the handshake fails on the name" "$T/out" "error tls handshake: Hostname mismatch"
# A scenario that cannot run is printed as skipped with the reason, never a number: TLS needs
# the spawned server's tls_listen and chain.pem.
check "TLS against --target" "$B" --target http://127.0.0.1:9 --users 40 --cache-dir "$T" \
    --ceiling-ms 0 --scenario soap-tls --json "$T/skip.json"
has "TLS against --target is skipped" "$T/out" "^soap-tls +skipped: needs --spawn"
has "skipped run in JSON" "$T/skip.json" '"scenario":"soap-tls".*"skipped":"needs --spawn'
same "nothing but the skip in JSON" "$(wc -l <"$T/skip.json")" 1

# Issue 3: 1000 concurrent keep-alive connections, each enrolling over and over.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
check "1000 concurrent keep-alive connections" "$B" "${COMMON[@]}" --users 200 --scenario est \
    --concurrency 1000 --duration 3 --json "$T/c1000.json"
# More enrollments in flight than [server] max_inflight allows are answered 503 Overloaded
# (backpressure, by design, depending on how fast this build is); anything else is an error.
errs=$(grep -o '"errors":{[^}]*}' "$T/c1000.json")
if echo "$errs" | sed 's/"503 Overloaded":[0-9]*//' | grep -q '"[^"]*":[0-9]'; then
    bad "1000 connections: errors other than 503 Overloaded: $errs"
else
    ok
fi
n=$(grep -o '"enrollments":[0-9]*' "$T/c1000.json" | cut -d: -f2)
if [ "${n:-0}" -ge 1000 ]; then ok; else bad "1000 connections: only ${n:-0} enrollments"; fi

# est-pool-down: its own certprovd whose PostgreSQL pool store cannot be reached; every
# enrollment still succeeds and the harness checks the pool was down and nothing was published.
# OCSP (issue 15): requests for certificates a setup enrolled; every answer an OCSP success.
check "ocsp" "$B" "${COMMON[@]}" --ceiling-ms 0 --scenario ocsp --concurrency 4 --duration 1 \
    --json "$T/ocsp.json"
has "ocsp: answers" "$T/ocsp.json" '"scenario":"ocsp".*"enrollments":[1-9]'
has "ocsp: no error (an OCSP error status counts as one)" "$T/ocsp.json" '"scenario":"ocsp".*"errors_total":0,'
has "ocsp: its bar is printed" "$T/out" "^bar ocsp >= 10,000 responses/s"
check "est-pool-down" "$B" "${COMMON[@]}" --scenario est-pool-down --concurrency 4 --duration 2 \
    --json "$T/down.json"
has "pool-down: enrollments" "$T/down.json" '"scenario":"est-pool-down".*"enrollments":[1-9]'
has "pool-down: zero errors" "$T/down.json" '"errors_total":0,'
has "pool-down: the pool was down, outbox holds them" "$T/out" \
    "^est-pool-down +pool store postgresql://.*pool_up 0, published 0, outbox depth [1-9]"

check "open loop est after a preload" "$B" "${COMMON[@]}" --preload 300 --scenario est --rate 60 \
    --concurrency 4 --duration 2 --json "$T/open.json"
has "preload line" "$T/out" "^preload: [0-9]+ enrollments in .* 0 errors\), published [0-9.]+ s later"
n=$(grep -o '"preload":[0-9]*' "$T/open.json" | cut -d: -f2)
if [ "${n:-0}" -ge 300 ]; then ok; else bad "preload: JSON says ${n:-none}, want >= 300"; fi
has "open loop: enrollments" "$T/open.json" '"loop":"open".*"enrollments":[1-9]'
has "open loop: zero errors" "$T/open.json" '"errors_total":0,'

# --fresh: each scenario against a certprovd of its own, each preloaded (the matrix compares
# est, est-tls and soap on stores of the same size).
expect_exit 2 "--fresh needs --spawn" "--fresh without --spawn is a usage error" "$B" \
    --target http://127.0.0.1:9 --fresh
check "--fresh with a preload" "$B" "${COMMON[@]}" --ceiling-ms 0 --fresh --preload 40 \
    --scenario est,soap --concurrency 2 --duration 1 --json "$T/fresh.json"
same "--fresh: a preload for each scenario" "$(grep -cE '^preload: [0-9]+ enrollments .* 0 errors' "$T/out")" 2
ports=$(sed -n 's/^\(est\|soap\) \+server 127\.0\.0\.1:\([0-9]*\) (spawned for it)$/\2/p' "$T/out" |
    sort -u | wc -l)
same "--fresh: a server of its own for each scenario" "$ports" 2
same "--fresh: one JSON object per run" "$(grep -c '"errors_total":0,' "$T/fresh.json")" 2

# bench/cfssl.sh (issue 17's comparison with CFSSL's sign endpoint): a second per run, one round
# at 4 connections; each server must have answered with a certificate first and every request of
# the runs with 2xx, or the script fails.
C="$(dirname "$0")/../../bench/cfssl.sh"
expect_exit 2 "usage: bench/cfssl.sh BIN_DIR" "cfssl.sh without arguments is a usage error" "$C"
expect_exit 2 "usage: bench/cfssl.sh BIN_DIR" "cfssl.sh: a bad count is a usage error" "$C" \
    "$BIN" 0
check "cfssl comparison" "$C" "$BIN" 1 1 4
has "cfssl.sh: est requests/s" "$T/out" "^cfssl_compare est [1-9][0-9.]*$"
has "cfssl.sh: cfssl requests/s" "$T/out" "^cfssl_compare cfssl [1-9][0-9.]*$"
has "cfssl.sh: the ratio" "$T/out" "^cfssl_compare ratio [0-9]+\.[0-9]{2}$"
has "cfssl.sh: the bar" "$T/out" "^bar wrk -c4 est >= 3x cfssl sign: (met|NOT MET) \([0-9]+ against [0-9]+"
finish
