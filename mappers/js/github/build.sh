#!/bin/sh
# Builds the JavaScript GitHub mapper (mapper.js) into a WebAssembly component:
#   target/mappers/js/claimex_mapper_github_js.wasm   (relative to the repository root)
#
# Needs Node.js 18+ and npm; installs the pinned componentize-qjs (package-lock.json)
# from the npm registry with `npm ci` and nothing else. The component is built with
# QuickJS, the non-async ABI and every WASI import stubbed out: it imports nothing.
# On Linux with a C compiler the build is reproducible (see ../deterministic.c).
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH= cd -- "$here/../../.." && pwd)
out_dir="$root/target/mappers/js"
out="$out_dir/claimex_mapper_github_js.wasm"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: '$tool' not found: building JavaScript mappers needs Node.js 18 or newer with npm" >&2
        exit 1
    fi
done
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
    echo "build.sh: Node.js $(node --version) is too old: componentize-qjs needs 18 or newer" >&2
    exit 1
fi

cd "$here"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p "$out_dir"

# Fixed entropy and stopped clocks for the snapshotting run (../deterministic.c).
preload=
if [ "$(uname -s)" = Linux ] && command -v cc >/dev/null 2>&1; then
    preload="$out_dir/libclaimex_deterministic.so"
    cc -shared -fPIC -O2 -o "$preload" "$here/../deterministic.c" -ldl
else
    echo "build.sh: warning: not Linux or no C compiler ('cc'): the component will work but" \
        "differ from build to build (random seeds in the QuickJS snapshot)" >&2
fi

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# Paths relative to this directory: the entry file's name is part of the component.
LD_PRELOAD="$preload" node node_modules/componentize-qjs/cli.mjs \
    --wit ../../wit --world claims-mapper --js mapper.js \
    --sync --stub-wasi -o "$tmp" >/dev/null
mv "$tmp" "$out"
trap - EXIT

if command -v sha256sum >/dev/null 2>&1; then
    sum=$(sha256sum "$out" | cut -d' ' -f1)
else
    sum=$(shasum -a 256 "$out" | cut -d' ' -f1)
fi
echo "built $out ($(wc -c <"$out" | tr -d ' ') bytes, sha256 $sum)"
