# telegraf-tkgi: build, test, lint.
#
#   make build   static binary in bin/
#   make test    every test (what CI runs)
#   make lint    gofmt + go vet

GO       ?= go
BIN      := bin/telegraf-tkgi
PKG      := github.com/telegraf-tkgi/telegraf-tkgi
# Tool binaries (kube-apiserver, etcd, upstream telegraf) are cached here;
# git ignores it. Go's own module and build caches stay where `go env` says.
CACHE    ?= $(CURDIR)/.cache

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
UPSTREAM := $(shell $(GO) list -m -f '{{.Version}}' github.com/influxdata/telegraf)
LDFLAGS  := -s -w \
	-X $(PKG)/internal/buildinfo.Version=$(VERSION) \
	-X $(PKG)/internal/buildinfo.Commit=$(COMMIT) \
	-X github.com/influxdata/telegraf/internal.Version=$(UPSTREAM:v%=%)

export CGO_ENABLED = 0
export GOFLAGS     = -buildvcs=false

.PHONY: all build test test-deps lint clean image dropin-compare bench-binary

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/telegraf-tkgi

# Every test: Go unit and integration tests against the built binary, then
# the drop-in comparison with upstream telegraf.
test: test-deps build
	TELEGRAF_TKGI_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 60m ./...
	CACHE=$(CACHE) scripts/dropin-compare.sh $(BIN)

# System packages the tests use (installed only when missing).
test-deps:
	scripts/test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Binary size, time to first metric and idle RSS against upstream telegraf.
bench-binary: build
	CACHE=$(CACHE) scripts/bench-binary.sh $(BIN)

dropin-compare: build
	CACHE=$(CACHE) scripts/dropin-compare.sh $(BIN)

# Container image, for machines with Docker (or podman: CONTAINER=podman).
CONTAINER ?= docker
IMAGE     ?= telegraf-tkgi:$(VERSION)
image:
	$(CONTAINER) build -f Containerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

clean:
	rm -rf bin/
