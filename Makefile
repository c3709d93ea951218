# postern — see README.md.
GO       ?= go
PKGVERSION ?= $(shell sh packaging/version.sh)
LDFLAGS  := -s -w -buildid= -X main.version=$(PKGVERSION)
NFPM     := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test unit lint fuzz bench deps clean packages systemtest

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/postern ./cmd/postern

## run: postern run on the example configuration (static directory, loopback only)
run:
	$(GO) run ./cmd/postern -c examples/postern.yaml run

## deps: install the Debian packages of the test bench (root; no-op when present)
deps:
	sh scripts/install-deps.sh

## test: lint, unit, fuzz-corpus and integration tests against real Samba AD, Postfix,
## Redis and Cyrus started on 127.0.0.1 (installs them first on Debian 12 as root)
test: deps lint
	$(GO) test -count=1 -timeout 20m ./...

unit:
	$(GO) test -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## systemtest: the whole stack (Postfix from examples/, Samba, Redis, Cyrus, the four
## daemons) under SYSTEMTEST_MESSAGES messages while faults are injected; `make test`
## runs a short form (300 messages)
SYSTEMTEST_MESSAGES ?= 10000
systemtest: deps
	POSTERN_SYSTEMTEST_MESSAGES=$(SYSTEMTEST_MESSAGES) $(GO) test -count=1 -v -timeout 90m -run '^TestSystem$$' ./systemtest

## bench: every benchmark once, each daemon beside its peer in the same run; writes
## BENCHMARKS.md (scripts/benchreport) from the raw output kept in $(BENCH_OUT)
BENCH_OUT ?= dist/bench/bench.txt
bench: deps
	@mkdir -p $(dir $(BENCH_OUT))
	$(GO) run ./scripts/benchreport -machine > $(BENCH_OUT)
	$(call benchrun,./tcptable,BenchmarkPostmapLookups,1x,-timeout 30m)
	$(call benchrun,./policyd,BenchmarkPolicyService,2s)
	$(call benchrun,./milter,BenchmarkThroughput,1x)
	$(call benchrun,./milter,BenchmarkMilterRSS,1x)
	$(call benchrun,./lmtp-shadow,BenchmarkArchiveVsDirect,1x)
	$(call benchrun,./tcptable,BenchmarkAnswer,1s)
	$(call benchrun,./policyd,BenchmarkDecide,1s)
	$(call benchrun,./milter/stamp,BenchmarkApply,1s)
	$(call benchrun,./systemtest,BenchmarkWholeStack,1x,-timeout 30m)
	$(GO) run ./scripts/benchreport -o BENCHMARKS.md $(BENCH_OUT)

# benchrun PACKAGE,BENCHMARK,BENCHTIME[,FLAGS] runs one benchmark, its output shown and
# appended to $(BENCH_OUT) behind a "command:" line (benchmark-format configuration) that
# the report quotes, and fails when the benchmark fails. (-timeout 30m for the one that
# needs Samba: it waits for the machine-wide Samba lock while another test holds it.)
benchrun = @args="$(strip -run XXX -bench '^$(2)$$' -benchtime $(3) $(4) $(1))"; \
	echo "command: go test $$args" | tee -a $(BENCH_OUT); \
	{ eval $(GO) test $$args 2>&1; echo $$? > $(BENCH_OUT).rc; } | tee -a $(BENCH_OUT); \
	exit "$$(cat $(BENCH_OUT).rc)"

## packages: dist/postern_<version>_amd64.deb and dist/postern-<version>.x86_64.rpm
packages: build
	gzip -9n < packaging/postern.8 > packaging/postern.8.gz
	gzip -9n < packaging/changelog.Debian > packaging/changelog.Debian.gz
	rm -rf packaging/stage && mkdir -p packaging/stage && cp -r examples packaging/stage/
	find packaging/stage -name '*.go' -delete
	mkdir -p dist && rm -f dist/postern[-_]*
	cd packaging && VERSION=$(PKGVERSION) $(GO) run $(NFPM) pkg --packager deb --target ../dist/
	cd packaging && VERSION=$(PKGVERSION) $(GO) run $(NFPM) pkg --packager rpm --target ../dist/

clean:
	rm -rf bin dist packaging/*.gz packaging/stage
