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
# LAB_TEST_ARCH=arm64 runs it all on an arm64 lab host, as an Apple Silicon Mac runs the lab: under
# emulation (`make images-arm64`: qemu-user-static in binfmt_misc, the base datadog-lab/debian:12-arm64),
# with the agent stand-in's arm64 packages; its own Vagrant state and log under
# .build/docker-provider-arm64. The boot-failure phase is the amd64 run's alone (the boot watch is the
# Vagrantfile's, the same on every architecture). Both name the container datadog-lab, as the
# Vagrantfile does: run one at a time (tests/harness/test.sh takes a lock around each).
#
# With arguments, runs only those phases (their function names) on what a stopped run left, e.g.
# `run.sh prepare up intake` then `run.sh testinfra`; `run.sh teardown` cleans up.
set -euo pipefail
cd "$(dirname "$0")/../.."
lab_repo=$PWD
arch=${LAB_TEST_ARCH:-amd64}
case $arch in
  amd64) machine=x86_64 default_base=datadog-lab/debian:12 lab_test=docker-provider images=images ;;
  arm64) machine=aarch64 default_base=datadog-lab/debian:12-arm64 lab_test=docker-provider-arm64 images=images-arm64 ;;
  *) echo "LAB_TEST_ARCH must be amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
here=$lab_repo/tests/docker-provider
build=$lab_repo/.build/$lab_test
lab_run=$build/run
log=$build/run.log
lab_ns=()
mkdir -p "$lab_run"
: >"$log"
# shellcheck source=tests/harness/vagrant-test.sh
. tests/harness/vagrant-test.sh

# Vagrant's state for the test, away from the user's ~/.vagrant.d and the repo's .vagrant/.
export VAGRANT_HOME=$build/vagrant.d
export VAGRANT_DOTFILE_PATH=$build/dot-vagrant
export VAGRANT_CHECKPOINT_DISABLE=1
export LAB_DOCKER_BASE=${LAB_DOCKER_BASE:-$default_base}
export LAB_DOCKER_STANDIN_REPO=$lab_repo/.build/standin-apt
# Settings come from this script and its own .env file (written by prepare), never from a
# developer's .env.
export LAB_ENV_FILE=$lab_run/lab.env
machine_id_file=$VAGRANT_DOTFILE_PATH/machines/lab/docker/id
# LAB_CPUS and LAB_MEMORY (--cpus, --memory) need the engine's cpu and memory controllers: set where
# it has them, left unset where it has none (the lab's own cgroup v2 engine on these machines).
if [ "$(docker info --format '{{.CPUCfsQuota}} {{.MemoryLimit}}' 2>/dev/null)" = "true true" ]; then
  export LAB_CPUS=${LAB_CPUS:-2} LAB_MEMORY=${LAB_MEMORY:-2048}
  lab_limits="LAB_CPUS=$LAB_CPUS LAB_MEMORY=$LAB_MEMORY (--cpus, --memory)"
else
  unset LAB_CPUS LAB_MEMORY
  lab_limits="LAB_CPUS and LAB_MEMORY left unset: this engine's cgroups have no cpu or memory controller"
fi
# This test's fake API port (the controller's host_vars), read from its file, never retyped.
localhost_vars=$here/host_vars/localhost.yml
fake_api_port=$(lab_yaml_value "$localhost_vars" lab_fake_api_port)

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
  stop_pid "$lab_run/relay.pid"
  stop_pid "$lab_run/fake_datadog_api.pid"
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

# The testinfra inventory (lab_ssh_inventory), which must reach the container at 127.0.0.1 (the
# published port); prints the directory.
ssh_inventory() {
  local dir
  dir=$(lab_ssh_inventory "$localhost_vars")
  grep -qx '  HostName 127.0.0.1' "$dir/ssh-config" \
    || { echo "vagrant ssh-config does not point at 127.0.0.1:" >&2; cat "$dir/ssh-config" >&2; return 1; }
  echo "$dir"
}

container_gone() { ! docker container inspect "$1" >/dev/null 2>&1; }  # ID

# -- phases ----------------------------------------------------------------------------------------
prepare() {
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers (make engine)" >&2; return 1; }
  echo "docker provider: $(docker info --format 'Docker {{.ServerVersion}}, Cgroup Version: {{.CgroupVersion}}'); $lab_limits" \
    | tee -a "$log"
  docker image inspect "$LAB_DOCKER_BASE" >/dev/null 2>&1 \
    || { echo "no image $LAB_DOCKER_BASE (make $images)" >&2; return 1; }
  local flags
  flags=$(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null) || flags=
  if [ "$arch" = arm64 ] && [[ $flags != *C* || $flags != *F* ]]; then
    echo "arm64 binaries can't run here as the lab needs them (binfmt_misc's qemu-aarch64 with flags C and F):" \
      "run tests/harness/arm64-emulation.sh (make images-arm64)" >&2
    return 1
  fi
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
  lab_scenario_inventory "$VAGRANT_DOTFILE_PATH/provisioners/ansible/inventory" "$localhost_vars"
  lab_start_fake_api "$fake_api_port"
}

