# Gatehouse developer targets. `make run` starts the server on the embedded
# default (SQLite in ./gatehouse-data, HTTP on 127.0.0.1:8080); `make test`
# is the test command CI runs (.ci/run): it sets up what the tests use
# (scripts/test-deps.sh), then runs every suite.

GO ?= go
GATEHOUSE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
# make test provides Chromium and RabbitMQ, so their tests must run, not skip
# (set either to 0 to leave that part out).
GATEHOUSE_TEST_BROWSER_REQUIRED ?= 1
GATEHOUSE_TEST_RABBITMQ_REQUIRED ?= 1
export GATEHOUSE_TEST_POSTGRES GATEHOUSE_TEST_BROWSER_REQUIRED GATEHOUSE_TEST_RABBITMQ_REQUIRED
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test test-deps test-short lint fuzz fuzz-corpus bench clean lambda mosquitto-plugin

run:
	$(GO) run ./cmd/gatehouse serve

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/gatehouse ./cmd/gatehouse

# The whole suite on a fresh Debian machine with Go: installs and starts what
# is missing (apt-get needs root or sudo; see scripts/test-deps.sh), then
# gofmt, vet and every test with the race detector, PostgreSQL, Chromium,
# Mosquitto's clients and RabbitMQ included.
test: test-deps lint
	$(GO) test -race -count=1 -timeout 20m ./...

test-deps:
	@bash scripts/test-deps.sh

# A quick loop that needs nothing but Go: -short, no race detector, no
# PostgreSQL; it ends with the tests it skipped and why.
test-short:
	@GATEHOUSE_TEST_POSTGRES= GATEHOUSE_TEST_BROWSER_REQUIRED=0 GATEHOUSE_TEST_RABBITMQ_REQUIRED=0 \
	  $(GO) test -short -json ./... | $(GO) run scripts/testsummary.go

# staticcheck runs from the module proxy at a pinned version (no install).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(STATICCHECK) ./...

# Run every fuzz target for FUZZTIME each (scripts/fuzz.sh: a target the
# fuzzing engine stops on its own deadline with nothing found runs once more).
FUZZTIME ?= 30s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Write missing seed corpus files (testdata/fuzz/...) from
# scripts/fuzzcorpus.go; `go test` runs them, `make fuzz` starts from them.
fuzz-corpus:
	$(GO) run scripts/fuzzcorpus.go

bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./...

# The AWS IoT custom authorizer Lambda (cmd/gatehouse-aws-authorizer) as
# bin/lambda/gatehouse-aws-authorizer.zip: `bootstrap` for the provided.al2023
# (or provided.al2) runtime on x86_64. LAMBDA_POLICY_MAP=file also packs a
# policy map (set GATEHOUSE_POLICY_MAP_FILE=/var/task/<its name>).
LAMBDA_POLICY_MAP ?=
lambda:
	@mkdir -p bin/lambda
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -tags lambda.norpc -ldflags "-s -w" -o bin/lambda/bootstrap ./cmd/gatehouse-aws-authorizer
	$(GO) run scripts/zipfiles.go bin/lambda/gatehouse-aws-authorizer.zip bin/lambda/bootstrap $(LAMBDA_POLICY_MAP)

# The Mosquitto 2.x plugin (cmd/gatehouse-mosquitto) as bin/gatehouse-mosquitto.so:
# cgo against Debian's mosquitto-dev/libmosquitto-dev and libssl-dev headers.
# The gatehouse binary itself stays pure Go (CGO_ENABLED=0 works).
mosquitto-plugin:
	@mkdir -p bin
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -tags mosquitto -o bin/gatehouse-mosquitto.so ./cmd/gatehouse-mosquitto

clean:
	rm -rf bin gatehouse-data
