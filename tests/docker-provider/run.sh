#!/usr/bin/env bash
# The Docker-provider test (`make test-docker-provider`, a phase of `make test`), as root on a Debian
# 12 machine with a Docker engine, the base images and the agent stand-in (`make images standin`):
# the repo's own Vagrantfile, `vagrant up --provider=docker` building docker/Dockerfile on
# LAB_DOCKER_BASE (the local datadog-lab/debian:12 by default: no registry serves ubuntu:18.04 here)
# and provisioning site.yml over SSH; then the seed's traffic (`--provision-with traffic`), the
# `default` scenario's testinfra suite, a re-provision that must change nothing, verify
# (`--provision-with verify`) and `vagrant destroy -f`, whose trigger must clean the fake Datadog API.
# Vagrant gets the keys from a `.env` file alone (LAB_ENV_FILE names it), as a user's
# `cp .env.example .env` gives them: they are not in the environment of any vagrant command.
#
# The doubles are the default scenario's: the agent stand-in's apt repository is bind-mounted into
# the container (tests/docker-provider/Vagrantfile.home), the fake Datadog API listens on this
# machine's loopback (on a port of its own, tests/docker-provider/host_vars/localhost.yml), and the
# agent reaches its intake through tests/harness/exec_relay.py over `docker exec`. Test traffic to
# the container goes only to 127.0.0.1 (the SSH and app ports Vagrant publishes there) or through
# `docker exec`, never to its bridge address.
# Whatever happens, the container, the relay and the fake API are gone at the end.
#
# With arguments, runs only those phases (their function names) on what a stopped run left, e.g.
# `run.sh prepare up intake` then `run.sh testinfra`; `run.sh teardown` cleans up.
set -euo pipefail
cd "$(dirname "$0")/../.."
lab_repo=$PWD
here=$lab_repo/tests/docker-provider
scenario=$lab_repo/molecule/default
build=$lab_repo/.build/docker-provider
run=$build/run
log=$build/run.log
mkdir -p "$run"
: >"$log"

# Vagrant's state for the test, away from the user's ~/.vagrant.d and the repo's .vagrant/.
export VAGRANT_HOME=$build/vagrant.d
export VAGRANT_DOTFILE_PATH=$build/dot-vagrant
export VAGRANT_CHECKPOINT_DISABLE=1
export LAB_DOCKER_BASE=${LAB_DOCKER_BASE:-datadog-lab/debian:12}
export LAB_DOCKER_STANDIN_REPO=$lab_repo/.build/standin-apt
# Settings come from this script and its own .env file (written by prepare), never from a
# developer's .env.
export LAB_ENV_FILE=$run/lab.env
machine_id_file=$VAGRANT_DOTFILE_PATH/machines/lab/docker/id

# Vagrant runs with this PATH less every folder that holds an ansible-playbook (the test tools' venv
# among them): the Vagrantfile's controller venv is what provisions. The test's own Ansible (intake,
# testinfra) is the tools' venv.
lab_bare_path=$(IFS=:; for d in $PATH; do [ -x "$d/ansible-playbook" ] || printf '%s:' "$d"; done)
lab_bare_path=${lab_bare_path%:}
export PATH=$lab_repo/.venv/bin:$PATH
export ANSIBLE_CONFIG=$lab_repo/ansible.cfg

# The default scenario's keys and this test's fake API port, read from their files, never retyped.
yaml_value() { "$lab_repo/tests/harness/yaml-value" "$@"; }  # FILE KEY...
DD_API_KEY=$(yaml_value "$scenario/molecule.yml" provisioner env DD_API_KEY)
DD_APP_KEY=$(yaml_value "$scenario/molecule.yml" provisioner env DD_APP_KEY)
export DD_API_KEY DD_APP_KEY
fake_api_port=$(yaml_value "$here/host_vars/localhost.yml" lab_fake_api_port)

log_line() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$log"; }