up() {
  lab_up --provider=docker
}

# The lab host runs the architecture asked for: the kernel's machine (aarch64 through binfmt_misc
# for arm64) and dpkg's, which chose the agent stand-in's packages.
architecture() {
  local got
  got=$(vagrant_ ssh -c 'printf "%s %s\n" "$(uname -m)" "$(dpkg --print-architecture)"' | tail -1)
  lab_say "lab host: uname -m = ${got% *}, dpkg architecture = ${got#* }"
  [ "$got" = "$machine $arch" ] || { echo "the lab host is '$got', not '$machine $arch'" >&2; return 1; }
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
    "$lab_scenario/intake.yml" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  python3 tests/harness/exec_relay.py --container "$(container_id)" --port "$fake_api_port" \
    >"$lab_run/relay.log" 2>&1 &
  echo $! >"$lab_run/relay.pid"
  vagrant_ ssh -c 'sudo systemctl restart datadog-agent'
}

traffic() {
  vagrant_ provision --provision-with traffic
}

# The default scenario's whole-lab suite over SSH, as the VM test runs it, plus what is the Docker
# provider's own (test_docker_provider.py).
testinfra() {
  local dir
  dir=$(ssh_inventory)
  LAB_DOCKER_CONTAINER=$(container_id) LAB_TEST_ARCH=$arch lab_suite "$dir" "$here/test_docker_provider.py"
}

reprovision() {
  lab_reprovision
  lab_say "reprovision: $(grep -cE '^(ok|changed): \[' "$lab_run/reprovision.log") tasks run, changed=0"
}

# The relay goes first: the container it relays to is about to.
destroy() {
  local id
  id=$(container_id)
  stop_pid "$lab_run/relay.pid"
  lab_destroy "$fake_api_port" container_gone "$id"
}

# A base whose systemd can't boot (tests/doubles/unbootable_systemd): `vagrant up` must stop within
# about two minutes of the container's start, with the cause and the fix, not loop on SSH. Its own
# Vagrant state; after destroy, so that the lab's container (same name) is gone.
boot_failure() {
  local base=datadog-lab/unbootable-systemd:test dot=$build/dot-vagrant-boot start took rc=0 out
  docker build -q -t "$base" tests/doubles/unbootable_systemd >/dev/null
  start=$SECONDS
  # The controller venv the lab's run built (a new state folder would build another).
  VAGRANT_DOTFILE_PATH=$dot LAB_DOCKER_BASE=$base LAB_ANSIBLE_PLAYBOOK=$VAGRANT_DOTFILE_PATH/controller-2.19/bin/ansible-playbook \
    vagrant_ up --provider=docker >"$lab_run/boot_failure.log" || rc=$?
  took=$((SECONDS - start))
  out=$(tr -s ' \n' ' ' <"$lab_run/boot_failure.log")
  VAGRANT_DOTFILE_PATH=$dot vagrant_ destroy -f >/dev/null
  docker image rm "$base" >/dev/null
  rm -rf "$dot"
  [ "$rc" != 0 ] || { echo "vagrant up succeeded on a base that can't boot" >&2; return 1; }
  [[ $out == *"The lab's container can't boot: systemd can't write its cgroup"* ]] \
    || { echo "vagrant up did not say why the container can't boot:" >&2; tail -20 "$lab_run/boot_failure.log" >&2; return 1; }
  [[ $out == *"LAB_DOCKER_BASE=debian:12"* ]] || { echo "the message names no fix" >&2; return 1; }
  lab_say "boot failure: vagrant up stopped in $took s (image build included), with: $(grep -o "The lab's container can't boot[^.]*" "$lab_run/boot_failure.log" | head -1)"
  # The watch gives systemd 90 s from the container's start; the build before it takes under a minute.
  [ "$took" -le 240 ] || { echo "vagrant up took $took s to give up" >&2; return 1; }
}

lab_only_phases "$@"
phase prepare prepare
phase up up
lab_split_up_time "up (build, boot)"
phase architecture architecture
phase intake intake
phase traffic traffic
phase testinfra testinfra
phase reprovision reprovision
phase verify lab_verify
phase destroy destroy
[ "$arch" != amd64 ] || phase boot_failure boot_failure
