# Kasir - one Makefile. `make` builds, `make test` tests, `make demo` runs the main job.
# Programs are found, not listed: every <root>/<name>/main.c under producers/, consumers/,
# dlq-tools/ and deploy/ builds build/bin/kasir-<name> from all .c files of its folder.

CC      ?= gcc
PKGS    := rdkafka libpq avro-c libcurl openssl jansson libmicrohttpd
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -I. -Ibuild/gen -MMD -MP \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
PYTHON  ?= python3
SYSPY   := /usr/bin/python3
export KASIR_TOP := $(CURDIR)

LIB_SRC   := $(wildcard lib/*.c) build/gen/ks_catalog.c
LIB_OBJ   := $(patsubst %.c,build/obj/%.o,$(LIB_SRC))
ASAN_OBJ  := $(patsubst %.c,build/asan/%.o,$(LIB_SRC))
PROG_DIRS := $(patsubst %/main.c,%,$(wildcard producers/*/main.c consumers/*/main.c \
                dlq-tools/*/main.c deploy/*/main.c tests/tools/*/main.c))
PROGS     := $(foreach d,$(PROG_DIRS),build/bin/kasir-$(notdir $(d)))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,build/tests/%,$(UNIT_SRC))
UNIT_ASAN := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))
SCHEMAS   := $(sort $(wildcard schemas/*.avsc))

.PHONY: all deps up down status test unit unit-asan integration bench demo fuzz-smoke clean \
        docs check-schemas
.DEFAULT_GOAL := all

all: build/lib/libkasir.a $(PROGS) $(UNIT_BIN)

# --- the library -------------------------------------------------------------------------
build/gen/ks_catalog.c: schemas/gen_catalog.py $(SCHEMAS)
	@mkdir -p $(@D)
	$(SYSPY) schemas/gen_catalog.py $(SCHEMAS) > $@.tmp && mv $@.tmp $@

build/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -c -o $@ $<

build/lib/libkasir.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

build/lib/libkasir-asan.a: $(ASAN_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# --- programs ----------------------------------------------------------------------------
define PROG_RULE
build/bin/kasir-$(notdir $(1)): $(patsubst %.c,build/obj/%.o,$(wildcard $(1)/*.c)) build/lib/libkasir.a
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(PROG_DIRS),$(eval $(call PROG_RULE,$(d))))

# openapi.c embeds openapi.json with .incbin, which -MMD does not see
build/obj/producers/ingress/openapi.o: producers/ingress/openapi.json

# --- benchmark programs (tests/bench/*.c); run by make bench, never by make test -----------
build/bench/%: tests/bench/%.c build/lib/libkasir.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/lib/libkasir.a $(LDLIBS)

# --- unit tests: plain and under ASan/UBSan ----------------------------------------------
build/tests/%: tests/unit/%.c build/lib/libkasir.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/lib/libkasir.a $(LDLIBS)

build/asan/tests/%: tests/unit/%.c build/lib/libkasir-asan.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $< build/lib/libkasir-asan.a $(LDLIBS)

# test_serde compares our Parsing Canonical Forms with python3-avro's for every schema
build/gen/pcf_vectors.tsv: schemas/canonical_forms.py $(SCHEMAS)
	@mkdir -p $(@D)
	$(SYSPY) schemas/canonical_forms.py > $@.tmp && mv $@.tmp $@

unit: $(UNIT_BIN) build/gen/pcf_vectors.tsv
	@KS_PCF_VECTORS=build/gen/pcf_vectors.tsv bash tests/run-unit.sh $(UNIT_BIN)

unit-asan: $(UNIT_ASAN) build/gen/pcf_vectors.tsv
	@KS_PCF_VECTORS=build/gen/pcf_vectors.tsv ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 bash tests/run-unit.sh $(UNIT_ASAN)

# --- the local stack ---------------------------------------------------------------------
deps:
	@bash deploy/deps.sh

up: deps all
	@bash deploy/local/stack.sh up

down:
	@[ ! -f deploy/local/services.sh ] || bash deploy/local/services.sh stop
	@bash deploy/local/stack.sh down

status:
	@bash deploy/local/stack.sh status

check-schemas:
	@$(SYSPY) schemas/check_compat.py

integration: up
	@bash tests/run-integration.sh

test: deps
	@$(MAKE) --no-print-directory all build/lib/libkasir-asan.a
	@$(MAKE) --no-print-directory unit unit-asan check-schemas
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory integration

BENCH_BIN := $(patsubst tests/bench/%.c,build/bench/%,$(wildcard tests/bench/*.c))
bench: up $(BENCH_BIN)
	@bash tests/bench/run.sh

demo: up
	@bash deploy/local/demo.sh

# every daemon documents its own settings table (config-doc); configdoc writes the common
# and runtime tables
DOC_DAEMONS := kasir-ingress kasir-demo kasir-risk kasir-dlq kasir-psp-sandbox kasir-executor kasir-webhooks
docs: build/bin/kasir-configdoc $(addprefix build/bin/,$(DOC_DAEMONS))
	build/bin/kasir-configdoc > docs/CONFIG.md
	for d in $(DOC_DAEMONS); do build/bin/$$d config-doc >> docs/CONFIG.md || exit 1; done

clean:
	rm -rf build

ifneq ($(wildcard tests/fuzz/fuzz.mk),)
include tests/fuzz/fuzz.mk
else
fuzz-smoke:
	@echo "fuzz: no targets"
endif
-include $(shell find build -name '*.d' 2>/dev/null)
