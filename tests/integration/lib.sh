# lib.sh: helpers for the integration tests (sourced). Each test script runs in `set -u` with a
# private temporary directory, counts its checks and prints "N passed, N failed" at the end.
set -u
# Tests write raw requests to servers that may answer and close before the whole request is
# written; with SIGPIPE the shell itself would die, silently, without its summary line.
trap '' PIPE
BIN=${CERTPROV_BIN:?set CERTPROV_BIN to the directory of the programs}
T=$(mktemp -d /tmp/certprov-it-XXXXXX)
PASS=0
FAIL=0
trap 'rm -rf "$T"' EXIT

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }
# check DESCRIPTION COMMAND...: the command must succeed.
check() { local d=$1; shift; if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$d (exit $?): $(head -c 600 "$T/err")"; fi; }
# expect_exit CODE PATTERN DESCRIPTION COMMAND...: the command must exit CODE and its stderr
# must match the extended regex PATTERN.
expect_exit() {
    local code=$1 pat=$2 d=$3; shift 3
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    if [ "$rc" != "$code" ]; then bad "$d: exit $rc, want $code: $(head -c 600 "$T/err")"; return; fi
    if ! grep -Eq -- "$pat" "$T/err"; then bad "$d: stderr lacks /$pat/: $(head -c 600 "$T/err")"; return; fi
    ok
}
# same DESCRIPTION GOT WANT
same() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', want '$3'"; fi; }
# has DESCRIPTION FILE PATTERN: FILE matches the extended regex.
has() { if grep -Eq -- "$3" "$2"; then ok; else bad "$1: $2 lacks /$3/"; fi; }
# no_pin DESCRIPTION FILE PIN...: no PIN stands in FILE as a number of its own. The numbers a
# log carries by design are not looked at: KEY=VALUE and "KEY":VALUE of a key that names
# neither a PIN nor a password (latencies, serials, counts), HOST:PORT; a PIN inside a longer
# run of digits or hex (a hash) is another number. A bare grep of 5 digits failed 1 run in ~100
# on a serial or a latency that happened to hold one.
no_pin() {
    local d=$1 f=$2
    shift 2
    if /usr/bin/python3 - "$f" "$@" <<'PY'; then bad "$d: $f holds a PIN"; else ok; fi
import re, sys
text = open(sys.argv[1], errors="replace").read()
key = r'(?![a-z_]*(?:pin|pass))[a-z_]+'
text = re.sub(r'\b(%s)=[0-9A-Fa-f.:-]+' % key, r'\1=', text, flags=re.I)
text = re.sub(r'"(%s)":"?[0-9A-Fa-f.:-]+' % key, r'"\1":', text, flags=re.I)
text = re.sub(r'\d+\.\d+\.\d+\.\d+:\d+', '', text)
found = any(re.search(r'(?<![0-9A-Za-z])%s(?![0-9A-Za-z])' % re.escape(p), text) for p in sys.argv[2:])
sys.exit(0 if found else 1)
PY
}
# free_port prints a loopback TCP port for a test server: below the kernel's ephemeral range
# (32768-60999 by default), so that no client connection of an earlier test, nor its
# TIME_WAIT, holds it; and one where nothing listens now.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((10000 + RANDOM % 22000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    echo "free_port: no free port found" >&2
    return 1
}
# histograms_ok FILE: every Prometheus histogram in FILE is consistent: its _count equals its
# +Inf bucket, and its _sum lies between what its bucket counts allow (each observation in a
# bucket is above the previous bound and at most its own). Catches a histogram filled with one
# kind's bounds and printed with another's. Prints the first bad histogram and fails.
histograms_ok() {
    awk '
    /^[a-z_]+_bucket[{]/ {
        name = $1; sub(/_bucket[{].*/, "", name)
        lab = $1; sub(/^[^{]*[{]/, "", lab); sub(/,?le="[^"]*"[}]$/, "", lab)
        le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
        id = name "{" lab "}"
        if (!(id in nb)) { order[++nid] = id }
        n = ++nb[id]; bound[id, n] = (le == "+Inf") ? -1 : le + 0; cum[id, n] = $2 + 0
        next
    }
    /^[a-z_]+_(sum|count)[{]/ {
        id = $1; kind = id; sub(/_(sum|count)[{]/, "{", id); sub(/[{].*/, "", kind); sub(/.*_/, "", kind)
        if (kind == "sum") { sum[id] = $2 + 0 } else { cnt[id] = $2 + 0 }
    }
    END {
        for (i = 1; i <= nid; i++) {
            id = order[i]; lo = 0; prev = 0; mn = 0; mx = 0; inf = 0
            for (j = 1; j <= nb[id]; j++) {
                c = cum[id, j] - prev; prev = cum[id, j]
                if (c < 0) { print "bucket counts decrease: " id > "/dev/stderr"; exit 1 }
                mn += c * lo
                if (bound[id, j] < 0) { if (c > 0) inf = 1 } else { mx += c * bound[id, j]; lo = bound[id, j] }
            }
            if (!(id in cnt) || cnt[id] != prev) { print "count is not the +Inf bucket: " id > "/dev/stderr"; exit 1 }
            s = sum[id]; eps = 1e-9 * (s > 1 ? s : 1)
            if (s + eps < mn || (!inf && s > mx + eps)) {
                printf "sum %g outside [%g, %s] of its buckets: %s\n", s, mn, inf ? "inf" : mx, id > "/dev/stderr"
                exit 1
            }
            checked++
        }
        if (checked == 0) { print "no histogram found" > "/dev/stderr"; exit 1 }
    }' "$1"
}
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}
