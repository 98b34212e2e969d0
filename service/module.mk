service_SRCS := $(wildcard service/*.c)
service_DEPS := signer ioring store hsm base
