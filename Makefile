# berth. `make help` lists the targets.
SHELL := /bin/bash

KIND_CLUSTER    ?= berth
KIND_NODE_IMAGE ?= kindest/node:v1.34.0
GO_IMAGE        ?= golang:1.26-bookworm
RUNTIME_IMAGE   ?= gcr.io/distroless/static-debian12:nonroot
IMAGE_REPO      ?= berth
IMAGE_TAG       ?= dev
NAMESPACE       ?= berth
VERSION         ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO              ?= go

.PHONY: help run test lint bench image kind-up kind-load deploy undeploy kind-down e2e e2e-run

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the service locally with its embedded defaults (API :8080, admin :9090)
	BERTH_LOG_FORMAT=text $(GO) run ./cmd/server

test: lint ## unit and chart tests with -race (no cluster needed)
	$(GO) test -race -count=1 -timeout 300s ./...

lint: ## go vet and gofmt
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## benchmarks: berth's request path vs bare Gin, probes with a slow check, parallel startup, and a loopback load run
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/... ./cmd/...

image: ## build the service image
	docker build --build-arg GO_IMAGE=$(GO_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) \
	  --build-arg VERSION=$(VERSION) -t $(IMAGE_REPO):$(IMAGE_TAG) .

kind-up: ## create the kind cluster (deleting a same-named one first)
	kind delete cluster --name $(KIND_CLUSTER) >/dev/null 2>&1 || true
	kind create cluster --name $(KIND_CLUSTER) --config deploy/kind/cluster.yaml --image $(KIND_NODE_IMAGE) --wait 180s

kind-load: ## load the image into the kind nodes
	kind load docker-image $(IMAGE_REPO):$(IMAGE_TAG) --name $(KIND_CLUSTER)

deploy: ## helm lint --strict, then install into a Pod Security "restricted" namespace, API on 127.0.0.1:30080
	helm lint --strict deploy/helm/berth
	kubectl create namespace $(NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	kubectl label namespace $(NAMESPACE) --overwrite pod-security.kubernetes.io/enforce=restricted
	helm upgrade --install berth deploy/helm/berth -n $(NAMESPACE) --wait --timeout 5m \
	  --set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) \
	  --set service.type=NodePort --set service.nodePort=30080
	helm test berth -n $(NAMESPACE)

undeploy: ## helm uninstall
	helm uninstall berth -n $(NAMESPACE) --wait

kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

e2e: ## everything: cluster, image, load, deploy, the e2e suite, teardown
	@set -o pipefail; status=0; \
	$(MAKE) kind-up image kind-load deploy && $(MAKE) e2e-run || status=$$?; \
	$(MAKE) kind-down || true; \
	exit $$status

e2e-run: ## run the e2e suite against the current cluster (after deploy)
	set -o pipefail; E2E_IMAGE_REPO=$(IMAGE_REPO) E2E_IMAGE_TAG=$(IMAGE_TAG) E2E_KIND_CLUSTER=$(KIND_CLUSTER) E2E_NAMESPACE=$(NAMESPACE) \
	  $(GO) test -tags e2e -count=1 -v -timeout 40m ./e2e/ 2>&1 | tee e2e.log
