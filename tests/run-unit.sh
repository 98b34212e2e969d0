#!/usr/bin/env bash
# run-unit.sh TEST_BIN [ARGS...]: runs one Criterion binary and fails if it fails OR if any
# sanitizer (ASan, LSan, UBSan, TSan) reported anything: Criterion counts a test whose child
# leaked at exit as passing, so its exit code alone would hide leaks.
set -u
bin=$1
shift
log=$(mktemp)
"$bin" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
status=0
if [ "$rc" != 0 ]; then
    echo "run-unit: $bin exited $rc" >&2
    status=1
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$log"; then
    echo "run-unit: sanitizer report in $bin" >&2
    status=1
fi
if ! grep -qE 'Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: 0 \| Crashing: 0' "$log"; then
    echo "run-unit: $bin has failing or crashing tests" >&2
    status=1
fi
rm -f "$log"
exit $status
