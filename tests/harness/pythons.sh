#!/usr/bin/env bash
# The bionic scenario's interpreters: Ubuntu 18.04's python3 (3.6) and python3.8, from this
# machine image's pyenv builds (Debian's archive has neither). Each is copied once into
# .build/pythons/<major.minor> with its RUNPATH made relative ($ORIGIN/../lib), so it runs from
# wherever the scenario mounts it (/usr/local/python3.6 and /usr/local/python3.8) and not from
# /root, which the app's sandboxed unit cannot see (ProtectHome). Usage: pythons.sh [VERSION...]
set -euo pipefail
cd "$(dirname "$0")/../.."
pyenv=${PYENV_VERSIONS:-/root/.pyenv/versions}

command -v patchelf >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null
}

for version in "${@:-3.6.15 3.8.18}"; do
  for v in $version; do
    short=${v%.*} dest=.build/pythons/${v%.*}
    if [ -x "$dest/bin/python$short" ] && [ "$(cat "$dest/.source" 2>/dev/null)" = "$pyenv/$v" ]; then
      echo "pythons: $dest is up to date"
      continue
    fi
    [ -x "$pyenv/$v/bin/python$short" ] || {
      echo "pythons: $pyenv/$v is missing: the bionic scenario needs this machine image's pyenv" \
        "build of Python $v (set PYENV_VERSIONS to the folder holding it)" >&2
      exit 1
    }
    rm -rf "$dest" && mkdir -p .build/pythons
    cp -a "$pyenv/$v" "$dest"
    patchelf --set-rpath '$ORIGIN/../lib' "$dest/bin/python$short"
    "$dest/bin/python$short" -c 'import ssl, sqlite3, venv' # the copy runs on its own libraries
    echo "$pyenv/$v" >"$dest/.source"
    echo "pythons: $dest from $pyenv/$v"
  done
done
