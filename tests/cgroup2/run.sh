#!/bin/sh
# The cgroup v2 suite: boots Debian's stock kernel with cgroup v1 off (QEMU, software emulation,
# no KVM needed) and runs guest.sh against BINARY there: limits written, CPU quota, the
# freezer, /tmp on disk, an out-of-memory kill, a shutdown that leaves no cgroup and
# gives the group back as found, and a restart in that group.
# The kernel and initramfs are built once into $VMDIR (default /var/cache/lamina-tests/v2vm).
# Fails loudly (exit 1) when the guest cannot boot or any check fails.
# Usage: tests/cgroup2/run.sh BINARY   (about 8 minutes under emulation on an idle 2-core host)
# env: STALL=300 (seconds without progress on its console after which a guest counts as stalled), VMDIR
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
# systemd-guest.sh (with VMINIT=systemd). The guest's scripts print its vitals on its console
# every 20 s, so no new vitals line for STALL seconds (default 300; before the first, no output
# at all) means the whole guest has stopped making progress. Seen under emulation: at 110 s of
# uptime, nothing more for 17 minutes, not even systemd's own status line; and a guest whose
# CPUs locked up 3 s into its script, whose console then carried nothing but the kernel's
# soft-lockup reports until the timeout. Such a guest is stopped and booted once more, loudly;
# a check that fails is never retried.
progress() {
    v=$(grep -ac 'vitals [0-9.]*s: ' "$OUT/console.txt" || true)
    if [ "$v" -gt 0 ]; then echo "vitals $v"; else echo "bytes $(wc -c < "$OUT/console.txt")"; fi
}
boot() {
    for attempt in 1 2; do
        rm -f "$OUT/exit-code" "$OUT/vm.log" "$OUT/journal.txt" "$OUT/server.log"
        { echo "D=$OUT"; cat "$HERE/vitals.sh" "$HERE/$1"; } > "$OUT/$1"
        sh "$HERE/run-vm.sh" "$VMDIR" "$OUT/$1" "$OUT" > "$OUT/console.txt" 2>&1 &
        vm=$! seen=none quiet=0 stalled=
        # run-vm.sh execs timeout(1), which passes a TERM on to QEMU.
        while kill -0 $vm 2>/dev/null; do
            sleep 10
            now=$(progress)
            if [ "$now" = "$seen" ]; then quiet=$((quiet + 10)); else quiet=0 seen=$now; fi
            if [ $quiet -ge "${STALL:-300}" ]; then stalled=1; kill $vm 2>/dev/null || true; break; fi
        done
        wait $vm || true
        [ -z "$stalled" ] || [ -e "$OUT/exit-code" ] || [ $attempt = 2 ] || {
            echo "the cgroup v2 guest stalled running $1: no progress on its console for ${STALL:-300} s;" \
                "its last lines, then a second boot:" >&2
            tail -n 20 "$OUT/console.txt" | tr '\r' '\n' | grep -av -e 'Job vmtest' -e '^\s*$' | tail -n 8 >&2
            [ -e "$OUT/vm.log" ] && tail -n 5 "$OUT/vm.log" >&2
            continue
        }
        break
    done
    if [ ! -e "$OUT/exit-code" ]; then
        [ -z "$stalled" ] || echo "the cgroup v2 guest stalled again: no progress on its console for ${STALL:-300} s" >&2
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
