/* wsdl: the service metadata of CertProv and of the Web Ticket Service ([MS-OCAUTHWS] §3.1.4.1,
 * §3.2.4.1; WS-MetadataExchange), as clients read it: pidgin-sipe, which interoperates with Lync
 * servers, GETs `<service URL>/mex`, takes the `wsp:Policy` whose Id is `<port>_policy`, reads the
 * Web Ticket Service URL at ExactlyOne/All/EndorsingSupportingTokens/Policy/IssuedToken/Issuer/
 * Address, then the `wsdl:service/wsdl:port` of that name and its `address/@location`; at the Web
 * Ticket Service it reads the ports by name (PROTOCOL-NOTES §2.1, §2.5). Built once, at start,
 * from the base URL clients reach; never per request. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

#define NS_WSDL "http://schemas.xmlsoap.org/wsdl/"
#define NS_SOAPB "http://schemas.xmlsoap.org/wsdl/soap/"
#define NS_WSP "http://schemas.xmlsoap.org/ws/2004/09/policy"
#define NS_WSU "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
#define NS_SP "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
#define NS_WSA "http://www.w3.org/2005/08/addressing"
#define NS_WSAW "http://www.w3.org/2006/05/addressing/wsdl"
#define NS_WST "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
#define NS_XSD "http://www.w3.org/2001/XMLSchema"
#define NS_AUTH "http://schemas.microsoft.com/OCS/AuthWebServices/"
#define NS_MEX "http://schemas.xmlsoap.org/ws/2004/09/mex"
#define SAML11 "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
#define GAPC_ACTION NS_AUTH "GetAndPublishCert"
#define RST_ISSUE NS_WST "/RST/Issue"
#define RSTRC_ISSUE NS_WST "/RSTRC/IssueFinal"

#define DEFS_OPEN(tns)                                                                             \
    "<wsdl:definitions xmlns:wsdl=\"" NS_WSDL "\" xmlns:soap=\"" NS_SOAPB "\" xmlns:wsp=\"" NS_WSP \
    "\" xmlns:wsu=\"" NS_WSU "\" xmlns:sp=\"" NS_SP "\" xmlns:wsa10=\"" NS_WSA                     \
    "\" xmlns:wsaw=\"" NS_WSAW "\" xmlns:wst=\"" NS_WST "\" xmlns:xsd=\"" NS_XSD                   \
    "\" xmlns:tns=\"" tns "\" targetNamespace=\"" tns "\">"

/* put appends printf output to out[*len..cap); once something does not fit, *over stays set. */
__attribute__((format(printf, 5, 6))) static void put(char *out, size_t cap, size_t *len,
                                                      bool *over, const char *fmt, ...)
{
    if (*over) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len) {
        *over = true;
        out[0] = '\0';
        return;
    }
    *len += (size_t)n;
}

static int finish(char *out, size_t *out_len, size_t len, bool over)
{
    if (over) {
        out[0] = '\0';
        return -E2BIG;
    }
    *out_len = len;
    return 0;
}

