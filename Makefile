# edged: an MQTT broker for the edge. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 30s

.PHONY: help build run test test-deps check fmt-check vet fuzz bench cross clean

help:
	@echo "make build      static edged binary for this machine (./edged)"
	@echo "make run        run edged with its embedded default config"
	@echo "make test       install test dependencies if missing, then go test -race ./..."
	@echo "make check      fmt-check + vet + test (what CI runs)"
	@echo "make fuzz       run every fuzz target for FUZZTIME ($(FUZZTIME))"
	@echo "make bench      run the benchmarks"
	@echo "make cross      static binaries for the device targets into dist/"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o edged ./cmd/edged

run:
	$(GO) run ./cmd/edged

test-deps:
	@./build/test-deps.sh

test: test-deps
	$(GO) test -race -count=1 $(PKGS)

check: fmt-check vet test

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./broker/packet
	$(GO) test -run '^$$' -fuzz '^FuzzMatchTopic$$' -fuzztime $(FUZZTIME) ./broker/packet
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) ./serialio
	$(GO) test -run '^$$' -fuzz '^FuzzCOBS$$' -fuzztime $(FUZZTIME) ./serialio
	$(GO) test -run '^$$' -fuzz '^FuzzQueue$$' -fuzztime $(FUZZTIME) ./persist

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./broker/... ./persist ./serialio

# Device targets: Raspberry Pi (ARMv6 Zero, ARMv7, arm64), OpenWrt routers
# (MIPS little and big endian, soft float) and amd64.
CROSS := linux/amd64 linux/arm64 linux/arm/6 linux/arm/7 linux/mipsle/softfloat linux/mips/softfloat

cross:
	@mkdir -p dist
	@for t in $(CROSS); do \
		os=$$(echo $$t | cut -d/ -f1); arch=$$(echo $$t | cut -d/ -f2); var=$$(echo $$t | cut -d/ -f3); \
		name=edged-$$os-$$arch; arm=""; mips=""; \
		case $$arch in arm) arm=$$var; name=$$name"v"$$var;; mips*) mips=$$var;; esac; \
		echo "building dist/$$name"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=$$mips \
			$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/$$name ./cmd/edged || exit 1; \
	done
	@ls -l dist

clean:
	rm -rf edged dist
