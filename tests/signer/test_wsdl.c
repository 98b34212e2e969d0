/* test_wsdl: the service metadata (signer/wsdl.c): well-formed, the ports and the Web Ticket
 * Service URL where clients read them (the XPath walk itself: tests/integration/
 * test_phonewire.sh with lxml), bounded, and the base URLs it accepts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <expat.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

static bool well_formed(const char *xml)
{
    XML_Parser p = XML_ParserCreateNS(NULL, '|');
    cr_assert_not_null(p);
    bool ok = XML_Parse(p, xml, (int)strlen(xml), XML_TRUE) == XML_STATUS_OK;
    XML_ParserFree(p);
    return ok;
}

static char doc[SIGNER_WSDL_MAX];

Test(signer_wsdl, certprov_ports_and_issuer)
{
    size_t len = 0;
    cr_assert_eq(signer_wsdl_certprov(doc, sizeof(doc), &len, "https://certprov.example.com"), 0);
    cr_assert_eq(len, strlen(doc));
    cr_assert(well_formed(doc), "%s", doc);
    cr_assert(strstr(doc, "wsu:Id=\"CertProvisioningServiceWebTicketProof_SHA1_policy\"") != NULL);
    cr_assert(strstr(doc, "<sp:Issuer><wsa10:Address>https://certprov.example.com/WebTicket/"
                          "WebTicketService.svc</wsa10:Address></sp:Issuer>") != NULL);
    cr_assert(strstr(doc,
                     "<wsdl:port name=\"CertProvisioningServiceWebTicketProof_SHA1\" "
                     "binding=\"tns:CertProvisioningServiceWebTicketProof_SHA1\"><soap:address "
                     "location=\"https://certprov.example.com/CertProv/"
                     "CertProvisioningService.svc/WebTicket_Proof\"/>") != NULL,
              "%s", doc);
    cr_assert(strstr(doc, "location=\"https://certprov.example.com/CertProv/"
                          "CertProvisioningService.svc\"/>") != NULL);
    cr_assert(strstr(doc, "<wsdl:operation name=\"GetAndPublishCert\">") != NULL);
    /* Exactly what it needs: one byte less does not fit. */
    static char small[SIGNER_WSDL_MAX];
    size_t len2 = 0;
    cr_assert_eq(signer_wsdl_certprov(small, len + 1, &len2, "https://certprov.example.com"), 0);
    cr_assert_eq(signer_wsdl_certprov(small, len, &len2, "https://certprov.example.com"), -E2BIG);
    cr_assert_str_eq(small, "");
}

Test(signer_wsdl, webticket_ports)
{
    size_t len = 0;
    cr_assert_eq(signer_wsdl_webticket(doc, sizeof(doc), &len, "http://10.0.0.5:8080"), 0);
    cr_assert(well_formed(doc), "%s", doc);
    cr_assert(strstr(doc,
                     "<wsdl:port name=\"WebTicketServicePin\" binding=\"tns:WebTicketServicePin\">"
                     "<soap:address location=\"http://10.0.0.5:8080/WebTicket/"
                     "WebTicketService.svc/Auth\"/>") != NULL,
              "%s", doc);
    cr_assert(
        strstr(doc, "location=\"http://10.0.0.5:8080/WebTicket/WebTicketService.svc/Cert\"") !=
        NULL);
    cr_assert(strstr(doc, "wsaw:Action=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/"
                          "Issue\"") != NULL);
}

Test(signer_wsdl, metadata_envelope)
{
    size_t len = 0;
    cr_assert_eq(signer_wsdl_certprov(doc, sizeof(doc), &len, "https://a.example.com:4443"), 0);
    static char out[SIGNER_WSDL_MAX + 1024];
    size_t out_len = 0;
    for (int v = 0; v < 2; v++) {
        cr_assert_eq(signer_mex_response(out, sizeof(out), &out_len, doc, v == 1), 0);
        cr_assert(well_formed(out), "%s", out);
        cr_assert(strstr(out, v == 1 ? "http://www.w3.org/2003/05/soap-envelope"
                                     : "http://schemas.xmlsoap.org/soap/envelope/") != NULL);
        cr_assert(strstr(out, "<mex:MetadataSection Dialect=\"http://schemas.xmlsoap.org/wsdl/\">"
                              "<wsdl:definitions ") != NULL);
        cr_assert(strstr(out, "https://a.example.com:4443/CertProv/") != NULL);
    }
    cr_assert_eq(signer_mex_response(out, 100, &out_len, doc, false), -E2BIG);
}

Test(signer_wsdl, base_urls)
{
    cr_assert(signer_base_url_valid("https://certprov.example.com"));
    cr_assert(signer_base_url_valid("https://certprov.example.com:8443"));
    cr_assert(signer_base_url_valid("http://127.0.0.1:8080"));
    cr_assert(signer_base_url_valid("https://[2001:db8::1]:443"));
    cr_assert_not(signer_base_url_valid(""));
    cr_assert_not(signer_base_url_valid("certprov.example.com"));
    cr_assert_not(signer_base_url_valid("ftp://certprov.example.com"));
    cr_assert_not(signer_base_url_valid("https://"));
    cr_assert_not(signer_base_url_valid("https://certprov.example.com/"));
    cr_assert_not(signer_base_url_valid("https://certprov.example.com/base"));
    cr_assert_not(signer_base_url_valid("https://a\"b.example.com"));
    cr_assert_not(signer_base_url_valid("https://a<b>.example.com"));
    char longurl[SIGNER_BASE_URL_MAX + 2];
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "https://", 8);
    longurl[sizeof(longurl) - 1] = '\0';
    cr_assert_not(signer_base_url_valid(longurl));
    longurl[sizeof(longurl) - 2] = '\0';
    cr_assert(signer_base_url_valid(longurl));
    /* The longest base URL still fits both documents. */
    size_t len = 0;
    cr_assert_eq(signer_wsdl_certprov(doc, sizeof(doc), &len, longurl), 0);
    cr_assert_eq(signer_wsdl_webticket(doc, sizeof(doc), &len, longurl), 0);
}
