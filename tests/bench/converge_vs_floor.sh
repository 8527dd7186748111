#!/usr/bin/env bash
# Benchmark (not a timed test): a playbook's cold converge on a fresh container of the test image,
# then two reruns on it (at -vvv, and at default verbosity), against the raw floor on another fresh
# container: the same packages in one apt-get install (plus pip installs when given), without
# recommended packages as the roles install them. Prints the times, the cold/floor ratio, and the
# -vvv converges' remote executions (every module run, temp dir and cleanup is one: counted from
# the connection's -vvv EXEC lines, per host).
# Usage: converge_vs_floor.sh PLAYBOOK "APT PACKAGES" ["PIP PACKAGES"]
#   e.g. converge_vs_floor.sh playbooks/database.yml "postgresql python3-psycopg2"
# Environment: BENCH_DOCKER_ARGS (extra `docker run` arguments, e.g. a mounted apt repository),
# BENCH_FLOOR_PREP (shell run in the floor's container before the clock starts, e.g. an apt
# source), BENCH_HOST_VARS and BENCH_LOCALHOST_VARS (host_vars files for the container's host,
# `lab`, and for the controller), BENCH_INVENTORY (one more inventory source), BENCH_ANSIBLE_ARGS,
# BENCH_CONNECTION (default community.docker.docker, Molecule's; community.docker.docker_api skips
# the docker CLI).
set -euo pipefail
cd "$(dirname "$0")/../.."
playbook=$1 apt_pkgs=$2 pip_pkgs=${3:-}
image=${MOLECULE_IMAGE:-datadog-lab/debian:12}
name=lab-bench
work=$(mktemp -d)
logs=.build/bench  # each converge's output, kept for a look (profile_tasks adds each task's time)
mkdir -p "$logs"
trap 'docker rm -f $name >/dev/null 2>&1; rm -rf "$work"' EXIT

run_container() {
  docker rm -f $name >/dev/null 2>&1 || :
  docker run -d --name $name --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    --stop-signal SIGRTMIN+3 ${BENCH_DOCKER_ARGS:-} "$image" /lib/systemd/systemd >/dev/null
  until docker exec $name systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do sleep 0.2; done
}
elapsed() { local s=$(date +%s.%N); "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log" >&2; exit 1; }
            awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { print e - s }'; }

run_container
[ -z "${BENCH_FLOOR_PREP:-}" ] || docker exec $name sh -c "$BENCH_FLOOR_PREP"
floor_cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $apt_pkgs >/dev/null"
[ -n "$pip_pkgs" ] && floor_cmd+=" && python3 -m venv /opt/bench && /opt/bench/bin/pip install -q $pip_pkgs"
floor=$(elapsed docker exec $name sh -c "$floor_cmd")

run_container
mkdir -p "$work/inventory/host_vars"
ln -s "$PWD/inventory/group_vars" "$work/inventory/group_vars"
[ -z "${BENCH_HOST_VARS:-}" ] || ln -s "$(realpath "$BENCH_HOST_VARS")" "$work/inventory/host_vars/lab.yml"
[ -z "${BENCH_LOCALHOST_VARS:-}" ] || ln -s "$(realpath "$BENCH_LOCALHOST_VARS")" "$work/inventory/host_vars/localhost.yml"
[ -z "${BENCH_INVENTORY:-}" ] || ln -s "$(realpath "$BENCH_INVENTORY")" "$work/inventory/extra.yml"
printf 'datadog_lab:\n  hosts:\n    lab:\n      ansible_connection: %s\n      ansible_host: %s\n' \
  "${BENCH_CONNECTION:-community.docker.docker}" $name >"$work/inventory/hosts.yml"
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
if [ "${BENCH_STRATEGY:-}" = mitogen ]; then
  mitogen=$("${BENCH_MITOGEN_VENV:-.build/bench-mitogen}/bin/python" -c \
    'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')/plugins/strategy
  export ANSIBLE_STRATEGY_PLUGINS=$mitogen ANSIBLE_STRATEGY=mitogen_linear
  PATH=$(realpath "${BENCH_MITOGEN_VENV:-.build/bench-mitogen}")/bin:$PATH
fi
# Remote executions per host: each "<host> EXEC" line of the connection at -vvv is one.
executions() { grep -oE '^<[^>]+> (SSH: )?EXEC' "$1" | sed -E 's/^<([^>]+)>.*/\1/' | sort | uniq -c |
               awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2; t += $1 } END { printf " (total %d)", t }'; }
cold=$(elapsed ansible-playbook -vvv -i "$work/inventory" "$playbook" ${BENCH_ANSIBLE_ARGS:-})
cp "$work/out.log" "$logs/cold.log"
second=$(elapsed ansible-playbook -vvv -i "$work/inventory" "$playbook" ${BENCH_ANSIBLE_ARGS:-})
cp "$work/out.log" "$logs/second.log"
# The same rerun as a user runs it: -vvv's output has a cost of its own.
third=$(elapsed ansible-playbook -i "$work/inventory" "$playbook" ${BENCH_ANSIBLE_ARGS:-})
cp "$work/out.log" "$logs/third.log"
for run in second third; do
  recap=$(sed -n '/^PLAY RECAP/,$p' "$logs/$run.log")
  if ! grep -q 'ok=' <<<"$recap" || grep -Eq 'changed=[1-9]|failed=[1-9]' <<<"$recap"; then
    echo "the $run converge changed something or failed:"; echo "$recap"; fi
done

printf 'raw floor (apt%s): %.1f s\ncold converge: %.1f s, remote executions: %s\nsecond converge: %.1f s, remote executions: %s\nthird converge (default verbosity): %.1f s\nratio cold/floor: %.2f\n' \
  "${pip_pkgs:+ + pip}" "$floor" "$cold" "$(executions "$logs/cold.log")" "$second" "$(executions "$logs/second.log")" \
  "$third" "$(awk -v c="$cold" -v f="$floor" 'BEGIN { print c / f }')"
