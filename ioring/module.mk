ioring_SRCS := $(wildcard ioring/*.c)
ioring_EXTRA_OBJS := $(patsubst %,$(OBJ)/llhttp/%.o,api http llhttp)
ioring_DEPS := base
