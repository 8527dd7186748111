#!/usr/bin/env bash
# Benchmark (not a timed test) of the whole lab: site.yml's cold and second converge on fresh
# containers against the raw floor, one apt-get install of the same packages plus the app's pip
# install (tests/bench/converge_vs_floor.sh). The doubles are the default scenario's: the agent
# stand-in's repository mounted at /srv/standin-apt, the fake Datadog API on 127.0.0.1, test keys.
# Needs `make setup standin`.   Usage: tests/bench/site.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=molecule/default
value() { tests/harness/yaml-value "$@"; }  # FILE KEY...: a scenario value, never retyped
repo=$PWD/.build/standin-apt
[ -f "$repo/dists/stable/InRelease" ] || { echo "site.sh: $repo is missing: run make standin" >&2; exit 1; }
export PATH=$PWD/.venv/bin:$PATH
DD_API_KEY=$(value $scenario/molecule.yml provisioner env DD_API_KEY)
DD_APP_KEY=$(value $scenario/molecule.yml provisioner env DD_APP_KEY)
export DD_API_KEY DD_APP_KEY

api_dir=$(mktemp -d)
: >"$api_dir/log"
python3 tests/doubles/fake_datadog_api/server.py --port "$(value $scenario/host_vars/localhost.yml lab_fake_api_port)" \
  --state "$api_dir/state.json" >"$api_dir/log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null; rm -rf "$api_dir"' EXIT
until grep -q listening "$api_dir/log"; do kill -0 $api || { cat "$api_dir/log" >&2; exit 1; }; sleep 0.2; done

# The packages site.yml installs (the postgresql, datadog and flask_app roles), and the app's pins.
export BENCH_DOCKER_ARGS="-v $repo:/srv/standin-apt:ro"
export BENCH_FLOOR_PREP="echo 'deb [trusted=yes] file:/srv/standin-apt stable 7' >/etc/apt/sources.list.d/standin.list"
export BENCH_HOST_VARS=$scenario/host_vars/lab-default.yml BENCH_LOCALHOST_VARS=$scenario/host_vars/localhost.yml
export BENCH_INVENTORY=tests/doubles/agent_standin/inventory.yml
tests/bench/converge_vs_floor.sh site.yml \
  "postgresql python3-psycopg2 acl gpg ca-certificates datadog-signing-keys datadog-agent python3-venv python3-packaging" \
  "$(grep -v '^#' roles/flask_app/files/requirements.txt | tr '\n' ' ')"
