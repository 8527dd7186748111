#!/usr/bin/env bash
# Builds the local systemd base images the Molecule scenarios run on, with no registry:
# debootstrap from Debian's mirror, then `docker import`. An image is rebuilt only when it is
# missing or this recipe changed (its hash is stored as a label). Usage: base-images.sh [SUITE[/ARCH]...]
# An arch other than the machine's (bookworm/arm64: datadog-lab/debian:12-arm64) runs under
# emulation: tests/harness/arm64-emulation.sh first. Its image says amd64 (`docker import` on Docker
# 20.10 records the engine's platform), but what runs in it is aarch64, through binfmt_misc.
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe=$(sha256sum "$0" | cut -c1-12)
include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps
masked="getty@.service console-getty.service systemd-udevd.service systemd-udev-trigger.service
apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer e2scrub_reap.service
systemd-timesyncd.service systemd-remount-fs.service sys-kernel-config.mount"

declare -A tag=([bookworm]=12 [trixie]=13)

command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

build() {  # SUITE[/ARCH]
  local suite=${1%/*} arch= name
  [[ $1 != */* ]] || arch=${1#*/}
  name="datadog-lab/debian:${tag[$suite]}${arch:+-$arch}"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "lab.recipe" }}' "$name" 2>/dev/null)" = "$recipe" ]; then
    echo "base-images: $name is up to date"
    return
  fi
  local start=$SECONDS root
  root=$(mktemp -d /var/tmp/lab-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  echo "base-images: debootstrap $suite${arch:+ for $arch} (about a minute${arch:+, three under emulation})"
  debootstrap ${arch:+--arch="$arch"} --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; return 1; }
  rm -f "$root.log"
  # The egress proxy's CA lives on the host only: trust it in the test image (never in roles/).
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  for unit in $masked; do ln -sf /dev/null "$root/etc/systemd/system/$unit"; done
  : >"$root/etc/machine-id"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  # An empty lists dir with a fresh mtime fools apt's cache_valid_time: date it to the epoch.
  touch -d @0 "$root/var/lib/apt/lists"
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --change "LABEL lab.recipe=$recipe" - "$name" >/dev/null
  echo "base-images: built $name in $((SECONDS - start)) s"
}

for suite in "${@:-bookworm trixie}"; do
  for s in $suite; do build "$s"; done
done
