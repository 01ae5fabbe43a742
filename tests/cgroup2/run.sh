#!/bin/sh
# The cgroup v2 suite: boots Debian's stock kernel with cgroup v1 off (QEMU, software emulation,
# no KVM needed) and runs guest.sh against BINARY there: limits written, CPU quota, the
# freezer, /tmp on disk, an out-of-memory kill, a shutdown that leaves no cgroup and
# gives the group back as found, and a restart in that group.
# The kernel and initramfs are built once into $VMDIR (default /var/cache/lamina-tests/v2vm).
# Fails loudly (exit 1) when the guest cannot boot or any check fails.
# Usage: tests/cgroup2/run.sh BINARY   (about 12 minutes under emulation on an idle 2-core host)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(readlink -f "$1")
VMDIR=${VMDIR:-/var/cache/lamina-tests/v2vm}
[ "$(cat "$VMDIR/version" 2>/dev/null)" = 3 ] || sh "$HERE/build-vm.sh" "$VMDIR"
OUT=$(mktemp -d /tmp/lamina-v2.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
cp "$BIN" "$OUT/lamina"
cat > "$OUT/app.py" <<'PY'
import os
def handler(event, context):
    a = event.get("action")
    if a == "hog":
        b = bytearray(event["mb"] << 20)
        for i in range(0, len(b), 4096):
            b[i] = 1
    if a == "tmp":
        with open("/tmp/big", "wb") as f:
            for _ in range(event["mb"]):
                f.write(b"x" * (1 << 20))
    return {"uid": os.getuid()}
PY
(cd "$OUT" && python3 -c "import zipfile; z = zipfile.ZipFile('fn.zip', 'w'); z.write('app.py'); z.close()")
cp "$HERE/../../packaging/lamina.service" "$HERE/../../packaging/lamina.toml" "$OUT/"
# Boots the guest once per suite: SUITE is guest.sh (a script as PID 1's child) or
# systemd-guest.sh (with VMINIT=systemd).
boot() {
    rm -f "$OUT/exit-code" "$OUT/vm.log" "$OUT/journal.txt"
    { echo "D=$OUT"; cat "$HERE/$1"; } > "$OUT/$1"
    sh "$HERE/run-vm.sh" "$VMDIR" "$OUT/$1" "$OUT" > "$OUT/console.txt" 2>&1 || true
    if [ ! -e "$OUT/exit-code" ]; then
        echo "the cgroup v2 guest did not run $1; its console:" >&2
        cat "$OUT/console.txt" >&2
        [ -e "$OUT/vm.log" ] && cat "$OUT/vm.log" >&2
        if [ -e "$OUT/server.log" ]; then
            echo "the guest's server log, last lines:" >&2
            tail -n 40 "$OUT/server.log" >&2
        fi
        if [ -e "$OUT/journal.txt" ]; then
            echo "the guest's journal of the unit, last lines:" >&2
            tail -n 60 "$OUT/journal.txt" >&2
        fi
        exit 1
    fi
    cat "$OUT/vm.log"
    [ "$(cat "$OUT/exit-code")" = 0 ] || exit 1
}
echo "--- the server started as a delegated service would be"
boot guest.sh
echo "--- packaging/lamina.service under systemd"
VMINIT=systemd boot systemd-guest.sh
