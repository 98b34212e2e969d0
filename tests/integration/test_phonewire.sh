#!/usr/bin/env bash
# The details real phones check (issue 18 §4), against a real certprovd with curl, openssl and
# python3-lxml: phone numbers in any common spelling sign in ([pin] default_country_code for
# national numbers; the import stores E.164), the CSR as unpadded base64 or PEM, the WS-Trust
# Context echoed on the RSTR, SOAP 1.2 answered in SOAP 1.2 (success and ErrorInfo), and
# X-Ms-diagnostics in the syntax of [MS-OCAUTHWS] §3.2.4.1 with the README's IDs.
. "$(dirname "$0")/lib.sh"
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
PORT=$(free_port) || exit 1
URL="http://127.0.0.1:$PORT"
cat >"$T/certprov.ini" <<INI
[server]
name = certprov-test.example.com
alt_names = phones.example.com, lync.example.com
listen = 127.0.0.1:$PORT
workers = 1
[store]
path = store
map_size = 64MiB
[pin]
default_country_code = 1
[pool.pool1]
store = embedded
INI
C=(-c "$T/certprov.ini")
"$CTL" "${C[@]}" ca init >/dev/null || { bad "ca init"; finish; exit 1; }
S="$T/store"
# The Debian python3 (python3-lxml, deps/packages.txt), not a virtualenv's that may lack it.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
add() { printf '%s\n' "$1" | "$CTL" "${C[@]}" user add "${@:2}" --pin-stdin >/dev/null; }

# ---- the import stores E.164, whatever the spelling ----
check "add alice, phone with separators" add 27182 --uri sip:alice@example.com --pool pool1 \
    --phone "+1 (425) 555-0100" --ext 1001
check "add bob, a national number" add 31415 --uri sip:bob@example.com --pool pool1 --phone 4255550101
printf 'uri,phone,ext,pool,pin\nsip:carol@example.com,tel:+1-425-555-0102,,pool1,16180\n' >"$T/u.csv"
check "import carol, a tel: URI" "$CTL" "${C[@]}" user import "$T/u.csv"
"$CTL" "${C[@]}" user list >"$T/list"
has "alice stored E.164" "$T/list" '^sip:alice@example.com pool=pool1 phone=\+14255550100 ext=1001 '
has "bob stored E.164 with the default country code" "$T/list" '^sip:bob@example.com .*phone=\+14255550101 '
has "carol stored E.164" "$T/list" '^sip:carol@example.com .*phone=\+14255550102 '
expect_exit 1 "phone number must be E.164" "a phone number with letters is refused" \
    add 27183 --uri sip:dave@example.com --pool pool1 --phone 425-555-CALL
expect_exit 1 "another user has the same phone number and PIN|same PIN" \
    "the same number in another spelling clashes" \
    add 27182 --uri sip:eve@example.com --pool pool1 --phone 14255550100

"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
check "certprovd started" curl -sf "$URL/healthz"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/a.key" 2>/dev/null
for u in alice bob carol; do
    openssl req -new -key "$T/a.key" -subj "/CN=$u@example.com" -outform DER -out "$T/$u.der" 2>/dev/null
    base64 -w 64 "$T/$u.der" >"$T/$u.b64"
done
verify_pem() {
    check "$1 verifies" openssl verify -purpose sslclient -CAfile "$S/ca/root.crt" \
        -untrusted "$S/ca/issuing.crt" "$2"
}

# ---- phone numbers sign in in any spelling (EST, HTTP Basic) ----
est() { # est LOGIN:PIN USER OUT
    curl -s -o "$3" -D "$3.h" -w '%{http_code}' -u "$1" -H 'Content-Type: application/pkcs10' \
        --data-binary @"$T/$2.b64" "$URL/.well-known/est/simpleenroll"
}
i=0
for login in "+14255550100" "14255550100" "4255550100" "+1 (425) 555-0100" "1-425-555-0100" \
    "(425) 555.0100"; do
    i=$((i + 1))
    same "alice signs in as '$login'" "$(est "$login:27182" alice "$T/e$i")" 200
