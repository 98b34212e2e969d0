base_SRCS := $(wildcard base/*.c)
base_DEPS :=
