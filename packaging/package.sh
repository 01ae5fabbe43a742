#!/bin/sh
# Packages an already built `lamina` binary: its man pages, the .deb (cargo-deb, with the
# systemd unit and /etc/lamina/lamina.toml) and a tarball, into OUTDIR.
# Usage: packaging/package.sh PROFILE OUTDIR   (PROFILE: release, or dev for target/debug;
# the binary is looked for under $CARGO_TARGET_DIR when set)
# Needs cargo-deb (`cargo install cargo-deb --locked`; release.sh installs it when missing).
set -eu
cd "$(dirname "$0")/.."
PROFILE=$1
OUT=$2
TD=${CARGO_TARGET_DIR:-target}
case $PROFILE in release) BIN=$TD/release/lamina ;; dev) BIN=$TD/debug/lamina ;;
    *) echo "PROFILE is release or dev" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "$BIN is missing: build it first (cargo build --profile $PROFILE -p lamina)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# cargo-deb packages target/release/lamina: a development build is presented there (stripped).
mkdir -p "$T/target/release"
cp "$BIN" "$T/target/release/lamina"
VERSION=$("$BIN" --version | awk '{print $2}')
# Timestamps come from the last commit, so the same checkout packages to the same bytes.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
mkdir -p "$OUT"
rm -rf target/man && "$BIN" manpages target/man
for m in target/man/*.1; do touch -d "@$SOURCE_DATE_EPOCH" "$m"; gzip -9nf "$m"; done
CARGO_TARGET_DIR="$T/target" cargo deb -p lamina --no-build --strip --output "$OUT" >/dev/null
# The tarball: the binary, the unit, the default configuration, the man pages.
D="$T/lamina-$VERSION"
mkdir -p "$D/man"
cp "$BIN" "$D/lamina" && strip "$D/lamina"
cp packaging/lamina.service packaging/lamina.toml README.md "$D/"
cp target/man/*.1.gz "$D/man/"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$T" -cf - "lamina-$VERSION" | gzip -9n > "$OUT/lamina-$VERSION-$(uname -m)-linux-gnu.tar.gz"
(cd "$OUT" && sha256sum -- *.deb *.tar.gz > SHA256SUMS)
ls -l "$OUT"
