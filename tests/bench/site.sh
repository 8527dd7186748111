#!/usr/bin/env bash
# Benchmark (not a timed test) of the lab, both strategies side by side: site.yml under linear (the
# default) and mitogen_linear, each on fresh Debian 12 containers: the raw floor (one apt-get install
# of the same packages plus the app's pip install), the cold converge, cold/floor, a rerun's time and
# its remote executions (tests/bench/converge_vs_floor.sh). Then the postgresql role alone
# (playbooks/database.yml, linear), cold and rerun, beside geerlingguy.postgresql set up the same way
# (server, user datadog with a password, database new_db). Medians of BENCH_RUNS runs (default 3),
# after each run's figures; each converge's output is kept in .build/bench/site-DATE/.
# Doubles: the agent stand-in's repository at /srv/standin-apt, the fake Datadog API on 127.0.0.1.
# Needs `make setup standin` (Mitogen comes with the venv). geerlingguy's role is taken from
# BENCH_GEERLINGGUY_ROLE (default .build/bench/geerlingguy.postgresql, git-ignored, a copy of
# github.com/geerlingguy/ansible-role-postgresql); without it, its recorded figures are printed.
# Usage: [BENCH_RUNS=3] [BENCH_API_PORT=18080: the fake API's, the scenario's by default] tests/bench/site.sh
set -eEuo pipefail
trap 'echo "site.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/../.."
scenario=molecule/default
value() { tests/harness/yaml-value "$@"; }  # FILE KEY...: a scenario value, never retyped
repo=$PWD/.build/standin-apt
[ -f "$repo/dists/stable/InRelease" ] || { echo "site.sh: $repo is missing: run make standin" >&2; exit 1; }
export PATH=$PWD/.venv/bin:$PATH
DD_API_KEY=$(value $scenario/molecule.yml provisioner env DD_API_KEY)
DD_APP_KEY=$(value $scenario/molecule.yml provisioner env DD_APP_KEY)
export DD_API_KEY DD_APP_KEY
geerlingguy=${BENCH_GEERLINGGUY_ROLE:-.build/bench/geerlingguy.postgresql}
export BENCH_LOGS=.build/bench/site-$(date +%Y%m%dT%H%M%S)  # every converge's output, and site.out
mkdir -p "$BENCH_LOGS"
out=$BENCH_LOGS/site.out  # every figure of this run: each run's as it comes, the medians at the end
runs_only() { grep -E ' run [0-9]+:' || :; }

work=$(mktemp -d)
: >"$work/api.log"
api_port=${BENCH_API_PORT:-$(value $scenario/host_vars/localhost.yml lab_fake_api_port)}
python3 tests/doubles/fake_datadog_api/server.py --port "$api_port" --state "$work/state.json" >"$work/api.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null; rm -rf "$work"' EXIT
until grep -q listening "$work/api.log"; do kill -0 $api || { cat "$work/api.log" >&2; exit 1; }; sleep 0.2; done

# The whole lab: the packages site.yml installs (the postgresql, datadog and flask_app roles), and the app's pins.
export BENCH_DOCKER_ARGS="-v $repo:/srv/standin-apt:ro"
export BENCH_FLOOR_PREP="echo 'deb [trusted=yes] file:/srv/standin-apt stable 7' >/etc/apt/sources.list.d/standin.list"
export BENCH_HOST_VARS=$scenario/host_vars/lab-default.yml BENCH_LOCALHOST_VARS=$scenario/host_vars/localhost.yml
export BENCH_INVENTORY=tests/doubles/agent_standin/inventory.yml
BENCH_STRATEGIES="linear mitogen_linear" BENCH_ANSIBLE_ARGS="-e lab_fake_api_port=$api_port" tests/bench/converge_vs_floor.sh site.yml \
  "postgresql python3-psycopg2 acl gpg ca-certificates datadog-signing-keys datadog-agent python3-venv python3-packaging" \
  "$(grep -v '^#' roles/flask_app/files/requirements.txt | tr '\n' ' ')" | tee "$out" | runs_only

# The postgresql role alone, and geerlingguy.postgresql doing the same on Debian 12 (its README and
# defaults): python3-psycopg2, and C.UTF-8 for new_db since the image has no other locale.
BENCH_LABEL="postgresql role" tests/bench/converge_vs_floor.sh playbooks/database.yml "" | tee -a "$out" | runs_only
if [ -f "$geerlingguy/tasks/main.yml" ]; then
  cat >"$work/geerlingguy.yml" <<EOF
- name: geerlingguy.postgresql with the lab's database and monitoring user
  hosts: datadog_lab
  become: true
  vars:
    ansible_python_interpreter: /usr/bin/python3
    postgresql_python_library: python3-psycopg2
    postgresql_locales: []
    postgresql_users:
      - {name: datadog, password: bench-datadog-password}
    postgresql_databases:
      - {name: new_db, lc_collate: C.UTF-8, lc_ctype: C.UTF-8}
  pre_tasks:
    - name: Apt lists (a fresh container has none)
      ansible.builtin.apt:
        update_cache: true
        cache_valid_time: 3600
      changed_when: false
  roles:
    - role: $(realpath "$geerlingguy")
EOF
  BENCH_LABEL=geerlingguy.postgresql BENCH_GROUP_VARS="" BENCH_HOST_VARS="" BENCH_LOCALHOST_VARS="" BENCH_INVENTORY="" \
    tests/bench/converge_vs_floor.sh "$work/geerlingguy.yml" "" | tee -a "$out" | runs_only
else
  printf '%s\n' "geerlingguy.postgresql cold: 37.1 s (recorded on this kind of machine, not measured: no $geerlingguy)" \
    "geerlingguy.postgresql rerun: 11.8 s (recorded on this kind of machine, not measured)" >>"$out"
fi

echo; echo "Medians of ${BENCH_RUNS:-3} run(s):"
grep -vE ' run [0-9]+:' "$out"
