#!/usr/bin/env bash
# Stand-in for Datadog's apt repository (test double): builds the stand-in datadog-agent .debs and a
# signed local apt repository, because apt.datadoghq.com can't be reached from the test machines.
#
# Output (STANDIN_REPO, default .build/standin-apt): an apt repository, "stable 7" like Datadog's,
# for amd64 and arm64 as Datadog's serves them (STANDIN_ARCHES), signed with a throwaway key (kept in .build/standin-gnupg), plus that key, armored, as
# DATADOG_APT_KEY_CURRENT.public. Packages:
#   datadog-agent            the role's pinned version (roles/datadog/defaults/main.yml) and the next
#                            patch release, so tests can prove the apt hold and a deliberate upgrade
#   datadog-signing-keys     the keyring at /usr/share/keyrings/datadog-archive-keyring.gpg
#   datadog-agent-standin-python  the embedded Python (a venv with datadog-checks-base from a wheelhouse
#                            for Debian 12's and 13's Pythons on that architecture, so installs need
#                            no network)
# Rebuilt only when an input changed. Usage: build.sh (from anywhere).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${STANDIN_REPO:-$root/.build/standin-apt}
cache=${STANDIN_CACHE:-$root/.build}
pythons=${STANDIN_PYTHONS:-3.11 3.13}
arches=${STANDIN_ARCHES:-amd64 arm64}
requirements="$here/requirements.txt"

# The pinned version, read with the repo's YAML reader (yaml-value fails on a missing key).
version=$("$root/tests/harness/yaml-value" "$root/roles/datadog/defaults/main.yml" datadog_agent_version 2>/dev/null) \
  || version=