done
base64 -d "$T/e3" | openssl pkcs7 -inform DER -print_certs 2>/dev/null >"$T/e3.pem"
verify_pem "the certificate of a national number" "$T/e3.pem"
same "bob signs in with +1 and separators" "$(est "+1 425 555 0101:31415" bob "$T/b1")" 200
same "the extension is matched as typed" "$(est "1001:27182" alice "$T/x1")" 200
same "a wrong PIN in another spelling is still wrong" "$(est "14255550100:99999" alice "$T/w1")" 401
same "an unknown number in another spelling" "$(est "4255550199:27182" alice "$T/w2")" 401
# [MS-OCAUTHWS] §3.2.4.1 syntax: errorId;source="FQDN";reason="...";fault="p:c", our token after
has "wrong PIN: 28903 in the spec's syntax" "$T/w1.h" \
    '^X-Ms-diagnostics: 28903;source="certprov-test\.example\.com";reason="[^"]*";fault="wsse:FailedAuthentication";token="pin_wrong_or_unknown"'
has "the same for an unknown number" "$T/w2.h" '^X-Ms-diagnostics: 28903;.*;fault="wsse:FailedAuthentication";token="pin_wrong_or_unknown"'

# ---- SOAP ----
WSSE=http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd
S11=http://schemas.xmlsoap.org/soap/envelope/
S12=http://www.w3.org/2003/05/soap-envelope
# soap_body ENV-NS ENTITY CSR-TEXT-FILE USER PIN [CONTEXT]
soap_body() {
    local ctx=""
    [ -n "${6:-}" ] && ctx=" Context=\"$6\""
    cat <<XML
<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="$1"><s:Header><o:Security xmlns:o="$WSSE"><o:UsernameToken><o:Username>$4</o:Username><o:Password>$5</o:Password></o:UsernameToken></o:Security></s:Header><s:Body>
<GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" DeviceId="{2C9F6F43-8B0A-4E5D-9E0B-7C1A33D2B6F1}" Entity="$2">
<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512/"$ctx>
<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>
<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>
<wsse:BinarySecurityToken xmlns:wsse="$WSSE" ValueType="http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10" EncodingType="$WSSE#Base64Binary">
$(cat "$3")
</wsse:BinarySecurityToken>
</wst:RequestSecurityToken></GetAndPublishCert></s:Body></s:Envelope>
XML
}
soap() { # soap FILE OUT CONTENT-TYPE: prints the status
    curl -s -o "$2" -D "$2.h" -w '%{http_code}' -H "Content-Type: $3" \
        -H 'SOAPAction: "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert"' \
        --data-binary @"$1" "$URL/CertProv/CertProvisioningService.svc"
}
# xq FILE XPATH: prints the XPath's string value (python3-lxml), or "XMLERROR"
xq() {
    "$PY" - "$1" "$2" <<'PY'
import sys
from lxml import etree
ns = {"s11": "http://schemas.xmlsoap.org/soap/envelope/", "s12": "http://www.w3.org/2003/05/soap-envelope",
      "a": "http://schemas.microsoft.com/OCS/AuthWebServices/", "wst": "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
      "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
      "wsdl": "http://schemas.xmlsoap.org/wsdl/", "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
      "wsp": "http://schemas.xmlsoap.org/ws/2004/09/policy",
      "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
      "sp": "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702",
      "wsa10": "http://www.w3.org/2005/08/addressing", "mex": "http://schemas.xmlsoap.org/ws/2004/09/mex"}
try:
    doc = etree.parse(sys.argv[1], etree.XMLParser(resolve_entities=False, no_network=True))
except Exception as e:
    print("XMLERROR", e); sys.exit(0)
r = doc.xpath(sys.argv[2], namespaces=ns)
print(r if isinstance(r, (str, float, bool)) else (r[0] if r else ""))
PY
}
soap_cert() { # soap_cert RESPONSE: the certificate as PEM
    xq "$1" 'string(//a:GetAndPublishCertResponse/wst:RequestSecurityTokenResponse/wst:RequestedSecurityToken/wsse:BinarySecurityToken)' |
        base64 -d | openssl x509 -inform DER 2>/dev/null
}

