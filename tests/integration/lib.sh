# lib.sh: helpers for the integration tests (sourced). Each test script runs in `set -u` with a
# private temporary directory, counts its checks and prints "N passed, N failed" at the end.
set -u
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
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}