[[ $version =~ ^[0-9]+(\.[0-9]+)+$ ]] || {
  echo "standin: no datadog_agent_version (x.y.z) in roles/datadog/defaults/main.yml (got '$version')" >&2
  exit 1
}
next_version=${version%.*}.$(( ${version##*.} + 1 ))

stamp=$( { echo "$version $pythons $arches"; find "$here" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; } \
  | sha256sum | cut -c1-16)
if [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "standin: $out is up to date (datadog-agent $version, $next_version)"
  exit 0
fi

command -v gpg >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnupg >/dev/null
}
start=$SECONDS
mkdir -p "$cache"
work=$(mktemp -d "$cache/standin-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. Wheelhouse per target Python, kept across builds (pip download only when requirements change).
wheels_for() {  # PY_VERSION DEB_ARCH -> directory of wheels
  local pv=$1 tag="cp${1/./}" dir machine
  case $2 in
    amd64) machine=x86_64 ;;
    arm64) machine=aarch64 ;;
    *) echo "standin: no wheel platform for the architecture $2" >&2; return 1 ;;
  esac
  dir="$cache/standin-wheels/$tag-$machine-$(sha256sum "$requirements" | cut -c1-12)"
  if [ ! -f "$dir/.complete" ]; then
    echo "standin: downloading wheels for Python $pv on $machine" >&2
    rm -rf "$dir"
    local platforms=()
    for p in manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
      platforms+=(--platform "${p}_$machine")
    done
    python3 -m pip download -q --disable-pip-version-check -d "$dir" --only-binary=:all: \
      --python-version "$pv" --implementation cp --abi "$tag" --abi abi3 --abi none "${platforms[@]}" \
      -r "$requirements" 2> >(grep -v 'is ignored: it is neither' >&2)
    # postinst unpacks these wheels itself: that is only what pip does when none has a .data dir.
    for w in "$dir"/*.whl; do
      if python3 -m zipfile -l "$w" | grep -q '\.data/'; then
        echo "standin: $w has a .data directory: postinst must install it with pip" >&2
        exit 1
      fi
    done
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# 2. A throwaway signing key, created once.
gnupg="$cache/standin-gnupg"
mkdir -p "$gnupg" && chmod 700 "$gnupg"
gpg_() { gpg --homedir "$gnupg" --batch --quiet "$@"; }
if ! gpg_ --list-secret-keys standin@datadog-lab.invalid >/dev/null 2>&1; then
  gpg_ --passphrase '' --quick-gen-key 'datadog-lab stand-in apt key (TEST ONLY) <standin@datadog-lab.invalid>' \
    ed25519 sign never
fi

stage() {  # NAME VERSION ARCH DESCRIPTION DEPENDS -> staging dir with DEBIAN/control
  local dir="$work/$1_$2_$3"
  mkdir -p "$dir/DEBIAN"
  cat >"$dir/DEBIAN/control" <<EOF
Package: $1
Version: 1:$2-1
Architecture: $3
Maintainer: datadog-lab tests <standin@datadog-lab.invalid>
Section: utils
Priority: optional
${5:+Depends: $5
}Description: $4
EOF
  echo "$dir"
}

build_deb() {  # STAGING_DIR -> pool
  local dir=$1
  find "$dir" -type d -exec chmod 755 {} +
  find "$dir" -type f ! -perm -u+x -exec chmod 644 {} +
  find "$dir" -type f -perm -u+x -exec chmod 755 {} +
  echo "Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)" >>"$dir/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$dir" "$work/repo/pool/" >/dev/null
}
mkdir -p "$work/repo/pool"

# 3. datadog-signing-keys: the keyring, as Datadog's package ships it.
dir=$(stage datadog-signing-keys 1.4.0 all \
  "TEST STAND-IN for Datadog's signing keys (datadog-lab tests, not from Datadog)
 Installs /usr/share/keyrings/datadog-archive-keyring.gpg holding the throwaway key that signs
 the datadog-lab test repository.")
mkdir -p "$dir/usr/share/keyrings"
gpg_ --export standin@datadog-lab.invalid >"$dir/usr/share/keyrings/datadog-archive-keyring.gpg"
build_deb "$dir"

# 4. datadog-agent-standin-python: the embedded Python, from the wheelhouse of each architecture.
for arch in $arches; do
  dir=$(stage datadog-agent-standin-python 1.0.0 "$arch" \
    "TEST STAND-IN: embedded Python for the stand-in Datadog Agent (datadog-lab tests)
 Creates /opt/datadog-agent/embedded, a venv with datadog-checks-base and psycopg2 installed
 offline from the wheels it carries (one set per supported Python version)." \
    "python3 (>= 3.9), python3-venv")
  mkdir -p "$dir/opt/datadog-agent/standin/wheels"
  cp "$requirements" "$dir/opt/datadog-agent/standin/wheels/requirements.txt"
  for pv in $pythons; do
    wheelhouse=$(wheels_for "$pv" "$arch")
    cp -r "$wheelhouse" "$dir/opt/datadog-agent/standin/wheels/cp${pv/./}"
    rm -f "$dir/opt/datadog-agent/standin/wheels/cp${pv/./}/.complete"
  done
  cp "$here/python/postinst" "$here/python/postrm" "$dir/DEBIAN/"
  build_deb "$dir"
done

# 5. datadog-agent, at the pinned version and the next one, for each architecture (its files are
# the same: the stand-in is Python).
for arch in $arches; do
  for v in "$version" "$next_version"; do
    dir=$(stage datadog-agent "$v" "$arch" \
      "TEST STAND-IN for the Datadog Agent 7 (datadog-lab tests, not the real agent)
 Built by tests/doubles/agent_standin because the real package can't be downloaded here. Keeps the
 real agent's paths, dd-agent user and datadog-agent services, and the CLI the lab's tests use:
 check (with the real datadog_checks_base), configcheck, status. Nothing is sent to Datadog: the
 trace receiver (127.0.0.1:8126) and DogStatsD (127.0.0.1:8125/udp) record what they get under
 /var/log/datadog/standin/." \
      "datadog-agent-standin-python, passwd")
    cp -r "$here/package/." "$dir/"
    find "$dir" -name __pycache__ -prune -exec rm -rf {} +
    mkdir -p "$dir/etc/datadog-agent/conf.d" "$dir/etc/datadog-agent/checks.d" "$dir/var/log/datadog" \
      "$dir/opt/datadog-agent/run"
    echo "$v" >"$dir/opt/datadog-agent/standin/VERSION"
    build_deb "$dir"
  done
done

# 6. The repository: dists/stable/7/binary-<arch>/Packages (each with the arch-independent
# datadog-signing-keys) and a signed Release, as apt.datadoghq.com lays it out.
repo="$work/repo"
for arch in $arches; do
  bin="dists/stable/7/binary-$arch"
  mkdir -p "$repo/$bin"
  for deb in "$repo"/pool/*.deb; do
    case $(dpkg-deb -f "$deb" Architecture) in all | "$arch") ;; *) continue ;; esac
    dpkg-deb -f "$deb"
    echo "Filename: pool/$(basename "$deb")"
    echo "Size: $(stat -c %s "$deb")"
    echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
    echo
  done >"$repo/$bin/Packages"
  gzip -9k "$repo/$bin/Packages"
done
{
  echo "Origin: datadog-lab stand-in"
  echo "Label: datadog-lab stand-in (TEST ONLY)"
  echo "Suite: stable"
  echo "Codename: stable"
  echo "Date: $(LC_ALL=C date -Ru)"
  echo "Architectures: $arches"
  echo "Components: 7"
  echo "SHA256:"
  for arch in $arches; do
    for f in Packages Packages.gz; do
      printf ' %s %s 7/binary-%s/%s\n' "$(sha256sum "$repo/dists/stable/7/binary-$arch/$f" | cut -d' ' -f1)" \
        "$(stat -c %s "$repo/dists/stable/7/binary-$arch/$f")" "$arch" "$f"
    done
  done
} >"$repo/dists/stable/Release"
gpg_ --clearsign -o "$repo/dists/stable/InRelease" "$repo/dists/stable/Release"
gpg_ --armor --detach-sign -o "$repo/dists/stable/Release.gpg" "$repo/dists/stable/Release"
gpg_ --armor --export standin@datadog-lab.invalid >"$repo/DATADOG_APT_KEY_CURRENT.public"
echo "$stamp" >"$repo/.stamp"
chmod -R u=rwX,go=rX "$repo"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$repo" "$out"
echo "standin: built $out in $((SECONDS - start)) s (datadog-agent $version, $next_version; $arches; $(du -sh "$out" | cut -f1))"