# Context echoed (WS-Trust 1.3 §3.2), SOAP 1.1 unchanged; the phone number as a tel: URI.
soap_body "$S11" alice@example.com "$T/alice.b64" "tel:+14255550100" 27182 'urn:uuid:c0ffee&amp;1' >"$T/q1.xml"
same "SOAP 1.1, tel: login, Context" "$(soap "$T/q1.xml" "$T/r1" "text/xml; charset=utf-8")" 200
has "SOAP 1.1 content type" "$T/r1.h" "^Content-Type: text/xml; charset=utf-8"
same "SOAP 1.1 envelope" "$(xq "$T/r1" 'count(/s11:Envelope/s11:Body/a:GetAndPublishCertResponse/wst:RequestSecurityTokenResponse)')" 1.0
same "Context echoed on the RSTR" "$(xq "$T/r1" 'string(//wst:RequestSecurityTokenResponse/@Context)')" 'urn:uuid:c0ffee&1'
soap_cert "$T/r1" >"$T/r1.pem"
verify_pem "SOAP 1.1 certificate" "$T/r1.pem"
# The chain beside the certificate: the [MS-WSTEP] RSTR's PKCS#7 element, after
# RequestedSecurityToken (whose certificate clients read, unchanged).
P7="//wst:RequestSecurityTokenResponse/wsse:BinarySecurityToken[@ValueType='http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS7']"
xq "$T/r1" "string($P7)" | base64 -d | openssl pkcs7 -inform DER -print_certs 2>/dev/null >"$T/r1.p7.pem"
same "the PKCS#7 holds the certificate, the issuing CA and the root" "$(grep -c 'BEGIN CERTIFICATE' "$T/r1.p7.pem")" 3
check "the PKCS#7's first is the issued certificate" cmp <(openssl x509 -in "$T/r1.p7.pem" -outform DER) <(openssl x509 -in "$T/r1.pem" -outform DER)
check "the PKCS#7 is chain.pem's chain" cmp <(awk '/BEGIN CERT/ {n++} n > 1' "$T/r1.p7.pem" | openssl crl2pkcs7 -nocrl -certfile /dev/stdin | openssl pkcs7 -print_certs | grep -v '^subject\|^issuer\|^$') <(grep -v '^$' "$S/chain.pem")
same "the chain element follows RequestedSecurityToken" "$(xq "$T/r1" "count($P7/preceding-sibling::wst:RequestedSecurityToken)")" 1.0
soap_body "$S11" alice@example.com "$T/alice.b64" 1001 27182 >"$T/q0.xml"
same "no Context, none echoed" "$(soap "$T/q0.xml" "$T/r0" "text/xml")" 200
same "no Context attribute" "$(xq "$T/r0" 'count(//wst:RequestSecurityTokenResponse/@Context)')" 0.0

# SOAP 1.2 in, SOAP 1.2 out.
soap_body "$S12" alice@example.com "$T/alice.b64" "+1 (425) 555-0100" 27182 ctx-12 >"$T/q2.xml"
same "SOAP 1.2 round trip" "$(soap "$T/q2.xml" "$T/r2" 'application/soap+xml; charset=utf-8; action="http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert"')" 200
has "SOAP 1.2 content type" "$T/r2.h" "^Content-Type: application/soap\+xml; charset=utf-8"
same "SOAP 1.2 envelope" "$(xq "$T/r2" 'count(/s12:Envelope/s12:Body/a:GetAndPublishCertResponse/wst:RequestSecurityTokenResponse/wst:RequestedSecurityToken/wsse:BinarySecurityToken)')" 1.0
same "SOAP 1.2 Context" "$(xq "$T/r2" 'string(//wst:RequestSecurityTokenResponse/@Context)')" ctx-12
soap_cert "$T/r2" >"$T/r2.pem"
verify_pem "SOAP 1.2 certificate" "$T/r2.pem"
soap_body "$S12" alice@example.com "$T/alice.b64" 1001 99999 >"$T/q3.xml"
same "SOAP 1.2 wrong PIN" "$(soap "$T/q3.xml" "$T/r3" 'application/soap+xml')" 401
has "SOAP 1.2 error content type" "$T/r3.h" "^Content-Type: application/soap\+xml"
same "SOAP 1.2 ErrorInfo" "$(xq "$T/r3" 'string(/s12:Envelope/s12:Body/a:GetAndPublishCertResponse/a:ErrorInfo/a:Code)')" AuthenticationFailed
printf '<s:Envelope xmlns:s="%s"><s:Body><oops/></s:Body></s:Envelope>' "$S12" >"$T/q4.xml"
same "SOAP 1.2 malformed" "$(soap "$T/q4.xml" "$T/r4" 'application/soap+xml')" 400
same "SOAP 1.2 malformed: a 1.2 ErrorInfo" "$(xq "$T/r4" 'string(/s12:Envelope/s12:Body/a:GetAndPublishCertResponse/a:ErrorInfo/a:Code)')" BadRequest
has "malformed: 28900" "$T/r4.h" '^X-Ms-diagnostics: 28900;source="certprov-test\.example\.com";reason="[^"]*";token="request_malformed"'

