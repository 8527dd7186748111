#!/usr/bin/env bash
# The test command's checks, after `make setup standin` (the Makefile's `test` target runs this):
# lint (under both ansible-core lanes), vagrant validate (with the vagrant that setup's host-tools
# installed), unit tests, every Molecule scenario, the whole lab again on SECOND_IMAGE, the
# scenarios of the 2.16 lane (bionic) with its tools venv, the Docker-provider test, and the VM test.
# The VM test spends most of its time waiting on an emulated guest (one core), so it runs in the
# background beside the others; its log is .build/vm/test.log, and its phase times are printed at
# the end. If a foreground step fails, the VM test is stopped and torn down.
# Environment (from the Makefile): SCENARIOS, SCENARIOS_216, SECOND_IMAGE, VM_TEST (1 or 0),
# DOCKER_PROVIDER_TEST (1 or 0), VENV_216.
set -euo pipefail
cd "$(dirname "$0")/../.."
step=tests/harness/step.sh
vm_log=.build/vm/test.log
vm=

stop_vm() {
  [ -n "$vm" ] || return 0
  kill "$vm" 2>/dev/null && { wait "$vm" 2>/dev/null; tests/vm/teardown.sh; }
  return 0
}
trap stop_vm EXIT

if [ "${VM_TEST:-1}" = 1 ]; then
  mkdir -p "$(dirname "$vm_log")"
  echo "== vm test: runs in the background from $(date +%T); log: $vm_log"
  $step "vm test (vagrant up on libvirt, in the background)" tests/vm/run.sh >"$vm_log" 2>&1 &
  vm=$!
fi

echo "== docker engine for the container lanes: $(docker info --format \
  'Docker {{.ServerVersion}}, Cgroup Version: {{.CgroupVersion}}' 2>&1) (${DOCKER_HOST:-default socket})"
$step lint make --no-print-directory lint
$step "lint (ansible-core 2.16)" make --no-print-directory lint-2.16
$step "vagrant validate" make --no-print-directory vagrant-validate
$step unit make --no-print-directory unit
for s in ${SCENARIOS:-}; do $step "molecule $s" molecule test -s "$s"; done
if [ -n "${SECOND_IMAGE:-}" ]; then
  $step "molecule default on $SECOND_IMAGE" env MOLECULE_IMAGE="$SECOND_IMAGE" molecule test -s default
fi
for s in ${SCENARIOS_216:-}; do
  $step "molecule $s (ansible-core 2.16)" env PATH="$PWD/${VENV_216:-.venv-2.16}/bin:$PATH" molecule test -s "$s"
done
if [ "${DOCKER_PROVIDER_TEST:-1}" = 1 ]; then
  $step "docker provider (vagrant up --provider=docker)" tests/docker-provider/run.sh
fi

if [ -n "$vm" ]; then
  echo "== vm test: waiting for it ($vm_log)"
  rc=0
  wait "$vm" || rc=$?
  vm=
  if [ $rc != 0 ]; then tail -n 150 "$vm_log"; else sed -n '/== vm test phase times/,$p' "$vm_log"; fi
  [ $rc = 0 ] || exit $rc
fi
$step --summary
