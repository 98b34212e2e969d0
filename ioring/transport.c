/* transport: the layer between the socket and the HTTP parser. The plain transport passes bytes
 * through; a TLS transport (BoringSSL with memory BIOs) implements the same two operations:
 * input decrypts into plaintext for http_input and queues handshake bytes, output encrypts into
 * per-connection storage. */
#include "ioring/internal.h"

static int plain_input(struct conn *c, const uint8_t *wire, size_t len)
{
    DASSERT(c->tp == &transport_plain);
    return http_input(c, wire, len);
}

static int plain_output(struct conn *c, const uint8_t *plain, size_t len, const uint8_t **out,
                        size_t *out_len)
{
    DASSERT(c->tp == &transport_plain);
    ASSERT(plain != NULL);
    *out = plain;
    *out_len = len;
    return 0;
}

const struct transport_ops transport_plain = {
    .name = "plain",
    .input = plain_input,
    .output = plain_output,
};
