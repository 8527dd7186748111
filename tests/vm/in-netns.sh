#!/usr/bin/env bash
# Runs a command inside the VM test's network namespace. Unlike `ip netns exec`, it keeps the
# host's cgroup hierarchies (libvirt places its VMs in them) while /sys shows the namespace's own
# network devices (libvirt configures its bridges there).   Usage: in-netns.sh CMD [ARG...]
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

[ -e "/run/netns/$lab_netns" ] || { echo "in-netns: no namespace $lab_netns (run tests/vm/setup.sh)" >&2; exit 1; }
mkdir -p "$lab_run/cgroup"
# shellcheck disable=SC2016  # expanded by the inner shell
exec nsenter --net="/run/netns/$lab_netns" unshare --mount --propagation slave -- bash -c '
  set -e
  mount --rbind /sys/fs/cgroup "$0"
  mount -t sysfs sysfs /sys
  mount --rbind "$0" /sys/fs/cgroup
  umount -l "$0"
  exec "$@"' "$lab_run/cgroup" "$@"
