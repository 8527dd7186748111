# shellcheck shell=bash
# Shared by the VM test's scripts (sourced): where things live and what they are called.
# Everything the VM test builds or keeps stays under .build/vm/ (git-ignored).
lab_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lab_vm_dir=$lab_repo/tests/vm
lab_build=${LAB_VM_BUILD:-$lab_repo/.build/vm}

# Vagrant's state for the test, away from the user's ~/.vagrant.d and the repo's .vagrant/.
export VAGRANT_HOME=$lab_build/vagrant.d
export VAGRANT_DOTFILE_PATH=$lab_build/dot-vagrant
export VAGRANT_CHECKPOINT_DISABLE=1
export VAGRANT_DEFAULT_PROVIDER=libvirt

# The box: built by build-box.sh, named after its recipe so a rebuilt box never reuses a stale
# volume in the storage pool.
lab_box_dir=$lab_build/box
lab_box_file=$lab_box_dir/debian12-lab.box

# The network namespace vagrant, libvirtd and the guests live in, its veth pair to the host
# (only for the guest's NAT to Debian's mirror and PyPI), and libvirt's storage pool.
lab_netns=${LAB_VM_NETNS:-labvm}
lab_veth_host=labvm-host
lab_veth_ns=labvm-ns
lab_veth_net=${LAB_VM_VETH_NET:-10.213.79}
lab_pool=lab-vm
lab_pool_dir=$lab_build/pool
lab_run=$lab_build/run

lab_log() { printf '%s %s\n' "$(date +%T)" "$*"; }
