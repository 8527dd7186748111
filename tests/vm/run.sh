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
# e.g. `run.sh testinfra verify reprovision reload destroy`.
# Environment: LAB_VM_REBUILD_BOX=1 rebuilds the box; LAB_LIBVIRT_DRIVER (default qemu here),
# LAB_CPUS, LAB_MEMORY go to the Vagrantfile.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$lab_repo"

scenario=$lab_repo/molecule/default
log=$lab_build/run.log
mkdir -p "$lab_build" "$lab_run"
: >"$log"
# Vagrant runs with this PATH less every folder that holds an ansible-playbook (the test tools' venv
# among them): the Vagrantfile's controller venv
# (controller/venv.sh, built by `vagrant up` under $VAGRANT_DOTFILE_PATH) is what provisions.
lab_bare_path=$(IFS=:; for d in $PATH; do [ -x "$d/ansible-playbook" ] || printf '%s:' "$d"; done)
lab_bare_path=${lab_bare_path%:}
export PATH=$lab_repo/.venv/bin:$PATH
export ANSIBLE_CONFIG=$lab_repo/ansible.cfg
export LAB_LIBVIRT_DRIVER=${LAB_LIBVIRT_DRIVER:-qemu}
export LAB_VM_STANDIN_REPO=$lab_repo/.build/standin-apt
# Each task's time in the provisioner's output, and the slowest ones after its recap.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks

# The default scenario's values, read from its files, never retyped.
scenario_value() { "$lab_repo/tests/harness/yaml-value" "$@"; }  # FILE KEY...
DD_API_KEY=$(scenario_value "$scenario/molecule.yml" provisioner env DD_API_KEY)
DD_APP_KEY=$(scenario_value "$scenario/molecule.yml" provisioner env DD_APP_KEY)
export DD_API_KEY DD_APP_KEY
fake_api_port=$(scenario_value "$scenario/host_vars/localhost.yml" lab_fake_api_port)
# Settings come from this script, never from a developer's .env.
export LAB_ENV_FILE=none

# -- phase bookkeeping: each phase's time, printed at the end even when one fails ----------------
times=()
current=
phase() {  # NAME CMD...
  current=$1
  shift
  local start=$SECONDS
  lab_log "== vm $current: start"
  "$@"
  times+=("$current	$((SECONDS - start))	ok")
  lab_log "== vm $current: ok in $((SECONDS - start)) s"
  current=
}
finish() {
  local rc=$?
  [ -z "$current" ] || times+=("$current	-	FAILED")
  trap - EXIT
  local start=$SECONDS
  if "$lab_vm_dir/teardown.sh"; then
    times+=("teardown	$((SECONDS - start))	ok")
  else
    times+=("teardown	$((SECONDS - start))	FAILED")
    rc=1
  fi
  echo "== vm test phase times (s); full log: $log"
  printf '%s\n' "${times[@]}" | column -t -s $'\t'
  exit "$rc"
}
trap finish EXIT

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

# Fails unless every host in the last PLAY RECAP of FILE has changed=0 and failed=0.
recap_unchanged() {
  local recap
  recap=$(awk '/^PLAY RECAP/ { r = "" } /^PLAY RECAP/, /^$/ { r = r $0 "\n" } END { printf "%s", r }' "$1")
  echo "$recap" | grep -q 'ok=' || { echo "no PLAY RECAP in $1" >&2; return 1; }
  if echo "$recap" | grep -E 'ok=' | grep -Ev 'changed=0 .*unreachable=0 +failed=0'; then
    echo "the re-provision changed something or failed (above)" >&2
    return 1
  fi
}

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
  scenario_inventory "$VAGRANT_DOTFILE_PATH/provisioners/ansible/inventory"
  # The fake Datadog API on the namespace's loopback, fresh state.
  rm -f "$lab_run/fake_datadog_api.json"
  "$lab_vm_dir/in-netns.sh" python3 tests/doubles/fake_datadog_api/server.py --port "$fake_api_port" \
    --state "$lab_run/fake_datadog_api.json" >"$lab_run/fake_datadog_api.log" 2>&1 &
  echo $! >"$lab_run/fake_datadog_api.pid"
  for _ in $(seq 1 50); do grep -q listening "$lab_run/fake_datadog_api.log" && return 0; sleep 0.2; done
  echo "the fake Datadog API did not start:" >&2
  cat "$lab_run/fake_datadog_api.log" >&2
  return 1
}

