#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "tests/util/guard.h"

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    ASSERT(ps > 0);
    return (size_t)ps;
}

static size_t data_pages(size_t len)
{
    size_t ps = page_size();
    return (len + ps - 1) / ps + (len == 0 ? 1 : 0);
}

uint8_t *guard_copy(const void *data, size_t len)
{
    size_t ps = page_size();
    size_t n = data_pages(len);
    uint8_t *base =
        mmap(NULL, (n + 1) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(base != MAP_FAILED);
    ASSERT(mprotect(base + n * ps, ps, PROT_NONE) == 0);
    uint8_t *p = base + n * ps - len;
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

void guard_free(uint8_t *p, size_t len)
{
    if (p == NULL) {
        return;
    }
    size_t ps = page_size();
    size_t n = data_pages(len);
    uint8_t *base = p + len - n * ps;
    ASSERT(munmap(base, (n + 1) * ps) == 0);
}
