#!/bin/sh
# Builds a release from this checkout: target/dist/ gets the .deb, a tarball and SHA256SUMS.
# Reproducible: locked dependencies, paths remapped out of the binary, timestamps from the last
# commit; two runs from the same commit give the same files.
# Usage: packaging/release.sh
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
# Where sources were built must not end up in the binary.
RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/lamina --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export RUSTFLAGS
# A target directory of its own: these flags would otherwise rebuild the development build.
export CARGO_TARGET_DIR=target/reproducible
cargo build --locked --release -p lamina
rm -rf target/dist
sh packaging/package.sh release target/dist
