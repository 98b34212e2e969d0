/* PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2). */
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
