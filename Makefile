# spotmax — see README.md. `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/spotmax/spotmax/pkg/version.Version=$(VERSION)
BIN      := bin
PKGS     := ./...

.PHONY: help build test test-short test-assets demo demo-cli bench soak lint fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build bin/spotmax and bin/spotmax-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/spotmax ./cmd/spotmax
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/spotmax-agent ./cmd/spotmax-agent

test: lint test-assets ## run every test (what CI runs)
	$(GO) test -count=1 -timeout 15m $(PKGS)

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

fuzz: ## fuzz the tag parser for a minute
	$(GO) test ./pkg/groupconfig -run '^$$' -fuzz FuzzParse -fuzztime 60s

clean: ## remove built binaries
	rm -rf $(BIN)
