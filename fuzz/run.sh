#!/usr/bin/env bash
# Builds the fuzz targets (libFuzzer, stable toolchain) and runs each for a bounded time over
# its checked-in seed corpus. New inputs go to a scratch directory, not into the corpus; a
# crash, a timeout or an out-of-memory stops the run with the input saved under
# target/fuzz/artifacts/<target>/ (add it to fuzz/corpus/<target>/ and write a regression
# test once fixed).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     default 20 s, every target
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(token jwks mapper_output tags issuer_entry config request aws_request)
fi
out="$root/target/fuzz"
host=$(rustc -vV | sed -n 's/^host: //p')
start=$SECONDS
chmod +x "$here/rustc-sancov.sh"
RUSTC_WRAPPER="$here/rustc-sancov.sh" cargo build --quiet --release \
    --manifest-path "$here/Cargo.toml" --target-dir "$out" --target "$host" \
    $(printf -- '--bin fuzz_%s ' "${targets[@]}")
echo "fuzz: built in $((SECONDS - start)) s"
status=0
for target in "${targets[@]}"; do
    scratch=$(mktemp -d)
    artifacts="$out/artifacts/$target"
    mkdir -p "$artifacts" "$here/corpus/$target"
    # -rss_limit_mb: an input that makes a target allocate without bound is a failure.
    if ! "$out/$host/release/fuzz_$target" "$scratch" "$here/corpus/$target" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$out/$target.log" 2>&1; then
        status=1
        echo "fuzz: $target FAILED; the panic and the last lines of $out/$target.log:"
        # The panic message first: a backtrace's tail alone does not say what failed.
        grep -m1 -A2 'panicked at' "$out/$target.log" | cut -c1-600 || true
        tail -n 12 "$out/$target.log"
    fi
    runs=$(grep -m1 '^stat::number_of_executed_units' "$out/$target.log" | awk '{print $2}')
    echo "fuzz: $target: ${runs:-?} runs in ${seconds} s, $(ls "$scratch" | wc -l) new inputs"
    rm -rf "$scratch"
done
echo "fuzz: done in $((SECONDS - start)) s"
exit $status
