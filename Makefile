# nodescraper: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
CACHE := $(CURDIR)/.cache
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(CACHE)/bin/staticcheck-$(STATICCHECK_VERSION)
HELM_VERSION := v3.22.0
HELM := $(CACHE)/bin/helm-$(HELM_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build image demo demo-local test lint vet staticcheck static-build controlplane helm unit e2e-v3 bench-once fidelity benchmarks-check clean

all: build

## build: the agent and the demo tools into bin/
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## image: the agent's container image as a tarball, bin/nodescraper-image.tar,
## built without Docker (internal/image); tagged as the chart's default image
## (repository and appVersion of charts/nodescraper). Load it with
## `docker load -i` or `ctr -n k8s.io images import`.
IMAGE_REPO ?= ghcr.io/nodescraper/nodescraper
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/nodescraper/Chart.yaml)
image:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nodescraper-image-bin ./cmd/nodescraper
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(GO) run ./cmd/mkimage -binary bin/nodescraper-image-bin \
		-tag $(IMAGE_REPO):$(IMAGE_TAG) -version $(IMAGE_TAG) -revision $$(git rev-parse HEAD 2>/dev/null) -out bin/nodescraper-image.tar

## demo: the whole product on this machine: a local control plane (etcd +
## kube-apiserver), two nodes with ServiceMonitor/PodMonitor workloads, the
## stand-in Datadog intake, nodescraper as node-a's agent. No cluster or Datadog account needed.
demo: build controlplane
	@bin/kubedemo -bin bin

## demo-local: the same data path without Kubernetes (targets from a file_sd file)
demo-local: build
	@scripts/demo.sh

## test: everything CI checks
test: vet staticcheck static-build controlplane helm unit e2e-v3 bench-once fidelity benchmarks-check

## controlplane: etcd (Debian) and kube-apiserver/kube-controller-manager (built once, cached in .cache/kube)
controlplane:
	scripts/controlplane.sh ensure

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

$(STATICCHECK):
	@mkdir -p $(CACHE)/bin
	GOBIN=$(CACHE)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mv $(CACHE)/bin/staticcheck $@

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

## helm: the helm the chart tests (charts/) run, built once into .cache/bin
$(HELM):
	@mkdir -p $(CACHE)/bin
	GOBIN=$(CACHE)/bin $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@mv $(CACHE)/bin/helm $@

helm: $(HELM)

## static-build: the agent must build and run without cgo
static-build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/nodescraper-static ./cmd/nodescraper
	bin/nodescraper-static --version
	@if command -v ldd >/dev/null && ldd bin/nodescraper-static 2>&1 | grep -q '=>'; then echo "bin/nodescraper-static is not static"; exit 1; fi

## unit: every package's tests, with -race; screenshots of the browser test go to bin/test-artifacts
unit:
	NODESCRAPER_ARTIFACTS=$(CURDIR)/bin/test-artifacts $(GO) test -count=1 -race -timeout 20m ./...

## e2e-v3: ddclient (its capture sinks then decode v3) and the end-to-end packages again, their agents sending Datadog's v3
## series API (DD_USE_V3_API_SERIES_ENABLED=true; the charts' TestOnNode sets
## datadog.useV3APISeries). unit ran them with the default, under which an agent
## sends v2 to a loopback intake, so the v3 path would otherwise never be run
## end to end. Each test's stand-in intake serves only the version the
## environment names and answers the other path 404, so a pass proves the
## version used. Screenshots of the browser test go to bin/test-artifacts-v3.
e2e-v3: controlplane helm
	DD_USE_V3_API_SERIES_ENABLED=true NODESCRAPER_ARTIFACTS=$(CURDIR)/bin/test-artifacts-v3 \
		$(GO) test -count=1 -race -timeout 20m ./ddclient/... ./cmd/nodescraper ./charts

## bench-once: each benchmark of the main module run once (-benchtime 1x), for the
## correctness checks it makes; a check, not a measurement (benchmarks/README has those)
bench-once:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 10m ./...

## fidelity: the deltastore simulations' full histories (under -race, unit plays short ones)
fidelity:
	$(GO) test -count=1 -run Fidelity -timeout 10m ./deltastore

## benchmarks-check: the benchmark module (own go.mod, peer parsers): vet; apiscale's tests
## (TestTiny on the real control plane) with -race, as unit ran them in the main module;
## the other tests (parsers do comparable work, nodebench's truth) and each benchmark once
benchmarks-check: controlplane
	cd benchmarks && $(GO) vet ./... \
		&& $(GO) test -count=1 -race -timeout 20m ./apiscale/... \
		&& $(GO) test -count=1 -bench . -benchtime 1x -timeout 10m . ./cmd/...

clean:
	rm -rf bin
