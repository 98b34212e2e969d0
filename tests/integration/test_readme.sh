#!/usr/bin/env bash
# The README's "Enrolling against `make run`" section runs as written (issue 14): a fresh store
# made by deploy/run.sh (what `make run` does; CERTPROV_VAR keeps it private), certprovd started
# by it, then every command of the section's code block, run by bash in a directory that has
# deploy/ (as the repository's top directory has), with the port 8080 changed to a free one
# and 8443 (another appliance may hold them). Each command must succeed, and their output must
# hold what the comments promise: three certificates for demo@example.com (EST, SOAP, and the
# renewal by client certificate over TLS), the chain, a ready appliance, metrics.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PORT=$(free_port)
TPORT=$(free_port)
mkdir -p "$T/var" "$T/work"
sed -e "s/127\\.0\\.0\\.1:8080/127.0.0.1:$PORT/" -e "s/127\\.0\\.0\\.1:8443/127.0.0.1:$TPORT/" \
    "$TOP/deploy/certprov.ini" >"$T/var/certprov.ini"
ln -s "$TOP/deploy" "$T/work/deploy"

# the section's first code block, the port changed
awk '/^## Enrolling against `make run`/ {s = 1; next} s && /^## / {exit}
     s && /^```/ {if (b) exit; b = 1; next} s && b {print}' "$TOP/README.md" \
    | sed -e "s/127\\.0\\.0\\.1:8080/127.0.0.1:$PORT/g" -e "s/:8443/:$TPORT/g" >"$T/block.sh"
same "the section has its commands" "$(grep -c '^curl' "$T/block.sh")" 7
if grep -qE ':8080|:8443' "$T/block.sh"; then bad "a port 8080 or 8443 was left"; else ok; fi

CERTPROV_VAR="$T/var" sh "$TOP/deploy/run.sh" "$BIN" >"$T/run.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
up() { curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; }
for _ in $(seq 1 100); do up && break; sleep 0.1; done
check "make run's appliance answers" up
has "run.sh made the demo user" "$T/run.log" "demo user: sip:demo@example.com, extension 1001, PIN 27182"

(cd "$T/work" && bash -eo pipefail "$T/block.sh") >"$T/out" 2>"$T/err"
rc=$?
same "every command of the block succeeds (stderr: $(head -c 400 "$T/err"))" "$rc" 0
same "three certificates: EST, SOAP, renewal" "$(grep -c 'BEGIN CERTIFICATE' "$T/out")" 5 # + the chain's 2
awk '/BEGIN CERTIFICATE/ {n++} n {print > "'"$T"'/c" n ".pem"}' "$T/out"
for i in 1 2 5; do
    openssl x509 -in "$T/c$i.pem" -noout -subject -ext subjectAltName >"$T/c$i.txt" 2>&1
    has "certificate $i is demo's" "$T/c$i.txt" "CN ?= ?demo@example.com"
    has "certificate $i names demo's SIP URI" "$T/c$i.txt" "URI:sip:demo@example.com"
done
has "readyz says ready" "$T/out" '"ready":true'
has "metrics" "$T/out" '^certprov_requests_total\{route="soap",code="OK"\} 1$'
has "EST counted (plain and TLS)" "$T/out" '^certprov_requests_total\{route="est_simpleenroll",code="OK"\} 2$'
has "renewal counted" "$T/out" '^certprov_requests_total\{route="est_simplereenroll",code="OK"\} 1$'
openssl x509 -in "$T/work/phone.crt" -noout -serial >"$T/s1" 2>&1
openssl x509 -in "$T/c5.pem" -noout -serial >"$T/s5" 2>&1
[ -s "$T/s5" ] && ! cmp -s "$T/s1" "$T/s5" && ok || bad "the renewal gave a new certificate"
[ -f "$T/work/request.xml" ] && ok || bad "request.xml was not written"

# certprov-soap.sh says what went wrong: a refusal, a CSR that is none, usage
printf 'not a csr\n' >"$T/work/bad.csr"
expect_exit 1 "is not a CSR" "certprov-soap.sh request: not a CSR" "$TOP/deploy/certprov-soap.sh" request "$T/work/bad.csr"
expect_exit 2 "usage" "certprov-soap.sh: usage" "$TOP/deploy/certprov-soap.sh" frob
(cd "$T/work" && curl -s -u +14255550100:99999 -H 'Content-Type: text/xml' --data-binary @request.xml \
    "http://127.0.0.1:$PORT/CertProv/CertProvisioningService.svc") >"$T/refused.xml"
expect_exit 1 "no certificate in the response: AuthenticationFailed: " "certprov-soap.sh cert: a refusal" \
    sh -c "'$TOP/deploy/certprov-soap.sh' cert <'$T/refused.xml'"
# the PEM and DER forms of a CSR give the same request
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/k.pem" \
    -subj /CN=demo@example.com -out "$T/c.pem" 2>/dev/null
openssl req -in "$T/c.pem" -outform DER -out "$T/c.der"
"$TOP/deploy/certprov-soap.sh" request "$T/c.pem" >"$T/r1.xml"
"$TOP/deploy/certprov-soap.sh" request "$T/c.der" sip:demo@example.com >"$T/r2.xml"
has "Entity from the CN" "$T/r1.xml" 'Entity="demo@example.com"'
has "Entity given" "$T/r2.xml" 'Entity="sip:demo@example.com"'
same "PEM and DER: the same token" "$(sed -n '/BinarySecurityToken /,/BinarySecurityToken>/p' "$T/r1.xml" | sed 1d)" \
    "$(sed -n '/BinarySecurityToken /,/BinarySecurityToken>/p' "$T/r2.xml" | sed 1d)"
kill -TERM $PID
wait $PID
rc=$?
same "make run's certprovd stops cleanly" "$rc" 0
finish
