#include <stdio.h>

#include "base/base.h"

int main(void)
{
    log_setup("certprovctl", LOG_LEVEL_INFO);
    return 0;
}
