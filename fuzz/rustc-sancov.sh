#!/bin/sh
# RUSTC_WRAPPER for fuzz builds: adds libFuzzer's coverage instrumentation (LLVM SanitizerCoverage,
# stable `-C` flags) to the crates worth guiding by, claimex's own and the parsers it calls,
# and compiles everything else (wasmtime, the AWS SDK, ...) plainly, so a fuzz build stays
# a few minutes on 2 cores.
rustc=$1
shift
crate=
prev=
cross=
for arg in "$@"; do
    [ "$prev" = "--crate-name" ] && crate=$arg
    [ "$arg" = "--target" ] && cross=1
    prev=$arg
done
# Built with an explicit --target, cargo compiles build scripts and proc macros (which rustc
# loads, and which must not reference the fuzzer's coverage hooks) without --target: only
# the crates of the fuzz binaries are instrumented.
[ -n "$cross" ] || exec "$rustc" "$@"
case "$crate" in
    claimex | claimex_tags | fuzz_* | serde_json | jsonwebtoken | toml | toml_parser | mime | url | form_urlencoded | base64)
        exec "$rustc" "$@" \
            -Cpasses=sancov-module \
            -Cllvm-args=-sanitizer-coverage-level=4 \
            -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
            -Cllvm-args=-sanitizer-coverage-pc-table \
            -Cllvm-args=-sanitizer-coverage-trace-compares \
            --cfg fuzzing
        ;;
esac
exec "$rustc" "$@"
