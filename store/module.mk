store_SRCS := $(wildcard store/*.c)
store_DEPS := base
