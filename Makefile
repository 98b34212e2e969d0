# certprov: one non-recursive Makefile. Each module lists its sources in <mod>/module.mk.
#
#   make            release build (ASSERT stays on) of every program into build/bin/
#   make test       installs what tests need, builds with ASan+UBSan, runs every test
#   make run        installs what it needs, builds, starts the appliance on embedded defaults
#   make debug | asan | tsan | bench | fuzz | format | check-format | clean | distclean
#   make install [PREFIX=/usr/local] [DESTDIR=...] | deb (the Debian package, into build/deb/)
#
# MODE selects the flavour of a build (release, debug, asan, tsan); each has its own tree under
# build/, so switching never mixes objects. BoringSSL is built once under build/boringssl and
# shared by every mode (it is not instrumented; our code is).

.DEFAULT_GOAL := all
SHELL := /bin/bash
MODE ?= release
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
BUILD ?= build
BSSL_DIR ?= build/boringssl
PREFIX ?= /usr/local
NPROC := $(shell nproc 2>/dev/null || echo 2)

ifeq ($(MODE),release)
OUTDIR := $(BUILD)
BIN := $(BUILD)/bin
MODE_CFLAGS := -O2 -D_FORTIFY_SOURCE=3
else ifeq ($(MODE),debug)
OUTDIR := $(BUILD)/debug
BIN := $(OUTDIR)/bin
MODE_CFLAGS := -O0 -DCERTPROV_DEBUG
else ifeq ($(MODE),asan)
OUTDIR := $(BUILD)/asan
BIN := $(OUTDIR)/bin
MODE_CFLAGS := -O1 -DCERTPROV_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all
MODE_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
OUTDIR := $(BUILD)/tsan
BIN := $(OUTDIR)/bin
MODE_CFLAGS := -O1 -DCERTPROV_DEBUG -fsanitize=thread -fno-omit-frame-pointer
MODE_LDFLAGS := -fsanitize=thread
else
$(error MODE must be release, debug, asan or tsan)
endif
OBJ := $(OUTDIR)/obj

BSSL_INC := $(BSSL_DIR)/src/src/include
# llhttp: C sources shipped by Debian's node-llhttp, compiled into the ioring archive.
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
BSSL_CRYPTO := $(BSSL_DIR)/lib/libcrypto.a
BSSL_SSL := $(BSSL_DIR)/lib/libssl.a

# libsystemd: certprovd's sd_notify (Type=notify); shared, it links no libcrypto (check-symbols).
# libxml-2.0: exclusive c14n of the Web tickets' XML (signer/xml.c).
PKGS := liburing lmdb inih expat libpq libsystemd libxml-2.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRITERION_LIBS := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wsign-conversion -Wstrict-prototypes \
    -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough -Wvla -Wundef -Wcast-qual
CFLAGS := -std=c17 -g $(WARN) -fstack-protector-strong -fPIE -D_GNU_SOURCE \
    $(MODE_CFLAGS) $(EXTRA_CFLAGS)
# The PKCS#11 header (CK_* types, hsm/pkcs11.c only) comes from p11-kit; nothing of it is linked.
P11_INC := /usr/include/p11-kit-1
CPPFLAGS := -I. -isystem $(BSSL_INC) -isystem $(LLHTTP_INC) -isystem $(P11_INC) $(PKG_CFLAGS) \
    -MMD -MP
LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(MODE_LDFLAGS)
LDLIBS := $(BSSL_SSL) $(BSSL_CRYPTO) $(PKG_LIBS) -lpthread

# Modules in link order (a module before what it depends on).
MODULES := service signer ioring hsm store base
include $(patsubst %,%/module.mk,$(MODULES))
modlib = $(OBJ)/lib$(1).a
# $(call modlibs,m): m's archive followed by the archives of the modules it depends on.
modlibs = $(call modlib,$(1)) $(foreach d,$($(1)_DEPS),$(call modlib,$(d)))

define module_rules
$(call modlib,$(1)): $$(patsubst %.c,$$(OBJ)/%.o,$$($(1)_SRCS)) $$($(1)_EXTRA_OBJS)
	@mkdir -p $$(@D)
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

