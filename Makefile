# berth. `make help` lists the targets.
SHELL := /bin/bash

# Upstream images by default; override them (the e2e reads them too).
KIND_NODE_IMAGE ?= kindest/node:v1.34.0
GO_IMAGE        ?= golang:1.26-bookworm
RUNTIME_IMAGE   ?= gcr.io/distroless/static-debian12:nonroot
POSTGRES_IMAGE  ?= postgres:15
PROMETHEUS_IMAGE ?= prom/prometheus:v3.16.0
PUSHGATEWAY_IMAGE ?= prom/pushgateway:v1.5.1
export KIND_NODE_IMAGE GO_IMAGE RUNTIME_IMAGE POSTGRES_IMAGE PROMETHEUS_IMAGE PUSHGATEWAY_IMAGE

KIND_CLUSTER    ?= berth
IMAGE_REPO      ?= berth
# The chart's appVersion, so the chart's default image is the one make image builds.
IMAGE_TAG       ?= $(shell awk '/^appVersion:/ {gsub(/"/, "", $$2); print $$2}' deploy/helm/berth/Chart.yaml)
NAMESPACE       ?= berth
VERSION         ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO              ?= go
# POSTGRES_IMAGE as the chart's postgresql.image: the tag is what follows
# the last colon of its last path part (a registry's port is no tag), and
# latest when that part has none, as docker and kind read it.
PG_NAME         := $(lastword $(subst /, ,$(POSTGRES_IMAGE)))
PG_TAG          := $(if $(findstring :,$(PG_NAME)),$(lastword $(subst :, ,$(PG_NAME))),latest)
PG_REPO         := $(if $(findstring :,$(PG_NAME)),$(patsubst %:$(PG_TAG),%,$(POSTGRES_IMAGE)),$(POSTGRES_IMAGE))

.PHONY: help run test lint bench fuzz image image-ref chart-docs e2e kind-up kind-load deploy undeploy kind-down

FUZZTIME ?= 30s
# Each fuzz target and its package; make test runs their seed corpora.
FUZZ_TARGETS := FuzzLoad:./internal/config FuzzPutGet:./internal/store FuzzPutItem:./cmd/server FuzzURL:./internal/redact \
                FuzzWorkDuration:./cmd/server FuzzHandler:./pkg/probes FuzzProbeQuery:./pkg/probes FuzzParseTargets:./pkg/sidecar

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the service locally with its embedded defaults (API :8080, admin :9090)
	BERTH_LOG_FORMAT=text $(GO) run ./cmd/server

test: lint ## unit, example, chart, store and alert-rule tests with -race (no cluster; the PostgreSQL and promtool parts need Docker)
	@if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then echo "make test: -race needs cgo, which is off (CGO_ENABLED=$$($(GO) env CGO_ENABLED)): install a C compiler (gcc), or set CGO_ENABLED=1 if one is there"; exit 1; fi
	$(GO) test -race -count=1 -timeout 300s ./...
	cd e2e && $(GO) test -race -count=1 -timeout 300s ./chart/... ./storepg/...

lint: ## go vet (both modules, e2e tag included), gofmt, and the library built for Windows and macOS
	$(GO) vet ./...
	GOOS=windows $(GO) build ./pkg/... && GOOS=darwin $(GO) build ./pkg/...
	cd e2e && $(GO) vet ./... && $(GO) vet -tags e2e ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## benchmarks: berth's request path vs bare Gin, probes with a slow check, parallel startup, loopback load, the items API on both databases
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/... ./cmd/... ./internal/...
	cd e2e && $(GO) test -run '^$$' -bench . -benchmem -count 1 ./storepg/...

fuzz: ## run every fuzz target for FUZZTIME each (outside input: configuration, connection strings to redact, probe queries, item keys and bodies, work durations, sidecar addresses)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done

image: ## build the service image
	docker build --build-arg GO_IMAGE=$(GO_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) \
	  --build-arg VERSION=$(VERSION) -t $(IMAGE_REPO):$(IMAGE_TAG) .

image-ref: ## print the image make image builds (repository:tag)
	@echo $(IMAGE_REPO):$(IMAGE_TAG)

chart-docs: ## regenerate the chart README's values table from the comments in values.yaml
	cd e2e && $(GO) test ./chart -run TestValuesAreDocumented -count=1 -update

e2e: ## the kind e2e suite: its TestMain creates the cluster, builds and loads the image, installs the chart, runs, deletes the cluster
	set -o pipefail; cd e2e && $(GO) test -tags e2e -count=1 -v -timeout 30m . 2>&1 | tee ../e2e.log

kind-up: ## a kind cluster of your own to try the chart on (refused when one of that name exists: use it, or make kind-down)
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		echo "kind-up: a kind cluster named $(KIND_CLUSTER) exists already: use it, delete it with make kind-down, or name another with KIND_CLUSTER=..." >&2; exit 1; fi
	kind create cluster --name $(KIND_CLUSTER) --config deploy/kind/cluster.yaml --image $(KIND_NODE_IMAGE) --wait 180s

kind-load: ## load the image (and POSTGRES_IMAGE, when Docker has it) into the kind nodes
	kind load docker-image $(IMAGE_REPO):$(IMAGE_TAG) --name $(KIND_CLUSTER)
	if docker image inspect $(POSTGRES_IMAGE) >/dev/null 2>&1; then kind load docker-image $(POSTGRES_IMAGE) --name $(KIND_CLUSTER); fi

deploy: ## helm install into a Pod Security "restricted" namespace, API on 127.0.0.1:30080, then helm test
	kubectl create namespace $(NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	kubectl label namespace $(NAMESPACE) --overwrite pod-security.kubernetes.io/enforce=restricted
	helm upgrade --install berth deploy/helm/berth -n $(NAMESPACE) --wait --timeout 5m \
	  --set-string image.repository=$(IMAGE_REPO) --set-string image.tag=$(IMAGE_TAG) \
	  --set-string postgresql.image.repository=$(PG_REPO) --set-string postgresql.image.tag=$(PG_TAG) \
	  --set service.type=NodePort --set service.nodePort=30080
	helm test berth -n $(NAMESPACE)

undeploy: ## helm uninstall
	helm uninstall berth -n $(NAMESPACE) --wait

kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)
