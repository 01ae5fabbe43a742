#!/bin/sh
# Runs SCRIPT as root inside a QEMU guest that boots Debian's stock kernel with cgroup v2 only
# (cgroup_no_v1=all; cgroup2 mounted at /sys/fs/cgroup by the initramfs, no systemd). The
# guest sees the host's / read-only (9p) with tmpfs on /tmp /run /var/tmp /root, and OUTDIR
# (a host directory, default a fresh mktemp) read-write at the same path. SCRIPT must lie in
# OUTDIR; its output lands in OUTDIR/vm.log. QEMU exits when the guest powers off.
# SCRIPT's exit status lands in OUTDIR/exit-code. The guest also gets a disk of its own: /dev/vda,
# an empty ext4 filesystem (OUTDIR/disk.img, sparse, 4 GB) for the server's data directory, as
# on a real host (each environment's /tmp is a loop device on a file there; on a tmpfs the
# server would fall back to a /tmp in memory).
# With VMINIT=systemd, the guest boots systemd as PID 1 instead (/etc and /var get a tmpfs
# overlay), which runs SCRIPT as the unit vmtest.service and powers off.
# Usage: run-vm.sh VMDIR SCRIPT [OUTDIR]   env: MEM=2048, SMP=2, TIMEOUT=1200 (seconds), VMINIT
# (a suite takes about 5 minutes under emulation on an idle 2-core host, and several times that
# on a busy one)
set -eu
VMDIR=$1
SCRIPT=$2
OUTDIR=${3:-$(dirname "$(readlink -f "$SCRIPT")")}
DISK=$(readlink -f "$OUTDIR")/disk.img
rm -f "$DISK" && truncate -s 4G "$DISK"
PATH=$PATH:/usr/sbin:/sbin mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$DISK"
# Software emulation: the machines this runs on cannot boot KVM guests.
exec timeout "${TIMEOUT:-1200}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
  -m "${MEM:-2048}" -smp "${SMP:-2}" \
  -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
  -kernel "$VMDIR/vmlinuz" -initrd "$VMDIR/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 vmcmd=$(readlink -f "$SCRIPT") vminit=${VMINIT:-script} vmout=$(readlink -f "$OUTDIR")" \
  -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
  -drive file="$DISK",format=raw,if=virtio,cache=unsafe \
  -fsdev local,id=o,path="$(readlink -f "$OUTDIR")",security_model=none -device virtio-9p-pci,fsdev=o,mount_tag=out
