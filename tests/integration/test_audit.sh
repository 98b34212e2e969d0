#!/usr/bin/env bash
# The audit log of administration (issue 14): every certprovctl change appends a record (time,
# operating-system user, command, target, outcome, never a PIN) chained by SHA-256 to the one
# before it; `audit verify` finds an edited, removed, inserted or cut record and names the line;
# `audit list` filters by --since and prints JSON; a damaged or unwritable log never blocks a
# change (a warning), and certprovd's enrollments never touch it.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"

cat >"$T/certprov.ini" <<INI
[server]
name = certprov1.example.com
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
S="$T/store"
A="$S/audit.log"

check "ca init" "$CTL" "${C[@]}" ca init
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin; }
check "add alice" add 27182 --uri sip:alice@example.com --pool pool1 --ext 1001
check "add bob" add 31415 --uri sip:bob@example.com --pool pool1 --ext 1002
expect_exit 1 "already exists" "a refused add" add 27183 --uri sip:alice@example.com --pool pool1 --ext 1009
expect_exit 2 "" "a usage error" "$CTL" "${C[@]}" user add --bogus
check "unlock" "$CTL" "${C[@]}" user unlock sip:alice@example.com
check "set-pin" bash -c "printf '48213\n' | '$CTL' -c '$T/certprov.ini' user set-pin sip:bob@example.com --pin-stdin"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/p.key" 2>/dev/null
openssl req -new -key "$T/p.key" -subj /CN=alice@example.com -out "$T/p.csr" 2>/dev/null
check "cert issue" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p.csr" --out "$T/p.pem"
SERIAL=$(openssl x509 -in "$T/p.pem" -noout -serial | sed 's/serial=//; s/^0*//')
check "outbox retry" "$CTL" "${C[@]}" outbox retry --pool pool1
check "user list (no change)" "$CTL" "${C[@]}" user list
check "user del" "$CTL" "${C[@]}" user del sip:bob@example.com

same "audit.log is 0600" "$(stat -c %a "$A")" 600
same "one record per change (ca init, 2 adds, refused add, unlock, set-pin, issue, retry, del)" "$(wc -l <"$A")" 9
no_pin "no PIN in the audit log" "$A" 27182 31415 27183 48213
has "first record starts the chain" "$A" '^\{"seq":1,"time":"[0-9T:-]+Z","prev":"0{64}","uid":[0-9]+,"user":"[^"]*","command":"ca init",'
has "user add recorded with its target" "$A" '"command":"user add","target":"sip:alice@example.com","outcome":"ok"'
has "a refused change is recorded as failed" "$A" '"command":"user add","target":"sip:alice@example.com","outcome":"failed"'
if grep -q '"--bogus"\|bogus' "$A"; then bad "a usage error was recorded"; else ok; fi
has "cert issue names the serial" "$A" "\"command\":\"cert issue\",\"target\":\"sip:alice@example.com\",\"outcome\":\"ok\",\"detail\":\"serial=$SERIAL\""
has "outbox retry names the pool" "$A" '"command":"outbox retry","target":"pool1","outcome":"ok"'
has "the OS user is recorded" "$A" "\"uid\":$(id -u),\"user\":\"$(id -un)"
if grep -q '"command":"user list"' "$A"; then bad "a read-only command was recorded"; else ok; fi

check "audit verify" "$CTL" "${C[@]}" audit verify
has "verify counts the records" "$T/out" '^ok: 9 records, chain head [0-9a-f]{64}$'
check "audit list" "$CTL" "${C[@]}" audit list
same "audit list: one line a record" "$(wc -l <"$T/out")" 9
has "audit list line" "$T/out" "^[0-9T:-]+Z $(id -un) user del target=sip:bob@example.com outcome=ok detail=-$"
check "audit list --json" "$CTL" "${C[@]}" audit list --json
if cmp -s "$T/out" "$A"; then ok; else bad "audit list --json is not the records as stored"; fi
check "audit list --since the future" "$CTL" "${C[@]}" audit list --since 2999-01-01
same "--since the future lists nothing" "$(wc -c <"$T/out")" 0
check "audit list --since 1h" "$CTL" "${C[@]}" audit list --since 1h
same "--since 1h lists all" "$(wc -l <"$T/out")" 9
expect_exit 2 "since takes" "bad --since" "$CTL" "${C[@]}" audit list --since yesterday

