#!/usr/bin/env bash
# check-metrics.sh FILE: checks a Prometheus text exposition (certprovd's /metrics) against the
# rules `promtool check metrics` lints, and runs promtool too when it is installed. Prints each
# problem, exits 1 if there is any (CHECK_METRICS_BUILTIN_ONLY=1: the built-in rules alone). The built-in rules (the same as promtool's that apply here):
#   - every series' family has exactly one # HELP and one # TYPE, before its first sample;
#   - a counter's name ends in _total; no name but a counter's ends in _total;
#   - no name holds an HTTP status (status codes are a `code` label);
#   - names are [a-zA-Z_:][a-zA-Z0-9_:]*, and snake_case (no upper case);
#   - a histogram has _bucket series ending in le="+Inf", and _sum and _count.
set -u
f=$1
status=0
awk '
function fail(msg) { print "metrics: line " NR ": " msg; bad = 1 }
function family(n) {
    if (n ~ /_bucket$/ && type[substr(n, 1, length(n) - 7)] == "histogram") return substr(n, 1, length(n) - 7)
    if (n ~ /_sum$/ && type[substr(n, 1, length(n) - 4)] == "histogram") return substr(n, 1, length(n) - 4)
    if (n ~ /_count$/ && type[substr(n, 1, length(n) - 6)] == "histogram") return substr(n, 1, length(n) - 6)
    return n
}
/^# HELP / { if (help[$3]++) fail("a second HELP for " $3); next }
/^# TYPE / {
    if ($3 in type) fail("a second TYPE for " $3)
    type[$3] = $4
    if ($4 == "counter" && $3 !~ /_total$/) fail("counter " $3 " does not end in _total")
    if ($4 != "counter" && $3 ~ /_total$/) fail($4 " " $3 " ends in _total")
    next
}
/^#/ || /^$/ { next }
{
    name = $1; sub(/\{.*/, "", name)
    if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) fail("bad metric name " name)
    if (name ~ /[A-Z]/) fail("metric name not snake_case: " name)
    if (name ~ /(^|_)[1-5][0-9][0-9](_|$)/) fail("an HTTP status in the name " name " (use a code label)")
    fam = family(name)
    if (!(fam in type)) fail("no TYPE before " name)
    if (!(fam in help)) fail("no HELP before " name)
    if (type[fam] == "histogram") {
        labels = $1; sub(/^[^{]*/, "", labels); gsub(/,?le="[^"]*"/, "", labels); sub(/^\{,/, "{", labels)
        if (name ~ /_bucket$/) { lastbucket[fam labels] = $1 } else if (name ~ /_sum$/) { sum[fam labels] = 1 } else if (name ~ /_count$/) { count[fam labels] = 1 }
        else fail("histogram " fam " series without _bucket/_sum/_count: " name)
    }
}
END {
    for (k in lastbucket) {
        if (lastbucket[k] !~ /le="\+Inf"/) { print "metrics: histogram " k " does not end in le=\"+Inf\""; bad = 1 }
        if (!(k in sum) || !(k in count)) { print "metrics: histogram " k " lacks _sum or _count"; bad = 1 }
    }
    exit bad
}' "$f" || status=1
if [ -z "${CHECK_METRICS_BUILTIN_ONLY:-}" ] && command -v promtool >/dev/null 2>&1; then
    out=$(promtool check metrics <"$f" 2>&1) || status=1
    if [ -n "$out" ]; then
        echo "promtool: $out"
        status=1
    fi
fi
exit $status
