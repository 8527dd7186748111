#!/usr/bin/env bash
# Installs what the VM test needs on the host, from Debian's archive only: vagrant with its
# libvirt plugin, libvirt's daemons, QEMU, and the box builder's tools. Quiet when all is there.
# Usage: host-setup.sh [PACKAGE...]   (default: all of them: `make host-tools`, the VM test)
set -euo pipefail

packages=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils dnsmasq-base ebtables iptables fdisk debootstrap e2fsprogs util-linux rsync)
[ $# -eq 0 ] || packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "host-setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
