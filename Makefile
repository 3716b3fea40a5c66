# Guildhall - one non-recursive Makefile.
#   make run    install what is missing, build, start the local stack on 127.0.0.1:8080
#   make test   install, build, start the test stack, run every test, stop, print "N passed, N failed"
# Variants build into their own folders: build/ (default), build/asan (make check), build/cov (make coverage).

SHELL      := /bin/bash
BUILD      ?= build
CC         ?= cc
OPT        ?= -O2
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=
GH_VERSION ?= 0.1.0

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
           -Werror=implicit-function-declaration
CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -g $(OPT) $(WARN) -Ilib -I. -isystem /usr/include/postgresql \
           -DGH_VERSION='"$(GH_VERSION)"' -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lsodium -lcurl -lpq -lhiredis -ljson-c -lssl -lcrypto -lz -lpcre2-8 -lm
LDFLAGS := $(EXTRA_LDFLAGS)

LIB_SRC   := $(sort $(wildcard lib/*/*.c) $(wildcard features/*.c) $(wildcard features/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_A     := $(BUILD)/libguildhall.a

# Every main(): fcgi/<x>.c -> guildhall-<x>, cron/<x>.c -> guildhall-<x>,
# scripts/bin/<name>.c -> <name>, gateway-lite/main.c -> guildhall-gateway.
FCGI_SRC  := $(wildcard fcgi/*.c)
CRON_SRC  := $(wildcard cron/*.c)
TOOL_SRC  := $(wildcard scripts/bin/*.c)
GW_SRC    := $(wildcard gateway-lite/*.c)
BINS      := $(FCGI_SRC:fcgi/%.c=$(BUILD)/bin/guildhall-%) \
             $(CRON_SRC:cron/%.c=$(BUILD)/bin/guildhall-%) \
             $(TOOL_SRC:scripts/bin/%.c=$(BUILD)/bin/%) \
             $(if $(GW_SRC),$(BUILD)/bin/guildhall-gateway)

UNIT_SRC  := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:test/unit/%.c=$(BUILD)/test/%)
UNIT_SUPPORT := $(wildcard test/unit/support/*.c)
UNIT_SUPPORT_OBJ := $(UNIT_SUPPORT:%.c=$(BUILD)/obj/%.o)

# Objects are intermediate files of pattern rules: keep them so a second build is incremental.
.SECONDARY:

.PHONY: all deps run stop test test-only unit integration check coverage lint bench schema-docs \
        clean format register-commands
.DEFAULT_GOAL := all

all: $(LIB_A) $(BINS) $(UNIT_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/guildhall-%: $(BUILD)/obj/fcgi/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(BUILD)/bin/guildhall-%: $(BUILD)/obj/cron/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(BUILD)/bin/guildhall-gateway: $(GW_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB_A) $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/scripts/bin/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# A unit test may list symbols to wrap (one per line) in test/unit/<name>.wrap.
$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(UNIT_SUPPORT_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_SUPPORT_OBJ) \
	  $(if $(wildcard test/unit/$*.wrap),$(addprefix -Wl$(comma)--wrap=,$(shell cat test/unit/$*.wrap))) \
	  $(LIB_A) $(LDLIBS) -lcmocka
comma := ,

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
deps:
	@scripts/deps.sh

run: deps all
	@scripts/stack.sh start dev

stop:
	@scripts/stack.sh stop dev

# make test: the one command CI runs. Exit status is non-zero if any test failed or did not run.
test: deps all
	@scripts/test.sh

# Without the deps step (for a second run on a machine already set up).
test-only: all
	@scripts/test.sh

check: deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	@GH_BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 scripts/test.sh

coverage: deps
	@rm -rf build/cov
	@$(MAKE) --no-print-directory BUILD=build/cov OPT=-O0 EXTRA_CFLAGS="--coverage -DGH_COVERAGE" EXTRA_LDFLAGS="--coverage" all
	@GH_BUILD=build/cov scripts/test.sh || true
	@scripts/coverage.sh

lint: deps
	@scripts/lint.sh

bench: deps all
	@scripts/bench.sh

schema-docs: all
	@scripts/schema-docs.sh

register-commands: all
	@$(BUILD)/bin/guildhall-register-commands $(if $(GUILD),--guild $(GUILD))

format:
	@clang-format -i $(LIB_SRC) $(FCGI_SRC) $(CRON_SRC) $(TOOL_SRC) $(GW_SRC) $(UNIT_SRC) $(wildcard lib/*/*.h features/*.h features/*/*.h)

clean:
	rm -rf build
