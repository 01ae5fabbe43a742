#!/bin/sh
# The package test: packages the built binary as a .deb (packaging/package.sh), installs it with
# dpkg into a fresh Debian root (debootstrap --variant=minbase, made once and cached under
# /var/cache/lamina-tests; an overlay keeps the cache clean) and runs `lamina server --check`
# there. Also checks the unit with systemd-analyze and removes the package again.
# Fails loudly (exit 1) when any step fails; leaves no mount behind (a private mount namespace).
# Usage: tests/package/run.sh PROFILE   (dev or release; about 1 minute once the root exists)
set -eu
cd "$(dirname "$0")/../.."
PROFILE=${1:-dev}
BASE=/var/cache/lamina-tests/debian-bookworm-minbase
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
W=$(mktemp -d /tmp/lamina-pkg.XXXXXX)
trap 'rm -rf "$W"' EXIT
sh packaging/package.sh "$PROFILE" "$W/dist" >/dev/null || fail "packaging"
DEB=$(ls "$W"/dist/*.deb)
ok "built $(basename "$DEB") ($(du -h "$DEB" | cut -f1))"
dpkg-deb -f "$DEB" Depends | grep -q libc6 || fail "the package does not depend on libc6"
files=$(dpkg-deb -c "$DEB")
for f in ./usr/bin/lamina ./etc/lamina/lamina.toml ./usr/lib/systemd/system/lamina.service \
         ./usr/share/man/man1/lamina.1.gz ./usr/share/man/man1/lamina-server.1.gz; do
    echo "$files" | grep -q " $f\$" || fail "the package lacks $f"
done
ok "the package holds the binary, the unit, the configuration and the man pages"

# The fresh root: Debian 12 as debootstrap makes it, nothing else.
mkdir -p /var/cache/lamina-tests
(
    flock 9
    if [ ! -e "$BASE/.complete" ]; then
        rm -rf "$BASE"
        debootstrap --variant=minbase bookworm "$BASE" http://deb.debian.org/debian >"$W/debootstrap.log" 2>&1 ||
            { tail -5 "$W/debootstrap.log" >&2; rm -rf "$BASE"; exit 1; }
        touch "$BASE/.complete"
    fi
) 9>"$BASE.lock" || fail "cannot make the Debian root with debootstrap (see above)"
ok "fresh Debian root: $(cat "$BASE/etc/debian_version")"

cp "$DEB" "$W/lamina.deb"
cp packaging/lamina.service "$W/"
# In a mount namespace of its own: the overlay, /proc, /sys and /dev go with it.
unshare --mount --propagation private sh -eu -c '
    W=$1; BASE=$2; R=$W/root
    mkdir -p $W/upper $W/work $R
    mount -t overlay overlay -o lowerdir=$BASE,upperdir=$W/upper,workdir=$W/work $R
    mount -t proc proc $R/proc
    mount --rbind /sys $R/sys
    mount --rbind /dev $R/dev
    mount -t tmpfs tmpfs $R/tmp
    cp $W/lamina.deb $R/tmp/
    chroot $R dpkg -i /tmp/lamina.deb > $W/dpkg.log 2>&1 || { cat $W/dpkg.log; exit 11; }
    chroot $R sh -c "command -v lamina" > /dev/null || exit 12
    chroot $R lamina --version > $W/version.txt || exit 13
    # The default configuration file is valid: the server loads it before its checks.
    chroot $R lamina server --check --config /etc/lamina/lamina.toml > $W/check.txt 2>&1 || { cat $W/check.txt; exit 14; }
    cmp $R/usr/lib/systemd/system/lamina.service $W/lamina.service || exit 15
    chroot $R dpkg -r lamina > $W/remove.log 2>&1 || { cat $W/remove.log; exit 16; }
    [ ! -e $R/usr/bin/lamina ] || exit 17
    # A conffile stays after remove, as dpkg keeps configuration until purge.
    [ -e $R/etc/lamina/lamina.toml ] || exit 18
    chroot $R dpkg --purge lamina > /dev/null 2>&1 || exit 19
    [ ! -e $R/etc/lamina/lamina.toml ] || exit 20
' sh "$W" "$BASE" || fail "installing into the fresh root failed (step $?)"
ok "dpkg -i into the fresh root: $(cat "$W/version.txt")"
echo "--- lamina server --check in the fresh root"
cat "$W/check.txt"
ok "lamina server --check passed there; dpkg -r and --purge removed the package"
if command -v systemd-analyze >/dev/null 2>&1; then
    # Only the unit's own problems: the binary and the man page are not on this host.
    out=$(systemd-analyze verify packaging/lamina.service 2>&1 |
        grep -v -e '/usr/bin/lamina is not executable' -e "man lamina(1)" || true)
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
    ok "systemd-analyze verify accepts the unit"
else
    fail "systemd-analyze is missing (apt-get install systemd)"
fi
echo PASS
