# shellcheck shell=bash
# What the tests that drive the repo's own Vagrantfile share (sourced by tests/vm/run.sh and
# tests/docker-provider/run.sh): the default scenario's doubles and keys, phase bookkeeping, the
# testinfra suite over `vagrant ssh-config`, and the checks of a re-provision, verify and destroy.
#
# The sourcing script sets, before sourcing:
#   lab_repo   the repo            lab_test   its name in the log ("vm", "docker-provider")
#   lab_run    its run directory   log        its log file
#   lab_ns     an array: the command prefix that reaches the fake API's loopback (empty for none)
# and defines, before calling them:
#   vagrant_   vagrant, output to the terminal and $log
#   teardown   removes whatever the test made; run at the end, whatever happens
lab_scenario=$lab_repo/molecule/default

# Vagrant runs with this PATH less every folder that holds an ansible-playbook (the test tools' venv
# among them): the Vagrantfile's controller venv is what provisions. The test's own Ansible (intake,
# testinfra) is the tools' venv.
lab_bare_path=$(IFS=:; for d in $PATH; do [ -x "$d/ansible-playbook" ] || printf '%s:' "$d"; done)
lab_bare_path=${lab_bare_path%:}
export PATH=$lab_repo/.venv/bin:$PATH
export ANSIBLE_CONFIG=$lab_repo/ansible.cfg

# The default scenario's keys, read from its file, never retyped.
lab_yaml_value() { "$lab_repo/tests/harness/yaml-value" "$@"; }  # FILE KEY...
DD_API_KEY=$(lab_yaml_value "$lab_scenario/molecule.yml" provisioner env DD_API_KEY)
DD_APP_KEY=$(lab_yaml_value "$lab_scenario/molecule.yml" provisioner env DD_APP_KEY)
export DD_API_KEY DD_APP_KEY

lab_say() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$log"; }

# -- phase bookkeeping: each phase's time, printed at the end even when one fails ----------------
lab_times=()
lab_current=
phase() {  # NAME CMD...
  lab_current=$1
  shift
  local start=$SECONDS
  lab_say "== $lab_test $lab_current: start"
  "$@"
  lab_times+=("$lab_current	$((SECONDS - start))	ok")
  lab_say "== $lab_test $lab_current: ok in $((SECONDS - start)) s"
  lab_current=
}
lab_finish() {
  local rc=$? start=$SECONDS
  [ -z "$lab_current" ] || lab_times+=("$lab_current	-	FAILED")
  trap - EXIT
  if teardown; then
    lab_times+=("teardown	$((SECONDS - start))	ok")
  else
    lab_times+=("teardown	$((SECONDS - start))	FAILED")
    rc=1
  fi
  echo "== $lab_test test phase times (s); full log: $log"
  printf '%s\n' "${lab_times[@]}" | column -t -s $'\t'
  exit "$rc"
}