# ---- the CSR: unpadded base64, PEM ----
# A CSR whose base64 ends in padding (an ECDSA signature's length varies: draw until it does).
for _ in $(seq 1 40); do
    base64 -w0 "$T/carol.der" | grep -q '=$' && break
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/c.key" 2>/dev/null
    openssl req -new -key "$T/c.key" -subj "/CN=carol@example.com" -outform DER -out "$T/carol.der" 2>/dev/null
done
base64 -w0 "$T/carol.der" | grep -q '=$' || bad "no padded test CSR"
base64 -w0 "$T/carol.der" | tr -d '=' >"$T/carol.nopad"
soap_body "$S11" carol@example.com "$T/carol.nopad" 14255550102 16180 >"$T/q5.xml"
same "unpadded base64 CSR" "$(soap "$T/q5.xml" "$T/r5" text/xml)" 200
openssl req -inform DER -in "$T/carol.der" -outform PEM >"$T/carol.pem"
soap_body "$S11" carol@example.com "$T/carol.pem" 14255550102 16180 >"$T/q6.xml"
same "PEM CSR" "$(soap "$T/q6.xml" "$T/r6" text/xml)" 200
soap_cert "$T/r6" >"$T/r6.pem"
verify_pem "PEM CSR certificate" "$T/r6.pem"
printf 'bm90IGEgQ1NSxy' >"$T/junk.b64"
soap_body "$S11" carol@example.com "$T/junk.b64" 14255550102 16180 >"$T/q7.xml"
same "not a CSR" "$(soap "$T/q7.xml" "$T/r7" text/xml)" 400
has "not a CSR says so" "$T/r7" "not base64 of a DER CSR"
has "not a CSR: 28901" "$T/r7.h" '^X-Ms-diagnostics: 28901;'