up() {
  # Without DD_API_KEY, `vagrant up` stops before creating anything, naming the variable.
  if env -u DD_API_KEY "$lab_vm_dir/in-netns.sh" vagrant up --provider=libvirt >"$lab_run/nokey.log" 2>&1 \
    || ! grep -q 'DD_API_KEY is not set' "$lab_run/nokey.log" || [ -n "$(virsh list --all --name | sed '/^$/d')" ]; then
    cat "$lab_run/nokey.log" >&2
    echo "vagrant up without DD_API_KEY did not stop early with a message naming it" >&2
    return 1
  fi
  if PATH=$lab_bare_path command -v ansible-playbook >/dev/null; then
    echo "ansible-playbook is on the PATH vagrant runs with: the test would not prove the controller venv" >&2
    return 1
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH"/controller-* "$lab_run/provision.start"
  vagrant_ up --provider=libvirt | while IFS= read -r line; do
    [[ $line == *"Running provisioner: lab (ansible)"* ]] && date +%s >"$lab_run/provision.start"
    printf '%s\n' "$line"
  done
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  [ -f "$lab_run/provision.start" ] || { echo "vagrant up did not run the ansible provisioner" >&2; return 1; }
  grep -q '^controller: built in' "$log" || { echo "vagrant up did not build its controller venv" >&2; return 1; }
  echo $(( $(date +%s) - $(cat "$lab_run/provision.start") )) >"$lab_run/provision.took"
}

traffic() {
  vagrant_ provision --provision-with traffic
}

# What the default scenario adds to an inventory directory DIR: its host_vars (for the host `lab`
# and the controller) and the agent stand-in's apt source.
scenario_inventory() {  # DIR
  mkdir -p "$1/host_vars"
  ln -sfn "$scenario/host_vars/lab-default.yml" "$1/host_vars/lab.yml"
  ln -sfn "$scenario/host_vars/localhost.yml" "$1/host_vars/localhost.yml"
  ln -sfn "$lab_repo/tests/doubles/agent_standin/inventory.yml" "$1/agent_standin.yml"
}

# An inventory and SSH config for the VM as `vagrant ssh-config` describes it, with the scenario's
# inventory pieces, under .build/vm/run/testinfra; prints the directory.
vm_inventory() {
  local dir=$lab_run/testinfra
  mkdir -p "$dir/inventory"
  vagrant_ ssh-config --host lab >"$dir/ssh-config"
  printf -- '---\ndatadog_lab:\n  hosts:\n    lab:\n      ansible_host: lab\n' >"$dir/inventory/hosts.yml"
  ln -sfn "$lab_repo/inventory/group_vars" "$dir/inventory/group_vars"
  scenario_inventory "$dir/inventory"
  echo "$dir"
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
    "$scenario/intake.yml" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  "$lab_vm_dir/in-netns.sh" ssh -F "$dir/ssh-config" -f -N -o ExitOnForwardFailure=yes \
    -o ServerAliveInterval=15 -R "127.0.0.1:$fake_api_port:127.0.0.1:$fake_api_port" lab
  vagrant_ ssh -c 'sudo systemctl restart datadog-agent'
}

