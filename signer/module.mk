signer_SRCS := $(wildcard signer/*.c)
signer_DEPS := hsm store base
