#!/usr/bin/env bash
# The test command's checks, after `make setup standin` (the Makefile's `test` target runs this):
# lint (under both ansible-core lanes), vagrant validate (with the vagrant that setup's host-tools
# installed), unit tests, every Molecule scenario, the whole lab again on SECOND_IMAGE, the
# scenarios of the 2.16 lane (bionic) with its tools venv, the Docker-provider test, and, in the
# background, the Docker-provider test on arm64 then the VM test.
# Those two spend most of their time in emulation (qemu-user for arm64, a one-core TCG guest for the
# VM), so they run one after the other beside the foreground steps; their logs are
# .build/docker-provider-arm64/test.log and .build/vm/test.log, and their phase times are printed at
# the end. The two Docker-provider tests take turns (a lock: both name their container datadog-lab).
# If a foreground step fails, the background is stopped and torn down.
# Environment (from the Makefile): SCENARIOS, SCENARIOS_216, SECOND_IMAGE, VM_TEST (1 or 0),
# DOCKER_PROVIDER_TEST (1 or 0), ARM64_TEST (1 or 0), VENV_216.
set -euo pipefail
cd "$(dirname "$0")/../.."
step=tests/harness/step.sh
vm_log=.build/vm/test.log
arm64_log=.build/docker-provider-arm64/test.log
background=

# The Docker-provider test with ENV (e.g. LAB_TEST_ARCH=arm64) as step NAME, once the other one is done.
docker_provider() {  # NAME ENV...
  local name=$1 rc=0
  shift
  $step "$name" flock -o -w 2400 -E 75 .build/docker-provider.lock env "$@" tests/docker-provider/run.sh || rc=$?
  [ $rc != 75 ] || echo "== $name: the other Docker-provider test held .build/docker-provider.lock for 40 minutes" >&2
  return $rc
}

# The background's steps, one after the other; fails if one failed.
run_background() {
  local rc=0
  if [ "${ARM64_TEST:-1}" = 1 ]; then
    docker_provider "docker provider on arm64 (emulated, in the background)" LAB_TEST_ARCH=arm64 \
      >"$arm64_log" 2>&1 || rc=1
  fi
  if [ "${VM_TEST:-1}" = 1 ]; then
    $step "vm test (vagrant up on libvirt, in the background)" tests/vm/run.sh >"$vm_log" 2>&1 || rc=1
  fi
  return $rc
}

# Stops the background's process group (or, if it has not made its own yet, the background itself)
# and tears down what its tests made. Their exit statuses (a killed one says 143) are not the point.
stop_background() {
  [ -n "$background" ] || return 0
  local rc=0
  kill -TERM -- "-$background" 2>/dev/null || kill -TERM "$background" 2>/dev/null || rc=$?
  wait "$background" 2>/dev/null || rc=$?
  # Its tests' own exit traps may still be cleaning up: give them 30 s.
  for _ in $(seq 1 30); do pgrep -g "$background" >/dev/null || break; sleep 1; done
  background=
  echo "== background stopped; tearing down its tests"
  if [ "${ARM64_TEST:-1}" = 1 ]; then
    LAB_TEST_ARCH=arm64 tests/docker-provider/run.sh teardown >/dev/null 2>&1 || echo "== arm64 teardown failed" >&2
  fi
  if [ "${VM_TEST:-1}" = 1 ]; then
    tests/vm/teardown.sh || echo "== vm teardown failed" >&2
  fi
  return 0
}
trap stop_background EXIT

if [ "${ARM64_TEST:-1}" = 1 ] || [ "${VM_TEST:-1}" = 1 ]; then
  mkdir -p "$(dirname "$vm_log")" "$(dirname "$arm64_log")"
  echo "== background from $(date +%T):$([ "${ARM64_TEST:-1}" != 1 ] || echo " the arm64 Docker-provider test ($arm64_log)")$([ "${VM_TEST:-1}" != 1 ] || echo " the VM test ($vm_log)")"
  # A process group of its own (setsid: a shell without a terminal has no job control), so that
  # stopping it stops every process it started.
  export step arm64_log vm_log
  export -f run_background docker_provider
  setsid bash -c run_background &
  background=$!
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
  docker_provider "docker provider (vagrant up --provider=docker)" LAB_TEST_ARCH=amd64
fi

if [ -n "$background" ]; then
  echo "== background: waiting for it"
  rc=0
  wait "$background" || rc=$?
  background=
  # Each log's phase times, or its end when a phase failed or it has none.
  for f in "$arm64_log" "$vm_log"; do
    [ -f "$f" ] || continue
    times=$(sed -n '/ test phase times/,$p' "$f")
    if [ -n "$times" ] && ! grep -q FAILED <<<"$times"; then echo "$times"; else tail -n 150 "$f"; fi
  done
  [ $rc = 0 ] || exit $rc
fi
$step --summary
