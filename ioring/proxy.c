/* PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2), and
 * proxy_from: the CIDR blocks of the balancers a header is accepted from. A header from anyone
 * else would let any client choose the address that logs and lockout decisions see. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "ioring/internal.h"

static const uint8_t proxy_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

int ioring_proxy_v2_parse(size_t *out_len, struct sockaddr_storage *out_addr,
                          socklen_t *out_addr_len, const uint8_t *data, size_t len)
{
    ASSERT(out_len != NULL);
    ASSERT(out_addr != NULL);
    ASSERT(out_addr_len != NULL);
    size_t have = len < sizeof(proxy_sig) ? len : sizeof(proxy_sig);
    if (memcmp(data, proxy_sig, have) != 0) {
        return -EBADMSG;
    }
    if (len < 16) {
        return -EAGAIN;
    }
    uint8_t ver_cmd = data[12];
    uint8_t fam = data[13];
    size_t body = ((size_t)data[14] << 8) | data[15];
    if ((ver_cmd >> 4) != 2 || (ver_cmd & 0x0f) > 1 || 16 + body > PROXY_HDR_MAX) {
        return -EBADMSG;
    }
    if (len < 16 + body) {
        return -EAGAIN;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    socklen_t addr_len = 0;
    const uint8_t *p = data + 16;
    if ((ver_cmd & 0x0f) == 0 || (fam >> 4) == 0) {
        /* LOCAL (health check from the balancer itself) or AF_UNSPEC: keep the peer. */
    } else if (fam == 0x11) { /* TCP over IPv4: src, dst, src port, dst port */
        if (body < 12) {
            return -EBADMSG;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, p, 4);
        memcpy(&a->sin_port, p + 8, 2);
        addr_len = sizeof(*a);
    } else if (fam == 0x21) { /* TCP over IPv6 */
        if (body < 36) {
            return -EBADMSG;
        }
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, p, 16);
        memcpy(&a->sin6_port, p + 32, 2);
        addr_len = sizeof(*a);
    } else {
        return -EBADMSG; /* UDP or UNIX from an HTTP balancer: not ours */
    }
    *out_len = 16 + body;
    *out_addr = addr;
    *out_addr_len = addr_len;
    return 0;
}

/* ---- proxy_from: the peers a PROXY header is accepted from ---- */

void addr_v6(uint8_t out[16], const struct sockaddr_storage *a, socklen_t len)
{
    memset(out, 0, 16);
    if (a->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
    } else if (a->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(out, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    }
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    ASSERT(bits <= 128);
    unsigned whole = bits / 8;
    if (memcmp(a, b, whole) != 0) {
        return false;
    }
    unsigned rest = bits % 8;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

bool cidr_match(const struct cidr *list, uint32_t num, const struct sockaddr_storage *a,
                socklen_t len)
{
    ASSERT(num <= IORING_PROXY_FROM_MAX);
    if (a->ss_family != AF_INET && a->ss_family != AF_INET6) {
        return false;
    }
    uint8_t v6[16];
    addr_v6(v6, a, len);
    for (uint32_t i = 0; i < num; i++) {
        if (prefix_equal(v6, list[i].addr, list[i].bits)) {
            return true;
        }
    }
    return false;
}

/* cidr_parse reads one block, "addr" or "addr/bits", of exactly `len` bytes. */
static int cidr_parse(struct cidr *out, const char *s, size_t len)
{
    char text[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof(text)) {
        return -EINVAL;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    char *slash = strchr(text, '/');
    unsigned bits = 0;
    bool has_bits = slash != NULL;
    if (has_bits) {
        *slash = '\0';
        const char *d = slash + 1;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3 || strspn(d, "0123456789") != nd) {
            return -EINVAL;
        }
        for (size_t i = 0; i < nd; i++) {
            bits = bits * 10 + (unsigned)(d[i] - '0');
        }
    }
    memset(out, 0, sizeof(*out));
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        if (bits > 32) {
            return -EINVAL;
        }
        out->addr[10] = 0xff;
        out->addr[11] = 0xff;
        memcpy(out->addr + 12, &a4, 4);
        bits = (has_bits ? bits : 32) + 96;
    } else if (inet_pton(AF_INET6, text, out->addr) == 1) {
        if (bits > 128) {
            return -EINVAL;
        }
        bits = has_bits ? bits : 128;
    } else {
        return -EINVAL;
    }
    out->bits = (uint8_t)bits;
    for (unsigned i = bits; i < 128; i++) { /* clear the host bits */
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    }
    return 0;
}

int cidr_list_parse(struct cidr *out, uint32_t *out_num, const char *list)
{
    ASSERT(out != NULL);
    ASSERT(list != NULL);
    uint32_t num = 0;
    const char *p = list;
    for (;;) { /* one item per pass; bounded by the list's length */
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        if (num == IORING_PROXY_FROM_MAX) {
            return -E2BIG;
        }
        int rc = cidr_parse(&out[num], p, (size_t)(e - p));
        if (rc != 0) {
            return rc;
        }
        num++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    *out_num = num;
    return 0;
}

int ioring_cidr_list_check(const char *list)
{
    ASSERT(list != NULL);
    struct cidr blocks[IORING_PROXY_FROM_MAX];
    uint32_t num = 0;
    return cidr_list_parse(blocks, &num, list);
}
