# senderkit: `make demo` shows it working, `make test` proves it.

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/senderkit

# Tests that move a lot of data: `make test` runs them once, without the
# race detector (which makes them ten times slower and adds nothing there).
LONG_TESTS := ^(TestImportExport1M|TestLargeMessage)$$

# Fuzz targets (every parser of outside input), as package:Target, and
# how long `make fuzz` runs each. Interesting inputs are kept in each
# package's testdata/fuzz/.
FUZZ_TARGETS := \
	./internal/addr:FuzzNormalize \
	./internal/token:FuzzDecode \
	./internal/suppcsv:FuzzRead \
	./conf:FuzzParse \
	./bouncepipe:FuzzParse \
	./bouncepipe:FuzzDSN \
	./bouncepipe:FuzzARF \
	./bouncepipe:FuzzNonStandard \
	./bouncepipe:FuzzSplitMbox \
	./policyd:FuzzReadRequest \
	./internal/postfixlog:FuzzParse \
	./milter:FuzzParseFrom \
	./milter/dkim:FuzzKeyTable \
	./milter/dkim:FuzzSigningTable \
	./internal/doctor:FuzzParseKeyRecord \
	./unsubscribe:FuzzHandler
FUZZTIME ?= 60s

.PHONY: all build test lint fmt bench corpus demo fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/senderkit

# The whole suite, as CI runs it. End-to-end tests start a private Postfix
# (installed with apt-get when missing; they need root).
test: lint
	mkdir -p out/test-artifacts
	$(GO) test -race -short -count=1 -artifacts -outputdir $(CURDIR)/out/test-artifacts ./...
	$(GO) test -count=1 -run '$(LONG_TESTS)' ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) test -count=1 -run '^TestExample$$' ./conf >/dev/null || \
		{ echo "conf/example.toml is stale: go test ./conf -run TestExample -update"; exit 1; }

fmt:
	gofmt -w .
	$(GO) test -count=1 -run '^TestExample$$' ./conf -update

# Speed, reported as figures and as ratios to baselines measured in the
# same run (never pass/fail). Needs root for the runs through Postfix.
bench:
	@echo "== tokens: encode and verify"
	$(GO) test -run '^$$' -bench 'Encode|Decode' -benchmem ./internal/token
	@echo "== suppression lookup latency, 1M and 10M rows"
	$(GO) test -run '^$$' -bench 'Lookup' -benchtime 200000x ./internal/store/sqlitestore
	@echo "== the store: suppression lookups and bounce intake a second, SQLite beside PostgreSQL"
	$(GO) test -run '^$$' -bench 'Backends' -benchtime 1x -timeout 30m ./internal/store/pgstore
	@echo "== milter: Postfix alone, + OpenDKIM, + a do-nothing go-milter, + senderkit"
	$(GO) test -run '^$$' -bench 'Postfix' -benchtime 1x -timeout 60m ./milter
	$(GO) test -run '^$$' -bench '^BenchmarkSendRow' ./milter
	@echo "== policy server: raw requests against 10M suppressions, and through Postfix, against a do-nothing server"
	$(GO) test -run '^$$' -bench 'PolicyServer|PolicyPostfix' -benchtime 1x -timeout 60m ./policyd
	@echo "== bounce parsing over the corpus, against Sisimai"
	sh bouncepipe/testdata/bench-vs-sisimai.sh
	@echo "== one returned message as pipe(8) runs the bounce pipe, against starting the process and Sisimai"
	$(GO) test -run '^$$' -bench 'BouncepipeRun' -benchtime 1x ./cmd/senderkit
	@echo "== unsubscribe endpoint"
	$(GO) test -run '^$$' -bench 'OneClick|ConfirmPage' -benchtime 5000x ./unsubscribe

# Agreement of the bounce classifier with the labelled corpus in
# ../shared/corpus, per reason and overall.
corpus:
	$(GO) test -count=1 -run '^TestCorpus$$' -v ./bouncepipe

# The newcomer's first command: a private Postfix with senderkit, a mail
# through it, and the suppression list. Needs root (Postfix).
demo: build
	$(GO) run ./internal/demo -bin $(BIN)

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

clean:
	rm -rf bin