# With arguments, runs only those phases (function names) on what a stopped run left, with no
# teardown, and exits. Without, returns, and the phase times and teardown come at the exit.
lab_only_phases() {  # PHASE...
  [ $# -gt 0 ] || { trap lab_finish EXIT; return 0; }
  for p in "$@"; do phase "$p" "$p"; done
  printf '%s\n' "${lab_times[@]}" | column -t -s $'\t'
  exit 0
}

# `vagrant up ARGS`, which must run the `lab` provisioner through the controller venv; the time from
# the provisioner's first line to the end goes to $lab_run/provision.took.
lab_up() {  # ARGS...
  if PATH=$lab_bare_path command -v ansible-playbook >/dev/null; then
    echo "ansible-playbook is on the PATH vagrant runs with: the test would not prove the controller venv" >&2
    return 1
  fi
  rm -f "$lab_run/provision.start"
  vagrant_ up "$@" | while IFS= read -r line; do
    [[ $line == *"Running provisioner: lab (ansible)"* ]] && date +%s >"$lab_run/provision.start"
    printf '%s\n' "$line"
  done
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  [ -f "$lab_run/provision.start" ] || { echo "vagrant up did not run the ansible provisioner" >&2; return 1; }
  echo $(( $(date +%s) - $(cat "$lab_run/provision.start") )) >"$lab_run/provision.took"
}

# Splits the `up` phase's time at the provisioner's first line: LABEL for what came before.
lab_split_up_time() {  # LABEL
  local took
  took=$(cat "$lab_run/provision.took")
  lab_times[-1]="$1	$(( $(cut -f2 <<<"${lab_times[-1]}") - took ))	ok"
  lab_times+=("provision (site.yml, in up)	$took	ok")
}

# What the default scenario adds to an inventory directory DIR: its host_vars for the host `lab`,
# the controller's (LOCALHOST_VARS: where the fake API listens), and the agent stand-in's apt source.
lab_scenario_inventory() {  # DIR LOCALHOST_VARS
  mkdir -p "$1/host_vars"
  ln -sfn "$lab_scenario/host_vars/lab-default.yml" "$1/host_vars/lab.yml"
  ln -sfn "$2" "$1/host_vars/localhost.yml"
  ln -sfn "$lab_repo/tests/doubles/agent_standin/inventory.yml" "$1/agent_standin.yml"
}

# An inventory and SSH config for the machine as `vagrant ssh-config` describes it, with the
# scenario's inventory pieces, under $lab_run/testinfra; prints the directory.
lab_ssh_inventory() {  # LOCALHOST_VARS
  local dir=$lab_run/testinfra
  mkdir -p "$dir/inventory"
  vagrant_ ssh-config --host lab >"$dir/ssh-config"
  printf -- '---\ndatadog_lab:\n  hosts:\n    lab:\n      ansible_host: lab\n' >"$dir/inventory/hosts.yml"
  ln -sfn "$lab_repo/inventory/group_vars" "$dir/inventory/group_vars"
  lab_scenario_inventory "$dir/inventory" "$1"
  echo "$dir"
}

# pytest ARGS with testinfra over SSH, against the inventory DIR (lab_ssh_inventory's); Ansible
# (the suite's `lab` fixture, its playbook runs) reaches the machine through the same config. The
# suite finds the inventory, the project and its helpers the way it does under Molecule.
lab_pytest() {  # DIR PYTEST-ARGS...
  local dir=$1
  shift
  MOLECULE_EPHEMERAL_DIRECTORY=$dir MOLECULE_PROJECT_DIRECTORY=$lab_repo PYTHONPATH=$lab_repo/tests/testinfra \
    ANSIBLE_SSH_ARGS="-F $dir/ssh-config -o ControlMaster=auto -o ControlPersist=60s" \
    "${lab_ns[@]}" python3 -m pytest -p no:cacheprovider -v --sudo \
    --hosts=ansible://lab --ansible-inventory="$dir/inventory" --ssh-config="$dir/ssh-config" "$@" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

# The default scenario's whole-lab suite plus the test's own files, on inventory DIR. Left to the
# scenario's containers, which run them on the same roles: the container restart (the VM test's
# reload checks a reboot), check mode at -vvv (the re-provision runs at -vvv and must print no secret
# either), the traffic timer and its check mode, the table kept across a converge (the re-provision
# converges), and site.yml without the application key (two more whole runs).
# (--deselect takes node ids as pytest prints them: relative to the repo.)
lab_suite() {  # DIR TEST-FILE...
  local dir=$1 t=molecule/default/tests/test_lab.py::
  shift
  lab_pytest "$dir" "$lab_scenario/tests" "$@" \
    --deselect "${t}test_every_service_comes_back_after_a_container_restart" \
    --deselect "${t}test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret" \
    --deselect "${t}test_the_optional_traffic_timer_runs_rounds_and_turns_off_again" \
    --deselect "${t}test_the_lab_table_keeps_its_rows_across_a_converge" \
    --deselect "${t}test_check_mode_with_the_timer_asked_for_passes_before_its_units_exist" \
    --deselect "${t}test_without_the_application_key_the_host_converges_and_the_resources_are_skipped_in_one_line"
}

# Fails unless every host in the last PLAY RECAP of FILE has changed=0 and failed=0.
lab_recap_unchanged() {  # FILE
  local recap
  recap=$(awk '/^PLAY RECAP/ { r = "" } /^PLAY RECAP/, /^$/ { r = r $0 "\n" } END { printf "%s", r }' "$1")
  echo "$recap" | grep -q 'ok=' || { echo "no PLAY RECAP in $1" >&2; return 1; }
  if echo "$recap" | grep -E 'ok=' | grep -Ev 'changed=0 .*unreachable=0 +failed=0'; then
    echo "the re-provision changed something or failed (above)" >&2
    return 1
  fi
}

# Fails if FILE holds a key or the database password (it is generated into .secrets/ on first use).
lab_no_secret_in() {  # FILE
  local secret leaked=0
  for secret in "$DD_API_KEY" "$DD_APP_KEY" "$(cat "$lab_repo/.secrets/datadog_db_password" 2>/dev/null)"; do
    [ -n "$secret" ] || { echo "lab_no_secret_in: a secret to look for is empty" >&2; return 1; }
    grep -qF -- "$secret" "$1" && leaked=1
  done
  [ $leaked = 0 ] || { echo "a key or the database password is in $1" >&2; return 1; }
}

# A bare `vagrant provision` at -vvv (the `lab` provisioner): every host changed=0, no secret
# printed. Its output is $lab_run/reprovision.log.
lab_reprovision() {
  LAB_ANSIBLE_VERBOSE=vvv vagrant_ provision >"$lab_run/reprovision.log" || return 1
  lab_recap_unchanged "$lab_run/reprovision.log"
  lab_no_secret_in "$lab_run/reprovision.log"
}

# verify.yml through its provisioner, against the fake API: every line must pass, no key printed.
lab_verify() {
  vagrant_ provision --provision-with verify >"$lab_run/verify.log" || { tail -n 60 "$lab_run/verify.log" >&2; return 1; }
  grep -q 'All 11 checks passed' "$lab_run/verify.log" || { echo "verify did not pass all 11 checks" >&2; return 1; }
  grep -E '^ +(passed|FAILED) ' "$lab_run/verify.log" | awk '!seen[$0]++' | tee -a "$log"
  lab_no_secret_in "$lab_run/verify.log"
}

# How many dashboards, monitors and downtimes the fake Datadog API on PORT holds, e.g. "2 1 2" (a
# deleted downtime stays, canceled, as in Datadog: only those not canceled count).
lab_fake_resources() {  # PORT
  "${lab_ns[@]}" python3 -c 'import json, sys, urllib.request
state = json.load(urllib.request.urlopen("http://127.0.0.1:%s/fake/state" % sys.argv[1], timeout=10))
live = [d for d in state["downtimes"].values() if d["attributes"]["status"] != "canceled"]
print(len(state["dashboards"]), len(state["monitors"]), len(live))' "$1"
}

# `vagrant destroy -f`, whose before-destroy trigger must remove what the lab made in the fake
# Datadog API on PORT (the keys are set); then GONE (a command) must say the machine is gone.
lab_destroy() {  # PORT GONE...
  local port=$1 before
  shift
  before=$(lab_fake_resources "$port")
  [ "$before" != "0 0 0" ] || { echo "the fake Datadog API holds none of the lab's resources before destroy" >&2; return 1; }
  vagrant_ destroy -f
  "$@" || { echo "the machine is left after destroy" >&2; return 1; }
  [ "$(lab_fake_resources "$port")" = "0 0 0" ] \
    || { echo "destroy left resources in the fake Datadog API: $(lab_fake_resources "$port") (before: $before)" >&2; return 1; }
  lab_say "destroy: the trigger removed the lab's dashboards, monitors and downtimes ($before before)"
}

# The fake Datadog API on the loopback lab_ns reaches, on PORT, with fresh state; its pid goes to
# $lab_run/fake_datadog_api.pid.
lab_start_fake_api() {  # PORT
  rm -f "$lab_run/fake_datadog_api.json"
  "${lab_ns[@]}" python3 "$lab_repo/tests/doubles/fake_datadog_api/server.py" --port "$1" \
    --state "$lab_run/fake_datadog_api.json" >"$lab_run/fake_datadog_api.log" 2>&1 &
  echo $! >"$lab_run/fake_datadog_api.pid"
  for _ in $(seq 1 50); do grep -q listening "$lab_run/fake_datadog_api.log" && return 0; sleep 0.2; done
  echo "the fake Datadog API did not start:" >&2
  cat "$lab_run/fake_datadog_api.log" >&2
  return 1
}
