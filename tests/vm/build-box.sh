#!/usr/bin/env bash
# Builds the Debian 12 libvirt box the VM test boots, from Debian packages only (test tooling,
# never part of the lab): debootstrap with the distribution's kernel, GRUB written into a raw disk
# without mounts or loop devices, sshd, and a `vagrant` user with Vagrant's insecure key.
# The box is cached in .build/vm/box/ and rebuilt when this recipe or the host's CA files change,
# or with --force. Prints the build time.   Usage: build-box.sh [--force]
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
disk_gib=20
packages=linux-image-amd64,initramfs-tools,grub-pc-bin,systemd-sysv,systemd-resolved,dbus,udev,
packages+=openssh-server,sudo,python3,python3-apt,acl,rsync,ca-certificates,iproute2,procps,kmod
ca_files=(/usr/local/share/ca-certificates/*.crt)
[ -e "${ca_files[0]}" ] || ca_files=()

recipe=$(cat "$0" "${ca_files[@]}" | sha256sum | cut -c1-12)
if [ "${1:-}" != --force ] && [ -f "$lab_box_file" ] && [ "$(cat "$lab_box_file.recipe" 2>/dev/null)" = "$recipe" ]; then
  lab_log "build-box: $lab_box_file is up to date (recipe $recipe)"
  exit 0
fi

for tool in debootstrap sfdisk mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null || { echo "build-box: $tool is missing (run tests/vm/host-setup.sh)" >&2; exit 1; }
done

start=$SECONDS
work=$(mktemp -d /var/tmp/lab-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
lab_log "build-box: debootstrap bookworm with the kernel (about 90 s)"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
lab_log "build-box: debootstrap done in $((SECONDS - start)) s"

uuid=$(cat /proc/sys/kernel/random/uuid)
cat >"$root/etc/fstab" <<EOF
UUID=$uuid / ext4 errors=remount-ro 0 1
EOF
echo lab-box >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lab-box\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# Network: DHCP on every ethernet interface with systemd-networkd, names by systemd-resolved.
cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
chroot "$root" systemctl enable -q systemd-networkd systemd-resolved

# sshd: host keys are made on each VM's first boot (Debian's `sshd -t` check fails without them);
# no RSA host key, whose generation takes most of a minute under emulation.
rm -f "$root"/etc/ssh/ssh_host_*
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' \
  >"$root/etc/ssh/sshd_config.d/host-keys.conf"
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/local/sbin/ssh-host-keys
ExecStartPre=/usr/sbin/sshd -t
EOF
cat >"$root/usr/local/sbin/ssh-host-keys" <<'EOF'
#!/bin/sh
# This VM's own SSH host keys, made on its first boot.
for t in ed25519 ecdsa; do
  [ -e "/etc/ssh/ssh_host_${t}_key" ] || ssh-keygen -q -N '' -t "$t" -f "/etc/ssh/ssh_host_${t}_key"
done
EOF
chmod 0755 "$root/usr/local/sbin/ssh-host-keys"
chroot "$root" systemctl set-default -q multi-user.target

# A small initramfs (the VM's disk is virtio): decompressing the generic one costs boot time.
printf 'virtio_pci\nvirtio_blk\nvirtio_scsi\next4\n' >>"$root/etc/initramfs-tools/modules"
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 || { cat "$work/initramfs.log" >&2; exit 1; }

# The `vagrant` user: passwordless sudo, Vagrant's insecure key (from Debian's vagrant package).
chroot "$root" useradd -m -s /bin/bash vagrant
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$(dpkg -L vagrant | grep '/keys/vagrant.pub$')" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh

# The egress proxy's CA lives on the host only: trust it in the test box (never in roles/).
if [ ${#ca_files[@]} -gt 0 ]; then
  cp "${ca_files[@]}" "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi

# Timers that would take apt's lock in the middle of a provisioning run.
for unit in apt-daily.timer apt-daily-upgrade.timer; do ln -sf /dev/null "$root/etc/systemd/system/$unit"; done
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# An empty lists dir with a fresh mtime fools apt's cache_valid_time: date it to the epoch.
touch -d @0 "$root/var/lib/apt/lists"

# GRUB for BIOS, without grub-install: modules and grub.cfg in /boot/grub, core.img made here.
mkdir -p "$root/boot/grub"
cp -r "$root/usr/lib/grub/i386-pc" "$root/boot/grub/"
cat >"$root/boot/grub/grub.cfg" <<EOF
set timeout=0
linux /vmlinuz root=UUID=$uuid ro console=tty0 console=ttyS0,115200 quiet
initrd /initrd.img
boot
EOF
chroot "$root" grub-mkimage -O i386-pc -o /tmp/core.img -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 normal linux configfile
mv "$root/tmp/core.img" "$work/core.img"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$work/boot.img"

# The disk: an MBR with one partition at 1 MiB, the filesystem written from the tree by mkfs
# (no mount), GRUB's boot sector in sector 0 and core.img in the gap before the partition.
lab_log "build-box: writing the disk image"
disk=$work/disk.raw
truncate -s "${disk_gib}G" "$disk"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "build-box: core.img does not fit before the partition" >&2; exit 1; }
mkfs.ext4 -q -F -L labroot -U "$uuid" -E offset=1048576 -d "$root" "$disk" "$(( disk_gib * 1024 * 1024 - 1024 ))k"
dd if="$work/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none

lab_log "build-box: compressing the image (qcow2, zstd)"
mkdir -p "$work/box" "$lab_box_dir"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$disk" "$work/box/box.img"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$disk_gib" >"$work/box/metadata.json"
cat >"$work/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
tar -C "$work/box" -cf "$lab_box_file.tmp" metadata.json Vagrantfile box.img
mv "$lab_box_file.tmp" "$lab_box_file"
echo "$recipe" >"$lab_box_file.recipe"
lab_log "build-box: built $lab_box_file ($(du -h "$lab_box_file" | cut -f1), recipe $recipe) in $((SECONDS - start)) s"
