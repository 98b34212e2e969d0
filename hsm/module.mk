hsm_SRCS := $(wildcard hsm/*.c)
hsm_DEPS := base
