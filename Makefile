# The two commands of the README are `make demo` and `make test`; the rest are their parts.
# Each target installs what it needs (the wasm32-wasip2 target, the AWS emulator) itself.

CARGO ?= cargo
MAPPER_DIR := target/mappers
STOCK_MAPPERS := claimex-mapper-github claimex-mapper-gitlab claimex-mapper-rules
FIXTURES := $(addprefix claimex-fixture-,trap spin membomb bigoutput notobject reserved badtags echo wrongexport wrongversion error)

.PHONY: demo test mappers fixtures js-mappers toolchain emulator pytools lint bench

## Run the whole exchange on loopback: issuer, claimex, GitHub mapper, local key.
demo: mappers
	$(CARGO) run --quiet -- demo

## Run every test: unit, integration (loopback issuer, real mappers, AWS emulator), mapper crates.
test: toolchain emulator pytools fixtures
	$(CARGO) test --workspace --no-fail-fast

## Build the stock mappers as WebAssembly components (wasm32-wasip2).
mappers: toolchain
	$(CARGO) build --quiet --target wasm32-wasip2 --profile mapper --target-dir $(MAPPER_DIR) $(addprefix -p ,$(STOCK_MAPPERS))

## Build the stock mappers and the misbehaving fixtures the tests load.
fixtures: toolchain js-mappers
	$(CARGO) build --quiet --target wasm32-wasip2 --profile mapper --target-dir $(MAPPER_DIR) $(addprefix -p ,$(STOCK_MAPPERS) $(FIXTURES))

## Build the JavaScript mappers (mappers/js: Node.js 18+ and npm; npm ci, then QuickJS).
JS_MAPPER_GITHUB := $(MAPPER_DIR)/js/claimex_mapper_github_js.wasm
js-mappers: $(JS_MAPPER_GITHUB)

$(JS_MAPPER_GITHUB): mappers/js/github/mapper.js mappers/js/claimex.js mappers/js/package-lock.json \
		mappers/js/build.sh mappers/js/deterministic.c mappers/wit/mapper.wit
	sh mappers/js/build.sh mappers/js/github/mapper.js $(JS_MAPPER_GITHUB)

toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## The Prometheus project's Python client, whose OpenMetrics parser tests/metrics.rs reads /metrics with;
## prometheus-client (tests/metrics.rs parses /metrics with it), boto3 (tests/credentials.rs runs
## `claimex credentials` as its credential_process), Authlib (tests/token_endpoint.rs runs an RFC 8693
## exchange with it).
pytools:
	@python3 -c "import prometheus_client.openmetrics.parser" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check prometheus-client
	@python3 -c "import boto3" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check boto3
	@python3 -c "import authlib, requests" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check authlib requests

## The AWS API emulator used by tests/aws.rs.
emulator:
	@python3 -c "import moto.server" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "moto[server]"

## The benchmarks of BENCHMARKS.md: criterion (benches/exchange.rs), then the load program
## (bench/, crate claimex-bench). Settings: BENCH_* variables, listed in bench/src/main.rs.
bench: toolchain
	bench/load.sh

## Formatting and lints; clippy covers the default members: claimex, the test kit, the load program.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
