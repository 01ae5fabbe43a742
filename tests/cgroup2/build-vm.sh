#!/bin/sh
# Builds what run-vm.sh boots: Debian's stock kernel (linux-image-amd64, unpacked, not
# installed) and a busybox initramfs that mounts the host's / read-only over 9p, mounts cgroup2
# alone (cgroup_no_v1=all) and runs one script. Debian packages only: qemu-system-x86,
# busybox-static, cpio. Also loads loop and ext4 (each environment's /tmp), and virtio_blk (the
# guest's disk, /dev/vda, which run-vm.sh attaches).
# Usage: build-vm.sh DIR   (downloads ~70 MB, keeps ~11 MB; ~10 s)
set -eu
DIR=$1
mkdir -p "$DIR" && cd "$DIR"
pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
PKG=$(pkg)
[ -n "$PKG" ] || { apt-get update -qq && PKG=$(pkg); }
[ -n "$PKG" ] || { echo "cannot find Debian's linux-image-amd64 package" >&2; exit 1; }
if [ ! -d kpkg ]; then
  apt-get download -q "$PKG"
  dpkg -x "$PKG"_*.deb kpkg
  rm -f "$PKG"_*.deb
fi
KVER=$(ls kpkg/lib/modules)
cp kpkg/boot/vmlinuz-"$KVER" vmlinuz
rm -rf initrd && mkdir -p initrd/bin initrd/mod initrd/proc initrd/sys initrd/dev initrd/host
cp /bin/busybox initrd/bin/busybox
M=kpkg/lib/modules/$KVER/kernel
# Load order follows each module's depends= line.
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk net/9p/9pnet \
         net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p \
         crypto/crc32c_generic lib/libcrc32c lib/crc16 fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4 \
         drivers/block/loop fs/overlayfs/overlay; do
  cp "$M/$m.ko" initrd/mod/
done
cat > initrd/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk 9pnet \
         9pnet_virtio netfs fscache 9p crc32c_generic libcrc32c crc16 mbcache jbd2 ext4 \
         loop overlay; do insmod /mod/$m.ko || echo "vm: insmod $m failed"; done
CMD=; OUTDIR=
for x in $(cat /proc/cmdline); do
  case $x in vmcmd=*) CMD=${x#vmcmd=};; vmout=*) OUTDIR=${x#vmout=};; esac
done
O="-o trans=virtio,version=9p2000.L,msize=524288"
mount -t 9p $O,ro hostroot /host || echo "vm: cannot mount the host root"
SYSTEMD=; grep -qw vminit=systemd /proc/cmdline && SYSTEMD=1
if [ -n "$SYSTEMD" ]; then
  # systemd writes to /etc and /var: they get a tmpfs over the host's read-only tree.
  mkdir -p /ov && mount -t tmpfs tmpfs /ov
  for d in etc var; do
    mkdir -p /ov/$d /ov/$d.w
    mount -t overlay overlay -o lowerdir=/host/$d,upperdir=/ov/$d,workdir=/ov/$d.w /host/$d ||
      echo "vm: cannot overlay /$d"
  done
fi
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts; mount -t tmpfs shm /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
ip link set lo up
for d in /tmp /run /var/tmp /root; do mount -t tmpfs tmpfs /host$d; done
mkdir -p /host$OUTDIR 2>/dev/null
mount -t 9p $O out /host$OUTDIR || echo "vm: cannot mount $OUTDIR"
if [ -n "$SYSTEMD" ]; then
  # systemd as PID 1 starts only vmtest.service (from OUTDIR), which runs the script, writes
  # its exit status and powers off.
  mkdir -p /host/run/systemd/system
  cat > /host/run/systemd/system/vmtest.service <<UNIT
[Unit]
DefaultDependencies=no
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'cd /tmp; sh $CMD > $OUTDIR/vm.log 2>&1; echo \$\$? > $OUTDIR/exit-code; sync; systemctl --force --force poweroff'
UNIT
  echo "vm: up $(cut -d' ' -f1 /proc/uptime)s; starting systemd"
  exec chroot /host /lib/systemd/systemd --system --unit=vmtest.service
fi
echo "vm: up $(cut -d' ' -f1 /proc/uptime)s; cgroup.controllers: $(cat /host/sys/fs/cgroup/cgroup.controllers)"
chroot /host /bin/sh -c "cd /tmp && HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh $CMD" \
  > /host$OUTDIR/vm.log 2>&1
echo $? > /host$OUTDIR/exit-code
echo "vm: exit $(cat /host$OUTDIR/exit-code) at $(cut -d' ' -f1 /proc/uptime)s"
sync; umount /host$OUTDIR
poweroff -f
EOF
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz
[ -n "${KEEP_KPKG:-}" ] || rm -rf kpkg initrd   # ~400 MB of modules; rebuilt from the .deb when needed
echo 3 > version   # run.sh rebuilds when build-vm.sh's version differs
echo "built $DIR/vmlinuz ($KVER) and $DIR/initrd.gz"
