/* libFuzzer harness for signer_serial_parse: any text either fails with -EINVAL or parses to a
 * serial whose canonical form parses back to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "signer/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[256];
    if (size >= sizeof(text)) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t serial[SIGNER_SERIAL_LEN];
    int rc = signer_serial_parse(serial, text);
    ASSERT(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        char canon[2 * SIGNER_SERIAL_LEN + 1];
        uint8_t again[SIGNER_SERIAL_LEN];
        signer_serial_format(canon, serial);
        ASSERT(signer_serial_parse(again, canon) == 0);
        ASSERT(memcmp(serial, again, sizeof(serial)) == 0);
    }
    return 0;
}