bool signer_base_url_valid(const char *url)
{
    ASSERT(url != NULL);
    size_t n = strlen(url);
    const char *host = strncmp(url, "https://", 8) == 0  ? url + 8
                       : strncmp(url, "http://", 7) == 0 ? url + 7
                                                         : NULL;
    if (host == NULL || n > SIGNER_BASE_URL_MAX || host[0] == '\0' || url[n - 1] == '/') {
        return false;
    }
    /* A host and an optional port: nothing that needs escaping in XML or ends the URL early. */
    for (const char *p = host; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == ':' || *p == '[' ||
                  *p == ']';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int signer_wsdl_certprov(char *out, size_t cap, size_t *out_len, const char *base_url)
{
    ASSERT(out != NULL && cap > 0 && out_len != NULL);
    ASSERT(base_url != NULL && signer_base_url_valid(base_url));
    size_t len = 0;
    bool over = false;
    out[0] = '\0';
    put(out, cap, &len, &over, "%s",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>" DEFS_OPEN(NS_AUTH)
        /* The Web ticket port's policy: a SAML 1.1 token issued by the Web Ticket Service,
         * endorsing (its proof key signs the Timestamp: HMAC-SHA1), over TLS. */
        "<wsp:Policy wsu:Id=\"" SIGNER_CERTPROV_PROOF_PORT "_policy\"><wsp:ExactlyOne><wsp:All>"
        "<sp:TransportBinding><wsp:Policy><sp:TransportToken><wsp:Policy><sp:HttpsToken/>"
        "</wsp:Policy></sp:TransportToken><sp:AlgorithmSuite><wsp:Policy><sp:Basic256/>"
        "</wsp:Policy></sp:AlgorithmSuite><sp:Layout><wsp:Policy><sp:Strict/></wsp:Policy>"
        "</sp:Layout><sp:IncludeTimestamp/></wsp:Policy></sp:TransportBinding>"
        "<sp:EndorsingSupportingTokens><wsp:Policy><sp:IssuedToken sp:IncludeToken=\""
        "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702/IncludeToken/AlwaysToRecipient"
        "\"><sp:Issuer><wsa10:Address>");
    put(out, cap, &len, &over, "%s" SIGNER_WEBTICKET_PATH, base_url);
    put(out, cap, &len, &over, "%s",
        "</wsa10:Address></sp:Issuer><sp:RequestSecurityTokenTemplate>"
        "<wst:TokenType>" SAML11 "</wst:TokenType>"
        "<wst:KeyType>" NS_WST "/SymmetricKey</wst:KeyType>"
        "<wst:KeySize>256</wst:KeySize></sp:RequestSecurityTokenTemplate>"
        "<wsp:Policy><sp:RequireInternalReference/></wsp:Policy></sp:IssuedToken>"
        "</wsp:Policy></sp:EndorsingSupportingTokens></wsp:All></wsp:ExactlyOne></wsp:Policy>"
        /* [MS-OCAUTHWS] §3.1.4.1: the messages and the port type. */
        "<wsdl:types><xsd:schema targetNamespace=\"" NS_AUTH "\" elementFormDefault=\"qualified\">"
        "<xsd:element name=\"GetAndPublishCert\"><xsd:complexType><xsd:sequence>"
        "<xsd:any processContents=\"lax\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>"
        "</xsd:sequence><xsd:attribute name=\"DeviceId\" type=\"xsd:string\"/>"
        "<xsd:attribute name=\"Entity\" type=\"xsd:string\"/></xsd:complexType></xsd:element>"
        "<xsd:element name=\"GetAndPublishCertResponse\"><xsd:complexType><xsd:sequence>"
        "<xsd:any processContents=\"lax\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>"
        "</xsd:sequence></xsd:complexType></xsd:element></xsd:schema></wsdl:types>"
        "<wsdl:message name=\"GetAndPublishCertMsg\"><wsdl:part name=\"parameters\" "
        "element=\"tns:GetAndPublishCert\"/></wsdl:message>"
        "<wsdl:message name=\"GetAndPublishCertResponseMsg\"><wsdl:part name=\"parameters\" "
        "element=\"tns:GetAndPublishCertResponse\"/></wsdl:message>"
        "<wsdl:portType name=\"CertProvisioningService\"><wsdl:operation name=\""
        "GetAndPublishCert\"><wsdl:input wsaw:Action=\"" GAPC_ACTION "\" message=\""
        "tns:GetAndPublishCertMsg\"/><wsdl:output message=\"tns:GetAndPublishCertResponseMsg\"/>"
        "</wsdl:operation></wsdl:portType>");
    /* Two bindings: the Web ticket port, and this appliance's own PIN (or client certificate)
     * port at the plain service URL. */
    static const struct {
        const char *name;
        const char *policy;
        const char *suffix;
    } ports[] = {
        {SIGNER_CERTPROV_PROOF_PORT,
         "<wsp:PolicyReference URI=\"#" SIGNER_CERTPROV_PROOF_PORT "_policy\"/>",
         SIGNER_CERTPROV_PROOF_SUFFIX},
        {SIGNER_CERTPROV_PIN_PORT, "", ""},
    };
    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        put(out, cap, &len, &over,
            "<wsdl:binding name=\"%s\" type=\"tns:CertProvisioningService\">%s"
            "<soap:binding transport=\"http://schemas.xmlsoap.org/soap/http\"/>"
            "<wsdl:operation name=\"GetAndPublishCert\"><soap:operation soapAction=\"" GAPC_ACTION
            "\" style=\"document\"/><wsdl:input><soap:body use=\"literal\"/></wsdl:input>"
            "<wsdl:output><soap:body use=\"literal\"/></wsdl:output></wsdl:operation>"
            "</wsdl:binding>",
            ports[i].name, ports[i].policy);
    }
    put(out, cap, &len, &over, "%s", "<wsdl:service name=\"CertProvisioningService\">");
    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        put(out, cap, &len, &over,
            "<wsdl:port name=\"%s\" binding=\"tns:%s\"><soap:address "
            "location=\"%s" SIGNER_CERTPROV_PATH "%s\"/></wsdl:port>",
            ports[i].name, ports[i].name, base_url, ports[i].suffix);
    }
    put(out, cap, &len, &over, "%s", "</wsdl:service></wsdl:definitions>");
    return finish(out, out_len, len, over);
}

