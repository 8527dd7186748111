#!/usr/bin/env bash
# The VM test (`make test-vm`), as root on a fresh Debian 12 machine: the repo's own Vagrantfile,
# `vagrant up --provider=libvirt` with its ansible provisioner running site.yml on a real VM
# (a Debian 12 box built here, QEMU under software emulation), then the `default` scenario's
# seed's traffic (`vagrant provision --provision-with traffic`), the testinfra suite over SSH with
# `vagrant ssh-config`, verify (`--provision-with verify`), a re-provision that must change nothing,
# a `vagrant reload` after which every service answers again, and `vagrant destroy -f`.
#
# The doubles are the default scenario's: the agent stand-in's apt repository reaches the guest as
# files (an rsync synced folder, from tests/vm/Vagrantfile.home), the fake Datadog API listens on
# the controller's loopback, and the keys are the scenario's test values.
# Vagrant, libvirtd and the fake API run inside a network namespace this test creates
# (tests/vm/setup.sh): the host's own namespace never sends to the guest's bridge addresses.
# Whatever happens, tests/vm/teardown.sh runs at the end and leaves no VM, daemon, network or pool.
#
# With arguments, runs only those phases (their function names) on the VM a stopped run left,
# e.g. `run.sh testinfra lab_verify reprovision reload destroy`.
# Environment: LAB_VM_REBUILD_BOX=1 rebuilds the box; LAB_LIBVIRT_DRIVER (default qemu here),
# LAB_CPUS, LAB_MEMORY go to the Vagrantfile.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$lab_repo"

lab_test=vm
log=$lab_build/run.log
# Vagrant, the fake API and the test's own Ansible run in the namespace.
lab_ns=("$lab_vm_dir/in-netns.sh")
mkdir -p "$lab_build" "$lab_run"
: >"$log"
# shellcheck source=tests/harness/vagrant-test.sh
. tests/harness/vagrant-test.sh

export LAB_LIBVIRT_DRIVER=${LAB_LIBVIRT_DRIVER:-qemu}
export LAB_VM_STANDIN_REPO=$lab_repo/.build/standin-apt
# Each task's time in the provisioner's output, and the slowest ones after its recap.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
# Settings come from this script, never from a developer's .env.
export LAB_ENV_FILE=none
# The controller's host_vars: the scenario's own (the fake API's port), read from its file.
localhost_vars=$lab_scenario/host_vars/localhost.yml
fake_api_port=$(lab_yaml_value "$localhost_vars" lab_fake_api_port)

