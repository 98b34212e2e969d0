/* fuzz_config: libFuzzer harness for the INI configuration: service_config_parse, the whole of
 * service_config_load but reading the file, on the input as text (an input holding a NUL is what
 * the load refuses before parsing, so only the text before it is parsed). Checked: the result is
 * 0 or -EINVAL; a failure has a message that starts with the file's name; a success holds what
 * the load promises: a name, 1 to 64 pools of valid names, min_hours <= default_hours <=
 * max_hours, addresses the engine accepts, every string terminated. Any crash, sanitizer report,
 * leak or ASSERT is a finding. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ioring/ioring.h"
#include "service/service.h"

#define FUZZ_PATH "/fuzz/certprov.ini"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void check_config(const struct service_config *c)
{
    ASSERT(terminated(c->name, sizeof(c->name)));
    ASSERT(c->name[0] != '\0');
    ASSERT(terminated(c->listen, sizeof(c->listen)));
    ASSERT(ioring_listen_check(c->listen) == 0);
    ASSERT(terminated(c->tls_listen, sizeof(c->tls_listen)));
    ASSERT(c->tls_listen[0] == '\0' || ioring_listen_check(c->tls_listen) == 0);
    ASSERT(terminated(c->store_path, sizeof(c->store_path)));
    ASSERT(c->store_path[0] == '/'); /* resolved against /fuzz */
    ASSERT(c->profile.min_hours <= c->profile.default_hours);
    ASSERT(c->profile.default_hours <= c->profile.max_hours);
    ASSERT(c->pin.min_len >= 4 && c->pin.min_len <= SIGNER_PIN_MAX);
    ASSERT(c->max_request_bytes <= SIGNER_SOAP_BODY_MAX);
    ASSERT(c->num_pools >= 1 && c->num_pools <= STORE_POOLS_MAX);
    for (size_t i = 0; i < c->num_pools; i++) {
        const struct service_pool_config *p = &c->pools[i];
        ASSERT(terminated(p->name, sizeof(p->name)));
        ASSERT(p->name[0] != '\0');
        ASSERT(service_config_find_pool(c, p->name) == p); /* names are unique */
        ASSERT(terminated(p->store, sizeof(p->store)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct service_config cfg; /* large: libFuzzer runs inputs one at a time */
    char err[SERVICE_CONFIG_ERR_MAX];
    if (size > SERVICE_CONFIG_FILE_MAX) {
        return 0; /* the load refuses it before parsing */
    }
    char *text = malloc(size + 1); /* exactly: ASan sees a read past the text */
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = service_config_parse(&cfg, err, FUZZ_PATH, text);
    ASSERT(rc == 0 || rc == -EINVAL);
    ASSERT(terminated(err, sizeof(err)));
    if (rc != 0) {
        ASSERT(strncmp(err, FUZZ_PATH, strlen(FUZZ_PATH)) == 0);
    } else {
        check_config(&cfg);
    }
    free(text);
    return 0;
}