# --- tampering: each on a copy of the log, restored after ---
cp "$A" "$T/audit.good"
tamper() { # tamper NAME PATTERN SED-OR-COMMAND...: after the command, verify exits 1 naming PATTERN
    local n=$1 pat=$2; shift 2
    cp "$T/audit.good" "$A"
    "$@"
    expect_exit 1 "$pat" "$n" "$CTL" "${C[@]}" audit verify
    expect_exit 1 "damaged" "$n: audit list refuses too" "$CTL" "${C[@]}" audit list
}
tamper "an edited outcome" "line 4: prev does not match the SHA-256 of line 3: line 3 was edited" \
    sed -i '3s/"outcome":"ok"/"outcome":"failed"/' "$A"
tamper "an edited target" "line 5: prev does not match the SHA-256 of line 4" \
    sed -i '4s/alice/mallory/' "$A"
tamper "a removed record" "line 3: seq 4 where 3 was due" sed -i '3d' "$A"
tamper "records removed from the start" "line 1: seq 3 where 1 was due" sed -i '1,2d' "$A"
tamper "an inserted record" "line 3: seq 2 where 3 was due" sed -i '2p' "$A"
tamper "a record cut short" "line 9: cut short" truncate -s -5 "$A"
tamper "garbage" "line 2: not an audit record" sed -i '2s/^{/x/' "$A"
# the last record edited: nothing follows it to break, but its own form must still hold
cp "$T/audit.good" "$A"
sed -i '9s/"seq":9/"seq":8/' "$A"
expect_exit 1 "line 9: seq 8 where 9 was due" "the last record's seq edited" "$CTL" "${C[@]}" audit verify

# A damaged log never blocks a change: the change is done, the operator warned.
cp "$T/audit.good" "$A"
truncate -s -5 "$A"
printf '55555\n' >"$T/pin"
if add 62831 --uri sip:carol@example.com --pool pool1 --ext 1003 >"$T/out" 2>"$T/err"; then ok; else bad "a damaged audit log blocked user add"; fi
has "the operator is warned" "$T/err" "warning: the audit log .* could not be appended .*audit verify"
check "carol was added" "$CTL" "${C[@]}" user show sip:carol@example.com
# An unwritable log directory does not block cert issue either.
cp "$T/audit.good" "$A"
chmod 000 "$A"
if [ "$(id -u)" != 0 ]; then
    check "cert issue with an unreadable audit log" "$CTL" "${C[@]}" cert issue --uri sip:alice@example.com --csr "$T/p.csr" --out "$T/p2.pem"
    has "warned" "$T/err" "warning: the audit log"
fi
chmod 600 "$A"

# certprovctl --log-format json: its log lines (here the store's PIN key warning) are JSON.
chmod 644 "$S/pin.key"
"$CTL" --log-format json "${C[@]}" user list >/dev/null 2>"$T/err"
chmod 600 "$S/pin.key"
if jq -e 'select(.event == "pin_key_exposed") | .module == "signer" and .action == "chmod 600 the file"' "$T/err" >/dev/null 2>&1; then ok; else bad "certprovctl --log-format json: $(head -c 300 "$T/err")"; fi
expect_exit 2 "log-format must be text or json" "certprovctl --log-format xml" "$CTL" --log-format xml "${C[@]}" user list

# Concurrent writers keep one chain.
cp "$T/audit.good" "$A"
for i in 1 2 3 4 5 6; do "$CTL" "${C[@]}" user unlock sip:alice@example.com >/dev/null 2>&1 & done
wait
check "verify after concurrent writers" "$CTL" "${C[@]}" audit verify
has "six more records" "$T/out" '^ok: 15 records'
finish
