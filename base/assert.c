#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"

_Noreturn void base_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    /* The lines this thread holds first (a ring's turn, the writer's group): they lead here.
     * Then fprintf, not the logger: the logger itself may be what broke. */
    log_hold_spill();
    fprintf(stderr, "ASSERT failed: %s at %s:%d in %s()\n", expr, file, line, func);
    fflush(stderr);
    abort();
}
