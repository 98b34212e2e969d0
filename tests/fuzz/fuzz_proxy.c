/* fuzz_proxy: libFuzzer harness for ioring_proxy_v2_parse, the PROXY protocol v2 header reader.
 * The engine reads at most PROXY_HDR_MAX bytes and parses them again as more arrive: so every
 * input is parsed as the engine would see it and whole; both must agree, a header that parses
 * must come back -EAGAIN for each shorter prefix, and -EAGAIN is impossible once PROXY_HDR_MAX
 * bytes are in (the engine would wait for nothing). A parsed address is IPv4 or IPv6 of its
 * stated length, or none (LOCAL or UNSPEC: keep the peer). Any crash, sanitizer report or ASSERT
 * is a finding. */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "ioring/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct parsed {
    int rc;
    size_t len;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

static void parse(struct parsed *out, const uint8_t *data, size_t size)
{
    memset(out, 0, sizeof(*out));
    out->rc = ioring_proxy_v2_parse(&out->len, &out->addr, &out->addr_len, data, size);
    ASSERT(out->rc == 0 || out->rc == -EAGAIN || out->rc == -EBADMSG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct parsed whole;
    struct parsed seen;
    size_t cap = size < PROXY_HDR_MAX ? size : PROXY_HDR_MAX;
    parse(&whole, data, size);
    parse(&seen, data, cap);
    ASSERT(seen.rc == whole.rc);
    ASSERT(seen.rc != -EAGAIN || cap < PROXY_HDR_MAX);
    if (seen.rc != 0) {
        return 0;
    }
    ASSERT(seen.len == whole.len);
    ASSERT(seen.addr_len == whole.addr_len);
    ASSERT(memcmp(&seen.addr, &whole.addr, sizeof(seen.addr)) == 0);
    ASSERT(seen.len >= 16);
    ASSERT(seen.len <= cap);
    if (seen.addr_len == sizeof(struct sockaddr_in)) {
        ASSERT(seen.addr.ss_family == AF_INET);
    } else if (seen.addr_len == sizeof(struct sockaddr_in6)) {
        ASSERT(seen.addr.ss_family == AF_INET6);
    } else {
        ASSERT(seen.addr_len == 0);
    }
    for (size_t n = 0; n < seen.len; n++) { /* a header split anywhere: wait for the rest */
        struct parsed part;
        parse(&part, data, n);
        ASSERT(part.rc == -EAGAIN);
    }
    return 0;
}