int signer_wsdl_webticket(char *out, size_t cap, size_t *out_len, const char *base_url)
{
    ASSERT(out != NULL && cap > 0 && out_len != NULL);
    ASSERT(base_url != NULL && signer_base_url_valid(base_url));
    size_t len = 0;
    bool over = false;
    out[0] = '\0';
    put(out, cap, &len, &over, "%s",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>" DEFS_OPEN("http://tempuri.org/")
        /* PIN: a UsernameToken (phone number or extension, PIN) over TLS. */
        "<wsp:Policy wsu:Id=\"" SIGNER_WEBTICKET_PIN_PORT "_policy\"><wsp:ExactlyOne><wsp:All>"
        "<sp:TransportBinding><wsp:Policy><sp:TransportToken><wsp:Policy><sp:HttpsToken/>"
        "</wsp:Policy></sp:TransportToken><sp:IncludeTimestamp/></wsp:Policy>"
        "</sp:TransportBinding><sp:SignedSupportingTokens><wsp:Policy><sp:UsernameToken "
        "sp:IncludeToken=\"http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702/"
        "IncludeToken/AlwaysToRecipient\"><wsp:Policy><sp:WssUsernameToken10/></wsp:Policy>"
        "</sp:UsernameToken></wsp:Policy></sp:SignedSupportingTokens></wsp:All></wsp:ExactlyOne>"
        "</wsp:Policy>"
        /* Certificate: a TLS client certificate this appliance issued ([MS-OCAUTHWS] §3.2). */
        "<wsp:Policy wsu:Id=\"" SIGNER_WEBTICKET_CERT_PORT "_policy\"><wsp:ExactlyOne><wsp:All>"
        "<sp:TransportBinding><wsp:Policy><sp:TransportToken><wsp:Policy><sp:HttpsToken "
        "RequireClientCertificate=\"true\"/></wsp:Policy></sp:TransportToken>"
        "<sp:IncludeTimestamp/></wsp:Policy></sp:TransportBinding></wsp:All></wsp:ExactlyOne>"
        "</wsp:Policy>"
        /* [MS-OCAUTHWS] §3.2.4.1: IWebTicketService / IssueToken. */
        "<wsdl:message name=\"IWebTicketService_IssueToken_InputMessage\"><wsdl:part "
        "name=\"request\" element=\"wst:RequestSecurityToken\"/></wsdl:message>"
        "<wsdl:message name=\"IWebTicketService_IssueToken_OutputMessage\"><wsdl:part "
        "name=\"response\" element=\"wst:RequestSecurityTokenResponseCollection\"/>"
        "</wsdl:message><wsdl:portType name=\"IWebTicketService\"><wsdl:operation "
        "name=\"IssueToken\"><wsdl:input wsaw:Action=\"" RST_ISSUE "\" message=\""
        "tns:IWebTicketService_IssueToken_InputMessage\"/><wsdl:output wsaw:Action=\"" RSTRC_ISSUE
        "\" message=\"tns:IWebTicketService_IssueToken_OutputMessage\"/></wsdl:operation>"
        "</wsdl:portType>");
    static const struct {
        const char *name;
        const char *suffix;
    } ports[] = {
        {SIGNER_WEBTICKET_PIN_PORT, SIGNER_WEBTICKET_PIN_SUFFIX},
        {SIGNER_WEBTICKET_CERT_PORT, SIGNER_WEBTICKET_CERT_SUFFIX},
    };
    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        put(out, cap, &len, &over,
            "<wsdl:binding name=\"%s\" type=\"tns:IWebTicketService\"><wsp:PolicyReference "
            "URI=\"#%s_policy\"/><soap:binding transport=\"http://schemas.xmlsoap.org/soap/http\"/>"
            "<wsdl:operation name=\"IssueToken\"><soap:operation soapAction=\"" RST_ISSUE
            "\" style=\"document\"/><wsdl:input><soap:body use=\"literal\"/></wsdl:input>"
            "<wsdl:output><soap:body use=\"literal\"/></wsdl:output></wsdl:operation>"
            "</wsdl:binding>",
            ports[i].name, ports[i].name);
    }
    put(out, cap, &len, &over, "%s", "<wsdl:service name=\"WebTicketService\">");
    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        put(out, cap, &len, &over,
            "<wsdl:port name=\"%s\" binding=\"tns:%s\"><soap:address "
            "location=\"%s" SIGNER_WEBTICKET_PATH "%s\"/></wsdl:port>",
            ports[i].name, ports[i].name, base_url, ports[i].suffix);
    }
    put(out, cap, &len, &over, "%s", "</wsdl:service></wsdl:definitions>");
    return finish(out, out_len, len, over);
}

int signer_mex_response(char *out, size_t cap, size_t *out_len, const char *wsdl, bool soap12)
{
    ASSERT(out != NULL && cap > 0 && out_len != NULL);
    ASSERT(wsdl != NULL);
    static const char decl[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";
    if (strncmp(wsdl, decl, strlen(decl)) == 0) {
        wsdl += strlen(decl); /* the section holds the document element, not a document */
    }
    size_t len = 0;
    bool over = false;
    out[0] = '\0';
    /* WS-MetadataExchange 2004/09 §5: GetMetadata's answer, one WSDL MetadataSection. */
    put(out, cap, &len, &over,
        "%s<s:Envelope xmlns:s=\"%s\"><s:Body><mex:Metadata xmlns:mex=\"" NS_MEX "\">"
        "<mex:MetadataSection Dialect=\"" NS_WSDL "\">%s</mex:MetadataSection></mex:Metadata>"
        "</s:Body></s:Envelope>",
        decl,
        soap12 ? "http://www.w3.org/2003/05/soap-envelope"
               : "http://schemas.xmlsoap.org/soap/envelope/",
        wsdl);
    return finish(out, out_len, len, over);
}