# ---- service metadata (issue 18 §1): what pidgin-sipe reads, where it reads it ----
CP=/CertProv/CertProvisioningService.svc
WT=/WebTicket/WebTicketService.svc
POLICY="wsp:Policy[@wsu:Id='CertProvisioningServiceWebTicketProof_SHA1_policy']/wsp:ExactlyOne/wsp:All/sp:EndorsingSupportingTokens/wsp:Policy/sp:IssuedToken/sp:Issuer/wsa10:Address"
PROOF="wsdl:service/wsdl:port[@name='CertProvisioningServiceWebTicketProof_SHA1']/soap:address/@location"
port_at() { echo "wsdl:service/wsdl:port[@name='$1']/soap:address/@location"; }
# metadata BASE: the documents name BASE (the URL clients reach)
metadata() {
    local b=$1
    same "GET $CP/mex" "$(curl -s -o "$T/m1" -D "$T/m1.h" -w '%{http_code}' "$URL$CP/mex")" 200
    has "mex content type" "$T/m1.h" "^Content-Type: text/xml; charset=utf-8"
    same "CertProv: Issuer/Address is the Web Ticket Service" "$(xq "$T/m1" "string(/wsdl:definitions/$POLICY)")" "$b$WT"
    same "CertProv: the WebTicket_Proof port" "$(xq "$T/m1" "string(/wsdl:definitions/$PROOF)")" "$b$CP/WebTicket_Proof"
    same "CertProv: our PIN port" "$(xq "$T/m1" "string(/wsdl:definitions/$(port_at CertProvisioningServicePin))")" "$b$CP"
    same "CertProv: the proof binding names the policy" "$(xq "$T/m1" "string(/wsdl:definitions/wsdl:binding[@name='CertProvisioningServiceWebTicketProof_SHA1']/wsp:PolicyReference/@URI)")" "#CertProvisioningServiceWebTicketProof_SHA1_policy"
    curl -s -o "$T/m2" "$URL$CP?wsdl"
    check "?wsdl is the same document" cmp "$T/m1" "$T/m2"
    same "GET $WT/mex" "$(curl -s -o "$T/m3" -w '%{http_code}' "$URL$WT/mex")" 200
    same "Web Ticket: the PIN port" "$(xq "$T/m3" "string(/wsdl:definitions/$(port_at WebTicketServicePin))")" "$b$WT/Auth"
    same "Web Ticket: the certificate port" "$(xq "$T/m3" "string(/wsdl:definitions/$(port_at WebTicketServiceCert))")" "$b$WT/Cert"
    same "Web Ticket: IssueToken" "$(xq "$T/m3" "count(/wsdl:definitions/wsdl:portType[@name='IWebTicketService']/wsdl:operation[@name='IssueToken'])")" 1.0
    # WS-MetadataExchange GetMetadata, SOAP 1.1 and 1.2
    printf '<s:Envelope xmlns:s="%s" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/mex/GetMetadata/Request</a:Action></s:Header><s:Body><GetMetadata xmlns="http://schemas.xmlsoap.org/ws/2004/09/mex"/></s:Body></s:Envelope>' "$S11" >"$T/gm11.xml"
    same "GetMetadata SOAP 1.1" "$(curl -s -o "$T/m4" -D "$T/m4.h" -w '%{http_code}' -H 'Content-Type: text/xml' --data-binary @"$T/gm11.xml" "$URL$CP/mex")" 200
    same "GetMetadata 1.1: the proof port in the MetadataSection" "$(xq "$T/m4" "string(/s11:Envelope/s11:Body/mex:Metadata/mex:MetadataSection[@Dialect='http://schemas.xmlsoap.org/wsdl/']/wsdl:definitions/$PROOF)")" "$b$CP/WebTicket_Proof"
    sed "s|$S11|$S12|" "$T/gm11.xml" >"$T/gm12.xml"
    same "GetMetadata SOAP 1.2" "$(curl -s -o "$T/m5" -D "$T/m5.h" -w '%{http_code}' -H 'Content-Type: application/soap+xml; charset=utf-8' --data-binary @"$T/gm12.xml" "$URL$WT/mex")" 200
    has "GetMetadata 1.2 content type" "$T/m5.h" "^Content-Type: application/soap\+xml"
    same "GetMetadata 1.2: the Web Ticket PIN port" "$(xq "$T/m5" "string(/s12:Envelope/s12:Body/mex:Metadata/mex:MetadataSection/wsdl:definitions/$(port_at WebTicketServicePin))")" "$b$WT/Auth"
    same "PUT $CP/mex is refused" "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL$CP/mex")" 405
}
metadata "http://certprov-test.example.com:$PORT"
# Reached by an alt_name: the metadata names that host (the request's Host picks).
curl -s -o "$T/m6" -H "Host: LYNC.example.com:$PORT" "$URL$CP/mex"
same "Host an alt_name: its URLs" "$(xq "$T/m6" "string(/wsdl:definitions/$PROOF)")" "http://lync.example.com:$PORT$CP/WebTicket_Proof"
same "Host an alt_name: the Issuer too" "$(xq "$T/m6" "string(/wsdl:definitions/$POLICY)")" "http://lync.example.com:$PORT$WT"
curl -s -o "$T/m7" -H "Host: elsewhere.example.com" "$URL$WT/mex"
same "another Host: [server] name's" "$(xq "$T/m7" "string(/wsdl:definitions/$(port_at WebTicketServicePin))")" "http://certprov-test.example.com:$PORT$WT/Auth"

stop() { kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; }
stop
if grep -q "27182\|31415\|16180" "$T/daemon.log"; then bad "a PIN reached the log"; else ok; fi

# Behind a balancer: [server] external_base_url names what the clients reach.
sed -i 's|^workers = 1$|workers = 1\nexternal_base_url = https://certprov.example.com|' "$T/certprov.ini"
"$D" "${C[@]}" >>"$T/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
check "certprovd started with external_base_url" curl -sf "$URL/healthz"
metadata "https://certprov.example.com"
curl -s -o "$T/m8" -H "Host: lync.example.com" "$URL$CP/mex"
same "external_base_url wins over the Host" "$(xq "$T/m8" "string(/wsdl:definitions/$PROOF)")" "https://certprov.example.com$CP/WebTicket_Proof"
stop
sed -i 's|^external_base_url = .*|external_base_url = https://certprov.example.com/base/|' "$T/certprov.ini"
expect_exit 1 "external_base_url must be http:// or https://" "a path in external_base_url is refused" \
    "$CTL" "${C[@]}" user list
finish
