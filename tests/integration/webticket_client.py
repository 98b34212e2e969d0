#!/usr/bin/python3
"""An independent Web ticket client for certprov's tests, written from [MS-OCAUTHWS] §3.1/§3.2,
WS-Trust 1.3 (§4.4.5 CK/PSHA1), the WSS SAML Token Profile and ../shared/PROTOCOL-NOTES.md §2.5
(what pidgin-sipe, an interoperating client, sends). It shares no code with the server: HTTP over
TLS with Python's ssl, exclusive c14n with lxml, HMAC-SHA1/P_SHA1 with hashlib/hmac, keys and the
CSR with python3-cryptography, and the assertion's signature verified by `xmlsec1 --verify`.

  webticket_client.py ticket --url URL --state DIR [--user PHONE --pin-file F | --cert C --key K]
        [--applies-to URL] [--claim sip:...] [--expires-in S] [--context C] [--soap12]
        [--cafile CA] [--signer-cert PEM --trusted-pem ROOT]
  webticket_client.py enroll --url URL --state DIR --entity NAME --out CERT.pem [--key-out KEY]
        [--timestamp lifetime|now] [--tamper none|assertion|proof|keyid] [--request-file F]
        [--cafile CA]
  webticket_client.py resend --url URL --request-file F [--cafile CA]
Each prints 'status=N' and the X-Ms-diagnostics header on stdout; exit 0 on HTTP 200, 3 otherwise.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST05 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
SAML = "urn:oasis:names:tc:SAML:1.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"


def p_sha1(secret, seed, n):
    """RFC 2246 §5 P_hash with HMAC-SHA1 (WS-Trust 1.3 §4.4.5: secret = client entropy)."""
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha1).digest()
        out += hmac.new(secret, a + seed, hashlib.sha1).digest()
    return out[:n]


def exc_c14n(elem):
    return etree.tostring(elem, method="c14n", exclusive=True, with_comments=False)


def post(url, body, cafile, action, cert=None, key=None, soap12=False):
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    if ctx is not None and cert:
        ctx.load_cert_chain(cert, key)
    headers = {"Content-Type": "application/soap+xml; charset=utf-8; action=\"%s\"" % action}
    if not soap12:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"%s"' % action}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def report(status, headers):
    print("status=%d" % status)
    for k, v in headers.items():
        if k.lower() in ("x-ms-diagnostics", "x-ms-webticketurl", "retry-after"):
            print("%s: %s" % (k, v))


def rst(args, entropy):
    ns = WST13 if args.trust13 else WST05
    soap = SOAP12 if args.soap12 else SOAP11
    sec = ""
    if args.user:
        pin = open(args.pin_file).read().strip()
        sec = ('<wsse:Security xmlns:wsse="%s"><wsse:UsernameToken><wsse:Username>%s</wsse:Username>'
               '<wsse:Password>%s</wsse:Password></wsse:UsernameToken></wsse:Security>' % (WSSE, args.user, pin))
    life = ""
    if args.expires_in:
        exp = datetime.datetime.utcnow() + datetime.timedelta(seconds=args.expires_in)
        life = ('<wst:Lifetime><wsu:Expires xmlns:wsu="%s">%s</wsu:Expires></wst:Lifetime>'
                % (WSU, exp.strftime("%Y-%m-%dT%H:%M:%SZ")))
    claims = ""
    if args.claim:
        claims = ('<wst:Claims Dialect="urn:component:Microsoft.Rtc.WebAuthentication.2010:authclaims" '
                  'xmlns:auth="http://schemas.xmlsoap.org/ws/2006/12/authorization">'
                  '<auth:ClaimType Uri="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/uri" Optional="false">'
                  '<auth:Value>%s</auth:Value></auth:ClaimType></wst:Claims>' % args.claim)
    return ('<s:Envelope xmlns:s="%s" xmlns:wsa="http://www.w3.org/2005/08/addressing">'
            '<s:Header><wsa:Action>http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue</wsa:Action>'
            '<wsa:To>%s</wsa:To>%s</s:Header><s:Body>'
            '<wst:RequestSecurityToken xmlns:wst="%s" Context="%s">'
            '<wst:TokenType>http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1</wst:TokenType>'
            '<wst:RequestType>%s/Issue</wst:RequestType>'
            '<wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">'
            '<wsa:EndpointReference><wsa:Address>%s</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
            '%s<wst:Entropy><wst:BinarySecret>%s</wst:BinarySecret></wst:Entropy>'
            '<wst:KeyType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/SymmetricKey</wst:KeyType>%s%s'
            '</wst:RequestSecurityToken></s:Body></s:Envelope>'
            % (soap, args.url, sec, ns, args.context, ns, args.applies_to, claims,
               base64.b64encode(entropy).decode(), args.key_size and "<wst:KeySize>%d</wst:KeySize>" % args.key_size or "",
               life)).encode()


def verify_assertion(assertion_raw, args, d):
    """xmlsec1 verifies the enveloped XML-DSig of the assertion with the appliance's certificate."""
    path = os.path.join(d, "assertion.xml")
    with open(path, "wb") as f:
        f.write(assertion_raw)
    cmd = ["xmlsec1", "--verify", "--id-attr:AssertionID", "urn:oasis:names:tc:SAML:1.0:assertion:Assertion",
           "--trusted-pem", args.trusted_pem, "--untrusted-pem", args.signer_cert, path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or "OK" not in r.stdout + r.stderr:
        sys.exit("xmlsec1 does not verify the assertion: %s %s" % (r.stdout, r.stderr[-800:]))
    print("xmlsec1: OK")


def cmd_ticket(args):
    entropy = os.urandom(32)
    status, headers, body = post(args.url, rst(args, entropy), args.cafile,
                                 "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue",
                                 args.cert, args.key, args.soap12)
    report(status, headers)
    if status != 200:
        sys.stdout.write(body.decode(errors="replace")[:2000] + "\n")
        return 3
    doc = etree.fromstring(body)
    ns = WST13 if args.trust13 else WST05
    rstr = doc.find(".//{%s}RequestSecurityTokenResponse" % ns)
    assert rstr is not None, "no RSTR"
    if args.context:
        assert rstr.get("Context") == args.context, "Context not echoed"
    ck = rstr.find("{%s}RequestedProofToken/{%s}ComputedKey" % (ns, ns)).text
    assert ck == ns + "/CK/PSHA1", ck
    key_bits = int(rstr.find("{%s}KeySize" % ns).text)
    server = base64.b64decode(rstr.find("{%s}Entropy/{%s}BinarySecret" % (ns, ns)).text)
    # Raw extraction, as pidgin-sipe does: the assertion and the Lifetime's children, byte for byte.
    text = body.decode()
    assertion = re.search(r"<saml:Assertion\b.*?</saml:Assertion>", text, re.S).group(0)
    lifetime = re.search(r"<Lifetime>(.*?)</Lifetime>", text, re.S).group(1)
    a = etree.fromstring(assertion.encode())
    aid = a.get("AssertionID")
    subject = a.find(".//{%s}NameIdentifier" % SAML).text
    audience = a.find(".//{%s}Audience" % SAML).text
    os.makedirs(args.state, exist_ok=True)
    if args.signer_cert:
        verify_assertion(assertion.encode(), args, args.state)
    state = {"assertion": assertion, "lifetime": lifetime, "assertion_id": aid,
             "proof_key": base64.b64encode(p_sha1(entropy, server, key_bits // 8)).decode(),
             "subject": subject, "audience": audience}
    with open(os.path.join(args.state, "ticket.json"), "w") as f:
        json.dump(state, f)
    print("subject=%s audience=%s key_bits=%d" % (subject, audience, key_bits))
    return 0


def make_csr(cn, key_out):
    k = ec.generate_private_key(ec.SECP256R1())
    with open(key_out, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(k, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


def security_header(st, args):
    if args.timestamp == "lifetime":  # pidgin-sipe: the ticket's Lifetime becomes the Timestamp
        inner = st["lifetime"]
    else:
        now = datetime.datetime.utcnow()
        inner = ("<wsu:Created>%s</wsu:Created><wsu:Expires>%s</wsu:Expires>"
                 % (now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    (now + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    ts = '<wsu:Timestamp xmlns:wsu="%s" wsu:Id="timestamp">%s</wsu:Timestamp>' % (WSU, inner)
    assertion = st["assertion"]
    if args.tamper == "assertion":
        assertion = re.sub(r"(<saml:NameIdentifier>)sip:[^<]*", r"\1sip:mallory@example.com", assertion)
    key = base64.b64decode(st["proof_key"])
    if args.tamper == "proof":
        key = bytes([key[0] ^ 1]) + key[1:]
    kid = st["assertion_id"] if args.tamper != "keyid" else "_" + base64.urlsafe_b64encode(os.urandom(60)).decode().rstrip("=")
    digest = base64.b64encode(hashlib.sha1(exc_c14n(etree.fromstring(ts.encode()))).digest()).decode()
    si = ('<SignedInfo xmlns="%s"><CanonicalizationMethod Algorithm="%s"/>'
          '<SignatureMethod Algorithm="%shmac-sha1"/><Reference URI="#timestamp"><Transforms>'
          '<Transform Algorithm="%s"/></Transforms><DigestMethod Algorithm="%ssha1"/>'
          '<DigestValue>%s</DigestValue></Reference></SignedInfo>' % (DS, EXC, DS, EXC, DS, digest))
    canon = exc_c14n(etree.fromstring(si.encode()))
    value = base64.b64encode(hmac.new(key, canon, hashlib.sha1).digest()).decode()
    sig = ('<Signature xmlns="%s">%s<SignatureValue>%s</SignatureValue><KeyInfo>'
           '<wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="http://docs.oasis-open.org/wss/'
           'oasis-wss-saml-token-profile-1.0#SAMLAssertionID">%s</wsse:KeyIdentifier>'
           '</wsse:SecurityTokenReference></KeyInfo></Signature>' % (DS, canon.decode(), value, kid))
    return ts + assertion + sig


def cmd_enroll(args):
    st = json.load(open(os.path.join(args.state, "ticket.json")))
    key_out = args.key_out or args.out + ".key"
    csr = base64.b64encode(make_csr(args.entity, key_out)).decode()
    action = "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert"
    body = ('<s:Envelope xmlns:s="%s" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:wsse="%s">'
            '<s:Header><wsa:To>%s</wsa:To><wsa:Action>%s</wsa:Action><wsse:Security>%s</wsse:Security>'
            '</s:Header><s:Body><GetAndPublishCert xmlns="http://schemas.microsoft.com/OCS/AuthWebServices/" '
            'xmlns:wst="%s/" xmlns:wstep="http://schemas.microsoft.com/windows/pki/2009/01/enrollment" '
            'DeviceId="{%s}" Entity="%s"><wst:RequestSecurityToken>'
            '<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>'
            '<wst:RequestType>%s/Issue</wst:RequestType>'
            '<wsse:BinarySecurityToken ValueType="http://schemas.microsoft.com/OCS/AuthWebServices.xsd#PKCS10" '
            'EncodingType="%s#Base64Binary">%s</wsse:BinarySecurityToken><wstep:RequestID>%s</wstep:RequestID>'
            '</wst:RequestSecurityToken></GetAndPublishCert></s:Body></s:Envelope>'
            % (SOAP11, WSSE, args.url, action, security_header(st, args), WST13, str(uuid.uuid4()).upper(),
               args.entity, WST13, WSSE, csr, uuid.uuid4())).encode()
    if args.request_file:
        with open(args.request_file, "wb") as f:
            f.write(body)
    return send(args.url, body, args.cafile, args.out)


def send(url, body, cafile, out):
    status, headers, resp = post(url, body, cafile,
                                 "http://schemas.microsoft.com/OCS/AuthWebServices/GetAndPublishCert")
    report(status, headers)
    if status != 200:
        sys.stdout.write(resp.decode(errors="replace")[:2000] + "\n")
        return 3
    doc = etree.fromstring(resp)
    bst = doc.find(".//{%s}RequestedSecurityToken/{%s}BinarySecurityToken" % (WST13, WSSE))
    if bst is None:
        bst = doc.find(".//{%s}BinarySecurityToken" % WSSE)
    cert = x509.load_der_x509_certificate(base64.b64decode(bst.text))
    if out:
        with open(out, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    print("certificate serial=%X subject=%s" % (cert.serial_number, cert.subject.rfc4514_string()))
    return 0


def cmd_resend(args):
    return send(args.url, open(args.request_file, "rb").read(), args.cafile, None)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("ticket")
    t.add_argument("--url", required=True)
    t.add_argument("--state", required=True)
    t.add_argument("--user")
    t.add_argument("--pin-file")
    t.add_argument("--cert")
    t.add_argument("--key")
    t.add_argument("--applies-to", required=True)
    t.add_argument("--claim")
    t.add_argument("--expires-in", type=int)
    t.add_argument("--key-size", type=int)
    t.add_argument("--context", default=str(uuid.uuid4()))
    t.add_argument("--soap12", action="store_true")
    t.add_argument("--trust13", action="store_true", help="the 200512 namespace (default: 2005/02, as pidgin-sipe)")
    t.add_argument("--cafile")
    t.add_argument("--signer-cert")
    t.add_argument("--trusted-pem")
    e = sub.add_parser("enroll")
    e.add_argument("--url", required=True)
    e.add_argument("--state", required=True)
    e.add_argument("--entity", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--key-out")
    e.add_argument("--timestamp", choices=["lifetime", "now"], default="lifetime")
    e.add_argument("--tamper", choices=["none", "assertion", "proof", "keyid"], default="none")
    e.add_argument("--request-file")
    e.add_argument("--cafile")
    r = sub.add_parser("resend")
    r.add_argument("--url", required=True)
    r.add_argument("--request-file", required=True)
    r.add_argument("--cafile")
    args = p.parse_args()
    sys.exit({"ticket": cmd_ticket, "enroll": cmd_enroll, "resend": cmd_resend}[args.cmd](args))


if __name__ == "__main__":
    main()