# Runs vagrant in the namespace, output to the terminal and the log without progress bars (sed, not
# grep -v, which fails the pipeline when a command prints nothing).
# Vagrant's runs (its provisions, its destroy trigger) go under Mitogen, the option the Vagrantfile's
# header documents, as a user turns it on: on this emulated guest each new Python costs seconds, and
# Mitogen keeps one per host. The test's own Ansible runs (intake, testinfra) and the container
# scenarios run Ansible's default strategy.
lab_strategy=mitogen_linear
vagrant_() {
  ANSIBLE_STRATEGY=$lab_strategy PATH=$lab_bare_path "$lab_vm_dir/in-netns.sh" vagrant "$@" 2>&1 \
    | sed -u -e 's/\r/\n/g' -e 's/\x1b\[K/\n/g' | sed -u -e '/^Progress: /d' -e '/^$/d' | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

teardown() { "$lab_vm_dir/teardown.sh"; }

vm_inventory() { lab_ssh_inventory "$localhost_vars"; }

no_domain_left() { [ -z "$(virsh list --all --name | sed '/^$/d')" ]; }

# -- phases ----------------------------------------------------------------------------------------
prepare_host() {
  "$lab_vm_dir/host-setup.sh"
  tests/doubles/agent_standin/build.sh
}

box() {
  if [ "${LAB_VM_REBUILD_BOX:-0}" = 1 ]; then
    "$lab_vm_dir/build-box.sh" --force
  else
    "$lab_vm_dir/build-box.sh"
  fi
  LAB_BOX=lab/debian12-$(cat "$lab_box_file.recipe")
  if ! vagrant box list 2>/dev/null | grep -q "^$LAB_BOX "; then
    # Older recipes' boxes and their volumes in the pool are of no further use.
    vagrant box list 2>/dev/null | awk '/^lab\/debian12-/ { print $1 }' | while read -r old; do
      vagrant box remove -f "$old" >/dev/null
    done
    rm -f "$lab_pool_dir"/*_vagrant_box_image_*
    vagrant box add -f --name "$LAB_BOX" "$lab_box_file" | grep -v 'Progress:'
  fi
}

sandbox() {
  "$lab_vm_dir/teardown.sh" >/dev/null 2>&1 || "$lab_vm_dir/teardown.sh"  # leftovers of a killed run
  "$lab_vm_dir/setup.sh"
  install -D -m 0644 "$lab_vm_dir/Vagrantfile.home" "$VAGRANT_HOME/Vagrantfile"
  # The default scenario's inventory pieces, beside the inventory Vagrant generates (the
  # Vagrantfile's trigger links the lab's group_vars there).
  lab_scenario_inventory "$VAGRANT_DOTFILE_PATH/provisioners/ansible/inventory" "$localhost_vars"
  # The fake Datadog API on the namespace's loopback.
  lab_start_fake_api "$fake_api_port"
}

up() {
  # Without DD_API_KEY, `vagrant up` stops before creating anything, naming the variable.
  if env -u DD_API_KEY "$lab_vm_dir/in-netns.sh" vagrant up --provider=libvirt >"$lab_run/nokey.log" 2>&1 \
    || ! grep -q 'DD_API_KEY is not set' "$lab_run/nokey.log" || ! no_domain_left; then
    cat "$lab_run/nokey.log" >&2
    echo "vagrant up without DD_API_KEY did not stop early with a message naming it" >&2
    return 1
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH"/controller-*
  lab_up --provider=libvirt
  grep -q '^controller: built in' "$log" || { echo "vagrant up did not build its controller venv" >&2; return 1; }
}

# The agent in the VM sends to the fake API's intake, as in the container scenario: the same
# molecule/default/intake.yml writes the agent units' environment (the guest's 127.0.0.1:PORT),
# and an SSH reverse tunnel, in place of the container's exec relay, carries that port to the
# fake API on the namespace's loopback (teardown.sh ends it with every process in the namespace).
intake() {
  local dir
  dir=$(vm_inventory)
  ANSIBLE_SSH_ARGS="-F $dir/ssh-config -o ControlMaster=auto -o ControlPersist=60s" \
    "$lab_vm_dir/in-netns.sh" ansible-playbook -i "$dir/inventory" --limit lab --become \
    "$lab_scenario/intake.yml" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  "$lab_vm_dir/in-netns.sh" ssh -F "$dir/ssh-config" -f -N -o ExitOnForwardFailure=yes \
    -o ServerAliveInterval=15 -R "127.0.0.1:$fake_api_port:127.0.0.1:$fake_api_port" lab
  vagrant_ ssh -c 'sudo systemctl restart datadog-agent'
}

traffic() {
  vagrant_ provision --provision-with traffic
}

testinfra() {
  lab_suite "$(vm_inventory)" "$lab_vm_dir/test_vm.py"
}

reprovision() {
  lab_reprovision
  # Under Mitogen no task starts a Python of its own: each ok or changed task result is one module
  # run (or local action) in the host's one interpreter. (Under linear, each "<host> SSH: EXEC" line
  # at -vvv is one remote execution.)
  lab_say "reprovision: $(grep -cE '^(ok|changed): \[' "$lab_run/reprovision.log") tasks run, strategy $lab_strategy," \
    "$(grep -cE '^<[^>]+> (SSH: )?EXEC' "$lab_run/reprovision.log") new remote processes"
}

boot_id() { "$lab_vm_dir/in-netns.sh" vagrant ssh -c 'cat /proc/sys/kernel/random/boot_id' 2>/dev/null | tr -d '\r'; }
reload() {
  local before
  before=$(boot_id)
  # A reload that does not provision needs no key.
  env -u DD_API_KEY -u DD_APP_KEY "$lab_vm_dir/in-netns.sh" vagrant reload 2>&1 \
    | sed -u -e 's/\r/\n/g' | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  [ "$(boot_id)" != "$before" ] || { echo "vagrant reload did not reboot the VM" >&2; return 1; }
  lab_pytest "$(vm_inventory)" "$lab_vm_dir/test_vm.py"
}

destroy() {
  lab_destroy "$fake_api_port" no_domain_left
}

# The box's name follows its recipe (build-box.sh writes it); `box` builds it when missing.
LAB_BOX=lab/debian12-$(cat "$lab_box_file.recipe" 2>/dev/null || echo none)
export LAB_BOX

lab_only_phases "$@"
phase host prepare_host
phase box box
phase sandbox sandbox
phase up up
lab_split_up_time "up (to the provisioner)"
phase intake intake
phase traffic traffic
phase testinfra testinfra
phase verify lab_verify
phase reprovision reprovision
phase reload reload
phase destroy destroy
