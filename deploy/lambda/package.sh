#!/usr/bin/env bash
# Builds claimex and the stock mappers for AWS Lambda (provided.al2023) and zips them with the
# bootstrap script: target/lambda/claimex-<arch>.zip, laid out as
#   bootstrap   claimex   mappers/{github,gitlab,rules}.wasm   mapper-cache/<sha256>.cwasm
#
# mapper-cache/ holds the mappers precompiled for the function's engine (`claimex mapper compile
# --portable`: the baseline CPU of the architecture, the default [mapper] settings, which the
# template keeps): the template points mapper.cache_dir at it, so a cold start does not compile.
# The precompilation runs the packaged binary, so it needs a build host of the same
# architecture as ARCH; elsewhere the directory stays empty and the function compiles at start.
#
#   ARCH=arm64|x86_64 (default arm64)   MAPPERS="github gitlab rules"   GLIBC=2.34
#
# provided.al2023 has glibc 2.34: a binary linked on a newer glibc (Debian 12 has 2.36) may not
# load there, so the binary is linked with cargo-zigbuild against glibc $GLIBC
# (pip install cargo-zigbuild; it brings zig). Needs: rustup, cargo, python3.
set -euo pipefail

ARCH=${ARCH:-arm64}
MAPPERS=${MAPPERS:-github gitlab rules}
GLIBC=${GLIBC:-2.34}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

case "$ARCH" in
  arm64) triple=aarch64-unknown-linux-gnu ;;
  x86_64) triple=x86_64-unknown-linux-gnu ;;
  *) echo "ARCH must be arm64 or x86_64, not $ARCH" >&2; exit 2 ;;
esac
if ! cargo zigbuild --help >/dev/null 2>&1; then
  echo "cargo-zigbuild is missing: pip install cargo-zigbuild" >&2
  exit 2
fi

rustup target add "$triple" wasm32-wasip2
cargo zigbuild --locked --release --bin claimex --target "$triple.$GLIBC"
pkgs=()
for m in $MAPPERS; do pkgs+=(-p "claimex-mapper-$m"); done
cargo build --locked --profile mapper --target wasm32-wasip2 "${pkgs[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "target/$triple/release/claimex" "$stage/claimex"
install -m 0755 deploy/lambda/bootstrap "$stage/bootstrap"
mkdir "$stage/mappers"
for m in $MAPPERS; do
  install -m 0644 "target/wasm32-wasip2/mapper/claimex_mapper_$m.wasm" "$stage/mappers/$m.wasm"
done

mkdir "$stage/mapper-cache"
case "$(uname -m)" in
  aarch64|arm64) host=arm64 ;;
  x86_64|amd64) host=x86_64 ;;
  *) host=unknown ;;
esac
if [ "$host" = "$ARCH" ]; then
  for m in $MAPPERS; do
    "$stage/claimex" mapper compile --portable "$stage/mappers/$m.wasm" -o "$stage/mapper-cache/"
  done
else
  echo "warning: this host is $(uname -m), the function $ARCH: mappers not precompiled (the function compiles them at each cold start)" >&2
fi

mkdir -p target/lambda
out="$root/target/lambda/claimex-$ARCH.zip"
# Python's zipfile, so that no zip tool is needed; Unix modes are kept (bootstrap must be executable).
python3 - "$stage" "$out" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, _, files in os.walk(stage):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            info = zipfile.ZipInfo(os.path.relpath(path, stage), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
PY
echo "wrote $out"
# Hashes for the issuer entries' optional mapper_sha256.
(cd "$stage/mappers" && sha256sum -- *.wasm)
