#!/usr/bin/env bash
# Prepares the VM test's sandbox: a network namespace with a veth pair and NAT out (only so the
# guest reaches Debian's mirror and PyPI), libvirt's daemons started by hand inside it (the host
# has no systemd), and a transient storage pool under .build/vm/pool. Host-originated packets into
# the namespace are dropped: the host talks to the guest only from inside the namespace.
# Undo with teardown.sh (safe to run at any point, also after a failure).
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

mkdir -p "$lab_run" "$lab_pool_dir"
in_ns() { "$lab_vm_dir/in-netns.sh" "$@"; }
rule() { iptables -C "$@" 2>/dev/null || iptables -I "$@"; }

if [ ! -e "/run/netns/$lab_netns" ]; then
  ip netns add "$lab_netns"
  ip link add "$lab_veth_host" type veth peer name "$lab_veth_ns" netns "$lab_netns"
  ip addr add "$lab_veth_net.1/30" dev "$lab_veth_host"
  ip link set "$lab_veth_host" up
  ip -n "$lab_netns" link set lo up
  ip -n "$lab_netns" addr add "$lab_veth_net.2/30" dev "$lab_veth_ns"
  ip -n "$lab_netns" link set "$lab_veth_ns" up
  ip -n "$lab_netns" route add default via "$lab_veth_net.1"
fi
# Out: the namespace's traffic is forwarded and masqueraded; only replies come back in.
# The host's own sockets never send into the namespace (OUTPUT drop on the veth).
sysctl -q -w net.ipv4.ip_forward=1
comment=(-m comment --comment lab-vm-test)
rule POSTROUTING -t nat -s "$lab_veth_net.0/30" ! -o "$lab_veth_host" "${comment[@]}" -j MASQUERADE
rule FORWARD -i "$lab_veth_host" ! -o "$lab_veth_host" "${comment[@]}" -j ACCEPT
rule FORWARD -o "$lab_veth_host" -m conntrack --ctstate RELATED,ESTABLISHED "${comment[@]}" -j ACCEPT
rule OUTPUT -o "$lab_veth_host" "${comment[@]}" -j DROP

# libvirt's daemons, inside the namespace, logging under .build/vm/run.
export LIBVIRT_LOG_OUTPUTS="3:file:$lab_run/libvirtd.log"
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive "$lab_run/virtlogd.pid" || in_ns virtlogd -d -p "$lab_run/virtlogd.pid"
if ! alive "$lab_run/libvirtd.pid"; then
  in_ns libvirtd -d -p "$lab_run/libvirtd.pid"
fi
for _ in $(seq 1 50); do virsh -q uri >/dev/null 2>&1 && break; sleep 0.2; done
virsh -q uri >/dev/null || { echo "setup: libvirtd does not answer; see $lab_run/libvirtd.log" >&2; exit 1; }

# Networks defined before the test are left alone by teardown.sh.
[ -f "$lab_run/networks.before" ] || virsh net-list --all --name | sed '/^$/d' >"$lab_run/networks.before"
# A transient pool: it disappears when destroyed, nothing is left defined.
virsh -q pool-info "$lab_pool" >/dev/null 2>&1 \
  || virsh -q pool-create-as "$lab_pool" dir --target "$lab_pool_dir" >/dev/null
lab_log "setup: namespace $lab_netns, libvirtd $(cat "$lab_run/libvirtd.pid"), pool $lab_pool ready"
