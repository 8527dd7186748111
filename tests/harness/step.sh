#!/usr/bin/env bash
# Runs one step of the test command and prints its wall time; `--summary` prints them all.
set -uo pipefail
log=${STEP_LOG:-.build/steps.log}
mkdir -p "$(dirname "$log")"
if [ "${1:-}" = "--summary" ]; then
  echo "== step times (s) =="; column -t -s $'\t' "$log"; rm -f "$log"; exit 0
fi
name=$1; shift
echo "== $name: start $(date +%T)"
start=$(date +%s)
"$@"; rc=$?
took=$(( $(date +%s) - start ))
printf '%s\t%s\t%s\n' "$name" "$took" "$([ $rc = 0 ] && echo ok || echo FAILED)" >>"$log"
echo "== $name: $([ $rc = 0 ] && echo ok || echo FAILED) in ${took} s"
exit $rc
