#!/usr/bin/env bash
# Benchmark (not a timed test): a playbook's cold converge on a fresh container of the test image,
# then two reruns on it, against the raw floor on another fresh container (the same packages in one
# apt-get install without recommended packages, as the roles install them, plus pip installs when
# given; no floor when APT PACKAGES is empty). Per strategy and run: floor, cold converge,
# cold/floor, the rerun's time at default verbosity, and the rerun's remote executions counted from
# a -vvv rerun. Prints each run's figures, then the medians, one figure a line, named by strategy.
# A failed converge, or a rerun that changes something, fails the script (stderr, exit 1).
# Usage: converge_vs_floor.sh PLAYBOOK "APT PACKAGES" ["PIP PACKAGES"]
#   e.g. converge_vs_floor.sh playbooks/database.yml "postgresql python3-psycopg2"
# Environment: BENCH_RUNS (default 3), BENCH_STRATEGIES (default linear; mitogen_linear needs Mitogen
# beside ansible-playbook), BENCH_LABEL (names the figures of a one-strategy call instead of the
# strategy), BENCH_DOCKER_ARGS (extra `docker run` arguments, e.g. a mounted apt repository),
# BENCH_FLOOR_PREP (shell run in the floor's container before the clock starts, e.g. an apt source),
# BENCH_GROUP_VARS (default inventory/group_vars; empty: none), BENCH_HOST_VARS and
# BENCH_LOCALHOST_VARS (host_vars files for the container's host, `lab`, and for the controller),
# BENCH_INVENTORY (one more inventory source), BENCH_ANSIBLE_ARGS, BENCH_LOGS (the folder for the
# converges' output, default .build/bench/DATE), BENCH_CONNECTION (default docker: the short name,
# which Mitogen takes over; under the default strategy Ansible routes it to community.docker.docker).
set -eEuo pipefail
trap 'echo "converge_vs_floor: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/../.."
playbook=$1 apt_pkgs=$2 pip_pkgs=${3:-}
runs=${BENCH_RUNS:-3} strategies=${BENCH_STRATEGIES:-linear}
image=${MOLECULE_IMAGE:-datadog-lab/debian:12}
name=lab-bench
work=$(mktemp -d)
# Each converge's output is kept for a look (profile_tasks adds each task's time).
logs=${BENCH_LOGS:-.build/bench/$(date +%Y%m%dT%H%M%S)}
mkdir -p "$logs"
trap 'docker rm -f $name >/dev/null 2>&1; rm -rf "$work"' EXIT
fail() { echo "converge_vs_floor: $*" >&2; exit 1; }
if [[ " $strategies " == *" mitogen_linear "* ]]; then
  "$(dirname "$(realpath "$(command -v ansible-playbook)")")/python" -c 'import ansible_mitogen' 2>/dev/null ||
    fail "BENCH_STRATEGIES has mitogen_linear, but Mitogen is not installed beside ansible-playbook"
fi

run_container() {
  docker rm -f $name >/dev/null 2>&1 || :
  docker run -d --name $name --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    --stop-signal SIGRTMIN+3 ${BENCH_DOCKER_ARGS:-} "$image" /lib/systemd/systemd >/dev/null
  until docker exec $name systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do sleep 0.2; done
}
# elapsed LOG CMD...: CMD's wall time in s; its output goes to LOG, and to stderr when it fails.
elapsed() { local log=$1 s; shift; s=$(date +%s.%N)
            "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$(basename "$log" .log) failed (output above, kept in $log)"; }
            awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
