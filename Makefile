# senderkit: `make demo` shows it working, `make test` proves it.

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/senderkit

# Tests that move a lot of data: `make test` runs them once, without the
# race detector (which makes them ten times slower and adds nothing there).
LONG_TESTS := ^TestImportExport1M$$

# Fuzz targets, as package:Target, and how long `make fuzz` runs each.
FUZZ_TARGETS := \
	./internal/addr:FuzzNormalize \
	./internal/token:FuzzDecode \
	./internal/suppcsv:FuzzRead \
	./conf:FuzzParse
FUZZTIME ?= 60s

.PHONY: all build test lint fmt bench demo fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/senderkit

# The whole suite, as CI runs it. End-to-end tests start a private Postfix
# (installed with apt-get when missing; they need root).
test: lint
	$(GO) test -race -short -count=1 ./...
	$(GO) test -count=1 -run '$(LONG_TESTS)' ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) test -count=1 -run '^TestExample$$' ./conf >/dev/null || \
		{ echo "conf/example.toml is stale: go test ./conf -run TestExample -update"; exit 1; }

fmt:
	gofmt -w .
	$(GO) test -count=1 -run '^TestExample$$' ./conf -update

# Speed, reported as figures (never pass/fail): token encode and verify,
# suppression lookup latency with 1M and 10M rows.
bench:
	$(GO) test -run '^$$' -bench 'Encode|Decode' -benchmem ./internal/token
	$(GO) test -run '^$$' -bench 'Lookup' -benchtime 200000x ./internal/store/sqlitestore

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
