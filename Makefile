# telegraf-tkgi: build, test, lint.
#
#   make demo    local cluster + server + agent at each level, then stop
#   make build   static binary in bin/
#   make test    every test (what CI runs)
#   make lint    gofmt + go vet + data dictionary drift

GO       ?= go
BIN      := bin/telegraf-tkgi
PKG      := github.com/telegraf-tkgi/telegraf-tkgi
# Tool binaries (kube-apiserver, etcd, upstream telegraf) live in the user's
# cache directory, beside Go's own build cache, so every checkout of the
# project (and CI's fresh clone in another folder) reuses them. Modules come
# from GOMODCACHE (the Go module proxy when empty).
CACHE    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/telegraf-tkgi

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
UPSTREAM := $(shell $(GO) list -m -f '{{.Version}}' github.com/influxdata/telegraf)
LDFLAGS  := -s -w \
	-X $(PKG)/internal/buildinfo.Version=$(VERSION) \
	-X $(PKG)/internal/buildinfo.Commit=$(COMMIT) \
	-X github.com/influxdata/telegraf/internal.Version=$(UPSTREAM:v%=%)

export CGO_ENABLED = 0
export GOFLAGS     = -buildvcs=false

.PHONY: all build demo test test-deps test-kubeseed test-nats-debian lint clean image image-container dropin-compare fuzz \
	bench-binary bench-kube-telemetry bench-telemetry-output bench-listener bench-listener-hostile \
	kube-up kube-down kube-smoke dictionary

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/telegraf-tkgi

# The README's first command: a seeded local kube-apiserver (or the cluster
# $KUBECONFIG names), the server role and the agent role at each
# participation level; prints what was sent and where it landed.
demo: build
	CACHE=$(CACHE) scripts/demo.sh $(BIN)

# Every test: Go unit and integration tests against the built binary (each
# package that needs a kube-apiserver starts its own from scripts/), the
# seeder's tests (own module), the JetStream tests again on Debian's
# nats-server, the hostile clients against the server role at a small size
# (the embedded store, then a JetStream replica), then the drop-in
# comparison with upstream.
test: test-deps build
	TELEGRAF_TKGI_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 60m ./...
	$(MAKE) --no-print-directory test-kubeseed
	$(MAKE) --no-print-directory test-nats-debian
	scripts/hostile-listener.sh $(BIN) -size small
	scripts/hostile-listener.sh $(BIN) -size small -jetstream
	CACHE=$(CACHE) scripts/dropin-compare.sh $(BIN)

test-kubeseed:
	cd scripts/kube-apiserver && GOWORK=off $(GO) test -count=1 ./cmd/kubeseed

# The JetStream tests (the engine's packages whole, the shipped NATS config,
# the e2e runs of replicas, lake, relay and units) on Debian bookworm's
# nats-server 2.9.10, the oldest version tested; ./... above ran
# them on the version in go.mod.
NATS_DEBIAN ?= /usr/sbin/nats-server
test-nats-debian:
	@$(NATS_DEBIAN) --version
	NATS_SERVER=$(NATS_DEBIAN) $(GO) test -count=1 -timeout 20m ./internal/testnats \
		./plugins/common/telemetrystream ./plugins/inputs/vmware_telemetry_listener \
		./plugins/inputs/vmware_telemetry_stream
	NATS_SERVER=$(NATS_DEBIAN) TELEGRAF_TKGI_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m \
		-run 'NATSServerConf|^TestJetStream|^TestRelay|Replicas' ./configs ./e2e

# System packages the tests use (installed only when missing), and
# nats-server built into the user cache for the JetStream tests.
test-deps:
	scripts/test-deps.sh
	scripts/nats-server.sh >/dev/null

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./plugins/common/telemetry/cmd/dictgen -check -copy configs/data-dictionary.toml -markdown docs/data-dictionary.md

# Regenerate the embedded data dictionary copy and docs/data-dictionary.md
# from configs/data-dictionary.toml.
dictionary:
	$(GO) generate ./plugins/common/telemetry

# Short fuzzing of the listener's decoder (FUZZTIME=10m for longer).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./plugins/inputs/vmware_telemetry_listener/

# A local kube-apiserver + etcd for manual work: `make kube-up`, then
# `source .cache/kube-run/env` (KUBECONFIG_ADMIN, KUBE_API_URL ...).
KUBE_STATE ?= $(CURDIR)/.cache/kube-run
kube-up:
	scripts/kube-apiserver-up.sh $(KUBE_STATE)
kube-down:
	scripts/kube-apiserver-down.sh --purge $(KUBE_STATE)
kube-smoke:
	scripts/kube-apiserver-smoke.sh

# Binary size, time to first metric and idle RSS against upstream telegraf.
bench-binary: build
	CACHE=$(CACHE) scripts/bench-binary.sh $(BIN)

# One collection at 500 nodes/15k pods and 5k nodes/150k pods: kube_telemetry
# against stock kube_inventory and a raw paginated list (SIZE=quick|full|both).
bench-kube-telemetry: build
	CACHE=$(CACHE) scripts/bench-kube-telemetry.sh $(or $(SIZE),both)

# vmware_telemetry against stock outputs.http on the same 100k metrics.
bench-telemetry-output:
	$(GO) test -run '^$$' -bench VsOutputsHTTP -benchtime 4x ./plugins/outputs/vmware_telemetry/

# The listener against stock http_listener_v2, agents posting concurrently.
bench-listener: build
	scripts/bench-listener.sh $(BIN)

# The server role (configs/server.conf as shipped, then a JetStream replica
# with configs/server-jetstream.conf) under hostile clients while agents
# post: peak RSS against the listener's memory bound.
bench-listener-hostile: build
	scripts/hostile-listener.sh $(BIN) -size full
	scripts/hostile-listener.sh $(BIN) -size full -jetstream

dropin-compare: build
	CACHE=$(CACHE) scripts/dropin-compare.sh $(BIN)

# Container image with no daemon and no registry: linux/amd64 and linux/arm64
# in one OCI index, with SBOMs, reproducibly (scripts/image.sh). Writes
# $(IMAGE_DIR)/oci (OCI layout) and $(IMAGE_DIR)/telegraf-tkgi.oci.tar.
IMAGE     ?= telegraf-tkgi:$(VERSION)
IMAGE_DIR ?= dist/image
image:
	VERSION=$(VERSION) COMMIT=$(COMMIT) LDFLAGS='$(LDFLAGS)' IMAGE=$(IMAGE) CACHE=$(CACHE) scripts/image.sh $(IMAGE_DIR)

# The same image built by Docker or podman (CONTAINER=podman) from
# Containerfile, where one is installed and its base images can be pulled.
CONTAINER ?= docker
image-container:
	$(CONTAINER) build -f Containerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

# Keeps $(CACHE) (tool binaries) and Go's build cache: remove both for a cold start.
clean:
	rm -rf bin/ dist/
