#!/bin/sh
# Benchmarks of issue 6 in one command: the in-process criterion benches (floor, stages, whole
# exchange, scaling), then the load program (this directory's crate, claimex-bench): `claimex
# serve` under load, the KMS signer on the emulator, cold start, memory, allocations. The load
# program prints one report (also written to target/criterion/claimex-load-summary.txt) and sets
# its throughput against the criterion single-thread rate of this same run. See BENCHMARKS.md.
#
#   bench/load.sh                    # everything (about 4 minutes once built; a release build takes ~10)
#   BENCH_LOAD_SECS=5 BENCH_LOAD_REPEATS=1 BENCH_COLD_RUNS=5 bench/load.sh   # quicker
#   BENCH_SKIP_CRITERION=1 bench/load.sh                                     # the load program only
set -eu
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "load.sh: installing the load generator wrk (Debian)" >&2
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq wrk >/dev/null
    else
        echo "load.sh: wrk is missing: sudo apt-get install wrk" >&2
        exit 1
    fi
fi
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

if [ -z "${BENCH_SKIP_CRITERION:-}" ]; then
    cargo bench --bench exchange
fi
# Builds the release claimex binary it starts, then runs.
cargo run --release --quiet -p claimex-bench