# testinfra over SSH with `vagrant ssh-config`; Ansible (the suite's `lab` fixture and its check-mode
# run, verify.yml) reaches the VM through the same config, with the scenario's host_vars.
testinfra() {  # pytest args...
  local dir
  dir=$(vm_inventory)
  # The suite finds the inventory, the project and its helpers the way it does under Molecule.
  MOLECULE_EPHEMERAL_DIRECTORY=$dir MOLECULE_PROJECT_DIRECTORY=$lab_repo PYTHONPATH=$lab_repo/tests/testinfra \
    ANSIBLE_SSH_ARGS="-F $dir/ssh-config -o ControlMaster=auto -o ControlPersist=60s" \
    "$lab_vm_dir/in-netns.sh" python3 -m pytest -p no:cacheprovider -v --sudo \
    --hosts=ansible://lab --ansible-inventory="$dir/inventory" --ssh-config="$dir/ssh-config" "$@" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

testinfra_suite() {
  # Left to the containers, each costing a whole run of a playbook under emulation: the restart
  # (the reload phase checks the same here), check mode at -vvv (the re-provision below runs at
  # -vvv and must print no secret either), the traffic timer (the same role on any host), and the
  # table kept across a converge (a container run of site.yml; the re-provision converges the VM).
  # (--deselect takes node ids as pytest prints them: relative to the repo.)
  local t=molecule/default/tests/test_lab.py::
  testinfra "$scenario/tests" "$lab_vm_dir/test_vm.py" \
    --deselect "${t}test_every_service_comes_back_after_a_container_restart" \
    --deselect "${t}test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret" \
    --deselect "${t}test_the_optional_traffic_timer_runs_rounds_and_turns_off_again" \
    --deselect "${t}test_the_lab_table_keeps_its_rows_across_a_converge"
}

# verify.yml through its provisioner, against the fake API: every line must pass, no key printed.
verify() {
  vagrant_ provision --provision-with verify >"$lab_run/verify.log" || { tail -n 60 "$lab_run/verify.log" >&2; return 1; }
  grep -q 'All 8 checks passed' "$lab_run/verify.log" || { echo "verify did not pass all 8 checks" >&2; return 1; }
  grep -E '^ +(passed|FAILED) ' "$lab_run/verify.log" | awk '!seen[$0]++' | tee -a "$log"
  no_secret_in "$lab_run/verify.log"
}

# Fails if FILE holds a key or the database password (it is generated into .secrets/ on first use).
no_secret_in() {
  local secret leaked=0
  for secret in "$DD_API_KEY" "$DD_APP_KEY" "$(cat "$lab_repo/.secrets/datadog_db_password" 2>/dev/null)"; do
    [ -n "$secret" ] || { echo "no_secret_in: a secret to look for is empty" >&2; return 1; }
    grep -qF -- "$secret" "$1" && leaked=1
  done
  [ $leaked = 0 ] || { echo "a key or the database password is in $1" >&2; return 1; }
}

reprovision() {
  LAB_ANSIBLE_VERBOSE=vvv vagrant_ provision >"$lab_run/reprovision.log" || return 1
  recap_unchanged "$lab_run/reprovision.log"
  # Under Mitogen no task starts a Python of its own: each ok or changed task result is one module
  # run (or local action) in the host's one interpreter. (Under linear, each "<host> SSH: EXEC" line
  # at -vvv is one remote execution.)
  lab_log "reprovision: $(grep -cE '^(ok|changed): \[' "$lab_run/reprovision.log") tasks run, strategy $lab_strategy," \
    "$(grep -cE '^<[^>]+> (SSH: )?EXEC' "$lab_run/reprovision.log") new remote processes" | tee -a "$log"
  no_secret_in "$lab_run/reprovision.log"
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
  testinfra "$lab_vm_dir/test_vm.py"
}

# How many dashboards, monitors and downtimes the fake Datadog API holds, e.g. "2 1 2" (a deleted
# downtime stays, canceled, as in Datadog: only those not canceled count).
fake_resources() {
  "$lab_vm_dir/in-netns.sh" python3 -c 'import json, sys, urllib.request
state = json.load(urllib.request.urlopen("http://127.0.0.1:%s/fake/state" % sys.argv[1], timeout=10))
live = [d for d in state["downtimes"].values() if d["attributes"]["status"] != "canceled"]
print(len(state["dashboards"]), len(state["monitors"]), len(live))' "$fake_api_port"
}

# The Vagrantfile's before-destroy trigger removes what the lab made in Datadog (keys are set here).
destroy() {
  local before
  before=$(fake_resources)
  [ "$before" != "0 0 0" ] || { echo "the fake Datadog API holds none of the lab's resources before destroy" >&2; return 1; }
  vagrant_ destroy -f
  [ -z "$(virsh list --all --name | sed '/^$/d')" ] || { echo "a domain is left after destroy" >&2; return 1; }
  [ "$(fake_resources)" = "0 0 0" ] \
    || { echo "destroy left resources in the fake Datadog API: $(fake_resources) (before: $before)" >&2; return 1; }
  lab_log "destroy: the trigger removed the lab's dashboards, monitors and downtimes ($before before)"
}

# The box's name follows its recipe (build-box.sh writes it); `box` builds it when missing.
LAB_BOX=lab/debian12-$(cat "$lab_box_file.recipe" 2>/dev/null || echo none)
export LAB_BOX

if [ $# -gt 0 ]; then
  # Some phases only, on the VM a stopped run left (e.g. `run.sh verify reprovision`), no teardown.
  trap - EXIT
  for p in "$@"; do phase "$p" "$p"; done
  printf '%s\n' "${times[@]}" | column -t -s $'\t'
  exit 0
fi
phase host prepare_host
phase box box
phase sandbox sandbox
phase up up
# `vagrant up` = boot + provision: split at the provisioner's first line.
provision_took=$(cat "$lab_run/provision.took")
times[-1]="up (to the provisioner)	$(( $(cut -f2 <<<"${times[-1]}") - provision_took ))	ok"
times+=("provision (site.yml, in up)	$provision_took	ok")
phase intake intake
phase traffic traffic
phase testinfra testinfra_suite
phase verify verify
phase reprovision reprovision
phase reload reload
phase destroy destroy
