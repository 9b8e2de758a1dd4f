# tests/fuzz/fuzz.mk - libFuzzer targets (clang), included by the top Makefile.
#   make fuzz-smoke          every target for FUZZ_TIME seconds (make test runs this)
#   make fuzz FUZZ_TIME=600  the same, longer
# Targets link the parsing and verification sources directly (instrumented), not libkasir.
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 20
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all $(shell pkg-config --cflags jansson openssl)
FUZZ_LIBS  := $(shell pkg-config --libs jansson openssl) -lm
FUZZ_LIB   := lib/err.c lib/money.c lib/crypto.c lib/webhook.c lib/jwt.c lib/buf.c
FUZZ_BINS  := build/fuzz/fuzz_request build/fuzz/fuzz_webhook build/fuzz/fuzz_serde

build/fuzz/fuzz_request: tests/fuzz/fuzz_request.c producers/ingress/validate.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(FUZZ_LIBS)

build/fuzz/fuzz_webhook: tests/fuzz/fuzz_webhook.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(FUZZ_LIBS)

build/fuzz/fuzz_serde: tests/fuzz/fuzz_serde.c lib/serde.c lib/crypto.c lib/err.c lib/buf.c build/gen/ks_catalog.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Ibuild/gen $(shell pkg-config --cflags avro-c) -o $@ $^ \
	    $(FUZZ_LIBS) $(shell pkg-config --libs avro-c)

.PHONY: fuzz-smoke fuzz
fuzz-smoke fuzz: $(FUZZ_BINS)
	@for t in $(FUZZ_BINS); do \
	    n=$$(basename $$t); c=build/fuzz/corpus-$$n; mkdir -p $$c; \
	    echo "fuzz: $$n for $(FUZZ_TIME) s"; \
	    $$t -max_total_time=$(FUZZ_TIME) -max_len=8192 -print_final_stats=0 \
	        $$c tests/fuzz/seeds/$${n#fuzz_} > build/fuzz/$$n.log 2>&1 || \
	        { tail -40 build/fuzz/$$n.log; exit 1; }; \
	    grep -E "^#[0-9]+.*DONE" build/fuzz/$$n.log | tail -1; \
	done
