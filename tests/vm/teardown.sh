#!/usr/bin/env bash
# Undoes setup.sh and whatever a VM test left: VMs, libvirt networks, the pool, the daemons, every
# process in the namespace, the NAT rules, the veth pair and the namespace. Safe to run at any
# point, also after a failure or twice. Exits non-zero if anything is still there afterwards.
set -uo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {  # pidfile: TERM, then KILL after 10 s
  alive "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$1"
}

if alive "$lab_run/libvirtd.pid"; then
  for dom in $(virsh list --all --name | grep '^datadog-'); do
    virsh -q destroy "$dom" >/dev/null 2>&1
    virsh -q undefine "$dom" --remove-all-storage >/dev/null 2>&1
  done
  for net in $(virsh net-list --all --name); do
    virsh -q net-destroy "$net" >/dev/null 2>&1
    # Networks vagrant-libvirt defined go; those defined before the test stay defined.
    { cat "$lab_run/networks.before" 2>/dev/null || echo default; } | grep -qxF "$net" || virsh -q net-undefine "$net" >/dev/null 2>&1
  done
  virsh -q pool-destroy "$lab_pool" >/dev/null 2>&1
fi
stop_pid "$lab_run/libvirtd.pid"
stop_pid "$lab_run/virtlogd.pid"
rm -f "$lab_run/networks.before"

if [ -e "/run/netns/$lab_netns" ]; then
  # Anything still running in the namespace was started by this test (qemu, dnsmasq, ssh tunnels).
  pids=$(ip netns pids "$lab_netns")
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null; sleep 2
    pids=$(ip netns pids "$lab_netns")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null
  fi
  ip netns del "$lab_netns"
fi
ip link del "$lab_veth_host" 2>/dev/null
while iptables -S | grep -q -- '--comment lab-vm-test'; do
  iptables -S | grep -- '--comment lab-vm-test' | head -1 | sed 's/^-A //' | xargs iptables -D 2>/dev/null || break
done
while iptables -t nat -S | grep -q -- '--comment lab-vm-test'; do
  iptables -t nat -S | grep -- '--comment lab-vm-test' | head -1 | sed 's/^-A //' | xargs iptables -t nat -D 2>/dev/null || break
done
# Vagrant's record of the VMs goes with them (a stale one makes the next `up` start a missing VM).
rm -rf "$VAGRANT_DOTFILE_PATH/machines"
# The VM's disk goes; the box's volume stays in the pool folder as a cache.
find "$lab_pool_dir" -maxdepth 1 -type f ! -name '*_vagrant_box_image_*' -delete 2>/dev/null

left=()
[ -e "/run/netns/$lab_netns" ] && left+=("namespace $lab_netns")
ip link show "$lab_veth_host" >/dev/null 2>&1 && left+=("link $lab_veth_host")
{ iptables -S; iptables -t nat -S; } | grep -q -- '--comment lab-vm-test' && left+=("iptables rules")
pgrep -x libvirtd >/dev/null && left+=("a libvirtd process")
pgrep -x virtlogd >/dev/null && left+=("a virtlogd process")
pgrep -f 'qemu-system-x86_64 .*datadog-' >/dev/null && left+=("a qemu process")
if [ ${#left[@]} -gt 0 ]; then
  echo "teardown: still there: ${left[*]}" >&2
  exit 1
fi
lab_log "teardown: no VM, daemon, network, pool or namespace left"
