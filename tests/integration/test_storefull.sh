#!/usr/bin/env bash
# A full file system under the store (hardening item 9), on a small tmpfs mounted for the store
# directory (or, where tmpfs cannot be mounted, a loop ext4 image): enrollments succeed, a filler
# file beside the store takes the rest of the space, and enrollments go on until commits fail
# (store/grow.c keeps zeros written ahead of the data file, so it takes some). Then the
# enrollment gets 503 StoreUnavailable with Retry-After, /readyz is 503 with ready false,
# "store":"full" and the reason, and stays so after a sign-in whose commit needs no certificate
# and while the writer's probes fail; once the filler is gone /readyz returns to 200 by itself (no enrollment needed: the writer
# probes) and enrollments succeed again. Every certificate answered 200 is in the store.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
S="$T/store"
mkdir -p "$S"
PID=
MOUNTED=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [ -n "$MOUNTED" ] && umount "$S"
    rm -rf "$T"
}
trap cleanup EXIT
if mount -t tmpfs -o size=4m,mode=0700 tmpfs "$S" 2>/dev/null; then
    MOUNTED=tmpfs
else
    truncate -s 8M "$T/fs.img" && mkfs.ext4 -q -m 0 "$T/fs.img" 2>/dev/null &&
        mount -o loop "$T/fs.img" "$S" 2>/dev/null && MOUNTED=ext4
fi
if [ -z "$MOUNTED" ]; then
    echo "SKIP: cannot mount a tmpfs or a loop file system here (not root?)"
    exit 0
fi
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
listen = 127.0.0.1:$PORT
[store]
path = store
map_size = 64MiB
[profile]
max_certs_per_user_per_day = 0   ; alice enrolls until the disk is full
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
printf '27182\n' | "$CTL" "${C[@]}" user add --uri sip:alice@example.com --pool pool1 --ext 1001 \
    --pin-stdin >/dev/null || bad "user add"
"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
check "certprovd started" curl -sf "$URL/healthz"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/a.key" 2>/dev/null
openssl req -new -key "$T/a.key" -subj /CN=alice@example.com -outform DER 2>/dev/null |
    base64 >"$T/a.b64"
mkdir -p "$T/ans"
N=0
CODE=
# enroll: one EST enrollment (not in a subshell: it counts N); the answer in $T/ans/N, its
# headers in $T/ans/N.h, its status in CODE.
enroll() {
    N=$((N + 1))
    CODE=$(curl -s -o "$T/ans/$N" -D "$T/ans/$N.h" -w '%{http_code}' -u 1001:27182 \
        -H 'Content-Type: application/pkcs10' --data-binary @"$T/a.b64" \
        "$URL/.well-known/est/simpleenroll")
}
readyz() { curl -s -o "$T/ready.json" -w '%{http_code}' "$URL/readyz"; }
same "readyz before" "$(readyz)" 200
has "store ok" "$T/ready.json" '"store":"ok"'

# The filler takes all but 64 KiB: the first enrollments still find room (the zeros written ahead
# of the data file take what is left), then a commit needs a block the file system does not have.
bs=$(stat -f -c %S "$S")
avail=$(stat -f -c %a "$S")
dd if=/dev/zero of="$S/filler" bs="$bs" count=$((avail - 65536 / bs)) 2>/dev/null
ok200=0
for _ in $(seq 1 1500); do # bounded: 64 KiB hold about a hundred certificates
    enroll
    [ "$CODE" = 200 ] || break
    ok200=$((ok200 + 1))
done
if [ "$ok200" -gt 0 ]; then ok; else bad "no enrollment succeeded before the disk was full"; fi
same "an enrollment on a full disk" "$CODE" 503
has "503 carries the Code StoreUnavailable" "$T/ans/$N" '^StoreUnavailable: '
has "503 carries Retry-After" "$T/ans/$N.h" '^Retry-After: [0-9]+'
has "X-Ms-diagnostics 28910" "$T/ans/$N.h" '^X-Ms-diagnostics: 28910;'
same "readyz on a full disk" "$(readyz)" 503
has "readyz ready false" "$T/ready.json" '"ready":false'
has "readyz store full" "$T/ready.json" '"store":"full"'
has "readyz says why" "$T/ready.json" '"store_reason":"disk_full"'
# A sign-in whose commit holds no certificate (a wrong PIN: its failure is recorded in pages
# LMDB frees and reuses) does not make the appliance ready while the disk stays full, nor do
# the writer's probes (every 5 s: they need the file to grow).
same "wrong PIN on a full disk" "$(curl -s -o /dev/null -w '%{http_code}' -u 1001:99999 \
    -H 'Content-Type: application/pkcs10' --data-binary @"$T/a.b64" \
    "$URL/.well-known/est/simpleenroll")" 401
same "readyz stays 503 after a commit without certificates" "$(readyz)" 503
has "readyz stays full" "$T/ready.json" '"store":"full"'
sleep 6
same "readyz stays 503 while the disk is full (probes fail)" "$(readyz)" 503
has "readyz still full" "$T/ready.json" '"store":"full","store_reason":"disk_full"'

# Space returns: /readyz recovers without any enrollment (the writer's probe), then enrollments
# succeed again.
rm -f "$S/filler"
back=
for _ in $(seq 1 150); do [ "$(readyz)" = 200 ] && back=1 && break; sleep 0.1; done
same "readyz returns to 200 by itself once space returns" "${back:-no}" 1
has "readyz store ok again" "$T/ready.json" '"store":"ok"'
enroll
same "enrolls again" "$CODE" 200
enroll
same "and again" "$CODE" 200

# Nothing lost: every certificate answered 200 is in the store.
"$CTL" "${C[@]}" cert list --uri sip:alice@example.com | awk '{print $1}' | sort >"$T/stored"
: >"$T/served"
for h in "$T"/ans/*.h; do
    f=${h%.h}
    head -1 "$h" | grep -q ' 200' || continue
    base64 -d "$f" | openssl pkcs7 -inform DER -print_certs 2>/dev/null |
        openssl x509 -noout -serial | cut -d= -f2 | sed 's/^0*//' >>"$T/served"
done
sort -o "$T/served" "$T/served"
same "certificates served" "$(wc -l <"$T/served")" $((ok200 + 2))
same "every served certificate is stored" "$(comm -23 "$T/served" "$T/stored" | wc -l)" 0
kill -TERM "$PID"; wait "$PID"; same "SIGTERM exit status" $? 0
PID=
[ -n "${KEEP:-}" ] && cp -r "$T" /tmp/keep-storefull
finish
