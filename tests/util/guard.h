/* guard: test helper that places parser input so that it ends exactly at a PROT_NONE page, so
 * that any read past the end of the input faults at once instead of passing silently. */
#ifndef CERTPROV_TESTS_GUARD_H
#define CERTPROV_TESTS_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* guard_copy returns a copy of `data` whose last byte is followed by an inaccessible page.
 * Release it with guard_free. Aborts on allocation failure (tests only). */
uint8_t *guard_copy(const void *data, size_t len);
/* guard_free releases a buffer from guard_copy of the same `len`. NULL is a no-op. */
void guard_free(uint8_t *p, size_t len);

#endif
