#!/usr/bin/env bash
# Acceptance test of the local PostgreSQL 10 apt repository (build.sh): in a throwaway Debian 12
# systemd container (Molecule's settings from .config/molecule/config.yml) it adds the repository
# the way roles/postgresql does (armored key in /etc/apt/keyrings, signed-by), installs
# postgresql-10 and checks that it behaves like PGDG's: 10/main created and started by postinst
# under systemd, PostgreSQL 10.23, pg_monitor, SSL, scram-sha-256 over TCP, pg_stat_statements
# after a restart, and a purge that stops and drops the cluster. Only talks to the container
# (docker exec); the container reaches Debian's mirror for postgresql-common and the client.
# Usage: smoke.sh (from anywhere). Removes its container on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
repo=${PG10_REPO:-$root/.build/pg10-apt}
image=${PG10_IMAGE:-datadog-lab/debian:12}
name=pg10-smoke-$$
start=$SECONDS

"$root/tests/harness/docker-engine.sh"
docker image inspect "$image" >/dev/null 2>&1 || "$root/tests/harness/base-images.sh" bookworm
"$here/build.sh"

trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  --stop-signal SIGRTMIN+3 -v "$repo:/srv/pg10-apt:ro" "$image" /lib/systemd/systemd >/dev/null
echo "pg10-smoke: container $name from $image"

docker exec -i "$name" bash -s <<'EOF'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
t0=$SECONDS
ok() { echo "ok - $* ($((SECONDS - t0)) s)"; }
fail() { echo "FAIL - $*" >&2; exit 1; }
pg() { sudo -u postgres psql -X -tAc "$1"; }

for _ in $(seq 1 30); do
  state=$(systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 1
done
ok "systemd is up ($state)"

install -d -m 755 /etc/apt/keyrings
cp /srv/pg10-apt/pgdg.asc /etc/apt/keyrings/pgdg.asc
echo "deb [signed-by=/etc/apt/keyrings/pgdg.asc] file:/srv/pg10-apt bookworm-pgdg main" \
  >/etc/apt/sources.list.d/pgdg.list
apt-get update -qq 2>&1 | { grep -Ei 'pg10-apt|^[WE]:' || true; }
apt-cache policy postgresql-10 | grep -q 'file:/srv/pg10-apt bookworm-pgdg/main amd64' \
  || fail "postgresql-10 not offered by the local repository (signature?)"
ok "apt update: signed repository accepted"

apt-get install -y -qq postgresql-10 >/tmp/install.log 2>&1 || { cat /tmp/install.log; fail "apt-get install postgresql-10"; }
sed -n '/^Setting up postgresql-10 /,$p' /tmp/install.log | grep -Ev '^(fixing|creating|selecting|running|performing|syncing)' \
  | grep -v '^$' | sed 's/^/  | /' || true
dpkg -s postgresql-15 >/dev/null 2>&1 && fail "postgresql-15 got installed too"
ok "installed postgresql-10 $(dpkg-query -W -f '${Version}' postgresql-10) (psql from $(dpkg-query -W -f '${Package} ${Version}' postgresql-client-15))"

missing=$(for f in /usr/lib/postgresql/10/bin/* /usr/lib/postgresql/10/lib/postgresql/*.so; do
  ldd "$f" 2>/dev/null | sed -n "s|^\s*\(\S*\) => not found|$f: \1|p"; done)
[ -z "$missing" ] || fail "unresolved libraries: $missing"
ok "ldd: every binary and module resolves its libraries"

pg_lsclusters
pg_lsclusters -h | grep -Eq '^10 +main +5432 +online ' || fail "cluster 10/main is not online"
ok "cluster 10/main exists and is online"
[ "$(systemctl is-active postgresql@10-main)" = active ] || fail "postgresql@10-main is not active"
journalctl -u postgresql@10-main --no-pager | grep -E 'Error|Warning' && fail "pg_ctlcluster complained"
ok "postgresql@10-main is active, pg_ctlcluster started it without complaint"

v=$(pg 'select version()'); echo "$v"
case $v in "PostgreSQL 10.23 "*) ;; *) fail "version() is not PostgreSQL 10.23" ;; esac
ok "server is PostgreSQL 10.23"
[ "$(pg "select count(*) from pg_roles where rolname = 'pg_monitor'")" = 1 ] || fail "no pg_monitor role"
ok "pg_monitor role exists"
[ "$(pg 'show ssl')" = on ] || fail "ssl is off"
[ "$(pg "select count(*) from pg_collation where collprovider = 'i'")" -gt 0 ] || fail "no ICU collations"
ok "ssl = on (postgresql-common's snakeoil cert), ICU collations imported"

pg "alter system set password_encryption = 'scram-sha-256'" >/dev/null
pg "alter system set shared_preload_libraries = 'pg_stat_statements'" >/dev/null
sed -i '1i host all lab_scram 127.0.0.1/32 scram-sha-256' /etc/postgresql/10/main/pg_hba.conf
pg 'select pg_reload_conf()' >/dev/null
pg "create role lab_scram login password 'lab-secret'" >/dev/null
case $(pg "select rolpassword from pg_authid where rolname = 'lab_scram'") in
  'SCRAM-SHA-256$'*) ;; *) fail "password not stored as SCRAM-SHA-256" ;; esac
who=$(PGPASSWORD=lab-secret psql -X -h 127.0.0.1 -U lab_scram -d postgres -tAc \
  'select current_user || case when ssl then '"' over ssl'"' else '"''"' end from pg_stat_ssl where pid = pg_backend_pid()')
[ "$who" = "lab_scram over ssl" ] || fail "scram login over TCP gave '$who'"
PGPASSWORD=wrong psql -X -h 127.0.0.1 -U lab_scram -d postgres -tAc 'select 1' >/dev/null 2>&1 \
  && fail "a wrong password was accepted"
ok "scram-sha-256 login over TCP 127.0.0.1 (with SSL) works, a wrong password is refused"

before=$(pg 'select pg_postmaster_start_time()')
systemctl restart postgresql@10-main
[ "$(systemctl is-active postgresql@10-main)" = active ] || fail "not active after restart"
after=$(pg 'select pg_postmaster_start_time()')
[ "$before" != "$after" ] || fail "server did not restart"
pg 'create extension pg_stat_statements' >/dev/null
[ "$(pg 'select count(*) > 0 from pg_stat_statements')" = t ] || fail "pg_stat_statements is empty"
ok "systemctl restart postgresql@10-main works; pg_stat_statements preloaded and answering"

apt-get purge -y -qq postgresql-10 >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "apt-get purge postgresql-10"; }
systemctl is-active -q postgresql@10-main && fail "postgresql@10-main still active after purge"
[ ! -e /var/lib/postgresql/10 ] && [ ! -e /etc/postgresql/10 ] || fail "cluster left behind after purge"
ok "purge stops and drops 10/main"
EOF
echo "pg10-smoke: passed in $((SECONDS - start)) s"
