# edged: an MQTT broker for the edge. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 30s
# staticcheck, pinned: `go run` fetches it from the Go module proxy once
# (about a minute to build) and reuses the build cache after that.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help build run test test-deps check fmt-check vet lint fuzz fuzz-corpus bench cross package package-ipk package-test qemu-smoke footprint clean FORCE

help:
	@echo "make build      static edged binary for this machine (./edged)"
	@echo "make run        run edged with its embedded default config"
	@echo "make test       install test dependencies if missing, then go test -race ./..."
	@echo "make check      fmt-check + vet + lint + test (what CI runs)"
	@echo "make lint       staticcheck (pinned version; staticcheck.conf)"
	@echo "make fuzz       run every fuzz target for FUZZTIME ($(FUZZTIME))"
	@echo "make bench      run the benchmarks"
	@echo "make cross      static binaries for the device targets into dist/"
	@echo "make package    .deb packages for amd64, arm64 and armhf into dist/ (nfpm)"
	@echo "make package-ipk  OpenWrt .ipk packages (opkg: 23.05, 24.10) into dist/"
	@echo "make package-test install and purge the amd64 .deb in a throwaway root"
	@echo "make qemu-smoke pub/sub smoke test of the arm64 and armv7 binaries under qemu-user"
	@echo "make footprint  binary sizes and memory use (idle, 1000 clients, 200k queued)"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o edged ./cmd/edged

run:
	$(GO) run ./cmd/edged

test-deps:
	@./build/test-deps.sh

test: test-deps
	$(GO) test -race -count=1 $(PKGS)

check: fmt-check vet lint test

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) run $(STATICCHECK) $(PKGS)

# Every decoder of untrusted or operator input has a fuzz target; their
# corpora are kept in testdata/fuzz (build/fuzz-corpus.sh adds new finds).
FUZZ_TARGETS := \
	./broker/packet:FuzzDecode ./broker/packet:FuzzMatchTopic \
	./serialio:FuzzDecoder ./serialio:FuzzCOBS \
	./persist:FuzzQueue ./persist:FuzzDecodeMessage ./persist:FuzzDecodeSession \
	./persist:FuzzDecodeRef ./persist:FuzzDecodeQStats ./persist:FuzzUnseal ./persist:FuzzNameOfKey \
	./broker/auth:FuzzACL ./broker/auth:FuzzPasswords \
	./bridge:FuzzTopicRules ./cmd/edged:FuzzParseConfig ./cmd/edged:FuzzImportMosquitto

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

fuzz-corpus:
	./build/fuzz-corpus.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./broker/... ./persist ./serialio

# Device targets: Raspberry Pi (ARMv6 Zero, ARMv7, arm64), OpenWrt routers
# (MIPS little and big endian, soft float) and amd64. Each binary is
# dist/edged-linux-<name>; `make dist/edged-linux-arm64` builds one.
CROSS_NAMES := amd64 arm64 armv6 armv7 mipsle mips
goenv_amd64  := GOARCH=amd64
goenv_arm64  := GOARCH=arm64
goenv_armv6  := GOARCH=arm GOARM=6
goenv_armv7  := GOARCH=arm GOARM=7
goenv_mipsle := GOARCH=mipsle GOMIPS=softfloat
goenv_mips   := GOARCH=mips GOMIPS=softfloat

cross: $(addprefix dist/edged-linux-,$(CROSS_NAMES))
	@ls -l $^

# Always handed to go build, whose cache makes an unchanged rebuild a relink.
dist/edged-linux-%: FORCE
	@test -n "$(goenv_$*)" || { echo "no cross target $*"; exit 1; }
	@mkdir -p dist
	@echo "building $@ ($(goenv_$*))"
	@CGO_ENABLED=0 GOOS=linux $(goenv_$*) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/edged

FORCE:

# Packages. nfpm is pinned (newer releases do not build from the module
# proxy here) and installed into .tools/, outside the module.
TOOLS        := $(CURDIR)/.tools
NFPM_VERSION := v2.45.2
NFPM         := $(TOOLS)/nfpm
# A Debian-safe version from git describe: v1.2.3-4-gabc -> 1.2.3.4.gabc,
# an untagged 33e58d5-dirty -> 0.0.0+git33e58d5.dirty.
PKG_VERSION  := $(shell echo '$(VERSION)' | sed -E 's/^v//; s/-/./g; /^[0-9]+\.[0-9]+/!s/^/0.0.0+git/')
# package arch:binary. armhf uses the ARMv6 build: Raspberry Pi OS armhf is
# ARMv6 (Pi Zero/1), and ARMv6 code runs on Debian's ARMv7 armhf too.
DEB_ARCHS    := amd64:amd64 arm64:arm64 armhf:armv6
# OpenWrt package architectures (opkg checks them) for the common targets:
# ramips/mt7621, ath79, mediatek/filogic and bcm27xx, ipq40xx.
IPK_ARCHS    := mipsel_24kc:mipsle mips_24kc:mips aarch64_cortex-a53:arm64 arm_cortex-a7_neon-vfpv4:armv7

$(NFPM):
	@echo "installing nfpm $(NFPM_VERSION) into $(TOOLS)"
	@GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

package: $(NFPM) dist/edged-linux-amd64 dist/edged-linux-arm64 dist/edged-linux-armv6
	@rm -f dist/edged_*.deb
	@for p in $(DEB_ARCHS); do \
		PKG_ARCH=$${p%%:*} BIN=dist/edged-linux-$${p#*:} PKG_VERSION=$(PKG_VERSION) \
			$(NFPM) package -f build/nfpm.yaml -p deb -t dist/ || exit 1; \
	done
	@ls -l dist/*.deb

package-ipk: $(NFPM) dist/edged-linux-mipsle dist/edged-linux-mips dist/edged-linux-arm64 dist/edged-linux-armv7
	@rm -f dist/edged_*.ipk
	@for p in $(IPK_ARCHS); do \
		PKG_ARCH=$${p%%:*} BIN=dist/edged-linux-$${p#*:} PKG_VERSION=$(PKG_VERSION) \
			$(NFPM) package -f build/nfpm.yaml -p ipk -t dist/ || exit 1; \
	done
	@ls -l dist/*.ipk

# Installs and purges the amd64 .deb in a throwaway overlay root (root only).
package-test: test-deps package
	@./build/test/deb-install.sh

qemu-smoke: test-deps dist/edged-linux-arm64 dist/edged-linux-armv7
	@./build/test/qemu-smoke.sh

footprint: cross
	@$(GO) run ./build/footprint -dist dist $(FOOTPRINT_FLAGS)

clean:
	rm -rf edged dist .tools
