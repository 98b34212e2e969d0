/* transport: the layer between the socket and the HTTP parser (struct transport_ops). The plain
 * transport passes bytes through: input goes to http_input, and a response is sent from where it
 * lies (the slot's response buffer or the connection's canned answer), without a copy. The TLS
 * transport is in tls.c. */
#include "ioring/internal.h"

static int plain_input(struct conn *c, const uint8_t *wire, size_t len)
{
    DASSERT(c->tp == &transport_plain);
    return http_input(c, wire, len);
}

static int plain_output(struct conn *c, const uint8_t *plain, size_t len, bool last)
{
    (void)last;
    ASSERT(plain != NULL);
    ASSERT(c->out_len == 0);
    c->out_ptr = plain;
    c->out_len = len;
    return 0;
}

static size_t plain_wire(struct conn *c, const uint8_t **out)
{
    *out = c->out_ptr;
    return c->out_len;
}

static void plain_sent(struct conn *c, size_t n)
{
    ASSERT(n <= c->out_len);
    c->out_ptr += n;
    c->out_len -= n;
}

static bool plain_ready(const struct conn *c)
{
    (void)c;
    return true;
}

const struct transport_ops transport_plain = {
    .name = "plain",
    .input = plain_input,
    .output = plain_output,
    .wire = plain_wire,
    .sent = plain_sent,
    .ready = plain_ready,
    .close = NULL,
    .release = NULL,
    .open = NULL,
    .slot_fill = NULL,
};
