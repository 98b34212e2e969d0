#!/usr/bin/env bash
# certprov-bench smoke run (a few hundred requests), so that the harness cannot rot: --spawn
# against this MODE's certprovd, est and soap closed loop, est with the pool store down, a
# scenario that is not runnable yet, est open loop after a preload, and the JSON keys the
# benchmark issue promises. `make bench` is the real run.
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

check "closed loop est, soap, soap-tls" "$B" "${COMMON[@]}" --scenario est,soap,soap-tls \
    --concurrency 8 --duration 3 --json "$T/closed.json"
cp "$T/out" "$T/closed.out"
has "table header" "$T/closed.out" "^scenario +loop +conc"
has "ceiling line" "$T/closed.out" "^crypto ceiling .*enrollments/s"
has "soap-tls is skipped with the reason" "$T/closed.out" "^soap-tls +skipped: needs TLS"
same "one JSON object per run" "$(wc -l <"$T/closed.json")" 3
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
done
has "skipped run in JSON" "$T/closed.json" '"scenario":"soap-tls".*"skipped":"needs TLS'

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
finish