# Programs: cmd/<prog>/*.c, linked against every module.
PROGS := $(notdir $(wildcard cmd/*))
ALL_MODLIBS := $(foreach m,$(MODULES),$(call modlib,$(m)))
define prog_rules
$(BIN)/$(1): $$(patsubst %.c,$$(OBJ)/%.o,$$(wildcard cmd/$(1)/*.c)) $$(ALL_MODLIBS) \
        $$(BSSL_CRYPTO)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $$(ALL_MODLIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rules,$(p))))

# Tests: one Criterion binary per module, from tests/<mod>/*.c and tests/util/*.c.
TEST_MODULES := $(filter $(MODULES),$(notdir $(wildcard tests/*)))
TEST_UTIL_SRCS := $(wildcard tests/util/*.c)
define test_rules
$(OUTDIR)/tests/test_$(1): $$(patsubst %.c,$$(OBJ)/%.o,$$(wildcard tests/$(1)/*.c) \
        $$(TEST_UTIL_SRCS)) $$(call modlibs,$(1)) $$(BSSL_CRYPTO)
	@mkdir -p $$(@D)
	@echo "  LD      $$@"
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $$(call modlibs,$(1)) $$(LDLIBS) \
	    $$(CRITERION_LIBS)
endef
$(foreach m,$(TEST_MODULES),$(eval $(call test_rules,$(m))))
TEST_BINS := $(patsubst %,$(OUTDIR)/tests/test_%,$(TEST_MODULES))
# tests/p11shim: a PKCS#11 module that forwards to SoftHSM2 and injects faults into C_Sign, for
# tests/hsm (loaded with dlopen; not instrumented: it is a stand-in for a vendor's module).
P11SHIM := $(OUTDIR)/tests/libp11shim.so
$(P11SHIM): tests/p11shim/p11shim.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) -std=c17 -g -O1 -Wall -Wextra -Werror -fPIC -shared -D_GNU_SOURCE \
	    -isystem $(P11_INC) -o $@ $<

# Benchmarks: bench/bench_<what>.c, one program each, release flags.
BENCH_SRCS := $(wildcard bench/bench_*.c)
$(BIN)/bench_%: $(OBJ)/bench/bench_%.o $(ALL_MODLIBS) $(BSSL_CRYPTO)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(ALL_MODLIBS) $(LDLIBS)

# BoringSSL must exist before our code compiles (its headers), but rebuilding it never forces our
# objects to recompile: order-only.
$(OBJ)/%.o: %.c | $(BSSL_CRYPTO) pkgcheck
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The versions /metrics reports (certprov_build_info): git's description of this tree, and the
# Debian version of the BoringSSL source. Only these two objects take them.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
BSSL_SOURCE := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' $(BSSL_DIR)/src/debian/changelog 2>/dev/null)
$(OBJ)/service/status.o: CPPFLAGS += -DCERTPROV_VERSION='"$(VERSION)"'
$(OBJ)/signer/text.o: CPPFLAGS += -DCERTPROV_BORINGSSL_SOURCE='"$(BSSL_SOURCE)"'

# Third-party C (llhttp): not ours, so not held to our warning flags (-w), but built with the
# mode's sanitizers so that ASan sees every access.
$(OBJ)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) -std=c17 -g -O2 -w -fPIE -fstack-protector-strong \
	    $(filter -fsanitize% -fno-%,$(MODE_CFLAGS)) \
	    -isystem $(LLHTTP_INC) -MMD -MP -c -o $@ $<

# pkgcheck: the libraries found by pkg-config are installed (order-only, once per make): a plain
# build without them says what to do instead of failing on a missing header.
.PHONY: pkgcheck
pkgcheck:
	@pkg-config --exists $(PKGS) || { echo "make: missing packages ($(PKGS) via pkg-config):" \
	    "run 'make deps' as root first" >&2; exit 1; }

# ---- BoringSSL (fetched with apt-get source by `make deps`, built once, cached under $(BSSL_DIR)) ----
# Fetching may add a deb-src entry to the system's apt sources and run apt-get update, so only
# `make deps` (which make test, run, bench and fuzz call) does it, never a plain build.
$(BSSL_DIR)/src/debian/sources.mk:
	@echo "make: BoringSSL's source is missing in $(BSSL_DIR)/src: run 'make deps' as root first" >&2
	@exit 1

# The stamp is named by a hash of deps/boringssl.mk, so a change of its flags rebuilds BoringSSL,
# while a mere checkout (new mtime, same content) does not.
BSSL_STAMP := $(BSSL_DIR)/.built-$(shell cksum < deps/boringssl.mk | cut -d' ' -f1)
$(BSSL_CRYPTO) $(BSSL_SSL): $(BSSL_STAMP)
$(BSSL_STAMP): $(BSSL_DIR)/src/debian/sources.mk
	@echo "  BUILD   BoringSSL (static, hidden symbols, without OPENSSL_SMALL)"
	$(Q)$(MAKE) --no-print-directory -f deps/boringssl.mk SRC=$(BSSL_DIR)/src OUT=$(BSSL_DIR)
	$(Q)rm -f $(BSSL_DIR)/.built-* && touch $@

# Targets that start nested makes (test, bench, ...) build whole trees: run beside each other or
# beside a plain build under -j, two of them would write the same tree. When one of them is asked
# for, the top-level make runs its goals one after another; the nested makes still build in
# parallel (.NOTPARALLEL applies to this make only, not to the makes it starts).
NESTED_GOALS := test bench debug asan tsan run fuzz fuzz-long deb
ifeq ($(MAKELEVEL),0)
ifneq ($(filter $(NESTED_GOALS),$(MAKECMDGOALS)),)
.NOTPARALLEL:
endif
endif

.PHONY: all deps boringssl progs tests benches run test check-symbols debug asan tsan bench \
    fuzz fuzz-long format check-format clean distclean install deb unit integration

all: progs
progs: $(patsubst %,$(BIN)/%,$(PROGS))
tests: $(TEST_BINS) $(P11SHIM)
benches: $(patsubst bench/%.c,$(BIN)/%,$(BENCH_SRCS))
boringssl: $(BSSL_CRYPTO)

deps:
	$(Q)deps/install.sh
	$(Q)deps/fetch-boringssl.sh $(BSSL_DIR)

debug:
	$(Q)$(MAKE) --no-print-directory MODE=debug progs
asan:
	$(Q)$(MAKE) --no-print-directory MODE=asan progs tests
# Criterion cannot start under TSan on this platform ("Could not initialize inheritable arena"),
# so TSan checks the multi-threaded programs through the integration tests instead.
tsan:
	$(Q)$(MAKE) --no-print-directory MODE=tsan progs
	$(Q)$(MAKE) --no-print-directory MODE=tsan integration

# ---- tests ----
export ASAN_OPTIONS := detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS := halt_on_error=1

# unit: every Criterion binary of this MODE, one after the other; stops at the first failure.
unit: tests
	$(Q)for t in $(TEST_BINS); do echo "== $$t"; tests/run-unit.sh $$t --jobs $(NPROC) || exit 1; done

# integration: tests/integration/test_*.sh against this MODE's programs (the other .sh files
# there are helpers the tests source).
integration: progs $(P11SHIM)
	$(Q)for t in tests/integration/test_*.sh; do [ -f "$$t" ] || continue; echo "== $$t"; \
	    CERTPROV_BIN=$(abspath $(BIN)) bash $$t || exit 1; done

check-symbols: progs
	$(Q)tests/check-symbols.sh $(BIN)/*

test: deps
	$(Q)$(MAKE) --no-print-directory MODE=release progs check-symbols
	$(Q)$(MAKE) --no-print-directory MODE=asan unit integration check-symbols
	@echo "make test: all tests passed"

# ---- benchmarks (never part of make test) ----
# The standard matrix (9-17 minutes on 2 cores): the component benches, then certprov-bench
# against a private certprovd: the crypto ceiling (with the TLS handshake's server crypto), est,
# est-tls, soap, soap-tls, phone and renew-mtls closed loop at each concurrency plus one open-loop run
# at half the best rate, the scenarios that need parts not built yet (printed as skipped); the
# handshake costs (a new connection per GET /healthz: TLS 1.3 and 1.2, full and resumed, and
# plain HTTP); 10,000 idle keep-alive connections; and bench/cfssl.sh (wrk -c64 against est and
# against CFSSL's sign endpoint, alternating). The matrix runs each scenario against a certprovd
# of its own (--fresh): est, est-tls and soap, which the bars compare, each start from an empty
# store. Each invocation prints the bars whose
# scenarios it ran. Table on stdout, JSON Lines in $(BUILD)/bench/. Smoke runs of
# certprov-bench and cfssl.sh are part of make test (test_bench.sh).
BENCH_MATRIX ?= --scenario est,est-tls,soap,soap-tls,phone,renew-mtls,est-pkcs11,est-pool-down \
    --concurrency 1,16,64,256 --duration 10 --rate half --fresh
BENCH_HANDSHAKES ?= --scenario tls-full,tls-resumed,tls12-full,tls12-resumed,http-conn,ocsp \
    --concurrency 16 --duration 5
bench: deps
	$(Q)$(MAKE) --no-print-directory MODE=release progs benches
	$(Q)mkdir -p $(BUILD)/bench
	$(Q)stamp=$$(date -u +%Y%m%dT%H%M%SZ); \
	for b in $(patsubst bench/%.c,$(BIN)/%,$(BENCH_SRCS)); do \
	    $$b >$(BUILD)/bench/component.out || exit 1; \
	    tee -a $(BUILD)/bench/components-$$stamp.txt <$(BUILD)/bench/component.out; \
	done && \
	$(BIN)/certprov-bench --spawn --bin $(BIN) --cache-dir $(BUILD)/bench \
	    --json $(BUILD)/bench/matrix-$$stamp.json $(BENCH_MATRIX) && \
	$(BIN)/certprov-bench --spawn --bin $(BIN) --cache-dir $(BUILD)/bench \
	    --json $(BUILD)/bench/handshakes-$$stamp.json $(BENCH_HANDSHAKES) && \
	$(BIN)/certprov-bench --spawn --bin $(BIN) --cache-dir $(BUILD)/bench --ceiling-ms 0 \
	    --idle 10000 --scenario est --concurrency 16 --duration 3 \
	    --json $(BUILD)/bench/idle-$$stamp.json && \
	bench/cfssl.sh $(BIN) >$(BUILD)/bench/cfssl-$$stamp.txt && cat $(BUILD)/bench/cfssl-$$stamp.txt

# ---- run ----
run: deps
	$(Q)$(MAKE) --no-print-directory MODE=release progs
	$(Q)deploy/run.sh $(BIN)

# ---- fuzzing (clang + libFuzzer) ----
# make fuzz runs each harness FUZZ_S seconds (20: CI); make fuzz-long FUZZ_S=3600 runs each for an
# hour (never in CI). The corpus each run grows is kept in build/fuzz/asan/fuzz/corpus-NAME, and a
# crash leaves its input in build/fuzz/asan/fuzz/ (crash-*), named in the output.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_S ?= 20
fuzz: deps
	$(Q)$(MAKE) --no-print-directory CC=clang MODE=asan BUILD=build/fuzz \
	    EXTRA_CFLAGS=-fsanitize=fuzzer-no-link FUZZ_S=$(FUZZ_S) fuzz-bins
fuzz-long: FUZZ_S = 3600
fuzz-long: fuzz
fuzz-bins: $(patsubst tests/fuzz/%.c,$(OUTDIR)/fuzz/%,$(FUZZ_SRCS))
	$(Q)for f in $^; do n=$$(basename $$f); n=$${n#fuzz_}; mkdir -p $(OUTDIR)/fuzz/corpus-$$n; \
	    echo "== $$f ($(FUZZ_S) s)"; $$f -max_total_time=$(FUZZ_S) -rss_limit_mb=2048 \
	    -artifact_prefix=$(OUTDIR)/fuzz/ $(OUTDIR)/fuzz/corpus-$$n tests/fuzz/corpus/$$n \
	    || exit 1; done
$(OUTDIR)/fuzz/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(ALL_MODLIBS) $(BSSL_CRYPTO)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(ALL_MODLIBS) $(LDLIBS)

# ---- housekeeping ----
FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	$(Q)clang-format -i $(FORMAT_SRCS)
check-format:
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRCS)

# ---- install, deb ----
# make install [PREFIX=/usr/local] [DESTDIR=...]: certprovd into sbin (a daemon that only the
# service manager starts), the other programs into bin, the unit (its paths rewritten for
# PREFIX; under /lib/systemd/system when PREFIX=/usr, as Debian 12's packages have it), the
# annotated /etc/certprov/certprov.ini (deploy/install-ini.sh: the store in /var/lib/certprov;
# an existing one is kept), the documentation and a manual page per program (deploy/man.sh: its
# --help). Nothing is started or enabled.
SYSCONFDIR ?= /etc
STATEDIR := /var/lib/certprov
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DOCDIR ?= $(PREFIX)/share/doc/certprov
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
INI_DEST = $(DESTDIR)$(SYSCONFDIR)/certprov/certprov.ini
install: progs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/certprov $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BIN)/certprovd $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(patsubst %,$(BIN)/%,$(filter-out certprovd,$(PROGS))) $(DESTDIR)$(BINDIR)/
	sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/certprov/|$(SYSCONFDIR)/certprov/|g' \
	    -e 's|/usr/share/doc/certprov/|$(DOCDIR)/|g' deploy/certprovd.service \
	    >$(BUILD)/certprovd.service.tmp
	install -m 0644 $(BUILD)/certprovd.service.tmp $(DESTDIR)$(UNITDIR)/certprovd.service
	rm -f $(BUILD)/certprovd.service.tmp
	deploy/install-ini.sh deploy/certprov.ini $(STATEDIR) >$(BUILD)/certprov.ini.tmp
	if [ -e $(INI_DEST) ]; then echo "make install: $(INI_DEST) exists: kept (the new one:" \
	    "$(INI_DEST).new)"; install -m 0644 $(BUILD)/certprov.ini.tmp $(INI_DEST).new; \
	else install -m 0644 $(BUILD)/certprov.ini.tmp $(INI_DEST); fi
	rm -f $(BUILD)/certprov.ini.tmp
	install -m 0644 README.md ARCHITECTURE.md $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	deploy/man.sh $(BIN)/certprovd 8 "the certprov certificate-provisioning appliance" \
	    >$(DESTDIR)$(MANDIR)/man8/certprovd.8
	deploy/man.sh $(BIN)/certprovctl 1 "administration of a certprov appliance (CA, users," \
	    "certificates, revocation)" >$(DESTDIR)$(MANDIR)/man1/certprovctl.1
	deploy/man.sh $(BIN)/certprov-probe 1 "synthetic phone sign-in against a certprov appliance" \
	    >$(DESTDIR)$(MANDIR)/man1/certprov-probe.1
	deploy/man.sh $(BIN)/certprov-bench 1 "load generator for a certprov appliance" \
	    >$(DESTDIR)$(MANDIR)/man1/certprov-bench.1
	install -m 0644 deploy/certprov.ini deploy/haproxy.cfg $(DESTDIR)$(DOCDIR)/examples/
	install -m 0755 deploy/certprov-soap.sh $(DESTDIR)$(DOCDIR)/examples/

# make deb: the Debian package (debian/: debhelper, BoringSSL linked statically from the build
# under $(BSSL_DIR), never fetched again) into $(BUILD)/deb/, without touching the parent
# directory: debian/rules is run directly (no .changes, no .buildinfo; Rules-Requires-Root: no,
# so no fakeroot). Build dependencies are checked first (make deps installs them); the packages
# of an earlier make deb are removed.
deb:
	$(Q)dpkg-checkbuilddeps
	$(Q)mkdir -p $(BUILD)/deb && rm -f $(BUILD)/deb/*.deb
	$(Q)debian/rules clean
	$(Q)debian/rules build
	$(Q)debian/rules binary
	$(Q)ls -1 $(BUILD)/deb/*.deb

clean:
	rm -rf $(BUILD)/bin $(BUILD)/obj $(BUILD)/tests $(BUILD)/debug $(BUILD)/asan $(BUILD)/tsan \
	    $(BUILD)/fuzz $(BUILD)/bench $(BUILD)/deb
distclean:
	rm -rf $(BUILD)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
