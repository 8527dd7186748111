#!/usr/bin/env bash
# The controller's own Ansible, so that `vagrant up` needs nothing installed beforehand but Vagrant,
# a provider and python3: a venv per lane (2.16 or 2.19) made once from controller/requirements-LANE.txt,
# reused while that file is unchanged, rebuilt when it changes. The Vagrantfile calls this before
# provisioning; it can also be run by hand. Prints the venv's path last.
#   controller/venv.sh LANE [VENV_DIR]      default VENV_DIR: .vagrant/controller-LANE
#   LAB_CONTROLLER_PYTHON=/path/to/python3  the interpreter to build it with (default: the newest
#                                           python3.X on PATH that the lane supports)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lane=${1:?usage: controller/venv.sh 2.16|2.19 [VENV_DIR]}
case $lane in
  2.16) supported="3.12 3.11 3.10" ;;  # ansible-core 2.16.19's controller Pythons
  2.19) supported="3.13 3.12 3.11" ;;  # ansible-core 2.19's
  *) echo "controller: lane must be 2.16 or 2.19, not '$lane'" >&2; exit 2 ;;
esac
pins=$root/controller/requirements-$lane.txt
venv=${2:-$root/.vagrant/controller-$lane}
stamp=$venv/.pins-sha256
want=$(sha256sum "$pins" | cut -d' ' -f1)

if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "controller: ansible-core $lane lane ready in $venv" >&2
  echo "$venv"
  exit 0
fi

version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
python=${LAB_CONTROLLER_PYTHON:-}
if [ -z "$python" ]; then
  for v in $supported; do
    for candidate in "python$v" python3; do
      if command -v "$candidate" >/dev/null && [ "$(version_of "$candidate")" = "$v" ]; then
        python=$candidate
        break 2
      fi
    done
  done
fi
if [ -z "$python" ] || ! [[ " $supported " == *" $(version_of "$python") "* ]]; then
  echo "controller: the ansible-core $lane lane needs Python $(echo "$supported" | tr ' ' '/') with venv" \
    "on this machine; found ${python:-none}${python:+ $(version_of "$python")}." >&2
  echo "  Install one, or set LAB_CONTROLLER_PYTHON to it, or LAB_ANSIBLE_PLAYBOOK to your own" \
    "ansible-playbook." >&2
  exit 1
fi

start=$SECONDS
echo "controller: building the ansible-core $lane lane in $venv with $python $(version_of "$python")," \
  "from $(basename "$pins"):" >&2
grep -E '^(ansible|ansible-core|datadog-api-client)==' "$pins" | sed 's/^/  /' >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$pins" >&2
"$venv/bin/python" -m pip check >&2
echo "$want" >"$stamp"
echo "controller: built in $((SECONDS - start)) s" >&2
echo "$venv"