# -- phase bookkeeping: each phase's time, printed at the end even when one fails ----------------
times=()
current=
phase() {  # NAME CMD...
  current=$1
  shift
  local start=$SECONDS
  log_line "== docker-provider $current: start"
  "$@"
  times+=("$current	$((SECONDS - start))	ok")
  log_line "== docker-provider $current: ok in $((SECONDS - start)) s"
  current=
}
finish() {
  local rc=$?
  [ -z "$current" ] || times+=("$current	-	FAILED")
  trap - EXIT
  local start=$SECONDS
  if teardown; then
    times+=("teardown	$((SECONDS - start))	ok")
  else
    times+=("teardown	$((SECONDS - start))	FAILED")
    rc=1
  fi
  echo "== docker-provider test phase times (s); full log: $log"
  printf '%s\n' "${times[@]}" | column -t -s $'\t'
  exit "$rc"
}
trap finish EXIT

# Runs vagrant with output to the terminal and the log, without progress bars (sed, not grep -v,
# which fails the pipeline when a command prints nothing). The keys reach it from LAB_ENV_FILE only.
vagrant_() {
  env -u DD_API_KEY -u DD_APP_KEY PATH="$lab_bare_path" vagrant "$@" 2>&1 | sed -u -e 's/\r/\n/g' -e '/^$/d' | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

container_id() { cat "$machine_id_file"; }

# Stops the process whose pid is in FILE (one this test started), if it still runs.
stop_pid() {  # FILE
  [ -f "$1" ] || return 0
  kill "$(cat "$1")" 2>/dev/null
  rm -f "$1"
  return 0
}

# The container (if this test's Vagrant state names one) and its image, the relay and the fake API
# go; Vagrant's record of the machine with them. Also run first, for what a killed run left.
teardown() {
  local id=
  stop_pid "$run/relay.pid"
  stop_pid "$run/fake_datadog_api.pid"
  if [ -f "$machine_id_file" ]; then
    id=$(container_id)
    docker rm -f "$id" >/dev/null 2>&1
    docker image rm "$(cat "$VAGRANT_DOTFILE_PATH/machines/lab/docker/docker_build_image" 2>/dev/null)" >/dev/null 2>&1
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH/machines"
  if [ -n "$id" ] && docker container inspect "$id" >/dev/null 2>&1; then
    echo "teardown: the container $id is left" >&2
    return 1
  fi
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

# Fails if FILE holds a key or the database password (it is generated into .secrets/ on first use).
no_secret_in() {
  local secret leaked=0
  for secret in "$DD_API_KEY" "$DD_APP_KEY" "$(cat "$lab_repo/.secrets/datadog_db_password" 2>/dev/null)"; do
    [ -n "$secret" ] || { echo "no_secret_in: a secret to look for is empty" >&2; return 1; }
    grep -qF -- "$secret" "$1" && leaked=1
  done
  [ $leaked = 0 ] || { echo "a key or the database password is in $1" >&2; return 1; }
}

# What the default scenario adds to an inventory directory DIR: its host_vars for the host `lab`,
# this test's for the controller, and the agent stand-in's apt source.
scenario_inventory() {  # DIR
  mkdir -p "$1/host_vars"
  ln -sfn "$scenario/host_vars/lab-default.yml" "$1/host_vars/lab.yml"
  ln -sfn "$here/host_vars/localhost.yml" "$1/host_vars/localhost.yml"
  ln -sfn "$lab_repo/tests/doubles/agent_standin/inventory.yml" "$1/agent_standin.yml"
}

# An inventory and SSH config for the container as `vagrant ssh-config` describes it (127.0.0.1 and
# the published port), with the scenario's inventory pieces; prints the directory.
ssh_inventory() {
  local dir=$run/testinfra
  mkdir -p "$dir/inventory"
  PATH=$lab_bare_path vagrant ssh-config --host lab >"$dir/ssh-config"
  grep -qx '  HostName 127.0.0.1' "$dir/ssh-config" \
    || { echo "vagrant ssh-config does not point at 127.0.0.1:" >&2; cat "$dir/ssh-config" >&2; return 1; }
  printf -- '---\ndatadog_lab:\n  hosts:\n    lab:\n      ansible_host: lab\n' >"$dir/inventory/hosts.yml"
  ln -sfn "$lab_repo/inventory/group_vars" "$dir/inventory/group_vars"
  scenario_inventory "$dir/inventory"
  echo "$dir"
}

# How many dashboards, monitors and downtimes the fake Datadog API holds, e.g. "2 1 2" (a deleted
# downtime stays, canceled, as in Datadog: only those not canceled count).
fake_resources() {
  python3 -c 'import json, sys, urllib.request
state = json.load(urllib.request.urlopen("http://127.0.0.1:%s/fake/state" % sys.argv[1], timeout=10))
live = [d for d in state["downtimes"].values() if d["attributes"]["status"] != "canceled"]
print(len(state["dashboards"]), len(state["monitors"]), len(live))' "$fake_api_port"
}

# -- phases ----------------------------------------------------------------------------------------
prepare() {
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers (make engine)" >&2; return 1; }
  docker image inspect "$LAB_DOCKER_BASE" >/dev/null 2>&1 \
    || { echo "no image $LAB_DOCKER_BASE (make images)" >&2; return 1; }
  [ -f "$LAB_DOCKER_STANDIN_REPO/dists/stable/InRelease" ] \
    || { echo "no agent stand-in repository in $LAB_DOCKER_STANDIN_REPO (make standin)" >&2; return 1; }
  teardown || return 1
  # Vagrant names the container datadog-lab: one of another origin (a user's lab) is not ours to remove.
  if docker ps -a --format '{{.Names}}' | grep -qx datadog-lab; then
    echo "a container named datadog-lab exists and is not this test's: remove it first" >&2
    return 1
  fi
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)' \
    "$fake_api_port" 2>/dev/null; then
    echo "127.0.0.1:$fake_api_port is taken: this test's fake Datadog API can't listen there" >&2
    return 1
  fi
  install -D -m 0644 "$here/Vagrantfile.home" "$VAGRANT_HOME/Vagrantfile"
  # The keys alone, in the .env format, readable by root only.
  (umask 077 && printf 'DD_API_KEY=%s\n# the application key, for the resources and verify\nDD_APP_KEY="%s"\n' \
    "$DD_API_KEY" "$DD_APP_KEY" >"$LAB_ENV_FILE")
  # The inventory pieces, beside the inventory Vagrant generates (the Vagrantfile's trigger links the
  # lab's group_vars there).
  scenario_inventory "$VAGRANT_DOTFILE_PATH/provisioners/ansible/inventory"
  # The fake Datadog API on loopback, fresh state.
  rm -f "$run/fake_datadog_api.json"
  python3 tests/doubles/fake_datadog_api/server.py --port "$fake_api_port" --state "$run/fake_datadog_api.json" \
    >"$run/fake_datadog_api.log" 2>&1 &
  echo $! >"$run/fake_datadog_api.pid"
  for _ in $(seq 1 50); do grep -q listening "$run/fake_datadog_api.log" && return 0; sleep 0.2; done
  echo "the fake Datadog API did not start:" >&2
  cat "$run/fake_datadog_api.log" >&2
  return 1
}

up() {
  if PATH=$lab_bare_path command -v ansible-playbook >/dev/null; then
    echo "ansible-playbook is on the PATH vagrant runs with: the test would not prove the controller venv" >&2
    return 1
  fi
  rm -f "$run/provision.start"
  vagrant_ up --provider=docker | while IFS= read -r line; do
    [[ $line == *"Running provisioner: lab (ansible)"* ]] && date +%s >"$run/provision.start"
    printf '%s\n' "$line"
  done
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  [ -f "$run/provision.start" ] || { echo "vagrant up did not run the ansible provisioner" >&2; return 1; }
  echo $(( $(date +%s) - $(cat "$run/provision.start") )) >"$run/provision.took"
}

# The agent in the container sends to the fake API's intake, as in the default scenario: its
# intake.yml writes the agent units' environment (the container's 127.0.0.1:PORT), and the scenario's
# exec relay carries that port to the fake API on this machine's loopback over `docker exec`. (This
# test's port is given as an extra var: the scenario's host_vars beside intake.yml would win over
# the inventory's.)
intake() {
  local dir
  dir=$(ssh_inventory)
  ANSIBLE_SSH_ARGS="-F $dir/ssh-config -o ControlMaster=auto -o ControlPersist=60s" \
    ansible-playbook -i "$dir/inventory" --limit lab --become -e "lab_fake_api_port=$fake_api_port" \
    "$scenario/intake.yml" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  python3 tests/harness/exec_relay.py --container "$(container_id)" --port "$fake_api_port" \
    >"$run/relay.log" 2>&1 &
  echo $! >"$run/relay.pid"
  vagrant_ ssh -c 'sudo systemctl restart datadog-agent'
}

traffic() {
  vagrant_ provision --provision-with traffic
}

# The default scenario's whole-lab suite over SSH, as the VM test runs it, plus what is the Docker
# provider's own (test_docker_provider.py). Left out: the container restart (it restarts a container
# named after the inventory host; the Docker provider's is datadog-lab), and the tests the VM test
# also leaves to the scenario's containers, which run them on the same image: check mode at -vvv
# (the re-provision below runs at -vvv and must print no secret either), the traffic timer, and the
# table kept across a converge.
testinfra() {
  local dir t=molecule/default/tests/test_lab.py::
  dir=$(ssh_inventory)
  # The suite finds the inventory, the project and its helpers the way it does under Molecule.
  LAB_DOCKER_CONTAINER=$(container_id) \
    MOLECULE_EPHEMERAL_DIRECTORY=$dir MOLECULE_PROJECT_DIRECTORY=$lab_repo PYTHONPATH=$lab_repo/tests/testinfra \
    ANSIBLE_SSH_ARGS="-F $dir/ssh-config -o ControlMaster=auto -o ControlPersist=60s" \
    python3 -m pytest -p no:cacheprovider -v --sudo \
    --hosts=ansible://lab --ansible-inventory="$dir/inventory" --ssh-config="$dir/ssh-config" \
    "$scenario/tests" "$here/test_docker_provider.py" \
    --deselect "${t}test_every_service_comes_back_after_a_container_restart" \
    --deselect "${t}test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret" \
    --deselect "${t}test_the_optional_traffic_timer_runs_rounds_and_turns_off_again" \
    --deselect "${t}test_the_lab_table_keeps_its_rows_across_a_converge" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

reprovision() {
  LAB_ANSIBLE_VERBOSE=vvv vagrant_ provision >"$run/reprovision.log" || return 1
  recap_unchanged "$run/reprovision.log"
  log_line "reprovision: $(grep -cE '^(ok|changed): \[' "$run/reprovision.log") tasks run, changed=0"
  no_secret_in "$run/reprovision.log"
}

# verify.yml through its provisioner, against the fake API: every line must pass, no key printed.
verify() {
  vagrant_ provision --provision-with verify >"$run/verify.log" || { tail -n 60 "$run/verify.log" >&2; return 1; }
  grep -q 'All 8 checks passed' "$run/verify.log" || { echo "verify did not pass all 8 checks" >&2; return 1; }
  grep -E '^ +(passed|FAILED) ' "$run/verify.log" | awk '!seen[$0]++' | tee -a "$log"
  no_secret_in "$run/verify.log"
}

# The Vagrantfile's before-destroy trigger removes what the lab made in Datadog (keys are set here).
destroy() {
  local before id
  before=$(fake_resources)
  id=$(container_id)
  [ "$before" != "0 0 0" ] || { echo "the fake Datadog API holds none of the lab's resources before destroy" >&2; return 1; }
  stop_pid "$run/relay.pid"
  vagrant_ destroy -f
  ! docker container inspect "$id" >/dev/null 2>&1 || { echo "the container is left after destroy" >&2; return 1; }
  [ "$(fake_resources)" = "0 0 0" ] \
    || { echo "destroy left resources in the fake Datadog API: $(fake_resources) (before: $before)" >&2; return 1; }
  log_line "destroy: the trigger removed the lab's dashboards, monitors and downtimes ($before before)"
}

if [ $# -gt 0 ]; then
  # Some phases only, on the container a stopped run left (e.g. `run.sh testinfra verify`), no teardown.
  trap - EXIT
  for p in "$@"; do phase "$p" "$p"; done
  printf '%s\n' "${times[@]}" | column -t -s $'\t'
  exit 0
fi
phase prepare prepare
phase up up
# `vagrant up` = image build and boot + provision: split at the provisioner's first line.
provision_took=$(cat "$run/provision.took")
times[-1]="up (build, boot)	$(( $(cut -f2 <<<"${times[-1]}") - provision_took ))	ok"
times+=("provision (site.yml, in up)	$provision_took	ok")
phase intake intake
phase traffic traffic
phase testinfra testinfra
phase reprovision reprovision
phase verify verify
phase destroy destroy
