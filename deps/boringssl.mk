# deps/boringssl.mk: builds static libcrypto.a and libssl.a from Debian's BoringSSL source
# package, using the package's own file lists (debian/sources.mk), WITHOUT -DOPENSSL_SMALL
# (keeps the precomputed P-256 tables: ~3.5x faster signing) and with hidden visibility, so no
# BoringSSL symbol leaks out of our binaries to clash with OpenSSL-linked libraries (libpq,
# PKCS#11 modules). Invoked by the top-level Makefile as
#   $(MAKE) -f deps/boringssl.mk SRC=<unpacked package> OUT=<dir>
SRC ?= build/boringssl/src
OUT ?= build/boringssl
include $(SRC)/debian/sources.mk

ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
ASM_SOURCES := $(linux_x86_64_sources)
else ifeq ($(ARCH),aarch64)
ASM_SOURCES := $(linux_aarch64_sources)
else
ASM_SOURCES :=
BSSL_NOASM := -DOPENSSL_NO_ASM
endif

BSSL_CPPFLAGS := -I$(SRC)/src/include -I$(SRC)/src/crypto -DNDEBUG -DBORINGSSL_IMPLEMENTATION \
    $(BSSL_NOASM)
BSSL_COMMON := -O2 -g -fPIC -fvisibility=hidden -fno-strict-aliasing -Wa,--noexecstack \
    -ffunction-sections -fdata-sections
CRYPTO_OBJS := $(patsubst %,$(OUT)/obj/%.o,$(crypto_sources) $(ASM_SOURCES))
SSL_OBJS := $(patsubst %,$(OUT)/obj/%.o,$(ssl_sources))

all: $(OUT)/lib/libcrypto.a $(OUT)/lib/libssl.a

$(OUT)/lib/libcrypto.a: $(CRYPTO_OBJS)
	@mkdir -p $(@D)
	@rm -f $@.tmp && ar rcs $@.tmp $^ && mv $@.tmp $@
$(OUT)/lib/libssl.a: $(SSL_OBJS)
	@mkdir -p $(@D)
	@rm -f $@.tmp && ar rcs $@.tmp $^ && mv $@.tmp $@

$(OUT)/obj/%.c.o: $(SRC)/%.c
	@mkdir -p $(@D)
	@$(CC) -std=gnu11 $(BSSL_COMMON) $(BSSL_CPPFLAGS) -c -o $@ $<
$(OUT)/obj/%.S.o: $(SRC)/%.S
	@mkdir -p $(@D)
	@$(CC) $(BSSL_COMMON) $(BSSL_CPPFLAGS) -c -o $@ $<
$(OUT)/obj/%.cc.o: $(SRC)/%.cc
	@mkdir -p $(@D)
	@$(CXX) -std=gnu++2a -fno-exceptions -fno-rtti $(BSSL_COMMON) $(BSSL_CPPFLAGS) -c -o $@ $<
