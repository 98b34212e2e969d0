#!/bin/sh
# certprov-soap.sh: the CertProv SOAP envelope a Lync/Skype for Business phone sends, for trying
# the SOAP route by hand with curl (README, Enrolling against `make run`).
#
#   deploy/certprov-soap.sh request CSR [ENTITY] > request.xml
#       wraps CSR (PEM "CERTIFICATE REQUEST", DER, or base64 of the DER) into a GetAndPublishCert
#       request for ENTITY (the user's sign-in name or sip: URI; default: the CSR's subject CN).
#       Credentials go in HTTP Basic (curl -u PHONE-OR-EXTENSION:PIN), never in the file.
#   deploy/certprov-soap.sh cert < response.xml
#       prints the issued certificate of a response as PEM; for a refusal prints the Code and
#       reason to stderr and exits 1.
# Needs openssl and base64. Exit status: 0 success, 1 failure, 2 usage.
set -eu
usage() {
    echo "usage: $0 request CSR [ENTITY] > request.xml | $0 cert < response.xml" >&2
    exit 2
}
[ $# -ge 1 ] || usage
case $1 in
request)
    [ $# -eq 2 ] || [ $# -eq 3 ] || usage
    csr=$2
    [ -r "$csr" ] || { echo "$0: cannot read the CSR $csr" >&2; exit 1; }
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    if grep -q 'BEGIN CERTIFICATE REQUEST' "$csr"; then
        openssl req -in "$csr" -outform DER -out "$tmp" 2>/dev/null
    elif openssl req -inform DER -in "$csr" -noout 2>/dev/null; then
        cp "$csr" "$tmp"
    elif base64 -d "$csr" >"$tmp" 2>/dev/null && openssl req -inform DER -in "$tmp" -noout 2>/dev/null; then
        :
    else
        echo "$0: $csr is not a CSR (PEM, DER or base64 of the DER)" >&2
        exit 1
    fi
    entity=${3:-$(openssl req -inform DER -in "$tmp" -noout -subject -nameopt multiline 2>/dev/null |
        sed -n 's/^ *commonName *= *//p')}
    [ -n "$entity" ] || { echo "$0: the CSR has no CN: give ENTITY" >&2; exit 1; }
    case $entity in *[\"\<\>\&]*) echo "$0: ENTITY must not hold \" < > &" >&2; exit 1 ;; esac
    token=$(base64 -w 64 "$tmp")
    cat <<XML
<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" DeviceId="{00000000-0000-4000-8000-000000000001}" Entity="$entity">
<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512/">
<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>
<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>
<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ValueType="http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10" EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#Base64Binary">
$token
</wsse:BinarySecurityToken>
</wst:RequestSecurityToken>
</GetAndPublishCert>
</s:Body></s:Envelope>
XML
    ;;
cert)
    [ $# -eq 1 ] || usage
    resp=$(cat)
    b64=$(printf '%s' "$resp" | tr -d '\r\n' | grep -o '#X509v3"[^>]*>[^<]*' | sed 's/.*>//' || true)
    if [ -z "$b64" ]; then
        code=$(printf '%s' "$resp" | grep -o '<Code>[^<]*' | sed 's/<Code>//' || true)
        reason=$(printf '%s' "$resp" | grep -o '<Reason>[^<]*' | sed 's/<Reason>//' || true)
        echo "$0: no certificate in the response: ${code:-not a CertProv response}${reason:+: $reason}" >&2
        exit 1
    fi
    printf '%s' "$b64" | base64 -d | openssl x509 -inform DER
    ;;
*)
    usage
    ;;
esac
