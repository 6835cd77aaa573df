#!/bin/sh
# Builds a claimex mapper written in JavaScript into a WebAssembly component:
#
#   sh build.sh [--wit DIR] IN.js OUT.wasm
#
# IN.js exports `mapper` (`validateConfig(config)` and `map(request)`, see README.md) and
# may import other modules in this directory (./claimex.js, the helper module). The
# contract is read from --wit, else ./wit beside this script, else ../wit (the claimex
# repository's mappers/wit). Needs Node.js 18+ and npm: `npm ci` installs the pinned
# componentize-qjs (package-lock.json) from the npm registry, and nothing else. The
# component is built with QuickJS, the non-async ABI and every WASI import stubbed out: it
# imports nothing. On Linux with a C compiler the build is reproducible (deterministic.c).
set -eu

usage() {
    echo "usage: sh build.sh [--wit DIR] IN.js OUT.wasm" >&2
    exit 2
}

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
wit=
while [ $# -gt 0 ]; do
    case $1 in
    --wit)
        [ $# -ge 2 ] || usage
        wit=$2
        shift 2
        ;;
    -h | --help) usage ;;
    --*) usage ;;
    *) break ;;
    esac
done
[ $# -eq 2 ] || usage
in=$1
out=$2

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

# Absolute paths, then the entry relative to this directory (the module root: imports
# resolve within it, and the entry's relative name is part of the component).
[ -f "$in" ] || { echo "build.sh: $in: no such file" >&2; exit 1; }
in_abs=$(CDPATH= cd -- "$(dirname -- "$in")" && pwd)/$(basename -- "$in")
case $in_abs in
"$here"/*) entry=${in_abs#"$here"/} ;;
*)
    echo "build.sh: $in must be inside $here (the directory of build.sh and claimex.js), where its imports resolve" >&2
    exit 1
    ;;
esac
out_dir=$(dirname -- "$out")
mkdir -p "$out_dir"
out_abs=$(CDPATH= cd -- "$out_dir" && pwd)/$(basename -- "$out")
if [ -z "$wit" ]; then
    if [ -d "$here/wit" ]; then wit=$here/wit; else wit=$here/../wit; fi
fi
[ -d "$wit" ] || [ -f "$wit" ] || { echo "build.sh: no contract at $wit: pass --wit DIR" >&2; exit 1; }
wit_abs=$(CDPATH= cd -- "$(dirname -- "$wit")" && pwd)/$(basename -- "$wit")

cd "$here"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# Fixed entropy and stopped clocks for the snapshotting run (deterministic.c).
preload=
tmp_dir=$(mktemp -d)
trap 'rm -rf "$tmp_dir"' EXIT
if [ "$(uname -s)" = Linux ] && command -v cc >/dev/null 2>&1 && [ -f "$here/deterministic.c" ]; then
    preload="$tmp_dir/libclaimex_deterministic.so"
    cc -shared -fPIC -O2 -o "$preload" "$here/deterministic.c" -ldl
else
    echo "build.sh: warning: not Linux, no C compiler ('cc') or no deterministic.c: the" \
        "component will work but differ from build to build (random seeds in the QuickJS snapshot)" >&2
fi

LD_PRELOAD="$preload" node node_modules/componentize-qjs/cli.mjs \
    --wit "$wit_abs" --world claims-mapper --js "$entry" --module-root . \
    --sync --stub-wasi -o "$tmp_dir/out.wasm" >/dev/null
mv "$tmp_dir/out.wasm" "$out_abs"

if command -v sha256sum >/dev/null 2>&1; then
    sum=$(sha256sum "$out_abs" | cut -d' ' -f1)
else
    sum=$(shasum -a 256 "$out_abs" | cut -d' ' -f1)
fi
echo "built $out_abs ($(wc -c <"$out_abs" | tr -d ' ') bytes, sha256 $sum)"
