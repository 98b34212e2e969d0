/* crl.c: revocation on the signer's side: the serial of a presented certificate (renewal) and
 * the CRL (RFC 5280 §5), built with CBB and signed through the CA's key backend. */
#include <errno.h>
#include <string.h>

#include <openssl/bytestring.h>

#include "base/base.h"
#include "signer/internal.h"

int signer_cert_serial(uint8_t out[SIGNER_SERIAL_LEN], const uint8_t *der, size_t der_len)
{
    ASSERT(out != NULL);
    ASSERT(der != NULL || der_len == 0);
    CBS cbs;
    CBS cert;
    CBS tbs;
    CBS serial;
    CBS_init(&cbs, der, der_len);
    /* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber
     * INTEGER, ... } ... } (RFC 5280 §4.1). */
    if (!CBS_get_asn1(&cbs, &cert, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0 ||
        !CBS_get_asn1(&cert, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBS_get_optional_asn1(&tbs, NULL, NULL,
                               CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
        !CBS_get_asn1(&tbs, &serial, CBS_ASN1_INTEGER) || CBS_len(&serial) == 0) {
        return -EBADMSG;
    }
    const uint8_t *p = CBS_data(&serial);
    size_t n = CBS_len(&serial);
    if ((p[0] & 0x80) != 0) {
        return -EBADMSG; /* negative: never ours */
    }
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    if (n > SIGNER_SERIAL_LEN) {
        return -EBADMSG;
    }
    memset(out, 0, SIGNER_SERIAL_LEN);
    memcpy(out + SIGNER_SERIAL_LEN - n, p, n);
    return 0;
}
