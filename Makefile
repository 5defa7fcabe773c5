# spotmax — see README.md. `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS  := -s -w -X github.com/spotmax/spotmax/pkg/version.Version=$(VERSION) \
	-X github.com/spotmax/spotmax/pkg/version.commit=$(COMMIT) \
	-X github.com/spotmax/spotmax/pkg/version.date=$(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
BIN      := bin
PKGS     := ./...

.PHONY: help build test test-short test-assets demo demo-cli bench soak lint fuzz clean dist image dist-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build bin/spotmax and bin/spotmax-agent (static, no cgo, as the release builds them)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/spotmax ./cmd/spotmax
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/spotmax-agent ./cmd/spotmax-agent

test: lint test-assets ## run every test (what CI runs)
	$(GO) test -count=1 -timeout 15m $(PKGS)
	cd scripts/dist && $(GO) test -count=1 -timeout 20m ./...

test-assets: ## build the real programs tests run (kube-apiserver, etcd, consul, IMDS mock) into .cache/
	./scripts/build-test-assets.sh

test-short: ## quick tests only
	$(GO) test -short -count=1 $(PKGS)

demo: build ## the whole story in under a minute: interruption, capacity outage, revert, lifetime rotation
	bin/spotmax demo

demo-cli: build ## an operator's session against `spotmax sim serve`: group tag/list/status, replace, history, savings
	./scripts/demo.sh

bench: ## run the benchmarks (results are written up in docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

soak: ## thousands of seeded crash/resume schedules of the replacement workflow
	$(GO) test ./pkg/replace -run 'TestReplaceChaos' -count=1 -timeout 2h -chaos.schedules 3000 -chaos.seed 100000

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd scripts/dist && $(GO) vet ./...

fuzz: ## fuzz the tag parser for a minute
	$(GO) test ./pkg/groupconfig -run '^$$' -fuzz FuzzParse -fuzztime 60s

clean: ## remove built binaries and dist/
	rm -rf $(BIN) dist

# Release artifacts (docs/install.md). scripts/dist is a Go module of its own (nfpm,
# go-containerregistry); VERSION (a v-prefixed semantic version, default from git tags) and
# SOURCE_DATE_EPOCH (default: HEAD's commit time) come from the environment.
dist: ## release archives (linux amd64/arm64, darwin for spotmax), agent .deb/.rpm, SHA256SUMS in dist/
	cd scripts/dist && $(GO) run . -repo ../.. -out ../../dist dist

image: ## OCI image of `spotmax run` (amd64+arm64, non-root), an OCI layout tarball in dist/
	cd scripts/dist && $(GO) run . -repo ../.. -out ../../dist image

dist-check: ## build dist twice, the second time with an empty Go build cache, and compare SHA256SUMS
	./scripts/dist/check-reproducible.sh
