# postern — see README.md.
GO       ?= go
PKGVERSION ?= $(shell sh packaging/version.sh)
LDFLAGS  := -s -w -buildid= -X main.version=$(PKGVERSION)
NFPM     := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test unit lint fuzz bench deps clean packages

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

bench: deps
	$(GO) test -run XXX -bench . -benchtime 2s ./...

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