unchanged() {  # LOG: the run's recap has changed=0 and failed=0 on every host
  local recap; recap=$(sed -n '/^PLAY RECAP/,/^$/p' "$1")
  if ! grep -q 'ok=' <<<"$recap" || grep -Eq '(changed|failed|unreachable)=[1-9]' <<<"$recap"; then
    echo "$recap" >&2; fail "$(basename "$1" .log) changed something or failed (output kept in $1)"; fi
}
# Remote executions in a -vvv log, per host or Mitogen context, then the total.
# linear: each "<host> EXEC" line of the connection is one process started on the host (a module
#   run, with pipelining; a temp dir made or removed).
# mitogen: no EXEC lines; Mitogen keeps one Python per host and runs each module in it (or in a
#   fork of it) as a function call. With MITOGEN_LOG_LEVEL=debug its -vvv output logs every call
#   ("starting function call to CONTEXT: FUNCTION"): each call of ansible_mitogen.target.run_module
#   (a module run) or .exec_command (a command line, e.g. `raw`) is one execution. Calls that only
#   set up contexts, make or prune a temp dir, or forget a call chain are not counted: linear's
#   count has its temp dirs, Mitogen's has none of the new processes, so read it as module runs.
executions() {
  { grep -oE '^<[^>]+> (SSH: )?EXEC' "$1" | sed -E 's/^<([^>]+)>.*/\1/' || :
    grep -oE 'starting function call to [^:]+: ansible_mitogen\.target\.(run_module|exec_command)\(' "$1" |
      sed -E 's/^starting function call to ([^:]+):.*/\1/; s/^(fork|local)\.[0-9]+$/\1/' || :; } |
    sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2; t += $1 } END { printf " (total %d)", t }'
}
median() {  # FORMAT WORDS: the median of the numbers in WORDS, printed with FORMAT
  tr ' ' '\n' <<<"$2" | grep . | sort -g |
    awk -v f="$1" '{ v[NR] = $1 } END { printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mkdir -p "$work/inventory/host_vars"
group_vars=${BENCH_GROUP_VARS-inventory/group_vars}
[ -z "$group_vars" ] || ln -s "$(realpath "$group_vars")" "$work/inventory/group_vars"
[ -z "${BENCH_HOST_VARS:-}" ] || ln -s "$(realpath "$BENCH_HOST_VARS")" "$work/inventory/host_vars/lab.yml"
[ -z "${BENCH_LOCALHOST_VARS:-}" ] || ln -s "$(realpath "$BENCH_LOCALHOST_VARS")" "$work/inventory/host_vars/localhost.yml"
[ -z "${BENCH_INVENTORY:-}" ] || ln -s "$(realpath "$BENCH_INVENTORY")" "$work/inventory/extra.yml"
printf 'datadog_lab:\n  hosts:\n    lab:\n      ansible_connection: %s\n      ansible_host: %s\n' \
  "${BENCH_CONNECTION:-docker}" $name >"$work/inventory/hosts.yml"
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
playbook_run() { ansible-playbook -i "$work/inventory" "$playbook" ${BENCH_ANSIBLE_ARGS:-} "$@"; }

declare -A floor cold ratio rerun execs
for run in $(seq 1 "$runs"); do
  for strategy in $strategies; do
    label=${BENCH_LABEL:-${strategy%_linear}}
    log=$logs/$(tr ' ' - <<<"$label")-run$run
    export ANSIBLE_STRATEGY=$strategy
    line="$label run $run:"
    if [ -n "$apt_pkgs" ]; then
      run_container
      [ -z "${BENCH_FLOOR_PREP:-}" ] || docker exec $name sh -c "$BENCH_FLOOR_PREP"
      floor_cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $apt_pkgs >/dev/null"
      [ -z "$pip_pkgs" ] || floor_cmd+=" && python3 -m venv /opt/bench && /opt/bench/bin/pip install -q $pip_pkgs"
      f=$(elapsed "$log-floor.log" docker exec $name sh -c "$floor_cmd")
      floor[$label]+=" $f"
      line+=" floor $f s,"
    fi
    run_container
    c=$(elapsed "$log-cold.log" playbook_run)
    cold[$label]+=" $c"
    line+=" cold $c s,"
    if [ -n "$apt_pkgs" ]; then
      r=$(awk -v c="$c" -v f="$f" 'BEGIN { printf "%.2f", c / f }')
      ratio[$label]+=" $r"
      line+=" cold/floor ${r}x,"
    fi
    # The rerun that counts (its -vvv output, and Mitogen's debug log, have a cost of their own),
    # then the same rerun as a user runs it, timed.
    MITOGEN_LOG_LEVEL=debug elapsed "$log-rerun-vvv.log" playbook_run -vvv >/dev/null
    unchanged "$log-rerun-vvv.log"
    x=$(executions "$log-rerun-vvv.log")
    execs[$label]+=" $(grep -oE '[0-9]+\)$' <<<"$x" | tr -d ')')"
    t=$(elapsed "$log-rerun.log" playbook_run)
    unchanged "$log-rerun.log"
    rerun[$label]+=" $t"
    echo "$line rerun $t s, rerun remote executions: $x"
  done
done

for strategy in $strategies; do
  label=${BENCH_LABEL:-${strategy%_linear}}
  [ -z "$apt_pkgs" ] || echo "$label floor (apt${pip_pkgs:+ + pip}): $(median %.1f "${floor[$label]}") s"
  echo "$label cold: $(median %.1f "${cold[$label]}") s"
  [ -z "$apt_pkgs" ] || echo "$label cold/floor: $(median %.2f "${ratio[$label]}")x"
  echo "$label rerun: $(median %.1f "${rerun[$label]}") s"
  echo "$label rerun remote executions: $(median %g "${execs[$label]}")"
done
